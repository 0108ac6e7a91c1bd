"""Lesson 02 exercises: the additive score, and attention weights + context with a mask."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._core import CheckResult, Mistake, Question, expect_tensor, run_check

__all__ = [
    "check_additive_score",
    "check_attention_context",
    "reference_additive_score",
    "reference_attention_context",
]


def reference_additive_score(query, keys, W_q, W_k, v):
    """Bahdanau's score e_j = vᵀ tanh(W_q q + W_k k_j) for every key: ``(B, S)``.

    query ``(B, D_q)``, keys ``(B, S, D_k)``, W_q ``(A, D_q)``, W_k ``(A, D_k)``, v ``(A,)``.
    """
    projected_query = query @ W_q.T  # (B, A)
    projected_keys = keys @ W_k.T  # (B, S, A)
    hidden = torch.tanh(projected_query[:, None, :] + projected_keys)  # (B, S, A)
    return hidden @ v  # (B, S)


def _score_inputs(query_dim: int, key_dim: int, batch: int = 3, keys: int = 5, hidden: int = 4):
    with torch.random.fork_rng():  # leave the learner's random state alone
        torch.manual_seed(2)
        return (
            torch.randn(batch, query_dim),
            torch.randn(batch, keys, key_dim),
            torch.randn(hidden, query_dim),
            torch.randn(hidden, key_dim),
            torch.randn(hidden),
        )


def _score_diagnosis(scores: torch.Tensor, query, keys, W_q, W_k, v) -> str | None:
    """Name the mistake whose output ``scores`` matches, if one does."""
    pq, pk = query @ W_q.T, keys @ W_k.T
    wrong = {
        "the tanh is missing: e_j = vᵀ tanh(W_q q + W_k k_j), the nonlinearity comes before v": (
            (pq[:, None, :] + pk) @ v
        ),
        "you summed the hidden units; project them with v instead: tanh(...) @ v": (
            torch.tanh(pq[:, None, :] + pk).sum(-1)
        ),
        "these are weights, not scores (each row sums to 1): return the scores before the "
        "softmax; the softmax comes in the next step": torch.softmax(
            reference_additive_score(query, keys, W_q, W_k, v), dim=-1
        ),
        "you dropped the query term: the score must depend on the query, W_q q + W_k k_j": (
            torch.tanh(pk) @ v
        ),
    }
    if W_q.shape == W_k.shape:
        wrong["W_q and W_k are swapped: W_q projects the query, W_k the keys"] = (
            torch.tanh((query @ W_k.T)[:, None, :] + keys @ W_q.T) @ v
        )
    for message, value in wrong.items():
        if value.shape == scores.shape and torch.allclose(scores, value, atol=1e-5):
            return message
    return None


def check_additive_score(fn: Callable) -> CheckResult:
    """Checks ``fn(query (B, D_q), keys (B, S, D_k), W_q (A, D_q), W_k (A, D_k), v (A,))
    -> scores (B, S)`` against vᵀ tanh(W_q q + W_k k_j)."""

    def body(fn):
        for query_dim, key_dim in ((6, 6), (6, 10)):  # equal sizes first: a swap still runs
            inputs = _score_inputs(query_dim, key_dim)
            expected = reference_additive_score(*inputs)
            try:
                scores = fn(*(x.clone() for x in inputs))
            except RuntimeError as err:
                if "shape" in str(err) or "size" in str(err):
                    raise Mistake(
                        f"a shape error with query {tuple(inputs[0].shape)} and keys "
                        f"{tuple(inputs[1].shape)}: W_q (A, D_q) multiplies the query and "
                        f"W_k (A, D_k) the keys; did you swap them? ({err})"
                    ) from None
                raise
            if isinstance(scores, torch.Tensor) and scores.shape == (3, 5, 1):
                raise Mistake("scores have shape (B, S, 1): squeeze the last dim, e.g. @ v")
            if isinstance(scores, torch.Tensor) and scores.shape == (3, 5, 4):
                raise Mistake(
                    "scores have shape (B, S, A): that is tanh(...) before v; "
                    "project the hidden units to one number with v"
                )
            scores = expect_tensor(scores, "scores", tuple(expected.shape))
            if not torch.allclose(scores, expected, atol=1e-5):
                diagnosis = _score_diagnosis(scores, *inputs)
                raise Mistake(diagnosis or "the scores differ from vᵀ tanh(W_q q + W_k k_j)")
        return "e_j = vᵀ tanh(W_q q + W_k k_j): one score per key, before any softmax."

    return run_check("additive_score", fn, body)


def reference_attention_context(scores, values, mask):
    """Masked softmax over the keys, then the weighted sum of the values.

    scores ``(B, S)``, values ``(B, S, D_v)``, mask ``(B, S)`` bool (True = may attend)
    -> context ``(B, D_v)``, weights ``(B, S)``.
    """
    scores = scores.masked_fill(~mask, float("-inf"))  # padding can never win
    weights = torch.softmax(scores, dim=-1)  # (B, S), rows sum to 1
    context = (weights[:, :, None] * values).sum(dim=1)  # (B, D_v)
    return context, weights


def _context_inputs():
    with torch.random.fork_rng():
        torch.manual_seed(3)
        scores = torch.randn(4, 6) * 2  # B=4 != S=6, so a wrong dim shows
        values = torch.randn(4, 6, 3)
    lengths = torch.tensor([6, 4, 2, 5])
    mask = torch.arange(6)[None, :] < lengths[:, None]  # (B, S) True at real tokens
    return scores, values, mask


def check_attention_context(fn: Callable) -> CheckResult:
    """Checks ``fn(scores (B, S), values (B, S, D_v), mask (B, S) bool)
    -> (context (B, D_v), weights (B, S))``."""

    def body(fn):
        scores, values, mask = _context_inputs()
        expected_context, expected_weights = reference_attention_context(scores, values, mask)
        result = fn(scores.clone(), values.clone(), mask.clone())
        if not isinstance(result, tuple) or len(result) != 2:
            raise Mistake("return a pair: (context, weights)")
        context, weights = result
        if (
            isinstance(context, torch.Tensor)
            and isinstance(weights, torch.Tensor)
            and context.shape == expected_weights.shape
            and weights.shape == expected_context.shape
        ):
            raise Mistake("you returned (weights, context): return (context, weights)")
        weights = expect_tensor(weights, "weights", tuple(expected_weights.shape))
        context = expect_tensor(context, "context", tuple(expected_context.shape))
        if torch.isnan(weights).any():
            raise Mistake("the weights contain NaN: mask with a very negative number or -inf")
        if torch.allclose(weights, torch.softmax(scores, dim=0), atol=1e-5) or torch.allclose(
            weights.sum(0), torch.ones(weights.shape[1]), atol=1e-4
        ):
            raise Mistake(
                "the weights sum to 1 down each column: you took the softmax over the batch "
                "(dim=0); take it over the keys, dim=-1"
            )
        if torch.allclose(weights, torch.softmax(scores, dim=-1), atol=1e-5):
            raise Mistake(
                "the mask is ignored: padding gets weight; set the masked scores to -inf "
                "before the softmax"
            )
        padded_rows = (~mask).any(-1)  # rows with at least one padded key
        if ((weights * ~mask).sum(-1)[padded_rows] > 0.99).all():
            raise Mistake(
                "the mask is inverted: all the weight is on the padding; True in the mask "
                "means 'may attend', so fill the scores where the mask is False"
            )
        if (weights * ~mask).abs().max() > 1e-6:
            raise Mistake("padded keys must get exactly 0 weight; mask before the softmax")
        if not torch.allclose(weights.sum(-1), torch.ones(4), atol=1e-4):
            raise Mistake(
                "the weights of a row do not sum to 1: zeroing the padding after the softmax "
                "leaves the rest unnormalised; mask the scores before the softmax"
            )
        if not torch.allclose(weights, expected_weights, atol=1e-5):
            raise Mistake("the weights differ from softmax over the unmasked scores")
        if torch.allclose(context, values.mean(dim=1), atol=1e-5):
            raise Mistake("context is the plain mean of the values: weight each value by α_j")
        if not torch.allclose(context, expected_context, atol=1e-5):
            raise Mistake(
                "context differs from Σ_j α_j v_j: multiply each value by its weight and sum "
                "over the keys (dim=1)"
            )
        return "masked softmax over the keys, then c = Σ_j α_j v_j."

    return run_check("attention_context", fn, body)


SOLUTIONS = {
    "additive_score": reference_additive_score,
    "attention_context": reference_attention_context,
}

QUIZ = [
    Question(
        "In Bahdanau attention, what plays the role of the query at output step t?",
        (
            "The source token at position t",
            "The decoder's previous state s_{t-1}",
            "The encoder's final state",
            "The previous output word's embedding alone",
        ),
        1,
        "The decoder state asks 'what do I need next?'; the encoder states h_j are the keys "
        "(and the values) it is compared with.",
    ),
    Question(
        "Why does the attention model keep its accuracy on long inputs?",
        (
            "It has many more parameters",
            "Each output step reads a fresh weighted sum of all encoder states, so nothing "
            "has to fit in one vector",
            "The bidirectional encoder remembers more",
            "It was trained for longer",
        ),
        1,
        "Same data and steps as the bottleneck model; the context c_t is recomputed at every "
        "step from every h_j.",
    ),
    Question(
        "A model reverses its input. What does its alignment heatmap (outputs × sources) look like?",
        ("The diagonal", "The anti-diagonal", "A uniform grey", "One bright column"),
        1,
        "Output 1 copies the last source symbol, output 2 the one before it, and so on.",
    ),
    Question(
        "For classifying a long text where a few words decide the class, why can attention "
        "pooling beat mean pooling?",
        (
            "Mean pooling cannot be trained with gradient descent",
            "Attention pooling puts large weights on the few decisive words; the mean gives "
            "every word 1/length, diluting them among the filler",
            "Attention pooling looks at the label",
            "Mean pooling ignores word order and attention pooling does not",
        ),
        1,
        "The learned query scores every word; the softmax lets a few words take most of the "
        "weight. Both use the same BiGRU states, so word order is not the difference.",
    ),
]
