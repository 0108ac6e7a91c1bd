"""Lesson 04 exercises: scaled dot-product attention with a mask, and the causal mask."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ._core import CheckResult, Mistake, Question, expect_tensor, run_check

__all__ = [
    "check_causal_mask",
    "check_scaled_attention",
    "reference_causal_mask",
    "reference_scaled_attention",
]


def reference_scaled_attention(q, k, v, mask=None):
    """softmax(q kᵀ / √d_k) v; boolean ``mask`` True = may attend; a fully masked row -> zeros.

    q ``(..., L_q, d_k)``, k ``(..., L_k, d_k)``, v ``(..., L_k, d_v)`` -> out ``(..., L_q, d_v)``,
    weights ``(..., L_q, L_k)``.
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., L_q, L_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)  # finite, not -inf
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        weights = weights * mask  # masked keys exactly 0; a fully masked row all 0
    return weights @ v, weights


def reference_causal_mask(n: int) -> torch.Tensor:
    """``(n, n)`` boolean, True on and below the diagonal: position i may attend to j <= i."""
    return torch.ones(n, n, dtype=torch.bool).tril()


# ----------------------------------------------------------------------------- scaled attention

_B, _LQ, _LK, _DK, _DV = 2, 3, 5, 16, 7  # d_k != d_v and L_q != L_k, so mix-ups change shapes


def _attention_cases():
    with torch.random.fork_rng():  # leave the learner's random state alone
        torch.manual_seed(4)
        q = torch.randn(_B, _LQ, _DK) * 2  # large enough scores that the scale matters
        k = torch.randn(_B, _LK, _DK) * 2
        v = torch.randn(_B, _LK, _DV)
    lengths = torch.tensor([4, 2])
    padding = (torch.arange(_LK)[None, :] < lengths[:, None])[:, None, :]  # (B, 1, L_k)
    full = padding.expand(_B, _LQ, _LK).clone()
    full[0, 1] = False  # batch 0, query 1 may attend to nothing
    return q, k, v, padding, full


def _softmax_weights(q, k, scale, dim=-1, mask=None):
    scores = q @ k.transpose(-2, -1) * scale
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=dim)
    return weights * mask if mask is not None else weights


def _close(a, b) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, atol=1e-5, rtol=1e-4)


def _call_attention(fn, q, k, v, mask):
    with torch.no_grad():
        result = fn(q.clone(), k.clone(), v.clone(), mask=None if mask is None else mask.clone())
    if not isinstance(result, tuple) or len(result) != 2:
        raise Mistake("return a pair: (out, weights)")
    out, weights = result
    if isinstance(out, torch.Tensor) and out.shape == (_B, _LQ, _DK):
        raise Mistake(
            f"out has shape {tuple(out.shape)}, the keys' size d_k = {_DK}: you returned "
            "weights @ k; the output mixes the values: weights @ v"
        )
    out = expect_tensor(out, "out", (_B, _LQ, _DV))
    weights = expect_tensor(weights, "weights", (_B, _LQ, _LK))
    return out.float(), weights.float()


def _diagnose_scale_and_dim(q, k, weights) -> None:
    d_k = q.shape[-1]
    if _close(weights, _softmax_weights(q, k, 1.0)):
        raise Mistake(
            "the weights are softmax(q kᵀ) without the scale: divide the scores by √d_k "
            "before the softmax, or they grow with d_k and the softmax saturates"
        )
    if _close(weights, _softmax_weights(q, k, 1.0 / d_k)):
        raise Mistake(
            f"you divided the scores by d_k = {d_k}; divide by √d_k = {math.sqrt(d_k):g}: "
            "the scores' standard deviation grows as √d_k, not d_k"
        )
    if _close(weights, _softmax_weights(q, k, 1.0 / math.sqrt(d_k), dim=-2)):
        raise Mistake(
            "the weights sum to 1 over the queries, not over the keys: did you softmax over "
            "the wrong dim? Use dim=-1 (the keys)"
        )
    if not torch.allclose(weights.sum(-1), torch.ones(weights.shape[:-1]), atol=1e-5):
        raise Mistake("each query's weights should sum to 1 over the keys (softmax over dim=-1)")


