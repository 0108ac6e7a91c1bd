"""Lesson 07 exercises: the causal mask with a cache offset, one KV-cache step, top-k filtering."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ._core import CheckResult, Mistake, Question, expect_tensor, run_check

__all__ = [
    "check_causal_mask_with_offset",
    "check_kv_cache_step",
    "check_top_k_filter",
    "reference_causal_mask_with_offset",
    "reference_kv_cache_step",
    "reference_top_k_filter",
]


def reference_causal_mask_with_offset(num_queries: int, num_keys: int) -> torch.Tensor:
    """``(num_queries, num_keys)`` boolean, True = may attend. The queries are the *last*
    ``num_queries`` of ``num_keys`` positions: query i sits at ``num_keys - num_queries + i``
    and sees every key up to and including its own position."""
    offset = num_keys - num_queries  # how many positions are already in the cache
    return torch.ones(num_queries, num_keys, dtype=torch.bool).tril(diagonal=offset)


def reference_kv_cache_step(q_new, k_new, v_new, k_cache, v_cache):
    """One generation step of one attention layer with a KV cache.

    ``q_new, k_new, v_new`` ``(B, H, 1, d_head)`` for the new token; ``k_cache, v_cache``
    ``(B, H, T, d_head)`` for the T tokens before it. Returns ``out (B, H, 1, d_head)`` and the
    caches with the new key and value appended, ``(B, H, T + 1, d_head)``.
    """
    k_cache = torch.cat([k_cache, k_new], dim=-2)  # (B, H, T + 1, d_head)
    v_cache = torch.cat([v_cache, v_new], dim=-2)
    scores = q_new @ k_cache.transpose(-2, -1) / math.sqrt(q_new.shape[-1])  # (B, H, 1, T + 1)
    weights = torch.softmax(scores, dim=-1)  # no mask: every cached key is in the past
    return weights @ v_cache, k_cache, v_cache  # (B, H, 1, d_head)


def reference_top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """``logits (B, V)`` with every entry below the k-th largest of its row set to -inf."""
    kth = torch.topk(logits, k, dim=-1).values[:, -1:]  # (B, 1): the k-th largest per row
    return logits.masked_fill(logits < kth, float("-inf"))


# ----------------------------------------------------------------------------- causal mask + offset

_MASK_CASES = ((4, 4), (1, 5), (3, 7), (2, 6))


def check_causal_mask_with_offset(fn: Callable) -> CheckResult:
    """Checks ``fn(num_queries, num_keys) -> (num_queries, num_keys)`` boolean mask."""

    def body(fn):
        for n_q, n_k in _MASK_CASES:
            mask = fn(n_q, n_k)
            if not isinstance(mask, torch.Tensor):
                raise Mistake(f"return a torch.Tensor, got {type(mask).__name__}")
            if tuple(mask.shape) == (n_k, n_q) and n_q != n_k:
                raise Mistake(
                    f"the mask has shape {(n_k, n_q)}: rows are queries and columns keys, "
                    f"so it should be (num_queries, num_keys) = {(n_q, n_k)}"
                )
            mask = expect_tensor(mask, f"mask({n_q}, {n_k})", (n_q, n_k), keep_dtype=True)
            if mask.dtype != torch.bool:
                raise Mistake(
                    f"the mask has dtype {mask.dtype}; return booleans (dtype=torch.bool), "
                    "True = may attend"
                )
            ones = torch.ones(n_q, n_k, dtype=torch.bool)
            offset = n_k - n_q
            if torch.equal(mask, ones.tril(offset)):
                continue
            if offset and torch.equal(mask, ones.tril()):
                raise Mistake(
                    f"with {n_q} new queries and {n_k} keys, query 0 is position {offset}, not "
                    f"0: the {offset} cached keys are all in its past. Shift the diagonal: "
                    f".tril(diagonal=num_keys - num_queries)"
                )
            if torch.equal(mask, ~ones.tril(offset)) or torch.equal(mask, ones.triu(offset)):
                raise Mistake(
                    "your mask lets the queries see the future keys and blocks (some of) the "
                    "past: True must be on and below the shifted diagonal (.tril, not .triu or ~)"
                )
            if torch.equal(mask, ones.tril(offset - 1)):
                raise Mistake(
                    "each query is blocked from its own key: a position must be able to attend "
                    "to itself (diagonal=num_keys - num_queries, not one less)"
                )
            if mask.all():
                raise Mistake(
                    f"everything is True for {n_q} queries and {n_k} keys: right for a single new "
                    "token, but with several new tokens the earlier ones must not see the later"
                )
            raise Mistake(
                f"mask({n_q}, {n_k}) should be True exactly where key j <= {offset} + query i, "
                f"got {mask.int().tolist()}"
            )
        return "each new query sees the whole cache and the new positions up to its own."

    return run_check("causal_mask_with_offset", fn, body)


# ----------------------------------------------------------------------------- one KV-cache step

_B, _H, _T, _D = 2, 3, 5, 8  # all different, so a concatenation on the wrong dim shows


def _cache_case(length: int):
    with torch.random.fork_rng():  # leave the learner's random state alone
        torch.manual_seed(7)
        q = torch.randn(_B, _H, 1, _D) * 2  # large enough scores that the scale matters
        k_new, v_new = torch.randn(_B, _H, 1, _D) * 2, torch.randn(_B, _H, 1, _D)
        k_cache, v_cache = torch.randn(_B, _H, length, _D) * 2, torch.randn(_B, _H, length, _D)
    return q, k_new, v_new, k_cache, v_cache


def _attend(q, k, v, scale=None, dim=-1):
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    return torch.softmax(q @ k.transpose(-2, -1) * scale, dim=dim) @ v


def _close(a, b) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, atol=1e-5, rtol=1e-4)


def _check_cache_shapes(k, v, length):
    """The returned caches, checked and made comparable (``expect_tensor``)."""
    checked = []
    for name, value in (("k_cache", k), ("v_cache", v)):
        if not isinstance(value, torch.Tensor):
            raise Mistake(f"the returned {name} should be a tensor, got {type(value).__name__}")
        shape = tuple(value.shape)
        if shape == (_B, _H, length, 2 * _D):
            raise Mistake(
                f"the returned {name} has shape {shape}: you appended along the last dim, the "
                "features. A new token is a new position: torch.cat([...], dim=-2)"
            )
        if shape == (_B, 2 * _H, length, _D) or shape == (_B, _H + 1, length, _D):
            raise Mistake(
                f"the returned {name} has shape {shape}: you appended along the heads dim. "
                "Positions are dim -2 of (B, H, T, d_head): torch.cat([...], dim=-2)"
            )
        if shape == (_B, _H, length, _D):
            raise Mistake(
                f"the returned {name} has shape {shape}, the old length: append the new "
                f"token's {name[0]} to the cache, so it grows to T + 1"
            )
        checked.append(expect_tensor(value, f"the returned {name}", (_B, _H, length + 1, _D)))
    return checked


def check_kv_cache_step(fn: Callable) -> CheckResult:
    """Checks ``fn(q_new, k_new, v_new, k_cache, v_cache) -> (out, k_cache, v_cache)``."""

    def body(fn):
        for length in (1, _T):  # with 1 cached position a wrong-dim cat still runs
            q, k_new, v_new, k_cache, v_cache = _cache_case(length)
            try:
                with torch.no_grad():
                    result = fn(
                        q.clone(), k_new.clone(), v_new.clone(), k_cache.clone(), v_cache.clone()
                    )
            except NotImplementedError:  # a RuntimeError too: the stub is not attempted yet
                raise
            except RuntimeError as err:  # almost always shapes that do not fit: say which dim
                raise Mistake(
                    f"your function raised RuntimeError: {err}. With a cache of {length} "
                    f"position(s), k_cache is {(_B, _H, length, _D)} (B, H, T, d_head): did you "
                    "append the new key/value on the wrong dim? Positions are dim -2"
                ) from None
            if not isinstance(result, tuple) or len(result) != 3:
                raise Mistake("return a triple: (out, k_cache, v_cache), the caches updated")
            out, k, v = result
            k, v = _check_cache_shapes(k, v, length)
            k_all, v_all = torch.cat([k_cache, k_new], -2), torch.cat([v_cache, v_new], -2)
            if _close(k, torch.cat([k_new, k_cache], -2)):
                raise Mistake(
                    "the new key went to the front of the cache: positions are in order, so "
                    "append it at the end, torch.cat([k_cache, k_new], dim=-2)"
                )
            if not (_close(k, k_all) and _close(v, v_all)):
                raise Mistake(
                    "the returned caches should be the old caches with k_new, v_new appended"
                )
            out = expect_tensor(out, "out", (_B, _H, 1, _D))
            if _close(out, _attend(q, k_all, v_all)):
                continue
            if _close(out, _attend(q, k_all, v_all, scale=1.0)):
                raise Mistake(
                    "the output is softmax(q kᵀ) v without the scale: divide the scores by "
                    "√d_head, as the model did in training"
                )
            if _close(out, v_new):
                raise Mistake(
                    "the new token attended only to itself: its query must score every cached "
                    "key too (that is what the cache is for)"
                )
            if _close(out, _attend(q, k_cache, v_cache)):
                raise Mistake(
                    "the new token did not attend to its own key and value: append them to the "
                    "cache first, then attend over all T + 1 positions"
                )
            if _close(out, _attend(q, k_all, v_all, dim=-2)):
                raise Mistake(
                    "softmax over the wrong dim: with one query, dim=-2 gives every key weight "
                    "1. Take the softmax over the keys, dim=-1"
                )
            raise Mistake("out should be softmax(q kᵀ / √d_head) v over the T + 1 positions")
        return "the caches grow by one position and the new query attends over all of them."

    return run_check("kv_cache_step", fn, body)


# ----------------------------------------------------------------------------- top-k filtering


def _logits_case():
    with torch.random.fork_rng():
        torch.manual_seed(3)
        return torch.randn(3, 10) * 3  # (B, V), no ties


def check_top_k_filter(fn: Callable) -> CheckResult:
    """Checks ``fn(logits (B, V), k) -> (B, V)``: all but each row's k largest set to -inf."""

    def body(fn):
        logits = _logits_case()
        batch, vocab = logits.shape
        for k in (3, 1, vocab):
            original = logits.clone()
            filtered = fn(logits, k)
            if not torch.equal(logits, original):
                raise Mistake(
                    "your function changed the logits it was given (in place): return a new "
                    "tensor, e.g. logits.masked_fill(...) rather than logits[...] = ..."
                )
            if isinstance(filtered, torch.Tensor) and tuple(filtered.shape) == (batch, k) != (
                batch,
                vocab,
            ):
                raise Mistake(
                    f"you returned only the top-k values {(batch, k)}: return the full "
                    f"{(batch, vocab)} logits with the others set to -inf, so token ids stay put"
                )
            filtered = expect_tensor(filtered, f"top_k_filter(logits, {k})", (batch, vocab))
            expected = reference_top_k_filter(logits, k)
            if torch.equal(filtered, expected):
                continue
            if torch.allclose(filtered.sum(-1), torch.ones(batch)) and (filtered >= 0).all():
                raise Mistake(
                    "return filtered logits, not probabilities: sample_next applies the softmax"
                )
            kept = torch.isfinite(filtered) & (filtered != 0)
            if torch.equal(filtered, logits.masked_fill(expected == float("-inf"), 0.0)):
                raise Mistake(
                    "the dropped tokens are set to 0, not -inf: exp(0) = 1, so they keep a "
                    "probability. Fill with float('-inf')"
                )
            smallest = -torch.topk(-logits, k, dim=-1).values[:, -1:]
            if k < vocab and torch.equal(
                filtered, logits.masked_fill(logits > smallest, float("-inf"))
            ):
                raise Mistake(
                    "you kept the k *smallest* logits: keep the k largest (torch.topk's default)"
                )
            counts = torch.isfinite(filtered).sum(-1)
            if k < vocab and (counts == k + 1).all():
                raise Mistake(
                    f"you kept {k + 1} tokens for k = {k}: an off-by-one; keep exactly the k "
                    "largest (the k-th largest included)"
                )
            if k < vocab and (counts == k - 1).all():
                raise Mistake(
                    f"you kept {k - 1} tokens for k = {k}: the k-th largest itself must stay "
                    "(drop logits < the k-th largest, not <=)"
                )
            if not torch.equal(filtered[kept], logits[kept]):
                raise Mistake("keep the k largest logits unchanged; only the others become -inf")
            raise Mistake(
                f"top_k_filter(logits, {k}) should keep each row's {k} largest logits and set "
                "the rest to -inf"
            )
        return "each row keeps its k largest logits; the rest can never be sampled."

    return run_check("top_k_filter", fn, body)


