"""seq2seq with attention: the attention decoder, build_attention_model and decoding with it."""

from __future__ import annotations

import pytest
import torch

from course_utils.attention import (
    AdditiveAttention,
    LocalAttention,
    LuongAttention,
    record_attention,
)
from course_utils.data import Vocab, make_loader, make_sequence_task, split_dataset
from course_utils.seq2seq import (
    AttentionDecoder,
    BottleneckDecoder,
    Seq2Seq,
    build_attention_model,
    build_bottleneck_model,
    translate,
)
from course_utils.training import evaluate, fit

VOCAB_SIZE, EMBED, HIDDEN = 11, 6, 8
BOS, EOS = 1, 2
T = 4  # target steps


def _model(attention="additive", cell="gru", bidirectional=True, feed_context=True, seed=0):
    torch.manual_seed(seed)
    return build_attention_model(
        VOCAB_SIZE,
        VOCAB_SIZE,
        EMBED,
        HIDDEN,
        attention=attention,
        bidirectional=bidirectional,
        feed_context=feed_context,
        cell=cell,
    ).eval()


def _batch(seed=1):
    """Three sources of lengths 6, 2, 4; positions past each length hold garbage ids."""
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, VOCAB_SIZE, (3, 6), generator=g)
    lengths = torch.tensor([6, 2, 4])
    tgt_in = torch.randint(3, VOCAB_SIZE, (3, T), generator=g)
    tgt_in[:, 0] = BOS
    return src, lengths, tgt_in


def _src_mask(src, lengths):
    return torch.arange(src.shape[1])[None] < lengths[:, None]


# dot needs equal query/key sizes, so it runs with a unidirectional encoder (H == H)
CONFIGS = [
    pytest.param(
        attention,
        cell,
        bidirectional,
        feed_context,
        id=f"{attention}-{cell}-{'bi' if bidirectional else 'uni'}-{'feed' if feed_context else 'luong'}",
    )
    for attention in ("additive", "dot", "general", "concat")
    for cell in ("gru", "lstm")
    for bidirectional in (False, True)
    for feed_context in (True, False)
    if not (attention == "dot" and bidirectional)
]
FEED = pytest.mark.parametrize("feed_context", [True, False], ids=["bahdanau", "luong"])
CELL = pytest.mark.parametrize("cell", ["gru", "lstm"])


def _with_attention(model, src, lengths, tgt_in):
    """Teacher-forced logits and the decoder's attention ``(B, T, S)``, recorded."""
    with record_attention(model) as maps:
        logits = model(src, lengths, tgt_in)
    return logits, maps["decoder.attention"]


# ----------------------------------------------------------------------------- shapes and weights


@pytest.mark.parametrize("attention, cell, bidirectional, feed_context", CONFIGS)
def test_attention_model_logits_and_last_attention_shapes(
    attention, cell, bidirectional, feed_context
):
    model = _model(attention, cell, bidirectional, feed_context)
    src, lengths, tgt_in = _batch()
    logits, attention = _with_attention(model, src, lengths, tgt_in)
    assert logits.shape == (3, T, VOCAB_SIZE)
    assert attention.shape == (3, T, 6)  # (B, T, S)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("attention, cell, bidirectional, feed_context", CONFIGS)
def test_attention_weights_are_zero_at_padding_and_rows_sum_to_one(
    attention, cell, bidirectional, feed_context
):
    model = _model(attention, cell, bidirectional, feed_context)
    src, lengths, tgt_in = _batch()
    _, weights = _with_attention(model, src, lengths, tgt_in)
    mask = _src_mask(src, lengths)[:, None, :].expand_as(weights)
    assert torch.all(weights[~mask] == 0)
    assert torch.all(weights >= 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, T))


def test_dot_attention_with_a_bidirectional_encoder_is_refused_with_a_pointer_to_general():
    with pytest.raises(ValueError, match=r"query_dim=8 and key_dim=16.*general"):
        _model("dot", bidirectional=True)


