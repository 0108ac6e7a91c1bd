"""Multi-head attention (Vaswani et al. 2017), with an optional key/value cache for generation.

``num_heads`` scaled dot-product attentions run side by side on ``d_model / num_heads``
features each; their outputs are concatenated and mixed by one output projection.
"""

from __future__ import annotations

import torch
from torch import nn

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


def _as_4d(mask: torch.Tensor, batch: int, l_q: int, l_k: int) -> torch.Tensor:
    """A 2-D mask as ``(B, 1, 1, L_k)`` (padding) or ``(1, 1, L_q, L_k)`` (per query)."""
    padding = tuple(mask.shape) == (batch, l_k)
    per_query = tuple(mask.shape) == (l_q, l_k)
    if padding and per_query and batch > 1:
        raise ValueError(
            f"a 2-D mask {tuple(mask.shape)} is ambiguous when the batch size equals L_q "
            f"({batch}): pass a padding mask as (B, 1, 1, L_k) or a causal mask as "
            "(1, 1, L_q, L_k)"
        )
    return mask[:, None, None, :] if padding else mask[None, None]


class MultiHeadAttention(nn.Module):
    """Vaswani et al. (2017): ``num_heads`` scaled dot-product attentions side by side.

    ``forward(query (B, L_q, d_model), key (B, L_k, d_model), value (B, L_k, d_model),
    mask=None, cache=None) -> (out (B, L_q, d_model), weights (B, H, L_q, L_k))``. ``mask`` is
    boolean, True = may attend: a ``(B, L_k)`` padding mask, or anything that broadcasts to
    ``(B, H, L_q, L_k)`` (e.g. a ``(L_q, L_k)`` causal mask). A 2-D mask that could be
    either (B == L_q > 1) is refused: pass ``(B, 1, 1, L_k)`` or ``(1, 1, L_q, L_k)``. With a :class:`KVCache`, the new
    keys and values are appended to it and the queries attend over all cached positions (the
    mask must then cover them: ``L_k`` is the cache length). Dropout acts on the weights in
    training mode; the returned weights are before dropout.
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

    def forward(self, query, key, value, mask=None, cache: KVCache | None = None):
        for name, x in (("query", query), ("key", key), ("value", value)):
            if x.dim() != 3 or x.shape[-1] != self.d_model:
                raise ValueError(f"{name} must be (B, L, {self.d_model}), got {tuple(x.shape)}")
        if key.shape[:2] != value.shape[:2] or key.shape[0] != query.shape[0]:
            raise ValueError(
                f"query, key and value must share the batch size, and key and value the length: "
                f"query {tuple(query.shape)}, key {tuple(key.shape)}, value {tuple(value.shape)}"
            )
        q = self.split_heads(self.W_q(query))  # (B, H, L_q, d_head)
        k = self.split_heads(self.W_k(key))  # (B, H, L_k, d_head)
        v = self.split_heads(self.W_v(value))  # (B, H, L_k, d_head)
        if cache is not None:
            k, v = cache.append(k, v)  # (B, H, L_cached + L_k, d_head)
        if mask is not None and mask.dim() == 2:
            mask = _as_4d(mask, batch=k.shape[0], l_q=q.shape[2], l_k=k.shape[2])
        p = self.dropout if self.training else 0.0
        out, weights = scaled_dot_product_attention(q, k, v, mask=mask, dropout_p=p)
        return self.W_o(self.merge_heads(out)), weights  # (B, L_q, d_model), (B, H, L_q, L_k)

    @classmethod
    def from_torch(cls, mha: nn.MultiheadAttention) -> MultiHeadAttention:
        """A copy of PyTorch's ``nn.MultiheadAttention`` with the same weights.

        PyTorch's boolean masks mean the opposite (True = *blocked*): pass ``~attn_mask`` and
        ``~key_padding_mask`` to this module to get the same result.
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