SOLUTIONS = {
    "causal_mask_with_offset": reference_causal_mask_with_offset,
    "kv_cache_step": reference_kv_cache_step,
    "top_k_filter": reference_top_k_filter,
}

QUIZ = [
    Question(
        "A GPT is trained on whole sequences at once. Why does it still need the causal mask "
        "at training time?",
        (
            "To save memory: the mask halves the attention matrix",
            "Every position is trained to predict the next token; without the mask position t "
            "could read token t+1, its own answer",
            "Without it the softmax would return NaN",
            "It does not: the mask is only needed when generating",
        ),
        1,
        "All positions are trained in parallel, each to predict the token after it. If position "
        "t could attend to t+1 it would learn to copy the answer, and at generation time, when "
        "t+1 does not exist yet, it would have nothing to copy.",
    ),
    Question(
        "With a KV cache, what does one generation step compute for each attention layer?",
        (
            "The queries, keys and values of the whole sequence again",
            "Only the new token's query, key and value; the past keys and values are read "
            "from the cache",
            "Only the new token's query; its key and value are never needed",
            "The keys and values of the new token, and the queries of all tokens",
        ),
        1,
        "Causal attention means earlier tokens never look at later ones, so their keys and "
        "values never change. The new token needs its own query to look back, and its own key "
        "and value so that it (and later tokens) can attend to it.",
    ),
    Question(
        "Which setting gives the same token as greedy decoding (argmax), whatever the logits?",
        ("temperature 2.0", "top_k = vocabulary size", "top_k = 1", "temperature 1.0"),
        2,
        "top_k = 1 keeps only the most likely token, so sampling must pick it. Temperature 0 "
        "(the limit of dividing the logits by a tiny number) is the other way to get argmax.",
    ),
    Question(
        "The lesson writes the answer of 57 + 68 as '521', digits reversed. Why does that help "
        "a left-to-right model?",
        (
            "It makes the answers shorter",
            "The ones digit comes first, and each next digit needs only the carry from the "
            "digit just written, as when adding by hand",
            "Reversed numbers have a smaller vocabulary",
            "It hides the answer from the causal mask",
        ),
        1,
        "Written the usual way, the first digit of the answer depends on carries from every "
        "digit below it, which the model has not written yet. Reversed, the carries flow in "
        "the order the model writes (Lee et al. 2023).",
    ),
]
