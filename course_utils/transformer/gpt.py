"""A decoder-only Transformer (GPT, Radford et al. 2018) with a key/value cache.

Token + learned position embeddings, ``num_layers`` pre-norm blocks with causal
self-attention, a final LayerNorm and a linear head over the vocabulary. ``generate`` samples
greedily, with a temperature or from the top k; with ``use_cache=True`` each new token
computes only its own query, key and value and reuses the cached ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..attention import KVCache, causal_mask
from ..token_ids import check_token_ids
from .layers import EncoderLayer
from .positions import PositionalEncoding


@dataclass
class GPTConfig:
    vocab_size: int
    block_size: int = 64  # the longest context the model can see
    d_model: int = 64
    num_heads: int = 4
    num_layers: int = 2
    dim_feedforward: int | None = None  # 4·d_model
    dropout: float = 0.0


class GPT(nn.Module):
    """``forward(idx (B, T), caches=None) -> logits (B, T, vocab_size)``.

    ``caches`` (one :class:`KVCache` per layer, from :meth:`new_caches`) continues a sequence:
    ``idx`` then holds only the new tokens. Attention maps, ``(B, H, T, T_keys)`` per block:
    ``with record_attention(model) as maps`` (``maps.layers("self")``).
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        c = config
        self.token_embedding = nn.Embedding(c.vocab_size, c.d_model)
        self.positions = PositionalEncoding(c.d_model, c.block_size, "learned", c.dropout)
        self.blocks = nn.ModuleList(
            EncoderLayer(
                c.d_model,
                c.num_heads,
                c.dim_feedforward,
                c.dropout,
                norm_first=True,
                activation="gelu",
            )
            for _ in range(c.num_layers)
        )
        self.norm = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        nn.init.normal_(self.token_embedding.weight, std=0.02)

    def new_caches(self) -> list[KVCache]:
        return [KVCache() for _ in self.blocks]

    def forward(self, idx: torch.Tensor, caches: list[KVCache] | None = None) -> torch.Tensor:
        if idx.dim() != 2:
            raise ValueError(f"idx must be (B, T) token ids, got {tuple(idx.shape)}")
        check_token_ids(idx, self.config.vocab_size, "idx")
        if caches is not None and len(caches) != len(self.blocks):
            raise ValueError(f"need one cache per layer ({len(self.blocks)}), got {len(caches)}")
        offset = len(caches[0]) if caches is not None else 0
        length = idx.shape[1]
        x = self.positions(self.token_embedding(idx), offset=offset)  # (B, T, d_model)
        mask = causal_mask(length, device=idx.device, offset=offset)  # (T, offset + T)
        for i, block in enumerate(self.blocks):
            x = block(x, src_mask=mask, cache=None if caches is None else caches[i])
        return self.head(self.norm(x))  # (B, T, vocab_size)

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
        stop_token: int | None = None,
    ) -> torch.Tensor:
        """Extend ``idx (B, T)`` by up to ``max_new_tokens`` tokens; returns ``(B, T + new)``.

        ``temperature=0`` is greedy (argmax); otherwise sample from softmax(logits / T),
        restricted to the ``top_k`` most likely tokens when given. Generation stops early once
        every row has produced ``stop_token``. Past ``block_size`` the context is cropped to
        the last ``block_size`` tokens (the cache is then rebuilt from the cropped context).
        """
        if idx.dim() != 2 or idx.shape[1] < 1:
            raise ValueError(f"idx must be (B, T) with T >= 1, got {tuple(idx.shape)}")
        if max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
        check_sampling(temperature, top_k, self.config.vocab_size)
        was_training = self.training
        self.eval()
        block = self.config.block_size
        caches, fed = None, idx[:, -block:]  # fed: the tokens the next forward call reads
        done = torch.zeros(idx.shape[0], dtype=torch.bool, device=idx.device)
        for _ in range(max_new_tokens):
            if use_cache:
                if caches is None or len(caches[0]) + fed.shape[1] > block:
                    caches, fed = self.new_caches(), idx[:, -block:]  # (re)build from the context
                logits = self(fed, caches)[:, -1]  # (B, V)
            else:
                logits = self(idx[:, -block:])[:, -1]  # recompute the whole context
            next_token = sample_next(logits, temperature, top_k, generator)  # (B, 1)
            idx = torch.cat([idx, next_token], dim=1)
            fed = next_token
            if stop_token is not None:
                done |= next_token[:, 0] == stop_token
                if bool(done.all()):
                    break
        self.train(was_training)
        return idx


def check_sampling(temperature: float, top_k: int | None, vocab_size: int) -> None:
    """A ValueError for a temperature below 0 or a top-k outside ``1..vocab_size``."""
    if not temperature >= 0:  # a negative one would sample the inverted distribution
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if top_k is not None and not 1 <= top_k <= vocab_size:
        raise ValueError(f"top_k must be in 1..{vocab_size} (the vocabulary size), got {top_k}")


def keep_top_k(logits: torch.Tensor, top_k: int) -> torch.Tensor:
    """``logits (..., V)`` with all but the ``top_k`` largest of each row set to -inf."""
    kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]  # (..., 1) the k-th largest
    return logits.masked_fill(logits < kth, float("-inf"))


def sample_next(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pick one token per row of ``logits (B, V)``: argmax at temperature 0, else a sample."""
    check_sampling(temperature, top_k, logits.shape[-1])
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)  # (B, 1)
    logits = logits / temperature
    if top_k is not None:
        logits = keep_top_k(logits, top_k)
    probs = F.softmax(logits, dim=-1)  # (B, V)
    return torch.multinomial(probs, 1, generator=generator)  # (B, 1)
