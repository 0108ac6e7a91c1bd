"""RNN encoder-decoder models (Sutskever et al. 2014; Cho et al. 2014) and greedy decoding.

The bottleneck decoder sees the source only through the encoder's final state: one fixed-size
vector, however long the input. Lesson 02 adds a decoder that attends over every encoder state;
both decoders share the ``forward`` / ``step`` interface, so ``Seq2Seq`` and decoding work
with either.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .attention import LUONG_SCORES, AdditiveAttention, LuongAttention
from .data import Vocab
from .token_ids import check_token_ids
from .training import evaluating

_CELLS = {"gru": nn.GRU, "lstm": nn.LSTM}


def _make_rnn(cell: str, input_dim: int, hidden_dim: int, num_layers: int, **kwargs) -> nn.RNNBase:
    if cell not in _CELLS:
        raise ValueError(f"cell must be one of {sorted(_CELLS)}, got {cell!r}")
    return _CELLS[cell](input_dim, hidden_dim, num_layers=num_layers, batch_first=True, **kwargs)


class Encoder(nn.Module):
    """Embeds the source and runs a GRU/LSTM over it, ignoring padding.

    ``forward(src (B, S), lengths (B,)) -> outputs (B, S, hidden_dim * directions), state``.
    ``state`` is what a decoder starts from: ``(num_layers, B, hidden_dim * directions)`` (a
    tuple ``(h, c)`` for an LSTM); with two directions, the final states are concatenated.
    Padding is packed away, so outputs at padded positions are zero and the final state is
    the one after each sequence's last real token.
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 32,
        hidden_dim: int = 128,
        cell: str = "gru",
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        pad_id: int = 0,
    ):
        super().__init__()
        self.cell, self.num_layers, self.bidirectional = cell, num_layers, bidirectional
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.rnn = _make_rnn(
            cell,
            embed_dim,
            hidden_dim,
            num_layers,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.output_dim = hidden_dim * (2 if bidirectional else 1)

    def _merge_directions(self, h: torch.Tensor) -> torch.Tensor:
        if not self.bidirectional:
            return h  # (layers, B, H)
        h = h.view(self.num_layers, 2, h.shape[1], -1)  # (layers, directions, B, H)
        return torch.cat([h[:, 0], h[:, 1]], dim=-1)  # (layers, B, 2H)

    def forward(self, src: torch.Tensor, lengths: torch.Tensor):
        if src.dim() != 2 or lengths.shape != src.shape[:1]:
            raise ValueError(
                f"Encoder expects src (B, S) and lengths (B,), got {tuple(src.shape)} "
                f"and {tuple(lengths.shape)}"
            )
        if int(lengths.min()) < 1 or int(lengths.max()) > src.shape[1]:
            raise ValueError(
                f"lengths must lie in [1, {src.shape[1]}] for src {tuple(src.shape)}, "
                f"got min {int(lengths.min())}, max {int(lengths.max())}"
            )
        check_token_ids(src, self.embedding.num_embeddings, "src")
        embedded = self.embedding(src)  # (B, S, E)
        packed = pack_padded_sequence(
            embedded, lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        packed_out, state = self.rnn(packed)
        outputs, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=src.shape[1])
        if isinstance(state, tuple):  # LSTM: (h, c)
            state = tuple(self._merge_directions(s) for s in state)
        else:
            state = self._merge_directions(state)
        return outputs, state  # (B, S, output_dim), (layers, B, output_dim)


class BottleneckDecoder(nn.Module):
    """A decoder that sees the source only through its initial state (the context vector).

    ``forward(tgt_in (B, T), state, encoder_outputs=None, src_mask=None)
    -> logits (B, T, V), state, None``; ``step`` does one token ``(B,)`` at a time. The last
    value is the attention weights, always ``None`` here: there is nothing to attend to.
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 32,
        hidden_dim: int = 128,
        cell: str = "gru",
        num_layers: int = 1,
        dropout: float = 0.0,
        pad_id: int = 0,
    ):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.rnn = _make_rnn(
            cell, embed_dim, hidden_dim, num_layers, dropout=dropout if num_layers > 1 else 0.0
        )
        self.out = nn.Linear(hidden_dim, vocab_size)

    def init_state(self, encoder_state):
        """The decoder starts from the encoder's final state as it is: the context vector."""
        return encoder_state

    def forward(self, tgt_in, state, encoder_outputs=None, src_mask=None):
        check_token_ids(tgt_in, self.embedding.num_embeddings, "tgt_in")
        outputs, state = self.rnn(self.embedding(tgt_in), state)  # (B, T, H)
        return self.out(outputs), state, None  # (B, T, V)

    def step(self, token, state, encoder_outputs=None, src_mask=None, position=None):
        logits, state, weights = self.forward(token[:, None], state, encoder_outputs, src_mask)
        return logits[:, 0], state, weights  # (B, V)


def make_attention(kind: str, query_dim: int, key_dim: int, hidden_dim: int) -> nn.Module:
    """``"additive"`` (Bahdanau) or a Luong score ``"dot"``, ``"general"``, ``"concat"``."""
    if kind == "additive":
        return AdditiveAttention(query_dim, key_dim, hidden_dim)
    if kind in LUONG_SCORES:
        return LuongAttention(query_dim, key_dim, score=kind, hidden_dim=hidden_dim)
    raise ValueError(f"attention must be 'additive' or one of {LUONG_SCORES}, got {kind!r}")


class AttentionDecoder(nn.Module):
    """A decoder that attends over every encoder state at every step.

    ``feed_context=True`` is Bahdanau et al.'s decoder: the previous state s_{t-1} is the
    query, and the context c_t joins the input of the RNN, so steps run one after another.
    ``feed_context=False`` is Luong et al.'s global attention without input feeding: the RNN
    runs over the whole target first, then each new state s_t queries the encoder, so a
    teacher-forced batch needs no Python loop. Either way the output layer sees [s_t; c_t].

    ``attention`` is ``"additive"``, ``"dot"``, ``"general"``, ``"concat"`` or a module with
    the ``forward(query, keys, values, mask) -> (context, weights)`` interface.
    ``forward`` returns logits ``(B, T, V)``, the state and the weights ``(B, T, S)``;
    ``step`` returns logits ``(B, V)``, the state and the weights ``(B, S)``.
    """

    def __init__(
        self,
        vocab_size: int,
        encoder_dim: int,
        embed_dim: int = 32,
        hidden_dim: int = 128,
        attention: str | nn.Module = "additive",
        attention_dim: int | None = None,
        cell: str = "gru",
        feed_context: bool = True,
        pad_id: int = 0,
    ):
        super().__init__()
        self.feed_context, self.cell = feed_context, cell
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.bridge = nn.Linear(encoder_dim, hidden_dim)  # encoder final state -> s_0
        rnn_input = embed_dim + (encoder_dim if feed_context else 0)
        self.rnn = _make_rnn(cell, rnn_input, hidden_dim, 1)
        self.attention = (
            make_attention(attention, hidden_dim, encoder_dim, attention_dim or hidden_dim)
            if isinstance(attention, str)
            else attention
        )
        self.out = nn.Linear(hidden_dim + encoder_dim, vocab_size)
        # attentions that want the output step's index (local attention) declare `positions`
        self._takes_positions = "positions" in inspect.signature(self.attention.forward).parameters

    def init_state(self, encoder_state):
        """s_0 = tanh(W h_final): map the encoder's last layer to the decoder's size."""
        if isinstance(encoder_state, tuple):
            return tuple(torch.tanh(self.bridge(s[-1:])) for s in encoder_state)
        return torch.tanh(self.bridge(encoder_state[-1:]))  # (1, B, H)

    @staticmethod
    def _top(state):
        return (state[0] if isinstance(state, tuple) else state)[-1]  # (B, H)

    def _attend(self, query, encoder_outputs, src_mask, position=None):
        if position is not None and self._takes_positions:  # e.g. local-m: p_t = t
            return self.attention(
                query, encoder_outputs, encoder_outputs, src_mask, positions=position
            )
        return self.attention(query, encoder_outputs, encoder_outputs, src_mask)

    def step(self, token, state, encoder_outputs, src_mask=None, position=None):
        """One output step; ``position`` is the step's index t (local attention centres on it)."""
        check_token_ids(token, self.embedding.num_embeddings, "tgt_in")
        embedded = self.embedding(token)  # (B, E)
        if self.feed_context:
            context, weights = self._attend(self._top(state), encoder_outputs, src_mask, position)
            output, state = self.rnn(torch.cat([embedded, context], -1)[:, None], state)
        else:
            output, state = self.rnn(embedded[:, None], state)  # (B, 1, H)
            context, weights = self._attend(output[:, 0], encoder_outputs, src_mask, position)
        logits = self.out(torch.cat([output[:, 0], context], dim=-1))  # (B, V)
        return logits, state, weights  # (B, V), state, (B, S)

    def forward(self, tgt_in, state, encoder_outputs, src_mask=None):
        if self.feed_context:  # each step needs the previous state: loop over time
            logits, weights = [], []
            for t in range(tgt_in.shape[1]):
                step_logits, state, step_weights = self.step(
                    tgt_in[:, t], state, encoder_outputs, src_mask, position=t
                )
                logits.append(step_logits)
                weights.append(step_weights)
            return torch.stack(logits, 1), state, torch.stack(weights, 1)
        check_token_ids(tgt_in, self.embedding.num_embeddings, "tgt_in")
        outputs, state = self.rnn(self.embedding(tgt_in), state)  # (B, T, H)
        context, weights = self.attention(outputs, encoder_outputs, encoder_outputs, src_mask)
        return self.out(torch.cat([outputs, context], dim=-1)), state, weights  # (B, T, V)


@dataclass
class Decoded:
    """Greedy decoding output: token ids ``(B, L)`` (padded after ``<eos>``), and the
    attention weights ``(B, L, S)`` when the decoder attends, else ``None``."""

    tokens: torch.Tensor
    attention: torch.Tensor | None


class Seq2Seq(nn.Module):
    """Encoder + decoder. ``forward`` is teacher-forced; ``greedy_decode`` feeds back argmaxes.

    ``max_src_len`` is the longest source the model accepts (``None``: no limit); ``translate``
    refuses longer inputs with a clear error.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, max_src_len: int | None = None):
        super().__init__()
        self.encoder, self.decoder, self.max_src_len = encoder, decoder, max_src_len

    def _init_decoder_state(self, encoder_state):
        init = getattr(self.decoder, "init_state", None)  # decoders without one start as-is
        return encoder_state if init is None else init(encoder_state)

    def forward(self, src, src_lengths, tgt_in):
        """Teacher-forced logits ``(B, T, V)`` for targets ``tgt_in (B, T)``."""
        encoder_outputs, state = self.encoder(src, src_lengths)
        src_mask = torch.arange(src.shape[1], device=src.device)[None] < src_lengths[:, None]
        state = self._init_decoder_state(state)
        logits, _, _ = self.decoder(tgt_in, state, encoder_outputs, src_mask)
        return logits  # the attention: with record_attention(model) as maps

    @torch.no_grad()
    def greedy_decode(self, src, src_lengths, bos_id: int, eos_id: int, max_len: int) -> Decoded:
        """Decode by always taking the most likely next token, for at most ``max_len`` tokens.

        Stops early once every sequence has produced ``<eos>``; tokens after a sequence's
        ``<eos>`` are set to ``<eos>`` too (``Vocab.decode`` stops at the first).
        """
        if max_len < 1:
            raise ValueError(f"max_len must be at least 1, got {max_len}")
        encoder_outputs, state = self.encoder(src, src_lengths)
        src_mask = torch.arange(src.shape[1], device=src.device)[None] < src_lengths[:, None]
        state = self._init_decoder_state(state)
        token = torch.full((src.shape[0],), bos_id, dtype=torch.long, device=src.device)
        finished = torch.zeros_like(token, dtype=torch.bool)
        tokens, weights = [], []
        for t in range(max_len):
            logits, state, step_weights = self.decoder.step(
                token, state, encoder_outputs, src_mask, position=t
            )
            token = logits.argmax(dim=-1)  # (B,)
            token = torch.where(finished, torch.full_like(token, eos_id), token)
            tokens.append(token)
            if step_weights is not None:
                weights.append(step_weights)
            finished |= token == eos_id
            if bool(finished.all()):
                break
        attention = torch.stack(weights, dim=1) if weights else None  # (B, L, S)
        return Decoded(torch.stack(tokens, dim=1), attention)


def build_bottleneck_model(
    src_vocab_size: int,
    tgt_vocab_size: int,
    embed_dim: int = 32,
    hidden_dim: int = 128,
    cell: str = "gru",
    max_src_len: int | None = None,
) -> Seq2Seq:
    """The lesson-01 model: a one-layer RNN encoder and a decoder fed only its final state."""
    return Seq2Seq(
        Encoder(src_vocab_size, embed_dim, hidden_dim, cell=cell),
        BottleneckDecoder(tgt_vocab_size, embed_dim, hidden_dim, cell=cell),
        max_src_len=max_src_len,
    )


def build_attention_model(
    src_vocab_size: int,
    tgt_vocab_size: int,
    embed_dim: int = 32,
    hidden_dim: int = 128,
    attention: str | nn.Module = "additive",
    attention_dim: int | None = None,
    bidirectional: bool = True,
    feed_context: bool = True,
    cell: str = "gru",
    max_src_len: int | None = None,
) -> Seq2Seq:
    """The lesson-02 model: a (bidirectional) RNN encoder and an attention decoder."""
    encoder = Encoder(src_vocab_size, embed_dim, hidden_dim, cell=cell, bidirectional=bidirectional)
    decoder = AttentionDecoder(
        tgt_vocab_size,
        encoder.output_dim,
        embed_dim,
        hidden_dim,
        attention=attention,
        attention_dim=attention_dim,
        cell=cell,
        feed_context=feed_context,
    )
    return Seq2Seq(encoder, decoder, max_src_len=max_src_len)


def check_source(text: str, vocab: Vocab, max_src_len: int | None = None) -> list[int]:
    """Ids of a learner's input, or a ValueError that says what is wrong with it."""
    if not isinstance(text, str):
        raise ValueError(f"expected a string, got {type(text).__name__}")
    if len(text) == 0:
        raise ValueError("the input is empty: type at least one symbol")
    if max_src_len is not None and len(text) > max_src_len:
        raise ValueError(
            f"the input has {len(text)} symbols but this model accepts at most {max_src_len}"
        )
    return vocab.encode(text, strict=True)


def decode_text(
    model: Seq2Seq, text: str, src_vocab: Vocab, tgt_vocab: Vocab, max_len: int | None = None
) -> Decoded:
    """Greedy decoding of one source string (checked by ``check_source``), in eval mode.

    ``max_len`` defaults to the source length + 10 output tokens; the model's train/eval
    mode is restored afterwards, even on an error.
    """
    ids = check_source(text, src_vocab, getattr(model, "max_src_len", None))
    device = next(model.parameters()).device
    with evaluating(model):
        return model.greedy_decode(
            torch.tensor([ids], device=device),
            torch.tensor([len(ids)], device=device),
            tgt_vocab.bos_id,
            tgt_vocab.eos_id,
            max_len if max_len is not None else len(ids) + 10,
        )


def translate(
    model: Seq2Seq,
    text: str,
    src_vocab: Vocab,
    tgt_vocab: Vocab,
    max_len: int | None = None,
) -> tuple[str, torch.Tensor | None]:
    """Greedy output string for one source string, and its attention ``(L, S)`` if any."""
    decoded = decode_text(model, text, src_vocab, tgt_vocab, max_len)
    attention = None if decoded.attention is None else decoded.attention[0].cpu()
    return tgt_vocab.to_text(decoded.tokens[0].tolist()), attention
