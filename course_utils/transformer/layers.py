"""Transformer blocks: the position-wise feed-forward network, the encoder and decoder layers.

An encoder layer is self-attention then a feed-forward network, each wrapped in a residual
connection and a LayerNorm: after the sum in the paper (``norm_first=False``, "post-norm"), or
before the sublayer (``norm_first=True``, "pre-norm", which trains more stably when deep).
With a causal mask the encoder layer is a GPT block. A decoder layer adds cross-attention over
the encoder's output between its masked self-attention and its feed-forward network.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..attention import KVCache, MultiHeadAttention

ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


class FeedForward(nn.Module):
    """FFN(x) = W₂ · act(W₁ x + b₁) + b₂, applied to every position on its own."""

    def __init__(self, d_model: int, dim_feedforward: int, dropout: float = 0.0, activation="relu"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.dropout = nn.Dropout(dropout)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = ACTIVATIONS[self.activation](self.linear1(x))  # (B, T, dim_feedforward)
        return self.linear2(self.dropout(hidden))  # (B, T, d_model)


class EncoderLayer(nn.Module):
    """Self-attention + feed-forward, each with a residual connection and LayerNorm.

    ``forward(x (B, T, d_model), src_mask=None, src_key_padding_mask=None, cache=None) -> x
    (B, T, d_model)``, as PyTorch's layer but with masks True = may attend: ``src_mask`` is
    ``(T, T_keys)`` (e.g. causal), ``src_key_padding_mask`` ``(B, T_keys)``; ``cache`` is a
    :class:`~course_utils.attention.KVCache` for generation. The attention runs on the fast
    path; :func:`~course_utils.attention.record_attention` shows its weights.
    ``dim_feedforward`` defaults to 4·d_model.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        dim_feedforward: int | None = None,
        dropout: float = 0.0,
        norm_first: bool = False,
        activation: str = "relu",
        layer_norm_eps: float = 1e-5,
        bias: bool = True,
    ):
        super().__init__()
        dim_feedforward = 4 * d_model if dim_feedforward is None else dim_feedforward
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout=dropout, bias=bias)
        self.ffn = FeedForward(d_model, dim_feedforward, dropout, activation)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.norm_first = norm_first

    def _attend(self, x, src_mask, src_key_padding_mask, cache):
        out, _ = self.self_attn(
            x, x, x, src_key_padding_mask, src_mask, need_weights=False, cache=cache
        )
        return self.dropout1(out)

    def forward(
        self,
        x: torch.Tensor,
        src_mask: torch.Tensor | None = None,
        src_key_padding_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        masks = (src_mask, src_key_padding_mask, cache)
        if self.norm_first:  # pre-norm: x + sublayer(norm(x))
            x = x + self._attend(self.norm1(x), *masks)
            x = x + self.dropout2(self.ffn(self.norm2(x)))
        else:  # post-norm, as in the paper: norm(x + sublayer(x))
            x = self.norm1(x + self._attend(x, *masks))
            x = self.norm2(x + self.dropout2(self.ffn(x)))
        return x  # (B, T, d_model)

    @classmethod
    def from_torch(cls, layer: nn.TransformerEncoderLayer) -> EncoderLayer:
        """A copy of ``nn.TransformerEncoderLayer`` (built with ``batch_first=True``).

        PyTorch's boolean masks mean True = *blocked*: pass ``~src_mask`` and
        ``~src_key_padding_mask`` (same names) here for the same result.
        """
        ours = cls(**_settings_of(layer))
        ours.self_attn = MultiHeadAttention.from_torch(layer.self_attn)
        _copy_ffn_and_norms(ours, layer, ("norm1", "norm2"))
        return ours.to(layer.linear1.weight.device)


class DecoderLayer(nn.Module):
    """Masked self-attention, cross-attention over ``memory``, feed-forward; each with a residual
    connection and LayerNorm (post-norm as in the paper, or pre-norm with ``norm_first``).

    ``forward(x (B, T, d), memory (B, S, d), tgt_mask=None, memory_mask=None,
    tgt_key_padding_mask=None, memory_key_padding_mask=None, cache=None) -> x (B, T, d)``, as
    PyTorch's layer but with masks True = may attend: ``tgt_mask (T, T_keys)`` is usually
    causal, ``memory_key_padding_mask (B, S)`` marks the source's real positions,
    ``memory_mask (T, S)`` is rarely needed. Weights: :func:`~course_utils.attention.record_attention`.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        dim_feedforward: int | None = None,
        dropout: float = 0.0,
        norm_first: bool = False,
        activation: str = "relu",
        layer_norm_eps: float = 1e-5,
        bias: bool = True,
    ):
        super().__init__()
        dim_feedforward = 4 * d_model if dim_feedforward is None else dim_feedforward
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout=dropout, bias=bias)
        self.cross_attn = MultiHeadAttention(d_model, num_heads, dropout=dropout, bias=bias)
        self.ffn = FeedForward(d_model, dim_feedforward, dropout, activation)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm3 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        tgt_mask: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
        tgt_key_padding_mask: torch.Tensor | None = None,
        memory_key_padding_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        if memory.dim() != 3 or memory.shape[0] != x.shape[0] or memory.shape[-1] != x.shape[-1]:
            raise ValueError(
                f"memory must be (B, S, d_model) with x's batch and width: x {tuple(x.shape)}, "
                f"memory {tuple(memory.shape)}"
            )

        def self_block(h):
            out, _ = self.self_attn(
                h, h, h, tgt_key_padding_mask, tgt_mask, need_weights=False, cache=cache
            )
            return self.dropout1(out)

        def cross_block(h):
            out, _ = self.cross_attn(
                h, memory, memory, memory_key_padding_mask, memory_mask, need_weights=False
            )
            return self.dropout2(out)

        if self.norm_first:  # pre-norm: x + sublayer(norm(x))
            x = x + self_block(self.norm1(x))
            x = x + cross_block(self.norm2(x))
            x = x + self.dropout3(self.ffn(self.norm3(x)))
        else:  # post-norm, as in the paper: norm(x + sublayer(x))
            x = self.norm1(x + self_block(x))
            x = self.norm2(x + cross_block(x))
            x = self.norm3(x + self.dropout3(self.ffn(x)))
        return x  # (B, T, d_model)

    @classmethod
    def from_torch(cls, layer: nn.TransformerDecoderLayer) -> DecoderLayer:
        """A copy of ``nn.TransformerDecoderLayer`` (built with ``batch_first=True``).

        PyTorch's boolean masks mean True = *blocked*: pass ``~tgt_mask`` and
        ``~memory_key_padding_mask`` (same names) here for the same result.
        """
        ours = cls(**_settings_of(layer))
        ours.self_attn = MultiHeadAttention.from_torch(layer.self_attn)
        ours.cross_attn = MultiHeadAttention.from_torch(layer.multihead_attn)
        _copy_ffn_and_norms(ours, layer, ("norm1", "norm2", "norm3"))
        return ours.to(layer.linear1.weight.device)


def _settings_of(layer: nn.Module) -> dict:
    """The constructor arguments that rebuild PyTorch's encoder or decoder ``layer`` here."""
    activation = {F.relu: "relu", F.gelu: "gelu"}.get(layer.activation)
    if activation is None:
        raise ValueError(f"unsupported activation {layer.activation!r}: use relu or gelu")
    return dict(
        d_model=layer.linear1.in_features,
        num_heads=layer.self_attn.num_heads,
        dim_feedforward=layer.linear1.out_features,
        dropout=layer.dropout.p,
        norm_first=layer.norm_first,
        activation=activation,
        layer_norm_eps=layer.norm1.eps,
        bias=layer.linear1.bias is not None,
    )


def _copy_ffn_and_norms(ours: nn.Module, layer: nn.Module, norms: tuple[str, ...]) -> None:
    """Copy PyTorch's linear1/linear2 into our FeedForward and the named LayerNorms."""
    ours.ffn.linear1.load_state_dict(layer.linear1.state_dict())
    ours.ffn.linear2.load_state_dict(layer.linear2.state_dict())
    for name in norms:
        getattr(ours, name).load_state_dict(getattr(layer, name).state_dict())
