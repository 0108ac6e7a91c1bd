"""Lesson 03 exercises: Luong's general score, and the window of local attention."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ._core import CheckResult, Mistake, Question, expect_tensor, run_check

__all__ = [
    "check_general_score",
    "check_local_window",
    "reference_general_score",
    "reference_local_window",
]


def reference_general_score(
    query: torch.Tensor, keys: torch.Tensor, W: torch.Tensor
) -> torch.Tensor:
    """score(q, k) = qᵀ W k for every query and key: ``(B, L_q, D_q), (B, S, D_k), (D_q, D_k)
    -> (B, L_q, S)``."""
    return query @ W @ keys.transpose(1, 2)  # (B, L_q, D_q) (D_q, D_k) (B, D_k, S)


def _call_score(fn: Callable, query, keys, W) -> torch.Tensor:
    try:
        return fn(query.clone(), keys.clone(), W.clone())
    except RuntimeError as err:
        if "shape" in str(err) or "size" in str(err):
            raise Mistake(
                f"the sizes do not fit ({err}). With query (B, L_q, D_q), W (D_q, D_k) and "
                "keys (B, S, D_k), compute query @ W, which is (B, L_q, D_k) and matches the "
                "keys, then multiply by the keys transposed"
            ) from None
        raise


def check_general_score(fn: Callable) -> CheckResult:
    """Checks ``fn(query (B, L_q, D_q), keys (B, S, D_k), W (D_q, D_k)) -> scores (B, L_q, S)``."""

    def body(fn):
        with torch.random.fork_rng():  # leave the learner's random state alone
            torch.manual_seed(3)
            query, keys = torch.randn(2, 3, 4), torch.randn(2, 5, 6)  # D_q = 4 != D_k = 6
            W = torch.randn(4, 6)
            square_keys, square_W = torch.randn(2, 5, 4), torch.randn(4, 4)
        # a square case first (D_q == D_k), where forgetting W or transposing it still runs
        square = _call_score(fn, query, square_keys, square_W)
        if isinstance(square, torch.Tensor) and square.shape == (2, 5, 3):
            raise Mistake(
                "scores have shape (B, S, L_q): you multiplied in the wrong order. Rows are "
                "queries and columns are keys: scores = query @ W @ keys.transpose(1, 2), "
                "(B, L_q, S)"
            )
        square = expect_tensor(square, "scores", (2, 3, 5))
        expected_square = reference_general_score(query, square_keys, square_W)
        dot = query @ square_keys.transpose(1, 2)
        if torch.allclose(square, dot, atol=1e-5):
            raise Mistake("these are the dot scores qᵀk: you forgot W. The general score is qᵀ W k")
        if torch.allclose(square, query @ square_W.T @ square_keys.transpose(1, 2), atol=1e-5):
            raise Mistake(
                "you used Wᵀ instead of W: with W of shape (D_q, D_k) the score is query @ W @ "
                "keys.transpose(1, 2)"
            )
        if torch.allclose(square, torch.softmax(expected_square, dim=-1), atol=1e-5) or (
            torch.allclose(square.sum(-1), torch.ones(2, 3), atol=1e-4) and (square >= 0).all()
        ):
            raise Mistake(
                "every row sums to 1: you applied the softmax. Return the raw scores; the "
                "softmax turns them into weights afterwards"
            )
        if torch.allclose(square, expected_square / math.sqrt(4), atol=1e-5):
            raise Mistake(
                "you divided by √d: Luong's general score is not scaled (the 1/√d_k scale is "
                "lesson 04's idea)"
            )
        if not torch.allclose(square, expected_square, atol=1e-5):
            raise Mistake("the scores differ from qᵀ W k on a case with D_q = D_k = 4")
        scores = _call_score(fn, query, keys, W)
        scores = expect_tensor(scores, "scores", (2, 3, 5))
        if not torch.allclose(scores, reference_general_score(query, keys, W), atol=1e-5):
            raise Mistake(
                "right when D_q = D_k, wrong when they differ (D_q = 4, D_k = 6): check which "
                "side of W the query and the keys go"
            )
        return "qᵀ W k for every query and key, (B, L_q, S), even when D_q != D_k."

    return run_check("general_score", fn, body)


def reference_local_window(p_t: float, source_length: int, window: int) -> torch.Tensor:
    """Boolean ``(S,)`` mask, True at source positions s with |s - round(p_t)| <= window."""
    centre = round(p_t)  # the nearest source position, as in course_utils.attention.LocalAttention
    positions = torch.arange(source_length)  # (S,)
    return (positions - centre).abs() <= window


_WINDOW_CASES = (  # (p_t, S, D): the middle, both edges, a real-valued centre, D = 0
    (4, 10, 2),
    (1, 10, 3),
    (8, 10, 3),
    (3.4, 10, 2),
    (5, 10, 0),
)


def _as_list(mask: torch.Tensor) -> list[int]:
    return [i for i, allowed in enumerate(mask.tolist()) if allowed]


def check_local_window(fn: Callable) -> CheckResult:
    """Checks ``fn(p_t, source_length, window) -> mask (S,) bool``, True where
    |s - round(p_t)| <= D."""

    def body(fn):
        for p_t, length, window in _WINDOW_CASES:
            expected = reference_local_window(p_t, length, window)
            result = fn(p_t, length, window)
            if isinstance(result, torch.Tensor) and result.dim() == 1 and len(result) != length:
                raise Mistake(
                    f"for p_t={p_t}, S={length}, D={window} the mask has {len(result)} entries: "
                    f"it needs one per source position ({length}), True inside the window. Did "
                    "you forget to clip the window to the sequence?"
                )
            result = expect_tensor(result, "mask", (length,), keep_dtype=True)
            if result.dtype != torch.bool:
                raise Mistake(
                    f"the mask is {result.dtype}; make it boolean (True = may attend), e.g. "
                    "with a comparison like distance <= window"
                )
            if torch.equal(result, ~expected):
                raise Mistake(
                    "the mask is inverted: True must mean 'may attend', i.e. inside the window"
                )
            got, want = _as_list(result), _as_list(expected)
            if got == want:
                continue
            if got == _as_list((torch.arange(length) - round(p_t)).abs() < window):
                raise Mistake(
                    f"off by one: for p_t={p_t}, D={window} you allow {got}, but the window "
                    f"includes both ends, |s - p_t| <= D: {want}"
                )
            for shift in (-1, 1):
                if got and got == _as_list(reference_local_window(p_t + shift, length, window)):
                    raise Mistake(
                        f"the window is centred on p_t {shift:+d}: for p_t={p_t}, D={window} "
                        f"you allow {got}, expected {want}"
                    )
            if isinstance(p_t, float) and got == _as_list(
                (torch.arange(length) - p_t).abs() <= window
            ):
                raise Mistake(
                    f"centre the window on the nearest source position, round(p_t) = "
                    f"{round(p_t)}, not on p_t = {p_t} itself: then it always holds 2D + 1 "
                    f"positions where it fits, expected {want}, got {got}"
                )
            if want and (want[0] == 0 or want[-1] == length - 1):
                raise Mistake(
                    f"near the edge of the sequence (p_t={p_t}, S={length}, D={window}) you "
                    f"allow {got}, expected {want}: clip the window to positions 0..S-1 (a "
                    "negative slice start wraps around in Python)"
                )
            raise Mistake(f"for p_t={p_t}, S={length}, D={window} you allow {got}, expected {want}")
        return "True exactly where |s - round(p_t)| <= D, clipped to the sequence, for any p_t."

    return run_check("local_window", fn, body)


SOLUTIONS = {"general_score": reference_general_score, "local_window": reference_local_window}

QUIZ = [
    Question(
        "Why does the dot score need the query and the keys to have the same size?",
        (
            "Because the softmax needs equal sizes",
            "Because qᵀk is an inner product: both vectors need the same number of entries",
            "Because the decoder and the encoder share their weights",
        ),
        1,
        "qᵀk sums q_i k_i over i, so both need the same dimension. The general score's W "
        "(D_q × D_k) bridges two different sizes.",
    ),
    Question(
        "How many parameters does each score add to the model (D_q = D_k = H)?",
        (
            "dot: 0; general: H²; concat: about 2H² + H",
            "All three add H²",
            "dot: H; general: H²; concat: H³",
        ),
        0,
        "dot has nothing to learn; general learns one H × H matrix; concat learns W "
        "(H × 2H) and v (H). The table in the lesson counts them.",
    ),
    Question(
        "Local-m attention centres its window at p_t = t, the output position. When does that fit?",
        (
            "Always: attention is monotonic",
            "When output step t usually reads source positions near t, as in copying",
            "Only when the window is 0",
        ),
        1,
        "Copying or word-by-word translation is close to monotonic. An ISO date writes the "
        "year first, which sits at the end of most inputs, so p_t = t points at the wrong place.",
    ),
    Question(
        "What does local-p add to turn a learned centre p_t into attention weights?",
        (
            "Nothing: it attends uniformly inside the window",
            "A Gaussian around p_t (σ = D/2) that favours positions close to the centre",
            "A causal mask",
        ),
        1,
        "Luong et al. multiply the alignment weights by exp(-(s - p_t)² / 2σ²); in log space "
        "that is the penalty added to the scores.",
    ),
]
