"""Lesson 08 exercises: a decoder layer's forward pass, the warm-up schedule, the target shift
for teacher forcing."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..transformer import DecoderLayer
from ._core import CheckResult, Mistake, Question, expect_tensor, run_check

__all__ = [
    "check_decoder_layer_forward",
    "check_teacher_forcing_shift",
    "check_warmup_lr",
    "reference_decoder_layer_forward",
    "reference_teacher_forcing_shift",
    "reference_warmup_lr",
]


def reference_decoder_layer_forward(x, memory, layer, self_mask, memory_mask):
    """One post-norm decoder layer, as in the paper, from ``layer``'s sublayers.

    ``x (B, T, d)`` the target side, ``memory (B, S, d)`` the encoder's output; ``layer`` has
    ``self_attn``, ``cross_attn`` (``MultiHeadAttention``: ``(query, key, value,
    key_padding_mask=None, attn_mask=None) -> (out, weights)``), ``ffn`` and ``norm1``, ``norm2``, ``norm3``. Returns ``(B, T, d)``.
    """
    attended, _ = layer.self_attn(x, x, x, attn_mask=self_mask)  # masked self-attention
    x = layer.norm1(x + attended)
    attended, _ = layer.cross_attn(
        x, memory, memory, key_padding_mask=memory_mask
    )  # queries from x
    x = layer.norm2(x + attended)
    return layer.norm3(x + layer.ffn(x))


def reference_warmup_lr(step: int, d_model: int, warmup_steps: int) -> float:
    """The paper's learning rate: d_model^-0.5 · min(step^-0.5, step · warmup_steps^-1.5)."""
    return d_model**-0.5 * min(step**-0.5, step * warmup_steps**-1.5)


def reference_teacher_forcing_shift(target: list[int], bos_id: int, eos_id: int):
    """``(decoder_input, decoder_target)`` for one target sequence of token ids:
    ``<bos> y1 .. yn`` and ``y1 .. yn <eos>``; position t reads y_t and must predict y_{t+1}."""
    return [bos_id, *target], [*target, eos_id]


# ----------------------------------------------------------------------------- decoder layer

_B, _T, _S, _D, _H = 2, 4, 6, 8, 2


def _decoder_case():
    with torch.random.fork_rng():  # leave the learner's random state alone
        torch.manual_seed(8)
        layer = DecoderLayer(_D, _H, dim_feedforward=16).eval()
        with torch.no_grad():  # non-trivial LayerNorm parameters, so a missing norm shows
            for norm in (layer.norm1, layer.norm2, layer.norm3):
                norm.weight.uniform_(0.5, 1.5)
                norm.bias.normal_(0, 0.3)
        x = torch.randn(_B, _T, _D)
        memory = torch.randn(_B, _S, _D)
    self_mask = torch.ones(_T, _T, dtype=torch.bool).tril()  # causal
    memory_mask = torch.tensor([[True] * _S, [True] * (_S - 2) + [False] * 2])  # (B, S)
    return x, memory, layer, self_mask, memory_mask


def _decoder_variants(x, memory, layer, self_mask, memory_mask):
    """Typical wrong forward passes, each with the sentence that names the mistake."""
    L = layer  # noqa: N806

    def pre_norm():
        h = x + L.self_attn(L.norm1(x), L.norm1(x), L.norm1(x), attn_mask=self_mask)[0]
        h = h + L.cross_attn(L.norm2(h), memory, memory, key_padding_mask=memory_mask)[0]
        return h + L.ffn(L.norm3(h))

    def no_causal():
        h = L.norm1(x + L.self_attn(x, x, x)[0])
        h = L.norm2(h + L.cross_attn(h, memory, memory, key_padding_mask=memory_mask)[0])
        return L.norm3(h + L.ffn(h))

    def no_memory_mask():
        h = L.norm1(x + L.self_attn(x, x, x, attn_mask=self_mask)[0])
        h = L.norm2(h + L.cross_attn(h, memory, memory)[0])
        return L.norm3(h + L.ffn(h))

    def cross_first():
        h = L.norm1(x + L.cross_attn(x, memory, memory, key_padding_mask=memory_mask)[0])
        h = L.norm2(h + L.self_attn(h, h, h, attn_mask=self_mask)[0])
        return L.norm3(h + L.ffn(h))

    def no_residual():
        h = L.norm1(L.self_attn(x, x, x, attn_mask=self_mask)[0])
        h = L.norm2(L.cross_attn(h, memory, memory, key_padding_mask=memory_mask)[0])
        return L.norm3(L.ffn(h))

    def no_norms():
        h = x + L.self_attn(x, x, x, attn_mask=self_mask)[0]
        h = h + L.cross_attn(h, memory, memory, key_padding_mask=memory_mask)[0]
        return h + L.ffn(h)

    return [
        (
            pre_norm,
            "you normalised before each sublayer (pre-norm): this exercise is the paper's "
            "post-norm layer, x = norm(x + sublayer(x))",
        ),
        (
            no_causal,
            "the self-attention has no causal mask: position t can see the target tokens "
            "after it, which it is supposed to predict. Pass attn_mask=self_mask",
        ),
        (
            no_memory_mask,
            "the cross-attention ignores memory_mask: the queries attend to the source's "
            "padding positions. Pass key_padding_mask=memory_mask to cross_attn",
        ),
        (
            cross_first,
            "cross-attention comes after the masked self-attention, not before: first the "
            "target positions read each other, then they query the source",
        ),
        (
            no_residual,
            "a residual connection is missing: each sublayer's output is added to its input, "
            "x + sublayer(x), before the LayerNorm",
        ),
        (
            no_norms,
            "the LayerNorms are missing: after each residual sum apply norm1, norm2, norm3",
        ),
    ]


