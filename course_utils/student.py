"""Student copies of the lessons: ``python -m course_utils.student notebooks/ student/``.

In each notebook:
- a solution region (``### BEGIN SOLUTION`` … ``### END SOLUTION``) becomes a stub: every
  function it defines keeps its signature and gets ``raise NotImplementedError``; other code
  in the region is replaced by a comment;
- a collapsed solution cell that only repeats the exercise's stub cell is dropped;
- a hidden-test region (``### BEGIN HIDDEN TESTS`` … ``### END HIDDEN TESTS``) is removed;
- outputs, execution counts and the stored widget state are cleared.
The copies still run top to bottom: the checkers report "not attempted yet".
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
STUB_BODY = "    # your code here\n    raise NotImplementedError"
_DEF = re.compile(r"^def (\w+)\(.*?\):[ \t]*(#[^\n]*)?$", re.M | re.S)


def _regions(source: str, begin: str, end: str) -> list[tuple[int, int]]:
    """``(start, stop)`` character spans of every ``begin`` … ``end`` region, markers included."""
    spans, position = [], 0
    while (start := source.find(begin, position)) != -1:
        stop = source.find(end, start)
        if stop == -1:
            raise ValueError(f"{begin!r} without a matching {end!r} in:\n{source[:200]}")
        spans.append((start, stop + len(end)))
        position = stop + len(end)
    return spans


def stub_region(region: str) -> str:
    """The code of a solution region turned into stubs: signatures kept, bodies replaced."""
    stubs = []
    for line_start in (m.start() for m in re.finditer(r"^def ", region, re.M)):
        header = _DEF.match(region, line_start)
        if header is None:
            raise ValueError(f"cannot read the signature at: {region[line_start:][:80]!r}")
        stubs.append(f"{header.group(0).rstrip()}\n{STUB_BODY}")
    return "\n\n\n".join(stubs) if stubs else "# your code here"


def defined_names(source: str) -> set[str]:
    return set(re.findall(r"^def (\w+)\(", source, re.M))


def student_source(source: str) -> str:
    """A cell's source with its solutions stubbed and its hidden tests removed."""
    for start, stop in reversed(_regions(source, BEGIN_HIDDEN, END_HIDDEN)):
        source = source[:start] + source[stop:]
    for start, stop in reversed(_regions(source, BEGIN_SOLUTION, END_SOLUTION)):
        region = source[start + len(BEGIN_SOLUTION) : stop - len(END_SOLUTION)]
        source = source[:start] + stub_region(region) + source[stop:]
    return re.sub(r"\n{4,}", "\n\n\n", source).strip("\n")


def _is_stub_cell(cell) -> bool:
    return cell.cell_type == "code" and "raise NotImplementedError" in cell.source


def student_notebook(nb):
    """A copy of ``nb`` for learners (see the module docstring)."""
    copy = nbformat.from_dict(nb)
    cells, previous_code = [], None
    for cell in copy.cells:
        if cell.cell_type == "code":
            hidden = cell.metadata.get("jupyter", {}).get("source_hidden", False)
            has_solution = BEGIN_SOLUTION in cell.source
            cell.source = student_source(cell.source)
            repeats_stub = (
                previous_code is not None
                and _is_stub_cell(previous_code)
                and defined_names(cell.source) <= defined_names(previous_code.source)
            )
            if has_solution and hidden and repeats_stub:
                continue  # the learner already has this stub in the cell above
            if has_solution:  # a stub to fill in must not stay collapsed
                cell.metadata.get("jupyter", {}).pop("source_hidden", None)
            cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("execution", None)
            previous_code = cell
        cells.append(cell)
    copy.cells = cells
    copy.metadata.pop("widgets", None)
    return copy


def write_student_copies(source_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """Write a student copy of every ``*.ipynb`` in ``source_dir`` to ``out_dir``."""
    source_dir, out_dir = Path(source_dir), Path(out_dir)
    notebooks = sorted(source_dir.glob("*.ipynb"))
    if not notebooks:
        raise ValueError(f"no notebooks in {source_dir}")
    if out_dir.resolve() == source_dir.resolve():
        raise ValueError("the output folder must differ from the lessons' folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        copy = student_notebook(nbformat.read(path, as_version=4))
        target = out_dir / path.name
        nbformat.write(copy, target)
        written.append(target)
    return written


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m course_utils.student LESSONS_DIR OUT_DIR", file=sys.stderr)
        return 2
    for path in write_student_copies(argv[1], argv[2]):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
