"""Positional information for attention, which on its own ignores order.

``sinusoidal_positional_encoding`` is the fixed encoding of Vaswani et al. (2017);
``PositionalEncoding`` adds it (or a learned table, or nothing) to token embeddings.
"""

from __future__ import annotations

import torch
from torch import nn

POSITION_KINDS = ("sinusoidal", "learned", "none")


def sinusoidal_positional_encoding(
    max_len: int, d_model: int, base: float = 10000.0
) -> torch.Tensor:
    """``(max_len, d_model)``: PE[p, 2i] = sin(p / base^(2i/d)), PE[p, 2i+1] = cos(p / base^(2i/d)).

    Each pair of columns is a sine and cosine of one frequency; the wavelengths grow
    geometrically from 2π to ``base``·2π, so nearby positions get similar vectors and a shift
    by k is the same rotation at every position. An odd ``d_model`` drops the last cosine.
    """
    if max_len < 1 or d_model < 1:
        raise ValueError(
            f"max_len and d_model must be >= 1, got max_len={max_len}, d_model={d_model}"
        )
    position = torch.arange(max_len, dtype=torch.float64)[:, None]  # (max_len, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)  # (ceil(d/2),)
    angle = position / base ** (two_i / d_model)  # (max_len, ceil(d/2))
    pe = torch.zeros(max_len, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle[:, : d_model // 2])
    return pe.float()


class PositionalEncoding(nn.Module):
    """Add positions to embeddings ``(B, T, d_model)``: sinusoidal, learned or none.

    ``forward(x, offset=0)`` adds the rows ``offset .. offset + T - 1`` (an offset is how a
    KV cache continues a sequence). ``kind="none"`` returns ``x`` unchanged: the model is then
    permutation-equivariant.
    """

    def __init__(self, d_model: int, max_len: int, kind: str = "sinusoidal", dropout: float = 0.0):
        super().__init__()
        if kind not in POSITION_KINDS:
            raise ValueError(f"kind must be one of {POSITION_KINDS}, got {kind!r}")
        self.kind, self.max_len, self.d_model = kind, max_len, d_model
        self.dropout = nn.Dropout(dropout)
        if kind == "sinusoidal":
            self.register_buffer("table", sinusoidal_positional_encoding(max_len, d_model))
        elif kind == "learned":
            self.embedding = nn.Embedding(max_len, d_model)
            nn.init.normal_(self.embedding.weight, std=0.02)

    def weight(self) -> torch.Tensor | None:
        """The ``(max_len, d_model)`` table of position vectors (None for ``kind="none"``)."""
        if self.kind == "sinusoidal":
            return self.table
        if self.kind == "learned":
            return self.embedding.weight
        return None

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"x must be (B, T, {self.d_model}), got {tuple(x.shape)}")
        length = x.shape[1]
        if offset < 0 or offset + length > self.max_len:
            raise ValueError(
                f"positions {offset}..{offset + length - 1} do not fit in max_len={self.max_len}: "
                "build the model with a larger max_len or feed a shorter sequence"
            )
        table = self.weight()
        if table is not None:
            x = x + table[offset : offset + length]  # (B, T, d) + (T, d)
        return self.dropout(x)