def check_decoder_layer_forward(fn: Callable) -> CheckResult:
    """Checks ``fn(x, memory, layer, self_mask, memory_mask) -> (B, T, d)``."""

    def body(fn):
        x, memory, layer, self_mask, memory_mask = _decoder_case()
        with torch.no_grad():
            out = fn(x, memory, layer, self_mask, memory_mask)
            if isinstance(out, torch.Tensor) and tuple(out.shape) == (_B, _S, _D):
                raise Mistake(
                    f"the output has one row per source position, {(_B, _S, _D)}: in the "
                    "cross-attention the queries come from the decoder (x), the keys and "
                    "values from memory"
                )
            out = expect_tensor(out, "the output", (_B, _T, _D))
            expected = reference_decoder_layer_forward(x, memory, layer, self_mask, memory_mask)
            if torch.allclose(out, expected, atol=1e-5):
                tested = layer(x, memory, self_mask, memory_key_padding_mask=memory_mask)
                assert torch.allclose(tested, expected, atol=1e-5)
                return (
                    "masked self-attention, cross-attention over the encoder's output and the "
                    "feed-forward network, each as norm(x + sublayer(x)): the same as "
                    "DecoderLayer."
                )
            for wrong, message in _decoder_variants(x, memory, layer, self_mask, memory_mask):
                if torch.allclose(out, wrong(), atol=1e-5):
                    raise Mistake(message)
        raise Mistake(
            "the output differs from the paper's decoder layer: x = norm1(x + self_attn(x, x, "
            "x, attn_mask=self_mask)); x = norm2(x + cross_attn(x, memory, memory, "
            "key_padding_mask=memory_mask)); "
            "x = norm3(x + ffn(x))"
        )

    return run_check("decoder_layer_forward", fn, body)


# ----------------------------------------------------------------------------- warm-up schedule

_WARMUP_CASES = ((1, 64, 100), (50, 64, 100), (100, 64, 100), (400, 64, 100), (4000, 512, 4000))


def check_warmup_lr(fn: Callable) -> CheckResult:
    """Checks ``fn(step, d_model, warmup_steps) -> float`` (steps start at 1)."""

    def body(fn):
        for step, d, w in _WARMUP_CASES:
            got = fn(step, d, w)
            if isinstance(got, torch.Tensor):
                got = got.item()
            if not isinstance(got, (int, float)):
                raise Mistake(f"return a number, got {type(got).__name__}")
            want = reference_warmup_lr(step, d, w)
            if math.isclose(got, want, rel_tol=1e-6):
                continue
            if math.isclose(got, d**-0.5 * min(step**0.5, step * w**-1.5), rel_tol=1e-6):
                raise Mistake("after warm-up the rate decays as step^-0.5 (1/√step), not √step")
            if math.isclose(got, min(step**-0.5, step * w**-1.5), rel_tol=1e-6):
                raise Mistake("the factor d_model^-0.5 is missing: wider models take smaller steps")
            if math.isclose(got, d**-0.5 * min(step**-0.5, step * w**-0.5), rel_tol=1e-6) or (
                math.isclose(got, d**-0.5 * min(step**-0.5, step / w), rel_tol=1e-6)
            ):
                raise Mistake(
                    "the warm-up term should be step · warmup_steps^-1.5, so that the two "
                    "terms meet exactly at step = warmup_steps"
                )
            if math.isclose(got, max(step**-0.5, step * w**-1.5) * d**-0.5, rel_tol=1e-6):
                raise Mistake(
                    "you took the max of the two terms: the rate must follow the smaller one, "
                    "the linear rise during warm-up and the 1/√step decay after it (min)"
                )
            raise Mistake(
                f"lr(step={step}, d_model={d}, warmup_steps={w}) should be {want:.3e}, got "
                f"{got:.3e}"
            )
        return "a linear warm-up to the peak at step = warmup_steps, then a 1/√step decay."

    return run_check("warmup_lr", fn, body)