def test_attention_decoder_accepts_an_attention_module():
    torch.manual_seed(0)
    attention = LuongAttention(HIDDEN, 2 * HIDDEN, score="general")
    model = build_attention_model(VOCAB_SIZE, VOCAB_SIZE, EMBED, HIDDEN, attention=attention)
    assert model.decoder.attention is attention
    src, lengths, tgt_in = _batch()
    assert model(src, lengths, tgt_in).shape == (3, T, VOCAB_SIZE)


def test_attention_kind_picks_the_module():
    assert isinstance(_model("additive").decoder.attention, AdditiveAttention)
    general = _model("general").decoder.attention
    assert isinstance(general, LuongAttention) and general.score_name == "general"


def test_unknown_attention_kind_is_rejected():
    with pytest.raises(ValueError, match=r"'additive'.*'bilinear'"):
        _model("bilinear")


def test_feed_context_widens_the_rnn_input_by_the_encoder_size():
    assert _model(feed_context=True).decoder.rnn.input_size == EMBED + 2 * HIDDEN
    assert _model(feed_context=False).decoder.rnn.input_size == EMBED


# ----------------------------------------------------------------------------- step == forward


@pytest.mark.parametrize("attention, cell, bidirectional, feed_context", CONFIGS)
def test_step_by_step_with_teacher_tokens_equals_forward(
    attention, cell, bidirectional, feed_context
):
    model = _model(attention, cell, bidirectional, feed_context)
    src, lengths, tgt_in = _batch()
    with torch.no_grad():
        logits, attention = _with_attention(model, src, lengths, tgt_in)
        encoder_outputs, state = model.encoder(src, lengths)
        state = model.decoder.init_state(state)
        mask = _src_mask(src, lengths)
        for t in range(T):
            step_logits, state, weights = model.decoder.step(
                tgt_in[:, t], state, encoder_outputs, mask
            )
            torch.testing.assert_close(step_logits, logits[:, t], atol=1e-5, rtol=0)
            torch.testing.assert_close(weights, attention[:, t], atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("attention, cell, bidirectional, feed_context", CONFIGS[::3])
def test_greedy_decode_returns_attention_rows_that_sum_to_one(
    attention, cell, bidirectional, feed_context
):
    model = _model(attention, cell, bidirectional, feed_context)
    src, lengths, _ = _batch()
    decoded = model.greedy_decode(src, lengths, BOS, EOS, max_len=5)
    n_steps = decoded.tokens.shape[1]
    assert decoded.attention.shape == (3, n_steps, 6)
    torch.testing.assert_close(decoded.attention.sum(-1), torch.ones(3, n_steps))
    padded = ~_src_mask(src, lengths)[:, None, :].expand_as(decoded.attention)
    assert torch.all(decoded.attention[padded] == 0)


@FEED
def test_greedy_decode_attention_equals_teacher_forcing_on_its_own_tokens(feed_context):
    model = _model(feed_context=feed_context)
    src, lengths, _ = _batch()
    decoded = model.greedy_decode(src, lengths, BOS, EOS, max_len=5)
    tgt_in = torch.cat([torch.full((3, 1), BOS), decoded.tokens[:, :-1]], dim=1)
    with torch.no_grad():
        _, attention = _with_attention(model, src, lengths, tgt_in)
    # rows stay equal until a sequence has finished (after <eos> greedy forces <eos>)
    torch.testing.assert_close(attention[:, :1], decoded.attention[:, :1], atol=1e-5, rtol=0)
    for b in range(3):
        eos = (decoded.tokens[b] == EOS).nonzero()
        stop = int(eos[0]) + 1 if len(eos) else decoded.tokens.shape[1]
        torch.testing.assert_close(
            attention[b, :stop], decoded.attention[b, :stop], atol=1e-5, rtol=0
        )


def test_translate_returns_a_string_and_attention_of_output_by_source_length():
    vocab = Vocab("abcdefg")
    torch.manual_seed(0)
    model = build_attention_model(len(vocab), len(vocab), EMBED, HIDDEN)
    text, attention = translate(model, "abcab", vocab, vocab, max_len=7)
    assert isinstance(text, str) and set(text) <= set("abcdefg")
    assert attention.ndim == 2 and attention.shape[1] == 5
    assert 1 <= attention.shape[0] <= 7
    torch.testing.assert_close(attention.sum(-1), torch.ones(attention.shape[0]))


# ----------------------------------------------------------------------------- padding invariance


@pytest.mark.parametrize("attention, cell, bidirectional, feed_context", CONFIGS[::2])
def test_a_sequence_alone_and_in_a_padded_batch_gives_the_same_logits(
    attention, cell, bidirectional, feed_context
):
    model = _model(attention, cell, bidirectional, feed_context)
    src, lengths, tgt_in = _batch()
    with torch.no_grad():
        batch_logits, batch_attention = _with_attention(model, src, lengths, tgt_in)
        for b in range(3):
            n = int(lengths[b])
            one = (src[b : b + 1, :n], lengths[b : b + 1], tgt_in[b : b + 1])
            alone, alone_attention = _with_attention(model, *one)
            torch.testing.assert_close(alone[0], batch_logits[b], atol=1e-5, rtol=0)
            torch.testing.assert_close(
                alone_attention[0], batch_attention[b, :, :n], atol=1e-5, rtol=0
            )


# ----------------------------------------------------------------------------- uses the source


@FEED
def test_attention_decoder_reads_every_encoder_output_unlike_the_bottleneck(feed_context):
    model = _model(feed_context=feed_context)
    src, lengths, tgt_in = _batch()
    with torch.no_grad():
        encoder_outputs, state = model.encoder(src, lengths)
        state = model.decoder.init_state(state)
        mask = _src_mask(src, lengths)
        logits, _, _ = model.decoder(tgt_in, state, encoder_outputs, mask)
        changed = encoder_outputs.clone()
        changed[:, 0] += 1.0  # the first source position: not the one the final state comes from
        changed_logits, _, _ = model.decoder(tgt_in, state, changed, mask)
    assert (changed_logits - logits).abs().amax(dim=(1, 2)).min() > 1e-4  # every sequence

    torch.manual_seed(0)
    bottleneck = build_bottleneck_model(VOCAB_SIZE, VOCAB_SIZE, EMBED, HIDDEN).eval()
    with torch.no_grad():
        outputs, state = bottleneck.encoder(src, lengths)
        plain, _, _ = bottleneck.decoder(tgt_in, state, outputs, mask)
        changed = outputs.clone()
        changed[:, 0] += 1.0
        same, _, _ = bottleneck.decoder(tgt_in, state, changed, mask)
    torch.testing.assert_close(plain, same, atol=0, rtol=0)


@CELL
@FEED
def test_only_bahdanau_placement_feeds_the_context_into_the_rnn_state(cell, feed_context):
    """feed_context=True: c_t joins the RNN input; False: the state never sees the encoder."""
    model = _model(cell=cell, feed_context=feed_context)
    src, lengths, tgt_in = _batch()
    with torch.no_grad():
        encoder_outputs, state = model.encoder(src, lengths)
        state = model.decoder.init_state(state)
        mask = _src_mask(src, lengths)
        _, new_state, _ = model.decoder(tgt_in, state, encoder_outputs, mask)
        _, other_state, _ = model.decoder(tgt_in, state, encoder_outputs + 1.0, mask)
    top, other_top = model.decoder._top(new_state), model.decoder._top(other_state)
    if feed_context:
        assert (top - other_top).abs().max() > 1e-4
    else:
        torch.testing.assert_close(top, other_top, atol=0, rtol=0)


def test_attention_decoder_ignores_encoder_outputs_at_padded_positions():
    model = _model()
    src, lengths, tgt_in = _batch()
    with torch.no_grad():
        encoder_outputs, state = model.encoder(src, lengths)
        state = model.decoder.init_state(state)
        mask = _src_mask(src, lengths)
        logits, _, _ = model.decoder(tgt_in, state, encoder_outputs, mask)
        changed = encoder_outputs.clone()
        changed[~mask] = 50.0
        same, _, _ = model.decoder(tgt_in, state, changed, mask)
    torch.testing.assert_close(same, logits, atol=1e-6, rtol=0)


def test_seq2seq_is_built_from_an_encoder_and_an_attention_decoder():
    model = _model(bidirectional=True)
    assert isinstance(model, Seq2Seq) and isinstance(model.decoder, AttentionDecoder)
    assert model.encoder.bidirectional and model.encoder.output_dim == 2 * HIDDEN
    assert model.decoder.bridge.in_features == 2 * HIDDEN
    assert not isinstance(model.decoder, BottleneckDecoder)


@CELL
def test_init_state_maps_the_encoder_final_state_to_the_decoder_size(cell):
    model = _model(cell=cell, bidirectional=True)
    src, lengths, _ = _batch()
    _, encoder_state = model.encoder(src, lengths)
    state = model.decoder.init_state(encoder_state)
    states = state if isinstance(state, tuple) else (state,)
    assert len(states) == (2 if cell == "lstm" else 1)
    for s in states:
        assert s.shape == (1, 3, HIDDEN) and torch.all(s.abs() <= 1)


def test_gradients_reach_the_attention_and_the_encoder():
    model = _model("concat").train()
    src, lengths, tgt_in = _batch()
    model(src, lengths, tgt_in).logsumexp(-1).sum().backward()
    for module in (model.decoder.attention, model.encoder.rnn):
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert sum(g.abs().sum() for g in grads) > 0


# ----------------------------------------------------------------------------- it learns


def test_a_tiny_attention_model_learns_to_copy():
    alphabet = "abcd"
    pairs = make_sequence_task("copy", n=800, min_len=3, max_len=6, alphabet=alphabet, seed=0)
    train, _, test = split_dataset(pairs, (0.8, 0.1, 0.1), seed=0)
    vocab = Vocab(alphabet)
    torch.manual_seed(0)
    model = build_attention_model(
        len(vocab), len(vocab), embed_dim=16, hidden_dim=32, feed_context=False
    )
    loader = make_loader(train, vocab, vocab, batch_size=32, seed=0)
    fit(model, loader, steps=150, lr=1e-2, progress=False)
    scores = evaluate(model, test, vocab, vocab)
    assert scores["token_accuracy"] >= 0.9, scores


def test_an_untrained_attention_model_does_not_copy():
    """The learning test can fail: without training, the same check is far below 0.9."""
    alphabet = "abcd"
    pairs = make_sequence_task("copy", n=800, min_len=3, max_len=6, alphabet=alphabet, seed=0)
    _, _, test = split_dataset(pairs, (0.8, 0.1, 0.1), seed=0)
    vocab = Vocab(alphabet)
    torch.manual_seed(0)
    model = build_attention_model(len(vocab), len(vocab), 16, 32, feed_context=False).eval()
    assert evaluate(model, test, vocab, vocab)["token_accuracy"] < 0.5


def test_greedy_decoding_gives_local_m_the_step_index_as_its_centre():
    """Teacher forcing centres local-m on p_t = t; greedy decoding must do the same."""
    torch.manual_seed(0)
    attention = LocalAttention(16, 16, score="general", window=1, mode="monotonic")
    model = build_attention_model(
        9, 9, 8, 16, attention=attention, bidirectional=False, feed_context=False
    ).eval()
    src = torch.randint(4, 9, (2, 7))
    decoded = model.greedy_decode(src, torch.tensor([7, 7]), bos_id=1, eos_id=2, max_len=5)
    steps = decoded.attention.shape[1]
    for t in range(steps):
        allowed = decoded.attention[:, t] > 0
        outside = (torch.arange(7) - t).abs() > 1
        assert not (allowed & outside).any(), f"step {t} attends outside its window around t"


@pytest.mark.parametrize("feed_context", [True, False], ids=["feed", "luong"])
def test_the_attention_decoder_refuses_ids_outside_the_vocabulary(feed_context):
    model = _model(feed_context=feed_context)
    src, lengths, tgt_in = _batch()
    tgt_in[1, 2] = VOCAB_SIZE + 3
    with pytest.raises(ValueError, match=rf"must be in \[0, {VOCAB_SIZE}\).*to {VOCAB_SIZE + 3}"):
        model(src, lengths, tgt_in)
    with pytest.raises(ValueError, match=r"must be integer.*torch.float32"):
        model(src, lengths, tgt_in.float())
