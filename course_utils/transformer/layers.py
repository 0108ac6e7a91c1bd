"""Transformer blocks: the position-wise feed-forward network and the encoder layer.

An encoder layer is self-attention then a feed-forward network, each wrapped in a residual
connection and a LayerNorm: after the sum in the paper (``norm_first=False``, "post-norm"), or
before the sublayer (``norm_first=True``, "pre-norm", which trains more stably when deep).
With a causal mask the same layer is a GPT block.
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

    ``forward(x (B, T, d_model), mask=None, cache=None) -> (x (B, T, d_model), weights
    (B, H, T, T_keys))``. ``mask`` is boolean, True = may attend (a ``(B, T)`` padding mask or
    a ``(T, T)`` causal mask); ``cache`` is a :class:`~course_utils.attention.KVCache` for
    generation. ``dim_feedforward`` defaults to 4·d_model.
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

    def _attend(self, x, mask, cache):
        out, weights = self.self_attn(x, x, x, mask=mask, cache=cache)
        return self.dropout1(out), weights

    def forward(self, x: torch.Tensor, mask=None, cache: KVCache | None = None):
        if self.norm_first:  # pre-norm: x + sublayer(norm(x))
            attended, weights = self._attend(self.norm1(x), mask, cache)
            x = x + attended
            x = x + self.dropout2(self.ffn(self.norm2(x)))
        else:  # post-norm, as in the paper: norm(x + sublayer(x))
            attended, weights = self._attend(x, mask, cache)
            x = self.norm1(x + attended)
            x = self.norm2(x + self.dropout2(self.ffn(x)))
        return x, weights

    @classmethod
    def from_torch(cls, layer: nn.TransformerEncoderLayer) -> EncoderLayer:
        """A copy of ``nn.TransformerEncoderLayer`` (built with ``batch_first=True``).

        PyTorch's boolean masks mean True = *blocked*: pass ``~src_mask`` or
        ``~src_key_padding_mask`` here for the same result.
        """
        activation = {F.relu: "relu", F.gelu: "gelu"}.get(layer.activation)
        if activation is None:
            raise ValueError(f"unsupported activation {layer.activation!r}: use relu or gelu")
        d_model = layer.linear1.in_features
        ours = cls(
            d_model,
            layer.self_attn.num_heads,
            dim_feedforward=layer.linear1.out_features,
            dropout=layer.dropout.p,
            norm_first=layer.norm_first,
            activation=activation,
            layer_norm_eps=layer.norm1.eps,
            bias=layer.linear1.bias is not None,
        )
        ours.self_attn = MultiHeadAttention.from_torch(layer.self_attn)
        ours.ffn.linear1.load_state_dict(layer.linear1.state_dict())
        ours.ffn.linear2.load_state_dict(layer.linear2.state_dict())
        ours.norm1.load_state_dict(layer.norm1.state_dict())
        ours.norm2.load_state_dict(layer.norm2.state_dict())
        return ours.to(layer.linear1.weight.device)
