"""Lesson 06 exercises: split the features into heads, and merge the heads back."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._core import CheckResult, Mistake, Question, expect_tensor, run_check

__all__ = [
    "check_merge_heads",
    "check_split_heads",
    "reference_merge_heads",
    "reference_split_heads",
]


def reference_split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """``(B, L, D) -> (B, H, L, D / H)``: head h gets features ``h·d_head .. (h+1)·d_head - 1``."""
    batch, length, d_model = x.shape
    return x.view(batch, length, num_heads, d_model // num_heads).transpose(1, 2)


def reference_merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``(B, H, L, d_head) -> (B, L, H·d_head)``: the heads' outputs side by side, head 0 first."""
    batch, num_heads, length, d_head = x.shape
    return x.transpose(1, 2).reshape(batch, length, num_heads * d_head)


# B, L, H, d_head all different, so that every mix-up of two axes changes the shape or values
_B, _L, _H, _DH = 2, 5, 3, 4
_D = _H * _DH

_VIEW_ERROR = "view size is not compatible"  # PyTorch's message for .view on a transposed tensor


def _features() -> torch.Tensor:
    # entry (b, l, f) = 1000·b + 100·l + f: every number says where it came from
    b = torch.arange(_B)[:, None, None] * 1000
    pos = torch.arange(_L)[None, :, None] * 100
    f = torch.arange(_D)[None, None, :]
    return (b + pos + f).float()  # (B, L, D)


def _call(fn, *args) -> torch.Tensor:
    try:
        return fn(*args)
    except RuntimeError as err:
        if _VIEW_ERROR in str(err):
            raise Mistake(
                "PyTorch refused .view: after .transpose the tensor is no longer contiguous in "
                "memory, so .view cannot regroup its axes. Use .reshape (or "
                ".contiguous().view) after a transpose"
            ) from err
        raise


def check_split_heads(fn: Callable) -> CheckResult:
    """Checks ``fn(x (B, L, D), num_heads) -> (B, H, L, D / H)``: head h gets the contiguous
    block of features ``h·d_head .. (h+1)·d_head - 1`` at every position."""

    def body(fn):
        x = _features()
        result = _call(fn, x.clone(), _H)
        if not isinstance(result, torch.Tensor):
            raise Mistake(f"return a torch.Tensor, got {type(result).__name__}")
        shape = tuple(result.shape)
        if shape == (_B, _L, _H, _DH):
            raise Mistake(
                f"the result has shape {shape} = (B, L, H, d_head): you split the features but "
                "forgot the transpose that puts the head axis before the positions, "
                ".transpose(1, 2), to get (B, H, L, d_head)"
            )
        if shape == (_B, _DH, _L, _H):
            raise Mistake(
                f"the result has shape {shape} = (B, d_head, L, H): num_heads and d_head are "
                "swapped; view the features as (B, L, num_heads, d_model // num_heads)"
            )
        result = expect_tensor(result, "split_heads(x)", (_B, _H, _L, _DH))
        expected = reference_split_heads(x, _H)
        if torch.equal(result, expected):
            return "(B, L, D) -> (B, H, L, d_head); each head sees its own block of features."
        if torch.equal(result, x.reshape(_B, _H, _L, _DH)):
            raise Mistake(
                "the shape is right but the heads are mixed over positions: x.view(B, H, L, "
                "d_head) cuts the flat (L, D) block into pieces, so one 'head' gets whole "
                "positions. View as (B, L, H, d_head) first, then .transpose(1, 2)"
            )
        if torch.equal(result, x.view(_B, _L, _DH, _H).permute(0, 3, 1, 2)):
            raise Mistake(
                "each head got every H-th feature (0, H, 2H, ...) instead of a contiguous block "
                "(0 .. d_head - 1 for head 0): view as (B, L, num_heads, d_head), not "
                "(B, L, d_head, num_heads)"
            )
        raise Mistake(
            "head h at position l should hold features h·d_head .. (h+1)·d_head - 1 of "
            "position l; yours differ"
        )

    return run_check("split_heads", fn, body)


