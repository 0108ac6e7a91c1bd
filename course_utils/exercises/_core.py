"""The machinery every exercise shares: verdicts, running a learner's function safely,
and multiple-choice quiz questions."""

from __future__ import annotations

import functools
import numbers
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import torch

PASSED, FAILED, NOT_ATTEMPTED = "passed", "failed", "not attempted"
CHECKER_FAILED = "checker failed"  # a bug in the checker, not in the learner's code
_ICONS = {PASSED: "✅", FAILED: "❌", NOT_ATTEMPTED: "⏳", CHECKER_FAILED: "⚠️"}
_COLOURS = {
    PASSED: "#e6f4ea",
    FAILED: "#fce8e6",
    NOT_ATTEMPTED: "#fef7e0",
    CHECKER_FAILED: "#e8eaed",
}


@dataclass(frozen=True)
class CheckResult:
    """The verdict on one exercise, shown as a coloured line in a notebook."""

    exercise: str
    status: str
    message: str

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def __repr__(self) -> str:
        return f"{_ICONS[self.status]} {self.exercise}: {self.message}"

    def _repr_html_(self) -> str:
        return (
            f'<div style="background:{_COLOURS[self.status]};padding:6px 10px;'
            f'border-radius:4px;color:#202124">{_ICONS[self.status]} <b>{self.exercise}</b>: '
            f"{self.message}</div>"
        )


class Mistake(Exception):
    """Raised inside a checker to report a specific mistake."""


def _watched(fn: Callable, raised: list[Exception]) -> Callable:
    """``fn``, noting every exception it raises: those are the learner's, any other the checker's."""

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            raised.append(err)
            raise

    return call


def _learner_error(exercise: str, err: Exception) -> CheckResult:
    if isinstance(err, NotImplementedError):
        return CheckResult(
            exercise,
            NOT_ATTEMPTED,
            "not attempted yet: replace `raise NotImplementedError` with your code, "
            "then run this cell again.",
        )
    hint = ""
    if isinstance(err, RuntimeError) and "same device" in str(err):
        hint = (
            " (create new tensors on the device of your inputs, e.g. device=scores.device or "
            "torch.zeros_like(x), rather than on a fixed `device`)"
        )
    return CheckResult(exercise, FAILED, f"your function raised {type(err).__name__}: {err}{hint}")


def _checker_error(exercise: str, err: Exception) -> CheckResult:
    frame = traceback.extract_tb(err.__traceback__)[-1]
    where = f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}"
    return CheckResult(
        exercise,
        CHECKER_FAILED,
        f"the checker itself failed ({type(err).__name__}: {err}, at {where}); this is a bug in "
        "the course, not in your code: please report it",
    )


def run_check(exercise: str, fn: Callable, body: Callable[[Callable], str]) -> CheckResult:
    """Call ``body(fn)``; turn NotImplementedError, mistakes and crashes into verdicts.

    Only an exception raised inside ``fn`` is the learner's (a crash, or NotImplementedError:
    not attempted yet); any other is the checker's own failure, and is reported as one.
    """
    if not callable(fn):
        return CheckResult(exercise, FAILED, f"expected a function, got {type(fn).__name__}")
    raised: list[Exception] = []
    try:
        praise = body(_watched(fn, raised))
    except Mistake as mistake:
        return CheckResult(exercise, FAILED, str(mistake))
    except Exception as err:  # say what went wrong in a line, not a traceback wall
        if any(err is e for e in raised):
            return _learner_error(exercise, err)
        return _checker_error(exercise, err)
    return CheckResult(exercise, PASSED, praise)


def expect_tensor(
    value, name: str, shape: tuple[int, ...], keep_dtype: bool = False
) -> torch.Tensor:
    """``value``, a tensor of ``shape``, made comparable with the checker's own tensors.

    The checkers build their cases on the default device in the default float dtype; a right
    answer computed in float64 or with integers, or left on the lesson's ``device`` (a GPU), is
    still right, so it is moved to that device and cast to that dtype (comparing a Double with
    a Float answer would crash). ``keep_dtype=True`` for answers whose dtype is part of the
    exercise (token ids, boolean masks): the checker checks that dtype itself.
    """
    if not isinstance(value, torch.Tensor):
        raise Mistake(f"{name} should be a torch.Tensor, got {type(value).__name__}")
    if tuple(value.shape) != shape:
        raise Mistake(f"{name} has shape {tuple(value.shape)}, expected {shape}")
    value = value.to(torch.get_default_device())
    return value if keep_dtype else value.to(torch.get_default_dtype())


@dataclass(frozen=True)
class Question:
    """A multiple-choice question; ``answer`` indexes ``options``; ``why`` is shown after."""

    prompt: str
    options: tuple[str, ...]
    answer: int
    why: str

    def __post_init__(self):
        if len(self.options) < 2:
            raise ValueError(f"a question needs at least two options: {self.prompt!r}")
        if not 0 <= self.answer < len(self.options):
            raise ValueError(f"answer {self.answer} is not an option index: {self.prompt!r}")

    def grade(self, choice: int | None) -> tuple[bool, str]:
        """(correct?, feedback) for the option index a learner picked."""
        if choice is None:
            return False, "Pick an option first."
        if isinstance(choice, bool) or not isinstance(choice, numbers.Integral):
            raise TypeError(
                f"choice must be an option index, an int in 0..{len(self.options) - 1}, got "
                f"{choice!r} ({type(choice).__name__}): pass the position of the option, not "
                "its text"
            )
        if not 0 <= choice < len(self.options):
            raise ValueError(f"choice {choice} is not an option index (0..{len(self.options) - 1})")
        if choice == self.answer:
            return True, f"Correct. {self.why}"
        return False, f"Not quite. {self.why}"
