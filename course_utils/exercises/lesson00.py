"""Lesson 00 exercises: a softmax."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._core import CheckResult, Mistake, Question, expect_tensor, run_check


def reference_softmax(scores: torch.Tensor) -> torch.Tensor:
    """softmax(x)_i = exp(x_i - max x) / sum_j exp(x_j - max x), over the last dim."""
    shifted = scores - scores.max(dim=-1, keepdim=True).values  # for numerical stability
    exps = shifted.exp()
    return exps / exps.sum(dim=-1, keepdim=True)


def check_softmax(fn: Callable[[torch.Tensor], torch.Tensor]) -> CheckResult:
    """Checks ``fn(scores (..., n)) -> weights (..., n)``: a softmax over the last dim."""

    def body(fn):
        scores = torch.tensor([[1.0, 2.0, 3.0], [0.5, 0.5, -1.0]])
        out = expect_tensor(fn(scores.clone()), "the result", tuple(scores.shape))
        if (out < 0).any():
            raise Mistake("some weights are negative: did you forget the exp?")
        if torch.allclose(out.sum(dim=0), torch.ones(3)) and not torch.allclose(
            out.sum(dim=-1), torch.ones(2)
        ):
            raise Mistake(
                "the weights sum to 1 down each column, not along each row: "
                "normalise over the last dim (dim=-1), where the scores of one query are."
            )
        if not torch.allclose(out.sum(dim=-1), torch.ones(2), atol=1e-5):
            raise Mistake("the weights of a row do not sum to 1: divide by the sum of the exps")
        if not torch.allclose(out, torch.softmax(scores, dim=-1), atol=1e-5):
            raise Mistake("the weights sum to 1 but are not exp(x) / sum(exp(x))")
        big = torch.tensor([[1000.0, 1001.0, 1002.0]])
        out_big = expect_tensor(fn(big.clone()), "the result for large scores", (1, 3))
        if not torch.isfinite(out_big).all():
            raise Mistake(
                "large scores give NaN or inf: exp(1000) overflows. Subtract the row's "
                "maximum before the exp; it cancels in the ratio."
            )
        if not torch.allclose(out_big, torch.softmax(big, dim=-1), atol=1e-5):
            raise Mistake("large scores give wrong weights: subtract the max, then exp")
        return "correct, and stable for large scores."

    return run_check("softmax", fn, body)


SOLUTIONS = {"softmax": reference_softmax}

QUIZ = [
    Question(
        "A cell's output in the stored notebook differs from what you get. What should you "
        "check first?",
        (
            "Whether you ran the cells above it, in order",
            "Whether your GPU is fast enough",
            "Nothing: outputs are random",
        ),
        0,
        "Lessons are written to run top to bottom; a skipped cell leaves names undefined "
        "or stale. Every random choice is seeded, so a run in order reproduces the outputs.",
    ),
    Question(
        "Raising the softmax temperature (dividing the scores by a larger number) makes the "
        "weights...",
        ("sharper, closer to one-hot", "flatter, closer to uniform", "unchanged"),
        1,
        "Dividing by a large temperature shrinks the gaps between scores, so exp() of them "
        "are closer together. Lesson 04 meets the same effect as the 1/sqrt(d_k) scale.",
    ),
]
