"""Exercise checkers and quizzes: run a learner's function on cases with known answers and
explain mistakes in words.

Each ``check_<name>(fn)`` returns a :class:`CheckResult`. A stub that still raises
``NotImplementedError`` is "not attempted yet", never a crash, so a notebook runs top to
bottom. ``show_solution(name)`` prints the reference solution. One module per lesson.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from . import (
    lesson00,
    lesson01,
    lesson02,
    lesson03,
    lesson04,
    lesson05,
    lesson06,
    lesson07,
    lesson08,
    lesson09,
)
from ._core import CHECKER_FAILED, FAILED, NOT_ATTEMPTED, PASSED, CheckResult, Question
from .lesson00 import check_softmax, reference_softmax
from .lesson01 import (
    check_greedy_step,
    check_pad_batch,
    reference_greedy_step,
    reference_pad_batch,
)
from .lesson02 import *  # noqa: F403  (each lesson module lists its names in __all__)
from .lesson03 import *  # noqa: F403
from .lesson04 import *  # noqa: F403
from .lesson05 import *  # noqa: F403
from .lesson06 import *  # noqa: F403
from .lesson07 import *  # noqa: F403
from .lesson08 import *  # noqa: F403
from .lesson09 import *  # noqa: F403

_LESSONS = {
    "00": lesson00,
    "01": lesson01,
    "02": lesson02,
    "03": lesson03,
    "04": lesson04,
    "05": lesson05,
    "06": lesson06,
    "07": lesson07,
    "08": lesson08,
    "09": lesson09,
}

SOLUTIONS: dict[str, Callable] = {
    name: fn for module in _LESSONS.values() for name, fn in module.SOLUTIONS.items()
}
QUIZZES: dict[str, list[Question]] = {number: module.QUIZ for number, module in _LESSONS.items()}


def show_solution(name: str) -> None:
    """Print the reference solution of exercise ``name``."""
    if name not in SOLUTIONS:
        raise ValueError(f"no exercise called {name!r}; there are {sorted(SOLUTIONS)}")
    print(inspect.getsource(SOLUTIONS[name]))


__all__ = [
    "CHECKER_FAILED",
    "FAILED",
    "NOT_ATTEMPTED",
    "PASSED",
    "QUIZZES",
    "SOLUTIONS",
    "CheckResult",
    "Question",
    "check_greedy_step",
    "check_pad_batch",
    "check_softmax",
    "reference_greedy_step",
    "reference_pad_batch",
    "reference_softmax",
    "show_solution",
    *lesson02.__all__,
    *lesson03.__all__,
    *lesson04.__all__,
    *lesson05.__all__,
    *lesson06.__all__,
    *lesson07.__all__,
    *lesson08.__all__,
    *lesson09.__all__,
]
