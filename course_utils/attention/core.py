"""Masks, the masked softmax and scaled dot-product attention: the core every attention uses.

The conventions (True = may attend, no NaN for a fully masked row) are in the package docstring.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

# ----------------------------------------------------------------------------- masks


def causal_mask(n: int, device=None, offset: int = 0) -> torch.Tensor:
    """``(n, offset + n)`` boolean mask: query i, at position ``offset + i``, may see keys j <=
    ``offset + i``. ``offset=0`` is the square mask, True on and below the diagonal; with a KV
    cache of ``offset`` earlier positions, the ``n`` new queries also see all of the cache.
    """
    if n < 1:
        raise ValueError(f"a causal mask needs n >= 1, got {n}")
    if offset < 0:
        raise ValueError(f"offset (the number of cached positions) must be >= 0, got {offset}")
    return torch.ones(n, offset + n, dtype=torch.bool, device=device).tril(diagonal=offset)


def padding_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """``(B, max_len)`` boolean mask, True at the first ``lengths[b]`` positions of row b."""
    lengths = torch.as_tensor(lengths)
    if lengths.dim() != 1:
        raise ValueError(f"lengths must be 1-D (B,), got shape {tuple(lengths.shape)}")
    if lengths.numel() and int(lengths.min()) < 0:
        raise ValueError(f"lengths must be >= 0 (real tokens per row), got {lengths.tolist()}")
    longest = int(lengths.max()) if lengths.numel() else 0
    max_len = longest if max_len is None else max_len
    if longest > max_len:
        raise ValueError(f"a length of {longest} does not fit in max_len={max_len}")
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def _padding_hint(scores_shape: torch.Size) -> str:
    if len(scores_shape) == 4:
        return "a padding mask as (B, 1, 1, L_k), mask[:, None, None, :]"
    return "a padding mask as (B, 1, L_k), mask[:, None, :]"


def _check_mask(mask: torch.Tensor, scores_shape: torch.Size) -> None:
    if mask.dtype != torch.bool:
        raise ValueError(
            f"mask must be boolean (True = may attend), got {mask.dtype}; a float mask would be "
            "added to the scores, which is a different convention"
        )
    batched = len(scores_shape) >= 3
    batch, l_q, l_k = scores_shape[0], scores_shape[-2], scores_shape[-1]
    padding_like = batched and mask.dim() == 2 and tuple(mask.shape) == (batch, l_k)
    if padding_like and batch == l_q and batch > 1:  # (B, L_k) or (L_q, L_k)? Both fit.
        raise ValueError(
            f"a 2-D mask {tuple(mask.shape)} is ambiguous for scores {tuple(scores_shape)}: the "
            f"batch size equals L_q ({batch}), so it would be read as one row per query. Pass "
            f"{_padding_hint(scores_shape)}, or a per-query mask as (1, L_q, L_k), mask[None]"
        )
    try:
        broadcast = torch.broadcast_shapes(mask.shape, scores_shape)
    except RuntimeError:
        broadcast = None
    if broadcast != scores_shape:
        hint = f": for {_padding_hint(scores_shape)}" if padding_like else ""
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} does not broadcast to the scores' shape "
            f"{tuple(scores_shape)} (..., L_query, L_key){hint}"
        )


def _check_no_nan(**tensors: torch.Tensor) -> None:
    """A NaN input would silently turn every output it reaches into NaN: refuse it early.

    One reduction for all inputs (one device sync); skipped while tracing or compiling, where
    a data-dependent branch is not allowed.
    """
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        return
    if not bool(torch.stack([t.isnan().any() for t in tensors.values()]).any()):
        return
    for name, t in tensors.items():
        if t.isnan().any():
            raise ValueError(
                f"{name} contains NaN ({int(t.isnan().sum())} of {t.numel()} values, shape "
                f"{tuple(t.shape)}): check the inputs, or what made them (a division by zero, "
                "weights diverged by a too-high learning rate)"
            )


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax over the last dim where ``mask`` is True; masked keys get exactly 0.

    A row with no allowed key gets all-zero weights (not NaN), with finite gradients: masked
    scores are replaced by the dtype's most negative finite value rather than ``-inf``.
    """
    if mask is None:
        return torch.softmax(scores, dim=-1)
    _check_mask(mask, scores.shape)
    very_negative = torch.finfo(scores.dtype).min
    weights = torch.softmax(scores.masked_fill(~mask, very_negative), dim=-1)
    return weights * mask  # zero the masked keys; a fully masked row becomes all zeros


# ----------------------------------------------------------------------------- scaled dot product


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q kᵀ · scale) v, with ``scale = 1/sqrt(d_k)`` by default.

    Shapes: q ``(..., L_q, d_k)``, k ``(..., L_k, d_k)``, v ``(..., L_k, d_v)``; any leading
    batch/head dims that broadcast. Returns out ``(..., L_q, d_v)`` and the weights
    ``(..., L_q, L_k)`` (before dropout). Like PyTorch's function, dropout is applied whenever
    ``dropout_p > 0``: pass 0 at evaluation time. A 2-D mask is ``(L_q, L_k)``; on batched
    inputs with B == L_q it could also be a ``(B, L_k)`` padding mask, and is refused. NaN in
    q, k or v is refused too.
    """
    if q.dim() < 2 or k.dim() < 2 or v.dim() < 2:
        raise ValueError(
            f"q, k, v need at least 2 dims (L, d), got {tuple(q.shape)}, {tuple(k.shape)}, "
            f"{tuple(v.shape)}"
        )
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q and k must have the same last dim d_k: q {tuple(q.shape)}, k {tuple(k.shape)}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"k and v must have the same number of keys (dim -2): k {tuple(k.shape)}, "
            f"v {tuple(v.shape)}"
        )
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")
    _check_no_nan(q=q, k=k, v=v)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale  # (..., L_q, L_k)
    weights = masked_softmax(scores, mask)
    dropped = F.dropout(weights, p=dropout_p) if dropout_p > 0 else weights
    return dropped @ v, weights  # (..., L_q, d_v), (..., L_q, L_k)
