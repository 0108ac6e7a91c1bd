"""The encoder-decoder Transformer (Vaswani et al. 2017), with the same interface as the RNN
``Seq2Seq`` of lessons 01-03, so ``fit``, ``seq2seq_loss``, ``predict``, ``evaluate`` and
``translate`` work on it unchanged. Decoding is greedy (with a KV cache) or by beam search.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..attention import KVCache, causal_mask, padding_mask, record_attention
from ..seq2seq import Decoded
from ..token_ids import check_token_ids
from .layers import DecoderLayer, EncoderLayer
from .positions import PositionalEncoding


class Transformer(nn.Module):
    """Token embeddings ×√d_model + sinusoidal positions, encoder and decoder stacks, a head.

    ``forward(src (B, S), src_lengths (B,), tgt_in (B, T)) -> logits (B, T, tgt_vocab_size)``.
    Attention maps: ``with record_attention(model) as maps``, then ``maps.layers(kind)`` for
    ``kind`` in ``"self"`` (encoder and decoder self-attention: ``maps["encoder.0.self"]``,
    ``maps["decoder.0.self"]``) and ``"cross"`` (decoder × source), ``(B, H, ., .)`` each.
    """

    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        d_model: int = 64,
        num_heads: int = 4,
        num_encoder_layers: int = 2,
        num_decoder_layers: int = 2,
        dim_feedforward: int | None = None,
        dropout: float = 0.0,
        max_len: int = 64,
        norm_first: bool = False,
    ):
        super().__init__()
        self.d_model, self.max_src_len, self.max_len = d_model, max_len, max_len
        self.src_embedding = nn.Embedding(src_vocab_size, d_model)
        self.tgt_embedding = nn.Embedding(tgt_vocab_size, d_model)
        self.positions = PositionalEncoding(d_model, max_len, "sinusoidal", dropout)
        layer_args = (d_model, num_heads, dim_feedforward, dropout, norm_first)
        self.encoder = nn.ModuleList(EncoderLayer(*layer_args) for _ in range(num_encoder_layers))
        self.decoder = nn.ModuleList(DecoderLayer(*layer_args) for _ in range(num_decoder_layers))
        # pre-norm stacks end un-normalised: a final LayerNorm each (as nn.Transformer has)
        self.encoder_norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()
        self.decoder_norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()
        self.head = nn.Linear(d_model, tgt_vocab_size)
        for embedding in (self.src_embedding, self.tgt_embedding):
            # std d^-0.5, so that after the ×√d scaling tokens and positions have similar size
            nn.init.normal_(embedding.weight, std=d_model**-0.5)

    def _embed(
        self, embedding: nn.Embedding, tokens: torch.Tensor, offset: int = 0, name: str = "tokens"
    ):
        check_token_ids(tokens, embedding.num_embeddings, name)
        return self.positions(embedding(tokens) * math.sqrt(self.d_model), offset=offset)

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor):
        """``memory (B, S, d_model)`` and the source padding mask ``(B, S)``."""
        if src.dim() != 2 or src_lengths.shape != src.shape[:1]:
            raise ValueError(
                f"expects src (B, S) and src_lengths (B,), got {tuple(src.shape)} and "
                f"{tuple(src_lengths.shape)}"
            )
        src_mask = padding_mask(src_lengths, src.shape[1])  # (B, S)
        x = self._embed(self.src_embedding, src, name="src")
        for layer in self.encoder:
            x = layer(x, src_key_padding_mask=src_mask)  # (B, S, d_model)
        return self.encoder_norm(x), src_mask

    def decode(self, tgt_in, memory, src_mask, caches: list[KVCache] | None = None):
        """Logits ``(B, T, V)`` for ``tgt_in (B, T)``; with caches, ``tgt_in`` holds new tokens."""
        offset = 0 if caches is None else len(caches[0])
        length = tgt_in.shape[1]
        tgt_mask = causal_mask(length, device=tgt_in.device, offset=offset)  # (T, offset + T)
        x = self._embed(self.tgt_embedding, tgt_in, offset, name="tgt_in")
        for i, layer in enumerate(self.decoder):
            cache = None if caches is None else caches[i]
            x = layer(x, memory, tgt_mask, memory_key_padding_mask=src_mask, cache=cache)
        return self.head(self.decoder_norm(x))

    def forward(self, src, src_lengths, tgt_in):
        memory, src_mask = self.encode(src, src_lengths)
        return self.decode(tgt_in, memory, src_mask)

    @torch.no_grad()
    def greedy_decode(self, src, src_lengths, bos_id: int, eos_id: int, max_len: int) -> Decoded:
        """Take the most likely token at each step (the decoder's keys/values are cached).

        ``attention`` is the last layer's cross-attention averaged over heads ``(B, L, S)``.
        At most ``self.max_len`` tokens are produced: the model has no positions beyond it.
        """
        if max_len < 1:
            raise ValueError(f"max_len must be at least 1, got {max_len}")
        max_len = min(max_len, self.max_len)
        memory, src_mask = self.encode(src, src_lengths)
        caches = [KVCache() for _ in self.decoder]
        token = torch.full((src.shape[0], 1), bos_id, dtype=torch.long, device=src.device)
        finished = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
        tokens = []
        with record_attention(self.decoder[-1].cross_attn) as maps:
            for _ in range(max_len):
                logits = self.decode(token, memory, src_mask, caches)[:, -1]  # (B, V)
                token = logits.argmax(dim=-1, keepdim=True)  # (B, 1)
                token = token.masked_fill(finished[:, None], eos_id)
                tokens.append(token)
                finished |= token[:, 0] == eos_id
                if bool(finished.all()):
                    break
        cross = maps["attention"].mean(dim=1)  # (B, L, S): the last layer, mean of the heads
        return Decoded(torch.cat(tokens, dim=1), cross)

    @torch.no_grad()
    def beam_search(
        self,
        src: torch.Tensor,
        src_lengths: torch.Tensor,
        bos_id: int,
        eos_id: int,
        max_len: int,
        beam_size: int = 4,
    ) -> list[tuple[list[int], float]]:
        """Keep the ``beam_size`` most likely partial outputs at every step, for each source.

        Returns one ``(tokens, log_prob)`` per source: the finished output (ending in
        ``eos_id``, or cut at ``max_len``) with the highest total log-probability.
        ``beam_size=1`` is greedy decoding.
        """
        if beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {beam_size}")
        if max_len < 1:
            raise ValueError(f"max_len must be at least 1, got {max_len}")
        max_len = min(max_len, self.max_len)
        results = []
        for b in range(src.shape[0]):
            memory, src_mask = self.encode(src[b : b + 1], src_lengths[b : b + 1])
            results.append(self._beam_one(memory, src_mask, bos_id, eos_id, max_len, beam_size))
        return results

    def _beam_one(self, memory, src_mask, bos_id, eos_id, max_len, beam_size):
        device = memory.device
        beams = torch.full((1, 1), bos_id, dtype=torch.long, device=device)  # (K, t)
        scores = torch.zeros(1, device=device)  # (K,) total log-probabilities
        finished: list[tuple[list[int], float]] = []
        for _ in range(max_len):
            k = beams.shape[0]
            logits = self.decode(beams, memory.expand(k, -1, -1), src_mask.expand(k, -1))
            log_probs = F.log_softmax(logits[:, -1], dim=-1)  # (K, V)
            candidates = (scores[:, None] + log_probs).flatten()  # (K·V,)
            top = candidates.topk(min(beam_size, candidates.numel()))
            vocab = log_probs.shape[1]
            rows, next_tokens = top.indices // vocab, top.indices % vocab
            beams = torch.cat([beams[rows], next_tokens[:, None]], dim=1)
            scores = top.values
            done = next_tokens == eos_id
            finished += [
                (beam[1:].tolist(), float(s)) for beam, s in zip(beams[done], scores[done])
            ]
            beams, scores = beams[~done], scores[~done]
            best_finished = max((s for _, s in finished), default=-math.inf)
            # log-probabilities only fall: no open beam can beat the best finished one
            if beams.shape[0] == 0 or float(scores.max()) <= best_finished:
                break
        finished += [(beam[1:].tolist(), float(s)) for beam, s in zip(beams, scores)]
        return max(finished, key=lambda pair: pair[1])


def warmup_schedule(d_model: int, warmup_steps: int):
    """The paper's learning-rate factor: d_model^-0.5 · min(step^-0.5, step · warmup^-1.5).

    It rises linearly for ``warmup_steps`` steps, then decays as 1/√step. Use it as
    ``torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_schedule(d, w))`` with a base lr of
    about 1 (the factor already holds the scale). Step 0 is treated as step 1.
    """
    if d_model < 1 or warmup_steps < 1:
        raise ValueError(f"d_model and warmup_steps must be >= 1, got {d_model}, {warmup_steps}")

    def factor(step: int) -> float:
        step = max(step, 1)
        return d_model**-0.5 * min(step**-0.5, step * warmup_steps**-1.5)

    return factor