def check_merge_heads(fn: Callable) -> CheckResult:
    """Checks ``fn(x (B, H, L, d_head)) -> (B, L, H·d_head)``: at each position the heads'
    outputs side by side, head 0's features first; ``merge_heads(split_heads(x)) == x``."""

    def body(fn):
        x = _features()
        heads = reference_split_heads(x, _H)  # (B, H, L, d_head), a transposed view of x
        result = _call(fn, heads.contiguous())  # laid out as attention's weights @ v gives it
        if not isinstance(result, torch.Tensor):
            raise Mistake(f"return a torch.Tensor, got {type(result).__name__}")
        shape = tuple(result.shape)
        if shape == (_B, _L, _DH):
            raise Mistake(
                f"the result has shape {shape} = (B, L, d_head): you summed or averaged the "
                "heads; concatenate them instead, so that W_o sees every head's output"
            )
        if shape == (_B, _L, _H, _DH):
            raise Mistake(
                f"the result has shape {shape} = (B, L, H, d_head): you transposed but did not "
                "join the last two axes: .reshape(B, L, H * d_head)"
            )
        result = expect_tensor(result, "merge_heads(x)", (_B, _L, _D))
        if torch.equal(result, x):
            other_layout = _call(fn, heads.clone())  # the same numbers, strided as a view of x
            other_layout = expect_tensor(other_layout, "merge_heads(x)", (_B, _L, _D))
            if not torch.equal(other_layout, x):
                raise Mistake("merge_heads depends on the memory layout of its input")
            return "(B, H, L, d_head) -> (B, L, D), and merge_heads(split_heads(x)) == x."
        if torch.equal(result, heads.reshape(_B, _L, _D)):
            raise Mistake(
                "the shape is right but positions and heads are mixed: you reshaped "
                "(B, H, L, d_head) to (B, L, D) without moving the head axis back. "
                ".transpose(1, 2) first, then .reshape"
            )
        if torch.equal(result, heads.permute(0, 2, 3, 1).reshape(_B, _L, _D)):
            raise Mistake(
                "the heads' features are interleaved (feature 0 of every head, then feature 1, "
                "...): the merge must put head 0's d_head features first, then head 1's. Use "
                ".transpose(1, 2).reshape(B, L, H * d_head)"
            )
        raise Mistake(
            "merge_heads(split_heads(x)) should give back x: at each position, head 0's "
            "features, then head 1's, and so on"
        )

    return run_check("merge_heads", fn, body)


SOLUTIONS = {
    "split_heads": reference_split_heads,
    "merge_heads": reference_merge_heads,
}

QUIZ = [
    Question(
        "A multi-head attention layer has d_model = 64 and 8 heads. What is d_head, the size of "
        "each head's queries, keys and values?",
        ("64", "8", "512", "16"),
        1,
        "The 64 features are split into 8 blocks of d_model / num_heads = 8: the heads share "
        "the width instead of each getting all of it, so the cost stays the same.",
    ),
    Question(
        "At the same d_model (with biases), how do the parameters of one-head and 8-head "
        "attention compare?",
        (
            "8 heads have 8 times as many",
            "They are the same: 4·d_model² + 4·d_model",
            "8 heads have 8 times fewer",
            "8 heads have 8 extra output projections",
        ),
        1,
        "W_q, W_k, W_v and W_o are d_model x d_model either way; the heads only decide how the "
        "projected features are grouped into separate attention maps.",
    ),
    Question(
        "In merge_heads, why does x.transpose(1, 2).view(B, L, D) fail where "
        "x.transpose(1, 2).reshape(B, L, D) works?",
        (
            "view only works on the GPU",
            "transpose returns a non-contiguous tensor, and view cannot regroup its axes "
            "without copying",
            "view changes the order of the elements",
            "reshape drops the batch axis",
        ),
        1,
        "transpose only swaps strides; view needs the merged axes to be adjacent in memory. "
        "reshape copies when it has to (or call .contiguous() first).",
    ),
    Question(
        "Our padding mask is True at real tokens. What do you pass as key_padding_mask to "
        "nn.MultiheadAttention to get the same result?",
        ("mask", "~mask", "mask.float()", "mask.transpose(0, 1)"),
        1,
        "PyTorch's boolean masks mean True = blocked, the opposite of the course's (and of "
        "F.scaled_dot_product_attention's): invert it with ~mask.",
    ),
]
