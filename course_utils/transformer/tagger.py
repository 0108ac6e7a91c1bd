"""An encoder-only Transformer that labels every position: one output per input token.

Lessons 05 and 06 train it on small tasks (reverse a sequence, combine two neighbours) and
plot its attention; with ``positions="none"`` it cannot see order at all.
"""

from __future__ import annotations

import torch
from torch import nn

from ..token_ids import check_token_ids
from .layers import EncoderLayer
from .positions import PositionalEncoding


class TransformerTagger(nn.Module):
    """Token embedding + positions + ``num_layers`` encoder layers + a linear head per position.

    ``forward(tokens (B, T)) -> logits (B, T, num_classes)``; keys equal to ``pad_id`` are
    masked. Its attention maps, ``(B, H, T, T)`` per layer: ``with record_attention(model) as
    maps`` (``maps.layers("self")``).
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 64,
        num_heads: int = 4,
        num_layers: int = 2,
        max_len: int = 64,
        positions: str = "sinusoidal",
        num_classes: int | None = None,
        dim_feedforward: int | None = None,
        dropout: float = 0.0,
        norm_first: bool = True,
        pad_id: int | None = 0,
    ):
        super().__init__()
        self.vocab_size, self.pad_id = vocab_size, pad_id
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.positions = PositionalEncoding(d_model, max_len, positions, dropout)
        self.layers = nn.ModuleList(
            EncoderLayer(d_model, num_heads, dim_feedforward, dropout, norm_first=norm_first)
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()
        self.head = nn.Linear(d_model, vocab_size if num_classes is None else num_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be (B, T) integer ids, got {tuple(tokens.shape)}")
        check_token_ids(tokens, self.vocab_size, "tokens")
        keys = None if self.pad_id is None else tokens != self.pad_id  # (B, T) real tokens
        x = self.positions(self.embedding(tokens))  # (B, T, d_model)
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=keys)
        return self.head(self.norm(x))  # (B, T, num_classes)
