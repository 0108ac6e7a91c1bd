"""`python -m course_utils doctor` prints the environment report."""

import sys

from .env import doctor


def main(argv: list[str]) -> int:
    if argv[1:] in ([], ["doctor"]):
        doctor()
        return 0
    print("usage: python -m course_utils [doctor]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
