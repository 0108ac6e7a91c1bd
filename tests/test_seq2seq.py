"""seq2seq: the RNN encoder, the bottleneck decoder and greedy decoding."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from course_utils.data import Vocab
from course_utils.seq2seq import (
    BottleneckDecoder,
    Encoder,
    Seq2Seq,
    build_bottleneck_model,
    check_source,
    translate,
)

VOCAB_SIZE, EMBED, HIDDEN = 11, 6, 8
BOS, EOS = 1, 2


def _encoder(cell="gru", bidirectional=False, num_layers=1, seed=0) -> Encoder:
    torch.manual_seed(seed)
    return Encoder(
        VOCAB_SIZE, EMBED, HIDDEN, cell=cell, num_layers=num_layers, bidirectional=bidirectional
    ).eval()


def _padded_batch():
    """Three sequences; positions past each length hold garbage ids, not just padding."""
    torch.manual_seed(1)
    src = torch.randint(4, VOCAB_SIZE, (3, 6))
    lengths = torch.tensor([6, 2, 4])
    return src, lengths


def _model(cell="gru", seed=0, max_src_len=None) -> Seq2Seq:
    torch.manual_seed(seed)
    return build_bottleneck_model(
        VOCAB_SIZE, VOCAB_SIZE, EMBED, HIDDEN, cell=cell, max_src_len=max_src_len
    ).eval()


def _states(state):
    return state if isinstance(state, tuple) else (state,)


ENCODER_KINDS = [
    pytest.param(
        cell, bidirectional, layers, id=f"{cell}-{'bi' if bidirectional else 'uni'}-{layers}"
    )
    for cell in ("gru", "lstm")
    for bidirectional in (False, True)
    for layers in (1, 2)
]


# ----------------------------------------------------------------------------- Encoder


@pytest.mark.parametrize(("cell", "bidirectional", "layers"), ENCODER_KINDS)
def test_encoder_output_and_state_shapes(cell, bidirectional, layers):
    encoder = _encoder(cell, bidirectional, layers)
    src, lengths = _padded_batch()
    outputs, state = encoder(src, lengths)
    directions = 2 if bidirectional else 1
    assert encoder.output_dim == HIDDEN * directions
    assert outputs.shape == (3, 6, HIDDEN * directions)
    assert isinstance(state, tuple) == (cell == "lstm")
    for s in _states(state):
        assert s.shape == (layers, 3, HIDDEN * directions)


@pytest.mark.parametrize(("cell", "bidirectional", "layers"), ENCODER_KINDS)
def test_encoder_outputs_at_padded_positions_are_zero(cell, bidirectional, layers):
    src, lengths = _padded_batch()
    with torch.no_grad():
        outputs, _ = _encoder(cell, bidirectional, layers)(src, lengths)
    for row, length in enumerate(lengths.tolist()):
        assert (outputs[row, length:] == 0).all()
        assert (outputs[row, :length].abs().sum(dim=-1) > 0).all()


@pytest.mark.parametrize(("cell", "bidirectional", "layers"), ENCODER_KINDS)
def test_padding_does_not_change_the_encoding(cell, bidirectional, layers):
    encoder = _encoder(cell, bidirectional, layers)
    src, lengths = _padded_batch()
    with torch.no_grad():
        outputs, state = encoder(src, lengths)
        for row, length in enumerate(lengths.tolist()):
            alone_outputs, alone_state = encoder(
                src[row : row + 1, :length], lengths[row : row + 1]
            )
            torch.testing.assert_close(outputs[row, :length], alone_outputs[0], atol=1e-6, rtol=0)
            for batched, single in zip(_states(state), _states(alone_state)):
                torch.testing.assert_close(batched[:, row], single[:, 0], atol=1e-6, rtol=0)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("layers", [1, 2])
def test_bidirectional_state_is_forward_last_token_and_backward_first_token(cell, layers):
    encoder = _encoder(cell, bidirectional=True, num_layers=layers)
    src, lengths = _padded_batch()
    with torch.no_grad():
        outputs, state = encoder(src, lengths)
    h = _states(state)[0][-1]  # last layer: (B, 2H)
    for row, length in enumerate(lengths.tolist()):
        torch.testing.assert_close(h[row, :HIDDEN], outputs[row, length - 1, :HIDDEN])
        torch.testing.assert_close(h[row, HIDDEN:], outputs[row, 0, HIDDEN:])


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_unidirectional_state_is_the_output_after_the_last_real_token(cell):
    src, lengths = _padded_batch()
    with torch.no_grad():
        outputs, state = _encoder(cell)(src, lengths)
    h = _states(state)[0][-1]
    for row, length in enumerate(lengths.tolist()):
        torch.testing.assert_close(h[row], outputs[row, length - 1])


def test_encoder_rejects_a_one_dimensional_source():
    with pytest.raises(ValueError, match=r"src \(B, S\) and lengths \(B,\), got \(5,\)"):
        _encoder()(torch.randint(4, 9, (5,)), torch.tensor([5]))


def test_encoder_rejects_lengths_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"got \(2, 5\) and \(3,\)"):
        _encoder()(torch.randint(4, 9, (2, 5)), torch.tensor([5, 4, 3]))


@pytest.mark.parametrize("bad", [[0, 3], [6, 3]])
def test_encoder_rejects_lengths_outside_the_source(bad):
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, 5\]"):
        _encoder()(torch.randint(4, 9, (2, 5)), torch.tensor(bad))


def test_seq2seq_refuses_ids_outside_the_vocabulary_before_the_embedding():
    # on a GPU an out-of-range index is a device-side assert that breaks every later call
    model = _model()
    src, lengths = _padded_batch()
    tgt_in = torch.zeros(3, 2, dtype=torch.long)
    src[1, 0] = VOCAB_SIZE
    with pytest.raises(ValueError, match=rf"src must be in \[0, {VOCAB_SIZE}\).*4 to {VOCAB_SIZE}"):
        model(src, lengths, tgt_in)
    with pytest.raises(ValueError, match=rf"src must be in \[0, {VOCAB_SIZE}\)"):
        model.greedy_decode(src, lengths, BOS, EOS, 3)
    src, lengths = _padded_batch()
    tgt_in[2, 1] = -1
    with pytest.raises(ValueError, match=rf"tgt_in must be in \[0, {VOCAB_SIZE}\).*-1 to 0"):
        model(src, lengths, tgt_in)


def test_seq2seq_refuses_float_ids_and_names_the_dtype():
    model = _model()
    src, lengths = _padded_batch()
    with pytest.raises(ValueError, match=r"src must be integer.*torch.float32"):
        model(src.float(), lengths, torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"tgt_in must be integer.*torch.float64"):
        model(src, lengths, torch.zeros(3, 2, dtype=torch.float64))


def test_unknown_cell_is_rejected():
    with pytest.raises(ValueError, match="cell must be one of"):
        Encoder(VOCAB_SIZE, cell="rnn")
    with pytest.raises(ValueError, match="cell must be one of"):
        BottleneckDecoder(VOCAB_SIZE, cell="transformer")


# ----------------------------------------------------------------------------- decoder


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_decoder_step_equals_forward_on_one_token(cell):
    torch.manual_seed(0)
    decoder = BottleneckDecoder(VOCAB_SIZE, EMBED, HIDDEN, cell=cell).eval()
    token = torch.tensor([1, 5, 7])
    h = torch.randn(1, 3, HIDDEN)
    state = (h, torch.randn(1, 3, HIDDEN)) if cell == "lstm" else h
    with torch.no_grad():
        step_logits, step_state, step_weights = decoder.step(token, state)
        logits, fwd_state, weights = decoder(token[:, None], state)
    assert step_logits.shape == (3, VOCAB_SIZE)
    torch.testing.assert_close(step_logits, logits[:, 0])
    for a, b in zip(_states(step_state), _states(fwd_state)):
        torch.testing.assert_close(a, b)
    assert step_weights is None and weights is None


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_teacher_forced_logits_equal_step_by_step_decoding(cell):
    model = _model(cell)
    src, lengths = _padded_batch()
    torch.manual_seed(2)
    tgt_in = torch.cat([torch.full((3, 1), BOS), torch.randint(4, VOCAB_SIZE, (3, 4))], dim=1)
    with torch.no_grad():
        logits = model(src, lengths, tgt_in)
        _, state = model.encoder(src, lengths)
        stepped = []
        for t in range(tgt_in.shape[1]):
            step_logits, state, _ = model.decoder.step(tgt_in[:, t], state)
            stepped.append(step_logits)
    assert logits.shape == (3, 5, VOCAB_SIZE)
    torch.testing.assert_close(logits, torch.stack(stepped, dim=1), atol=1e-6, rtol=1e-5)


def test_bottleneck_decoder_depends_on_its_initial_state():
    """Guards the next test: the decoder is not simply ignoring every input."""
    torch.manual_seed(0)
    decoder = BottleneckDecoder(VOCAB_SIZE, EMBED, HIDDEN).eval()
    tgt_in = torch.tensor([[BOS, 5, 6]])
    with torch.no_grad():
        a, _, _ = decoder(tgt_in, torch.randn(1, 1, HIDDEN))
        b, _, _ = decoder(tgt_in, torch.randn(1, 1, HIDDEN))
    assert not torch.allclose(a, b)


def test_bottleneck_decoder_ignores_encoder_outputs_given_the_final_state():
    torch.manual_seed(0)
    decoder = BottleneckDecoder(VOCAB_SIZE, EMBED, HIDDEN).eval()
    tgt_in = torch.tensor([[BOS, 5, 6], [BOS, 7, 7]])
    state = torch.randn(1, 2, HIDDEN)
    mask = torch.ones(2, 4, dtype=torch.bool)
    with torch.no_grad():
        a, _, _ = decoder(tgt_in, state, torch.randn(2, 4, HIDDEN), mask)
        b, _, _ = decoder(tgt_in, state, torch.randn(2, 4, HIDDEN), mask)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


class _PerturbedEncoder(nn.Module):
    """The real encoder, with every output except the one at the last real token replaced."""

    def __init__(self, encoder: Encoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, src, lengths):
        outputs, state = self.encoder(src, lengths)
        noise = torch.randn_like(outputs) * 10
        last = F.one_hot(lengths - 1, src.shape[1]).bool()[..., None]  # (B, S, 1)
        return torch.where(last, outputs, noise), state


def test_bottleneck_model_sees_the_source_only_through_the_context_vector():
    model = _model()
    perturbed = Seq2Seq(_PerturbedEncoder(model.encoder), model.decoder).eval()
    src, lengths = _padded_batch()
    tgt_in = torch.tensor([[BOS, 5, 6]] * 3)
    with torch.no_grad():
        torch.testing.assert_close(model(src, lengths, tgt_in), perturbed(src, lengths, tgt_in))
        a = model.greedy_decode(src, lengths, BOS, EOS, max_len=5).tokens
        b = perturbed.greedy_decode(src, lengths, BOS, EOS, max_len=5).tokens
    assert torch.equal(a, b)


# ----------------------------------------------------------------------------- greedy decoding


class _ScriptedDecoder(nn.Module):
    """Emits ``script[:, t]`` at step t, and records the tokens it was fed."""

    def __init__(self, script: torch.Tensor, vocab_size: int = VOCAB_SIZE):
        super().__init__()
        self.script, self.vocab_size, self.fed = script, vocab_size, []

    def step(self, token, state, encoder_outputs=None, src_mask=None, position=None):
        t = len(self.fed)
        self.fed.append(token.clone())
        return F.one_hot(self.script[:, t], self.vocab_size).float() * 5, state, None


def test_greedy_decode_stops_at_eos_and_pads_with_eos_after_it():
    script = torch.tensor(
        [
            [5, EOS, 6, 7, 8, 9],  # finishes at step 2: later tokens must become eos
            [5, 6, 7, EOS, 8, 9],  # finishes at step 4: decoding stops there
        ]
    )
    model = Seq2Seq(_encoder(), _ScriptedDecoder(script)).eval()
    src, lengths = _padded_batch()
    decoded = model.greedy_decode(src[:2], lengths[:2], BOS, EOS, max_len=10)
    assert decoded.tokens.tolist() == [[5, EOS, EOS, EOS], [5, 6, 7, EOS]]
    assert decoded.attention is None
    assert len(model.decoder.fed) == 4


def test_greedy_decode_starts_from_bos_and_feeds_back_its_own_tokens():
    script = torch.tensor([[5, 6, 7], [8, 9, 10]])
    model = Seq2Seq(_encoder(), _ScriptedDecoder(script)).eval()
    src, lengths = _padded_batch()
    decoded = model.greedy_decode(src[:2], lengths[:2], BOS, EOS, max_len=3)
    fed = torch.stack(model.decoder.fed, dim=1)
    assert fed[:, 0].tolist() == [BOS, BOS]
    assert torch.equal(fed[:, 1:], decoded.tokens[:, :-1])


def _forced_model(token_id: int) -> Seq2Seq:
    """A model whose decoder always predicts ``token_id``."""
    model = _model()
    with torch.no_grad():
        model.decoder.out.weight.zero_()
        model.decoder.out.bias.zero_()
        model.decoder.out.bias[token_id] = 100.0
    return model


def test_greedy_decode_stops_immediately_when_eos_comes_first():
    src, lengths = _padded_batch()
    decoded = _forced_model(EOS).greedy_decode(src, lengths, BOS, EOS, max_len=8)
    assert decoded.tokens.tolist() == [[EOS]] * 3


@pytest.mark.parametrize("max_len", [1, 3, 7])
def test_greedy_decode_respects_max_len(max_len):
    src, lengths = _padded_batch()
    decoded = _forced_model(5).greedy_decode(src, lengths, BOS, EOS, max_len=max_len)
    assert decoded.tokens.shape == (3, max_len)
    assert (decoded.tokens == 5).all()


@pytest.mark.parametrize("max_len", [0, -1])
def test_greedy_decode_rejects_max_len_below_one(max_len):
    src, lengths = _padded_batch()
    with pytest.raises(ValueError, match="max_len must be at least 1"):
        _model().greedy_decode(src, lengths, BOS, EOS, max_len=max_len)


def test_greedy_tokens_are_the_argmax_of_teacher_forcing_on_them():
    model = _model(seed=3)
    with torch.no_grad():
        model.decoder.out.bias[EOS] = -1e4  # never stop early
    src, lengths = _padded_batch()
    tokens = model.greedy_decode(src, lengths, BOS, EOS, max_len=6).tokens
    tgt_in = torch.cat([torch.full((3, 1), BOS), tokens[:, :-1]], dim=1)
    with torch.no_grad():
        logits = model(src, lengths, tgt_in)
    assert torch.equal(logits.argmax(dim=-1), tokens)


# ----------------------------------------------------------------------------- translate


@pytest.fixture
def vocab():
    return Vocab("abcdefg")


def _vocab_model(vocab, max_src_len=None, seed=0) -> Seq2Seq:
    torch.manual_seed(seed)
    return build_bottleneck_model(len(vocab), len(vocab), EMBED, HIDDEN, max_src_len=max_src_len)


def test_build_bottleneck_model_wires_an_encoder_and_a_bottleneck_decoder():
    model = build_bottleneck_model(9, 12, EMBED, HIDDEN, cell="lstm", max_src_len=20)
    assert isinstance(model.encoder, Encoder) and isinstance(model.decoder, BottleneckDecoder)
    assert isinstance(model.encoder.rnn, nn.LSTM) and isinstance(model.decoder.rnn, nn.LSTM)
    assert model.encoder.embedding.num_embeddings == 9
    assert model.decoder.out.out_features == 12
    assert model.max_src_len == 20


def test_translate_returns_a_string_of_known_symbols_and_no_attention(vocab):
    model = _vocab_model(vocab).eval()
    output, attention = translate(model, "abc", vocab, vocab)
    assert isinstance(output, str)
    assert set(output) <= set("abcdefg")
    assert len(output) <= len("abc") + 10
    assert attention is None
    assert translate(model, "abc", vocab, vocab) == (output, None)


def test_translate_output_matches_greedy_decode(vocab):
    model = _vocab_model(vocab, seed=4).eval()
    ids = vocab.encode("gfedcba")
    tokens = model.greedy_decode(torch.tensor([ids]), torch.tensor([7]), 1, 2, 17).tokens[0]
    assert translate(model, "gfedcba", vocab, vocab)[0] == vocab.to_text(tokens)


def test_translate_respects_max_len(vocab):
    model = _vocab_model(vocab)
    with torch.no_grad():
        model.decoder.out.weight.zero_()
        model.decoder.out.bias.zero_()
        model.decoder.out.bias[vocab.stoi["a"]] = 100.0
    assert translate(model, "abc", vocab, vocab, max_len=4)[0] == "aaaa"
    assert translate(model, "abc", vocab, vocab)[0] == "a" * 13


def test_translate_rejects_max_len_zero(vocab):
    with pytest.raises(ValueError, match="max_len"):
        translate(_vocab_model(vocab), "abc", vocab, vocab, max_len=0)


@pytest.mark.parametrize("training", [True, False])
def test_translate_restores_train_or_eval_mode(vocab, training):
    model = _vocab_model(vocab)
    model.train(training)
    translate(model, "abc", vocab, vocab)
    assert model.training is training
    assert all(m.training is training for m in model.modules())


def test_check_source_returns_the_ids(vocab):
    assert check_source("bad", vocab) == vocab.encode("bad")


def test_check_source_rejects_empty_input(vocab):
    with pytest.raises(ValueError, match="the input is empty"):
        check_source("", vocab)


def test_check_source_rejects_too_long_input_and_names_the_limit(vocab):
    with pytest.raises(ValueError, match="has 6 symbols but this model accepts at most 5"):
        check_source("abcdef", vocab, max_src_len=5)
    assert len(check_source("abcde", vocab, max_src_len=5)) == 5


def test_check_source_rejects_unknown_symbols_and_names_them(vocab):
    with pytest.raises(ValueError, match=r"\['x', 'Z'\] are not in the vocabulary"):
        check_source("abxZ", vocab)


def test_check_source_rejects_a_non_string(vocab):
    with pytest.raises(ValueError, match="expected a string, got list"):
        check_source(["a", "b"], vocab)


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "empty"), ("abcdefgab", "accepts at most 8"), ("ab?", "not in the vocabulary")],
)
def test_translate_rejects_bad_input_with_a_clear_error(vocab, text, message):
    model = _vocab_model(vocab, max_src_len=8)
    with pytest.raises(ValueError, match=message):
        translate(model, text, vocab, vocab)
