"""Lesson 05 exercises: the sinusoidal positional encoding, and single-head self-attention."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ._core import CheckResult, Mistake, Question, expect_tensor, run_check

__all__ = [
    "check_positional_encoding",
    "check_self_attention",
    "reference_positional_encoding",
    "reference_self_attention",
]


def reference_positional_encoding(max_len: int, d_model: int) -> torch.Tensor:
    """``(max_len, d_model)``: PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(same)."""
    position = torch.arange(max_len, dtype=torch.float32)[:, None]  # (max_len, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float32)  # (d_model / 2,)
    angle = position / 10000 ** (two_i / d_model)  # (max_len, d_model / 2)
    pe = torch.zeros(max_len, d_model)
    pe[:, 0::2] = torch.sin(angle)  # even dimensions
    pe[:, 1::2] = torch.cos(angle)  # odd dimensions: the same frequency
    return pe


def reference_self_attention(x, W_q, W_k, W_v):
    """Single-head self-attention of ``x (B, L, d_model)``; ``W_q, W_k (d_model, d_k)``,
    ``W_v (d_model, d_v)``. Returns ``out (B, L, d_v)`` and ``weights (B, L, L)``."""
    q, k, v = x @ W_q, x @ W_k, x @ W_v  # (B, L, d_k), (B, L, d_k), (B, L, d_v)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, L, L)
    weights = torch.softmax(scores, dim=-1)  # each query's weights over the keys
    return weights @ v, weights


# ----------------------------------------------------------------------------- encoding


def _encoding(
    max_len: int,
    d_model: int,
    *,
    swap: bool = False,
    layout: str = "interleave",
    exponent: str = "2i",
    start: int = 0,
    multiply: bool = False,
    cosine: bool = True,
) -> torch.Tensor:
    """The reference in float64, or one of the typical wrong variants of it."""
    position = torch.arange(start, start + max_len, dtype=torch.float64)[:, None]
    column = torch.arange(d_model, dtype=torch.float64)  # j
    pair = torch.div(column, 2, rounding_mode="floor")  # i, with j = 2i or 2i + 1
    power = {"2i": 2 * pair, "i": pair, "j": column}[exponent] / d_model
    angle = position * 10000**power if multiply else position / 10000**power  # (L, d)
    even = (column % 2 == 0)[None, :]
    sin = torch.sin(angle)
    cos = torch.cos(angle) if cosine else torch.sin(angle)
    if swap:
        sin, cos = cos, sin
    if layout == "halves":  # [sin of every pair | cos of every pair]
        half = d_model // 2
        return torch.cat([sin[:, 0::2][:, :half], cos[:, 0::2][:, :half]], dim=1)
    return torch.where(even, sin, cos)


_ENCODING_MISTAKES = [
    (
        {"swap": True},
        "sin and cos are swapped: the even dimensions 2i get the sine, the odd dimensions "
        "2i+1 the cosine (row 0 is then 0, 1, 0, 1, ...)",
    ),
    (
        {"layout": "halves"},
        "you put all the sines first and then all the cosines; the paper interleaves them: "
        "column 2i is a sine and column 2i+1 the cosine of the same frequency "
        "(pe[:, 0::2] = sin, pe[:, 1::2] = cos)",
    ),
    (
        {"exponent": "i"},
        "your exponent is i/d_model with i counting the pairs; it is 2i/d_model: with i/d the "
        "frequencies fall only half as fast and the slowest wavelength is far too short",
    ),
    (
        {"exponent": "j"},
        "the cosine column 2i+1 uses the exponent (2i+1)/d_model; both columns of a pair share "
        "one frequency, 1/10000^(2i/d_model): compute the angle once per pair",
    ),
    (
        {"start": 1},
        "your positions start at 1; they start at 0 (row 0 is sin 0 = 0 and cos 0 = 1)",
    ),
    (
        {"multiply": True},
        "you multiplied the position by 10000^(2i/d_model); divide by it: p / 10000^(2i/d), "
        "so the frequencies fall from 1 to 1/10000",
    ),
    (
        {"cosine": False},
        "every column is a sine; the odd columns 2i+1 are cosines (a sine and a cosine of each "
        "frequency make a shift by k a rotation)",
    ),
]


def _call_encoding(fn, max_len: int, d_model: int) -> torch.Tensor:
    pe = fn(max_len, d_model)
    transposed = max_len != d_model and tuple(getattr(pe, "shape", ())) == (d_model, max_len)
    if isinstance(pe, torch.Tensor) and transposed:
        raise Mistake(
            f"the result has shape {tuple(pe.shape)}, expected ({max_len}, {d_model}): rows "
            "are positions and columns are dimensions (did you transpose?)"
        )
    name = f"positional_encoding({max_len}, {d_model})"
    pe = expect_tensor(pe, name, (max_len, d_model), keep_dtype=True)
    if not pe.is_floating_point():
        raise Mistake(f"the result has dtype {pe.dtype}; return floats")
    return pe.detach().double().cpu()


def check_positional_encoding(fn: Callable) -> CheckResult:
    """Checks ``fn(max_len, d_model) -> (max_len, d_model)``, the sinusoidal encoding of
    Vaswani et al. (2017), for even ``d_model``."""

    def body(fn):
        for max_len, d_model in ((12, 16), (50, 8), (3, 2)):
            pe = _call_encoding(fn, max_len, d_model)
            if torch.isnan(pe).any():
                raise Mistake("the encoding contains NaN")
            if torch.allclose(pe, _encoding(max_len, d_model), atol=1e-4):
                continue
            for variant, message in _ENCODING_MISTAKES:
                # a loose tolerance: float32 sines of the huge angles of a wrong variant are
                # off by up to 1e-2, and the variants differ from each other by far more
                if torch.allclose(pe, _encoding(max_len, d_model, **variant), atol=2e-2):
                    raise Mistake(message)
            if pe.abs().max() > 1 + 1e-4:
                raise Mistake("some values are outside [-1, 1]: every entry is a sine or cosine")
            wrong = (pe - _encoding(max_len, d_model)).abs() > 1e-4
            p, j = (int(t) for t in wrong.nonzero()[0])
            raise Mistake(
                f"PE[{p}, {j}] = {pe[p, j]:.4f}, expected {_encoding(max_len, d_model)[p, j]:.4f} "
                f"(max_len={max_len}, d_model={d_model})"
            )
        return "sin on the even dimensions, cos on the odd ones, wavelengths from 2π to 10000·2π."

    return run_check("positional_encoding", fn, body)


# ----------------------------------------------------------------------------- self-attention

_B, _L, _D_MODEL, _D_K, _D_V = 2, 5, 6, 4, 3  # all different, so mix-ups change shapes


def _self_attention_case():
    with torch.random.fork_rng():  # leave the learner's random state alone
        torch.manual_seed(5)
        x = torch.randn(_B, _L, _D_MODEL)
        W_q = torch.randn(_D_MODEL, _D_K)  # large enough scores that the scale matters
        W_k = torch.randn(_D_MODEL, _D_K)
        W_v = torch.randn(_D_MODEL, _D_V)
    return x, W_q, W_k, W_v


def _weights(q, k, scale, dim=-1):
    return torch.softmax(q @ k.transpose(-2, -1) * scale, dim=dim)


def _close(a, b) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, atol=1e-5, rtol=1e-4)


def _diagnose_weights(x, W_q, W_k, weights) -> None:
    q, k = x @ W_q, x @ W_k
    scale = 1 / math.sqrt(_D_K)
    candidates = [
        (
            _weights(q, k, 1.0),
            "the weights are softmax(q kᵀ) without the scale: divide the scores by √d_k "
            "before the softmax",
        ),
        (
            _weights(q, k, 1 / math.sqrt(_D_MODEL)),
            f"you divided the scores by √d_model = √{_D_MODEL}; divide by √d_k = √{_D_K}, the "
            "size of the queries and keys (q.shape[-1], not x.shape[-1])",
        ),
        (
            _weights(q, k, 1 / _D_K),
            f"you divided the scores by d_k = {_D_K}; divide by √d_k = {math.sqrt(_D_K):g}",
        ),
        (
            _weights(q, k, scale, dim=-2),
            "the weights sum to 1 over the queries, not over the keys: you took the softmax "
            "over the wrong axis; use dim=-1",
        ),
        (
            _weights(q, q, scale),
            "the keys are x @ W_q: you projected the keys with W_q; keys use W_k",
        ),
        (
            _weights(k, k, scale),
            "the queries are x @ W_k: you projected the queries with W_k; queries use W_q",
        ),
        (
            _weights(k, q, scale),
            "queries and keys are swapped: row i must hold query i's scores against every key, "
            "scores = q @ k.transpose(-2, -1) with q = x @ W_q and k = x @ W_k",
        ),
        (
            _weights(x, x, 1 / math.sqrt(_D_MODEL)),
            "the scores compare x with itself; project first: q = x @ W_q and k = x @ W_k",
        ),
    ]
    for expected, message in candidates:
        if _close(weights, expected):
            raise Mistake(message)
    if not torch.allclose(weights.sum(-1), torch.ones(weights.shape[:-1]), atol=1e-5):
        raise Mistake("each query's weights should sum to 1 over the keys (softmax over dim=-1)")
    raise Mistake("the weights differ from softmax((x W_q)(x W_k)ᵀ / √d_k) over the keys")


def check_self_attention(fn: Callable) -> CheckResult:
    """Checks ``fn(x, W_q, W_k, W_v) -> (out, weights)``: single-head self-attention with
    q = x W_q, k = x W_k, v = x W_v and weights softmax(q kᵀ / √d_k) over the keys."""

    def body(fn):
        x, W_q, W_k, W_v = _self_attention_case()
        with torch.no_grad():
            result = fn(x.clone(), W_q.clone(), W_k.clone(), W_v.clone())
        if not isinstance(result, tuple) or len(result) != 2:
            raise Mistake("return a pair: (out, weights)")
        out, weights = result
        if isinstance(out, torch.Tensor) and tuple(out.shape) == (_B, _L, _D_MODEL):
            raise Mistake(
                f"out has shape {tuple(out.shape)}, the size of x: you mixed x itself; mix the "
                f"values v = x @ W_v, which have d_v = {_D_V} features"
            )
        if isinstance(out, torch.Tensor) and tuple(out.shape) == (_B, _L, _D_K):
            raise Mistake(
                f"out has shape {tuple(out.shape)}, the keys' size d_k = {_D_K}: you mixed the "
                "queries or keys; the output is weights @ v with v = x @ W_v"
            )
        out = expect_tensor(out, "out", (_B, _L, _D_V)).float()
        weights = expect_tensor(weights, "weights", (_B, _L, _L)).float()
        expected_out, expected_weights = reference_self_attention(x, W_q, W_k, W_v)
        if not _close(weights, expected_weights):
            _diagnose_weights(x, W_q, W_k, weights)
        if not _close(out, expected_out):
            raise Mistake("the weights are right but out is not weights @ (x @ W_v)")
        return "q, k and v projected from the same x, softmax(q kᵀ / √d_k) v over the keys."

    return run_check("self_attention", fn, body)


SOLUTIONS = {
    "positional_encoding": reference_positional_encoding,
    "self_attention": reference_self_attention,
}

QUIZ = [
    Question(
        "A self-attention layer with no positional encoding reads the tokens 'c a b' instead of "
        "'a b c'. What happens to its outputs?",
        (
            "They are the same three vectors, in the new order (permuted the same way)",
            "They are unchanged, position by position",
            "They change completely: attention is sensitive to order",
            "They become the average of the three tokens",
        ),
        0,
        "Without positions, self-attention is permutation-equivariant: each token's output "
        "depends on its own vector and on the set of all vectors, so permuting the input "
        "permutes the output the same way. Order is invisible.",
    ),
    Question(
        "Along how many sequential steps must information travel from the first to the last "
        "token of an n-token sequence in one self-attention layer, and in an RNN?",
        (
            "1 in self-attention, n - 1 in the RNN",
            "n - 1 in both",
            "log n in self-attention, n - 1 in the RNN",
            "1 in both",
        ),
        0,
        "In self-attention every query looks at every key directly: a path of length 1 "
        "(O(1)), and all positions are computed at once. The RNN passes its state along one "
        "step at a time: O(n) sequential steps and a path of length n - 1.",
    ),
    Question(
        "Why does the sinusoidal encoding use a sine AND a cosine of every frequency?",
        (
            "So that all values stay in [-1, 1]",
            "So that moving k positions is the same linear map (a rotation) of PE at every "
            "position, and PE[p]·PE[p+k] depends only on the offset k",
            "Because the cosine makes the encoding learnable",
            "To double the number of parameters",
        ),
        1,
        "sin(w(p+k)) and cos(w(p+k)) are a rotation by the angle wk of (sin wp, cos wp): a "
        "fixed matrix for each offset k, whatever p is. That lets attention express 'the "
        "token k places away' with one linear map (measured in this lesson).",
    ),
    Question(
        "Without positions, a model tags reversed 8-symbol sequences right at about a quarter "
        "of the positions, where guessing one of the 16 symbols at random gives 6%. Where do "
        "the extra points come from?",
        (
            "The model secretly sees positions through the padding mask",
            "It can guess the most common symbol among the other tokens of the bag, which is "
            "sometimes right",
            "The training data leaks the answer",
            "Dropout",
        ),
        1,
        "Each position sees its own token and the bag of all tokens, so the best it can do is "
        "guess the most frequent other symbol: the 'bag ceiling' (about 0.27 here). The model "
        "reaches it, and cannot do better without positions.",
    ),
]
