"""Multi-head attention (Vaswani et al. 2017), with an optional key/value cache for generation.

``num_heads`` scaled dot-product attentions run side by side on ``d_model / num_heads``
features each; their outputs are concatenated and mixed by one output projection.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .core import scaled_dot_product_attention


class KVCache:
    """The keys and values one attention layer has already computed, ``(B, H, T, d_head)``.

    During generation each new token only needs its own query: the keys and values of the
    earlier tokens do not change (causal attention), so they are kept here instead of being
    recomputed at every step.
    """

    def __init__(self):
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.k is None else self.k.shape[-2]

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add the new positions' ``k, v`` (B, H, T_new, d_head); return all of them so far."""
        if self.k is None:
            self.k, self.v = k, v
        else:
            if k.shape[:2] != self.k.shape[:2] or k.shape[-1] != self.k.shape[-1]:
                raise ValueError(
                    f"new keys {tuple(k.shape)} do not match the cached keys {tuple(self.k.shape)} "
                    "(B, H, T, d_head): same batch, heads and d_head are needed"
                )
            self.k = torch.cat([self.k, k], dim=-2)  # (B, H, T_old + T_new, d_head)
            self.v = torch.cat([self.v, v], dim=-2)
        return self.k, self.v


def merge_masks(
    key_padding_mask: torch.Tensor | None,
    attn_mask: torch.Tensor | None,
    batch: int,
    l_q: int,
    l_k: int,
) -> torch.Tensor | None:
    """One boolean mask (True = may attend) broadcastable to the scores ``(B, H, L_q, L_k)``.

    ``key_padding_mask`` is ``(B, L_k)``: which keys of each sequence are real. ``attn_mask``
    is ``(L_q, L_k)`` (e.g. causal), the same for every sequence and head, or 4-D
    ``(B or 1, H or 1, L_q, L_k)``. Either may be None.
    """
    for name, mask in (("key_padding_mask", key_padding_mask), ("attn_mask", attn_mask)):
        if mask is not None and mask.dtype != torch.bool:
            raise ValueError(f"{name} must be boolean (True = may attend), got {mask.dtype}")
    merged = None
    if attn_mask is not None:
        if attn_mask.dim() not in (2, 4) or attn_mask.shape[-1] != l_k:
            raise ValueError(
                f"attn_mask must be (L_q, L_k) = ({l_q}, {l_k}) or 4-D (B, H, L_q, L_k), got "
                f"{tuple(attn_mask.shape)}; a per-sequence padding mask goes in key_padding_mask"
            )
        merged = attn_mask if attn_mask.dim() == 4 else attn_mask[None, None]  # (1, 1, L_q, L_k)
        try:
            torch.broadcast_shapes(merged.shape, (batch, 1, l_q, l_k))
        except RuntimeError:
            raise ValueError(
                f"attn_mask {tuple(attn_mask.shape)} does not fit the scores (B, H, L_q, L_k) = "
                f"({batch}, H, {l_q}, {l_k})"
            ) from None
    if key_padding_mask is not None:
        if tuple(key_padding_mask.shape) != (batch, l_k):
            raise ValueError(
                f"key_padding_mask must be (B, L_k) = ({batch}, {l_k}), got "
                f"{tuple(key_padding_mask.shape)}"
            )
        padding = key_padding_mask[:, None, None, :]  # (B, 1, 1, L_k)
        merged = padding if merged is None else merged & padding
    return merged