def check_scaled_attention(fn: Callable) -> CheckResult:
    """Checks ``fn(q, k, v, mask=None) -> (out, weights)``: softmax(q kᵀ / √d_k) v, with a
    boolean mask (True = may attend) and zeros for a query whose keys are all masked."""

    def body(fn):
        q, k, v, padding, full = _attention_cases()
        scale = 1.0 / math.sqrt(_DK)

        # 1. no mask: the scale, the softmax dim, the values
        out, weights = _call_attention(fn, q, k, v, None)
        if torch.isnan(weights).any() or torch.isnan(out).any():
            raise Mistake("your output contains NaN without any mask")
        expected = _softmax_weights(q, k, scale)
        if not _close(weights, expected):
            _diagnose_scale_and_dim(q, k, weights)
            raise Mistake("the weights differ from softmax(q kᵀ / √d_k) over the keys")
        if not _close(out, expected @ v):
            raise Mistake("the weights are right but out is not weights @ v")

        # 2. a padding mask (B, 1, L_k): True = may attend
        out, weights = _call_attention(fn, q, k, v, padding)
        if torch.isnan(weights).any() or torch.isnan(out).any():
            raise Mistake("a padding mask (no fully masked row) gave NaN")
        expected = _softmax_weights(q, k, scale, mask=padding)
        if not _close(weights, expected):
            if _close(weights, _softmax_weights(q, k, scale, mask=~padding)):
                raise Mistake(
                    "your mask is inverted: the weights fall on the padding. In this course "
                    "(and in PyTorch) True means 'may attend': block where the mask is False, "
                    "e.g. scores.masked_fill(~mask, ...)"
                )
            if _close(weights, _softmax_weights(q, k, scale)):
                raise Mistake("the mask was ignored: padded keys still get weight")
            if (weights.masked_select(~padding.expand_as(weights)).abs() > 1e-6).any():
                raise Mistake("keys where the mask is False must get weight exactly 0")
            raise Mistake(
                "masked keys get 0, but the allowed keys' weights do not sum to 1: mask the "
                "scores before the softmax (not the weights after it)"
            )
        if not _close(out, expected @ v):
            raise Mistake("with a mask, the weights are right but out is not weights @ v")

        # 3. a query whose keys are all masked
        out, weights = _call_attention(fn, q, k, v, full)
        if torch.isnan(weights).any() or torch.isnan(out).any():
            raise Mistake(
                "a query whose keys are all masked gave NaN: softmax over scores that are all "
                "-inf is 0/0. Fill with a large finite negative number "
                "(torch.finfo(scores.dtype).min) and multiply the weights by the mask"
            )
        row = weights[0, 1]
        if torch.allclose(row, torch.full_like(row, 1.0 / _LK), atol=1e-4):
            raise Mistake(
                "a query whose keys are all masked got uniform weights (it attends to "
                "padding); it should get all-zero weights and a zero output: multiply the "
                "weights by the mask after the softmax"
            )
        expected = _softmax_weights(q, k, scale, mask=full)
        if not _close(weights, expected):
            raise Mistake("with a fully masked query, the weights differ from the expected ones")
        if not torch.allclose(out[0, 1], torch.zeros(_DV), atol=1e-6):
            raise Mistake("a query whose keys are all masked should get a zero output")
        if not _close(out, expected @ v):
            raise Mistake("with a fully masked query, out is not weights @ v")
        return "softmax(q kᵀ / √d_k) v, masks respected, and a fully masked query gives zeros."

    return run_check("scaled_attention", fn, body)


# ----------------------------------------------------------------------------- causal mask