# ----------------------------------------------------------------------------- teacher forcing

_SHIFT_CASES = (([7, 5, 9, 4], 1, 2), ([3], 1, 2), ([6, 6, 8], 11, 12))


def _ids(part, name: str) -> list[int]:
    """A learner's sequence of token ids (a list, a tuple, a 1-D tensor) as a list of ints."""
    try:
        return list(map(int, part))
    except (TypeError, ValueError):
        raise Mistake(f"the {name} should be a list of token ids (ints), got {part!r}") from None


def check_teacher_forcing_shift(fn: Callable) -> CheckResult:
    """Checks ``fn(target, bos_id, eos_id) -> (decoder_input, decoder_target)``."""

    def body(fn):
        for target, bos, eos in _SHIFT_CASES:
            original = list(target)
            got = fn(list(target), bos, eos)
            if not (isinstance(got, tuple) and len(got) == 2):
                raise Mistake("return a pair: (decoder_input, decoder_target)")
            inp, out = (
                _ids(part, name) for part, name in zip(got, ("decoder_input", "decoder_target"))
            )
            want_in, want_out = reference_teacher_forcing_shift(original, bos, eos)
            if (inp, out) == (want_in, want_out):
                continue
            if (inp, out) == (want_out, want_in):
                raise Mistake(
                    "input and target are swapped: the decoder reads <bos> y1 .. yn and "
                    "predicts y1 .. yn <eos>"
                )
            if inp == out:
                raise Mistake(
                    "the input and the target are the same sequence: the decoder would learn "
                    "to copy the token it reads. Shift by one: the target is one step ahead"
                )
            if inp == original or out == original:
                raise Mistake(
                    "one side is the bare target: the input starts with <bos> (so the first "
                    "prediction has something to read) and the target ends with <eos> (so "
                    "the model learns when to stop)"
                )
            if inp == [bos, *original, eos] or out == [bos, *original, eos]:
                raise Mistake(
                    "<bos> and <eos> belong on different sides: the input is <bos> y1 .. yn, "
                    "the target y1 .. yn <eos>, both of length n + 1"
                )
            raise Mistake(
                f"for target {original}, bos {bos}, eos {eos} expected ({want_in}, "
                f"{want_out}), got ({inp}, {out})"
            )
        return "the decoder reads <bos> y1 .. yn and learns to predict y1 .. yn <eos>."

    return run_check("teacher_forcing_shift", fn, body)


SOLUTIONS = {
    "decoder_layer_forward": reference_decoder_layer_forward,
    "warmup_lr": reference_warmup_lr,
    "teacher_forcing_shift": reference_teacher_forcing_shift,
}

QUIZ = [
    Question(
        "In a decoder layer's cross-attention, where do the queries, keys and values come from?",
        (
            "Queries, keys and values all from the encoder's output",
            "Queries from the decoder, keys and values from the encoder's output",
            "Queries from the encoder's output, keys and values from the decoder",
            "Queries, keys and values all from the decoder",
        ),
        1,
        "Each target position asks (query) which source positions to read (keys) and reads "
        "their content (values), so the output has one row per target position.",
    ),
    Question(
        "Why are the token embeddings multiplied by √d_model before the positional encodings "
        "are added?",
        (
            "To make training faster on a GPU",
            "So that tokens and positions have similar size: neither drowns the other",
            "Because the softmax needs large inputs",
            "To undo the 1/√d_k scale of the attention scores",
        ),
        1,
        "The embeddings are initialised small (std d^-0.5) and the sinusoids have values in "
        "[-1, 1]; the scaling brings the token part to about the same size.",
    ),
    Question(
        "During training the decoder sees the whole target at once. What keeps position t "
        "from reading the token it must predict?",
        (
            "The padding mask of the source",
            "The causal mask in the decoder's self-attention",
            "The cross-attention",
            "Nothing: teacher forcing allows it",
        ),
        1,
        "The target is shifted by one (input <bos> y1 .., target y1 .. <eos>) and the causal "
        "mask stops position t from attending to positions after t.",
    ),
    Question(
        "On a short task on a 2-core CPU, a small GRU with attention can reach the same accuracy "
        "as the Transformer in less time. What changes in the Transformer's favour on long "
        "inputs and a GPU?",
        (
            "Nothing: RNNs are always faster",
            "The Transformer processes all positions of a sequence in parallel, while an RNN "
            "must take its steps one after another",
            "The Transformer needs fewer parameters",
            "The Transformer does not need attention",
        ),
        1,
        "An RNN's step t needs step t-1, so its time grows with the length however many cores "
        "there are; self-attention computes every position in one batched matrix product.",
    ),
]