class MultiHeadAttention(nn.Module):
    """Vaswani et al. (2017): ``num_heads`` scaled dot-product attentions side by side.

    ``forward(query (B, L_q, d_model), key (B, L_k, d_model), value (B, L_k, d_model),
    key_padding_mask=None, attn_mask=None, need_weights=True, cache=None) -> (out (B, L_q,
    d_model), weights (B, H, L_q, L_k) or None)``. Masks are boolean, True = may attend:
    ``key_padding_mask (B, L_k)`` marks each sequence's real keys, ``attn_mask (L_q, L_k)``
    (or 4-D) is shared by all sequences, e.g. causal.

    Two backends, one result: with ``need_weights=True`` the course's explicit
    :func:`scaled_dot_product_attention` runs and returns its weights; with ``False`` PyTorch's
    fused ``F.scaled_dot_product_attention`` runs (the fast path; weights ``None``) unless a
    :func:`record_attention` block is listening. With a :class:`KVCache`, the new keys and
    values are appended to it and the queries attend over all cached positions (masks then
    cover ``L_k`` = the cache length). Dropout acts on the weights in training mode.
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if num_heads < 1 or d_model % num_heads != 0:
            raise ValueError(
                f"num_heads={num_heads} must divide d_model={d_model}: each head gets "
                f"d_model / num_heads features"
            )
        self.d_model, self.num_heads, self.d_head = d_model, num_heads, d_model // num_heads
        self.dropout = dropout
        self.recorders = 0  # open record_attention blocks: they need the weights
        self.W_q = nn.Linear(d_model, d_model, bias=bias)
        self.W_k = nn.Linear(d_model, d_model, bias=bias)
        self.W_v = nn.Linear(d_model, d_model, bias=bias)
        self.W_o = nn.Linear(d_model, d_model, bias=bias)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, L, d_model) -> (B, H, L, d_head)``."""
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, self.d_head).transpose(1, 2)

    def merge_heads(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, L, d_head) -> (B, L, d_model)``."""
        batch, _, length, _ = x.shape
        return x.transpose(1, 2).reshape(batch, length, self.d_model)

    def _check_inputs(self, query, key, value) -> None:
        for name, x in (("query", query), ("key", key), ("value", value)):
            if x.dim() != 3 or x.shape[-1] != self.d_model:
                raise ValueError(f"{name} must be (B, L, {self.d_model}), got {tuple(x.shape)}")
        if key.shape[:2] != value.shape[:2] or key.shape[0] != query.shape[0]:
            raise ValueError(
                f"query, key and value must share the batch size, and key and value the length: "
                f"query {tuple(query.shape)}, key {tuple(key.shape)}, value {tuple(value.shape)}"
            )

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        need_weights: bool = True,
        cache: KVCache | None = None,
    ):
        self._check_inputs(query, key, value)
        q = self.split_heads(self.W_q(query))  # (B, H, L_q, d_head)
        k = self.split_heads(self.W_k(key))  # (B, H, L_k, d_head)
        v = self.split_heads(self.W_v(value))  # (B, H, L_k, d_head)
        if cache is not None:
            k, v = cache.append(k, v)  # (B, H, L_cached + L_k, d_head)
        mask = merge_masks(key_padding_mask, attn_mask, q.shape[0], q.shape[2], k.shape[2])
        p = self.dropout if self.training else 0.0
        if need_weights or self.recorders:
            out, weights = scaled_dot_product_attention(q, k, v, mask=mask, dropout_p=p)
        else:  # the fused kernel: no (L_q, L_k) weights kept for the caller
            out, weights = (
                F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p),
                None,
            )
            if mask is not None:  # a query with no key to attend gives 0, as the explicit path
                out = out.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)
        return self.W_o(self.merge_heads(out)), weights  # (B, L_q, d_model), (B, H, L_q, L_k)

    @classmethod
    def from_torch(cls, mha: nn.MultiheadAttention) -> MultiHeadAttention:
        """A copy of PyTorch's ``nn.MultiheadAttention`` with the same weights.

        PyTorch's boolean masks mean the opposite (True = *blocked*): pass ``~attn_mask`` and
        ``~key_padding_mask`` (under the same names) to this module for the same result.
        """
        if not mha._qkv_same_embed_dim:
            raise ValueError("only nn.MultiheadAttention with kdim = vdim = embed_dim is supported")
        ours = cls(mha.embed_dim, mha.num_heads, mha.dropout, bias=mha.in_proj_bias is not None)
        w_q, w_k, w_v = mha.in_proj_weight.detach().chunk(3)
        with torch.no_grad():
            for linear, weight in zip((ours.W_q, ours.W_k, ours.W_v), (w_q, w_k, w_v)):
                linear.weight.copy_(weight)
            ours.W_o.weight.copy_(mha.out_proj.weight)
            if mha.in_proj_bias is not None:
                for linear, b in zip((ours.W_q, ours.W_k, ours.W_v), mha.in_proj_bias.chunk(3)):
                    linear.bias.copy_(b)
                ours.W_o.bias.copy_(mha.out_proj.bias)
        return ours.to(mha.in_proj_weight.device)