def check_causal_mask(fn: Callable) -> CheckResult:
    """Checks ``fn(n) -> (n, n)`` boolean, True where query i may attend to key j (j <= i)."""

    def body(fn):
        for n in (4, 1, 7):
            mask = fn(n)
            if not isinstance(mask, torch.Tensor):
                raise Mistake(f"return a torch.Tensor, got {type(mask).__name__}")
            mask = expect_tensor(mask, f"causal_mask({n})", (n, n), keep_dtype=True)
            if mask.is_floating_point():
                if torch.isinf(mask).any():
                    raise Mistake(
                        "you returned an additive float mask (0 and -inf); this course uses a "
                        "boolean mask, True = may attend: torch.ones(n, n, dtype=torch.bool)"
                    )
                raise Mistake(
                    f"the mask has dtype {mask.dtype}; return booleans (dtype=torch.bool), "
                    "True = may attend"
                )
            if mask.dtype != torch.bool:
                raise Mistake(f"the mask has dtype {mask.dtype}; return dtype=torch.bool")
            ones = torch.ones(n, n, dtype=torch.bool)
            if torch.equal(mask, ones.tril()):
                continue
            if torch.equal(mask, ones.triu(1)):
                raise Mistake(
                    "your mask is True on the future positions (the ones to block); the "
                    "convention is True = may attend: True on and below the diagonal, .tril()"
                )
            if torch.equal(mask, ones.triu()):
                raise Mistake(
                    "your mask is upper triangular: query i would see the future keys j > i. "
                    "Keep j <= i: .tril()"
                )
            if torch.equal(mask, ones.tril(-1)):
                raise Mistake(
                    "the diagonal is False: a position must be able to attend to itself "
                    "(j <= i, not j < i), or the first position sees nothing at all"
                )
            raise Mistake(
                f"causal_mask({n}) should be True exactly where j <= i, got {mask.int().tolist()}"
            )
        return "True on and below the diagonal: each position sees itself and the past."

    return run_check("causal_mask", fn, body)


SOLUTIONS = {
    "scaled_attention": reference_scaled_attention,
    "causal_mask": reference_causal_mask,
}

QUIZ = [
    Question(
        "q and k have d_k independent entries, each with mean 0 and variance 1. "
        "What is the variance of q·k?",
        ("1", "√d_k", "d_k", "d_k²"),
        2,
        "q·k is a sum of d_k independent products q_i k_i, each of variance 1, so the "
        "variances add up to d_k. Dividing by √d_k brings it back to 1.",
    ),
    Question(
        "Without the 1/√d_k scale, what happens to the softmax over the scores as d_k grows?",
        (
            "It tends to uniform weights",
            "It tends to one-hot weights, and its gradient vanishes",
            "It overflows and returns NaN",
            "Nothing: the softmax does not depend on the scale of its input",
        ),
        1,
        "The scores spread out like √d_k, the largest one wins almost all the weight, and the "
        "Jacobian diag(w) - w wᵀ of a one-hot w is zero: little gradient reaches q and k.",
    ),
    Question(
        "A query's keys are all masked. What does "
        "scores.masked_fill(~mask, float('-inf')).softmax(-1) give for that row?",
        ("All zeros", "Uniform weights", "NaN", "All weight on the first key"),
        2,
        "Every exp(-inf) is 0, so the softmax computes 0/0 = NaN, and the NaN spreads to the "
        "output and the gradients. course_utils fills with the most negative finite number and "
        "multiplies the weights by the mask, which gives zeros.",
    ),
    Question(
        "In torch.nn.functional.scaled_dot_product_attention, what does True in a boolean "
        "attn_mask mean?",
        (
            "The key is blocked",
            "The query may attend to that key",
            "The position is padding",
        ),
        1,
        "True means 'may attend', the convention the whole course uses; a float mask is "
        "different: it is added to the scores (0 to keep, -inf to block).",
    ),
]
