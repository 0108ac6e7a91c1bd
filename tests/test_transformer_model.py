"""The encoder-decoder Transformer: padding and causality hold, cached greedy decoding equals
step-by-step recomputation, beam search finds at least the greedy output's probability, and it
trains with the course's own fit/predict like the RNN models."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from course_utils.attention import record_attention
from course_utils.data import Vocab, make_loader
from course_utils.training import evaluate, fit
from course_utils.transformer import Transformer, warmup_schedule

BOS, EOS = 1, 2


def _model(seed=0, norm_first=False, max_len=20):
    torch.manual_seed(seed)
    return Transformer(11, 13, d_model=32, num_heads=4, num_encoder_layers=2,
                       num_decoder_layers=2, max_len=max_len, norm_first=norm_first).eval()  # fmt: skip


def _sources(seed=0):
    generator = torch.Generator().manual_seed(seed)
    src = torch.randint(3, 11, (3, 6), generator=generator)
    lengths = torch.tensor([6, 4, 2])
    src[1, 4:] = 0
    src[2, 2:] = 0
    return src, lengths


@pytest.mark.parametrize("norm_first", [False, True])
def test_padding_does_not_change_the_output(norm_first):
    model = _model(norm_first=norm_first)
    src, lengths = _sources()
    tgt_in = torch.randint(3, 13, (3, 5))
    with record_attention(model) as maps:
        full = model(src, lengths, tgt_in)
    assert full.shape == (3, 5, 13)
    cross = maps.layers("cross")
    assert len(cross) == 2 and cross[0].shape == (3, 4, 5, 6)
    assert torch.all(cross[-1][2, :, :, 2:] == 0)  # padding gets no attention
    alone = model(src[2:, :2], lengths[2:], tgt_in[2:])
    torch.testing.assert_close(full[2:], alone, atol=1e-5, rtol=1e-5)


def test_the_decoder_cannot_see_future_targets():
    model = _model()
    src, lengths = _sources()
    tgt_in = torch.randint(3, 13, (3, 6))
    changed = tgt_in.clone()
    changed[:, 4:] = 3
    torch.testing.assert_close(
        model(src, lengths, tgt_in)[:, :4], model(src, lengths, changed)[:, :4]
    )
    assert not torch.allclose(
        model(src, lengths, tgt_in)[:, 4:], model(src, lengths, changed)[:, 4:]
    )


def _greedy_by_recomputing(model, src, lengths, max_len):
    tokens = torch.full((src.shape[0], 1), BOS)
    for _ in range(max_len):
        next_token = model(src, lengths, tokens)[:, -1].argmax(-1, keepdim=True)
        tokens = torch.cat([tokens, next_token], dim=1)
    return tokens[:, 1:]


@pytest.mark.parametrize("norm_first", [False, True])
def test_cached_greedy_decoding_equals_recomputing_every_step(norm_first):
    model = _model(norm_first=norm_first)
    src, lengths = _sources()
    decoded = model.greedy_decode(src, lengths, BOS, eos_id=99, max_len=8)  # 99: never stops
    assert torch.equal(decoded.tokens, _greedy_by_recomputing(model, src, lengths, 8))
    assert decoded.attention.shape == (3, 8, 6)
    torch.testing.assert_close(decoded.attention.sum(-1), torch.ones(3, 8))


def _log_prob(model, src, lengths, tokens):
    tgt_in = torch.tensor([[BOS, *tokens[:-1]]])
    with torch.no_grad():
        log_probs = F.log_softmax(model(src, lengths, tgt_in), dim=-1)[0]
    return float(log_probs[torch.arange(len(tokens)), torch.tensor(tokens)].sum())


def test_beam_search_scores_are_log_probabilities_and_beat_greedy():
    model = _model(seed=3)
    src, lengths = _sources(seed=3)
    for b in range(3):
        one_src, one_len = src[b : b + 1, : int(lengths[b])], lengths[b : b + 1]
        (greedy_tokens, greedy_score), = model.beam_search(one_src, one_len, BOS, EOS, 6, beam_size=1)  # fmt: skip
        expected = _greedy_by_recomputing(model, one_src, one_len, 6)[0].tolist()
        cut = expected.index(EOS) + 1 if EOS in expected else 6
        assert greedy_tokens == expected[:cut]
        assert greedy_score == pytest.approx(
            _log_prob(model, one_src, one_len, greedy_tokens), abs=1e-4
        )
        (tokens, score), = model.beam_search(one_src, one_len, BOS, EOS, 6, beam_size=5)  # fmt: skip
        assert score == pytest.approx(_log_prob(model, one_src, one_len, tokens), abs=1e-4)
        assert score >= greedy_score - 1e-5


def test_decoding_rejects_bad_settings():
    model = _model(max_len=20)
    src, lengths = _sources()
    with pytest.raises(ValueError, match="beam_size must be >= 1"):
        model.beam_search(src, lengths, BOS, EOS, 5, beam_size=0)
    with pytest.raises(ValueError, match="max_len must be at least 1"):
        model.greedy_decode(src, lengths, BOS, EOS, 0)
    assert model.greedy_decode(src, lengths, BOS, 99, max_len=50).tokens.shape == (3, 20)
    with pytest.raises(ValueError, match=r"\(3, 6\) and \(2,\)"):
        model(src, lengths[:2], torch.zeros(3, 2, dtype=torch.long))


@pytest.mark.parametrize("which, low, high", [("src", 0, 11), ("src", -1, 10), ("tgt_in", 0, 13)])
def test_ids_outside_the_vocabulary_are_refused_before_the_embedding(which, low, high):
    # on a GPU an out-of-range index is a device-side assert that breaks every later call
    model = _model()  # 11 source and 13 target symbols
    src, lengths = _sources()
    tgt_in = torch.zeros(3, 2, dtype=torch.long)
    bad = {"src": src, "tgt_in": tgt_in}[which]
    bad[0, 0], bad[0, 1] = low, high
    size = {"src": 11, "tgt_in": 13}[which]
    with pytest.raises(ValueError, match=rf"{which} must be in \[0, {size}\).*{low} to {high}"):
        model(src, lengths, tgt_in)


def test_float_ids_are_refused_with_their_dtype():
    model = _model()
    src, lengths = _sources()
    with pytest.raises(ValueError, match=r"src must be integer.*torch.float32"):
        model(src.float(), lengths, torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"tgt_in must be integer.*torch.float32"):
        model(src, lengths, torch.zeros(3, 2))


def test_the_warmup_schedule_rises_then_decays_like_the_paper():
    factor = warmup_schedule(d_model=64, warmup_steps=100)
    assert factor(0) == factor(1)
    assert factor(50) == pytest.approx(factor(100) / 2)  # linear warm-up
    assert factor(400) == pytest.approx(factor(100) / 2)  # then 1/sqrt(step)
    assert max(range(1, 1000), key=factor) == 100
    assert factor(100) == pytest.approx(64**-0.5 * 100**-0.5)
    with pytest.raises(ValueError, match="warmup_steps"):
        warmup_schedule(64, 0)


def test_trains_with_the_course_fit_and_evaluate():
    """Reversing 3-5 letters: 200 steps of the course's own loop get it right."""
    torch.manual_seed(0)
    vocab = Vocab("abcdef")
    generator = torch.Generator().manual_seed(0)
    pairs = []
    for _ in range(512):
        length = int(torch.randint(3, 6, (1,), generator=generator))
        word = "".join(
            "abcdef"[int(i)] for i in torch.randint(0, 6, (length,), generator=generator)
        )
        pairs.append((word, word[::-1]))
    model = Transformer(len(vocab), len(vocab), d_model=32, num_heads=4, num_encoder_layers=1,
                        num_decoder_layers=1, max_len=12)  # fmt: skip
    loader = make_loader(pairs, vocab, vocab, batch_size=64, shuffle=True, seed=0)
    history = fit(model, loader, steps=200, lr=3e-3, progress=False)
    assert history.loss[-1] < 0.2 * history.loss[0]
    scores = evaluate(model, pairs[:100], vocab, vocab)
    assert scores["exact_match"] > 0.9, scores
