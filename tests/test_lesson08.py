"""Lesson 08: the three checkers, the quiz, the translation explorer."""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import pytest
import torch
from checks import assert_rejected

from course_utils.data import Vocab, make_dates
from course_utils.exercises import (
    NOT_ATTEMPTED,
    PASSED,
    QUIZZES,
    SOLUTIONS,
    check_decoder_layer_forward,
    check_teacher_forcing_shift,
    check_warmup_lr,
    reference_decoder_layer_forward,
    reference_teacher_forcing_shift,
    reference_warmup_lr,
)
from course_utils.transformer import DecoderLayer, Transformer, warmup_schedule
from course_utils.widgets import (
    MEAN_OF_HEADS,
    OUTPUT_FIELDS,
    cross_attention_map,
    date_spans,
    plot_cross_attention,
    translation_explorer,
)

torch.set_num_threads(1)

CHECKERS = {
    "decoder_layer_forward": check_decoder_layer_forward,
    "warmup_lr": check_warmup_lr,
    "teacher_forcing_shift": check_teacher_forcing_shift,
}


# ----------------------------------------------------------------------------- the checkers


@pytest.mark.parametrize("name", sorted(CHECKERS))
def test_each_checker_accepts_its_reference(name):
    result = CHECKERS[name](SOLUTIONS[name])
    assert result.status == PASSED, result


@pytest.mark.parametrize("name", sorted(CHECKERS))
def test_each_checker_says_not_attempted_for_a_stub(name):
    def stub(*args):
        raise NotImplementedError

    result = CHECKERS[name](stub)
    assert result.status == NOT_ATTEMPTED and "not attempted yet" in result.message


def test_the_reference_decoder_layer_equals_the_tested_one():
    torch.manual_seed(0)
    layer = DecoderLayer(8, 2, dim_feedforward=16).eval()
    x, memory = torch.randn(2, 3, 8), torch.randn(2, 5, 8)
    mask = torch.ones(3, 3, dtype=torch.bool).tril()
    memory_mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    with torch.no_grad():
        ours = reference_decoder_layer_forward(x, memory, layer, mask, memory_mask)
        tested = layer(x, memory, mask, memory_key_padding_mask=memory_mask)
    assert torch.allclose(ours, tested, atol=1e-6)


def _post(x, memory, L, self_mask, memory_mask, self_m=True, mem_m=True, res=True, norms=True):
    n = (lambda k: getattr(L, f"norm{k}")) if norms else (lambda k: lambda h: h)
    r = (lambda a, b: a + b) if res else (lambda a, b: b)
    h = n(1)(r(x, L.self_attn(x, x, x, attn_mask=self_mask if self_m else None)[0]))
    h = n(2)(
        r(h, L.cross_attn(h, memory, memory, key_padding_mask=memory_mask if mem_m else None)[0])
    )
    return n(3)(r(h, L.ffn(h)))


@pytest.mark.parametrize(
    "wrong, words",
    [
        (lambda x, m, L, s, mm: _post(x, m, L, s, mm, self_m=False), "no causal mask"),
        (lambda x, m, L, s, mm: _post(x, m, L, s, mm, mem_m=False), "ignores memory_mask"),
        (lambda x, m, L, s, mm: _post(x, m, L, s, mm, res=False), "residual connection"),
        (lambda x, m, L, s, mm: _post(x, m, L, s, mm, norms=False), "LayerNorms are missing"),
        (
            lambda x, m, L, s, mm: (
                lambda h: (lambda h2: h2 + L.ffn(L.norm3(h2)))(
                    h + L.cross_attn(L.norm2(h), m, m, key_padding_mask=mm)[0]
                )
            )(x + L.self_attn(L.norm1(x), L.norm1(x), L.norm1(x), attn_mask=s)[0]),
            "pre-norm",
        ),
        (lambda x, m, L, s, mm: L.cross_attn(m, x, x)[0], "queries come from the decoder"),
        (lambda x, m, L, s, mm: x, "differs from the paper's decoder layer"),
    ],
)
def test_decoder_layer_checker_names_the_mistake(wrong, words):
    assert_rejected(check_decoder_layer_forward(wrong), words)


def test_decoder_checker_catches_cross_attention_before_self_attention():
    def cross_first(x, m, L, s, mm):
        h = L.norm1(x + L.cross_attn(x, m, m, key_padding_mask=mm)[0])
        h = L.norm2(h + L.self_attn(h, h, h, attn_mask=s)[0])
        return L.norm3(h + L.ffn(h))

    assert_rejected(check_decoder_layer_forward(cross_first), "not before")


def test_the_reference_warmup_equals_the_tested_schedule():
    factor = warmup_schedule(32, 100)
    for step in (1, 10, 100, 101, 1000):
        assert reference_warmup_lr(step, 32, 100) == pytest.approx(factor(step))


@pytest.mark.parametrize(
    "wrong, words",
    [
        (lambda s, d, w: d**-0.5 * max(s**-0.5, s * w**-1.5), "max"),
        (lambda s, d, w: min(s**-0.5, s * w**-1.5), "d_model^-0.5 is missing"),
        (lambda s, d, w: d**-0.5 * min(s**-0.5, s * w**-0.5), "warmup_steps^-1.5"),
        (lambda s, d, w: d**-0.5 * min(s**0.5, s * w**-1.5), "not √step"),
        (lambda s, d, w: 2e-3, "should be"),
        (lambda s, d, w: "fast", "return a number"),
    ],
)
def test_warmup_checker_names_the_mistake(wrong, words):
    assert_rejected(check_warmup_lr(wrong), words)


def test_the_reference_shift_matches_the_data_module():
    vocab = Vocab("0123456789-")
    target = "2024-01-31"
    inp, out = reference_teacher_forcing_shift(vocab.encode(target), vocab.bos_id, vocab.eos_id)
    assert inp == vocab.encode(target, add_bos=True)
    assert out == vocab.encode(target, add_eos=True)


@pytest.mark.parametrize(
    "wrong, words",
    [
        (lambda t, b, e: ([*t, e], [b, *t]), "swapped"),
        (lambda t, b, e: ([b, *t], [b, *t]), "the same sequence"),
        (lambda t, b, e: (list(t), [*t, e]), "bare target"),
        (lambda t, b, e: ([b, *t, e], [b, *t, e]), "the same sequence"),
        (lambda t, b, e: ([b, *t, e], [*t, e]), "different sides"),
        (lambda t, b, e: [b, *t], "return a pair"),
        (lambda t, b, e: ([b, *t], [*t[1:], e]), "expected"),
    ],
)
def test_shift_checker_names_the_mistake(wrong, words):
    assert_rejected(check_teacher_forcing_shift(wrong), words)


def test_the_shift_checker_judges_the_result_even_if_the_list_was_changed_in_place():
    def in_place(t, b, e):
        t.append(e)  # changes the learner's own list: the input then ends with <eos> too
        return [b, *t[:-1]], t

    assert check_teacher_forcing_shift(in_place).status == PASSED  # still right, if untidy


def test_the_quiz_has_3_to_4_questions_with_valid_answers():
    questions = QUIZZES["08"]
    assert 3 <= len(questions) <= 4
    for q in questions:
        assert q.grade(q.answer)[0] and not q.grade((q.answer + 1) % len(q.options))[0]


# ----------------------------------------------------------------------------- the explorer


@pytest.fixture(scope="module")
def vocabs():
    pairs = make_dates(200, seed=0)
    return Vocab.from_texts(s for s, _ in pairs), Vocab("0123456789-")


@pytest.fixture(scope="module")
def model(vocabs):
    torch.manual_seed(0)
    src, tgt = vocabs
    return Transformer(len(src), len(tgt), d_model=16, num_heads=2, max_len=40).eval()


def test_cross_attention_map_has_one_row_per_output_character_and_eos(model, vocabs):
    text = "14 March 1987"
    output, weights = cross_attention_map(model, text, *vocabs, layer=0, head=1)
    assert weights.shape == (len(output) + 1, len(text))
    assert torch.allclose(weights.sum(-1), torch.ones(len(output) + 1), atol=1e-5)
    _, mean = cross_attention_map(model, text, *vocabs, layer=0, head=MEAN_OF_HEADS)
    _, h0 = cross_attention_map(model, text, *vocabs, layer=0, head=0)
    assert torch.allclose(mean, (weights + h0) / 2, atol=1e-6)
    assert not torch.allclose(h0, weights)
    assert model.training is False


@pytest.mark.parametrize(
    "text, words",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("14 März 1987", "not in the vocabulary"),
        ("1" * 41, "at most 40"),
    ],
)
def test_bad_input_gives_a_readable_error(model, vocabs, text, words):
    with pytest.raises(ValueError, match=words):
        cross_attention_map(model, text, *vocabs)


def test_bad_layer_or_head_is_refused(model, vocabs):
    with pytest.raises(ValueError, match="layer"):
        cross_attention_map(model, "14 March 1987", *vocabs, layer=5)
    with pytest.raises(ValueError, match="head"):
        cross_attention_map(model, "14 March 1987", *vocabs, head=2)


def test_plot_checks_the_shape():
    with pytest.raises(ValueError, match="do not match"):
        plot_cross_attention(torch.ones(3, 3) / 3, "abc", "xyz")
    ax = plot_cross_attention(torch.ones(4, 3) / 3, "a c", "xyz", title="t")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "␣", "c"]
    plt.close("all")


def test_the_explorer_draws_at_every_control_value_and_reports_bad_input(model, vocabs, shown):
    box = translation_explorer(model, *vocabs, text="14 March 1987")
    assert isinstance(box, widgets.VBox)
    assert "→" in box.readout.value and "mean of the heads" in box.readout.value
    seen, plots = {box.readout.value}, {shown(box.out)}
    for layer in (box.layer.min, box.layer.max):
        for _, head in box.head.options:
            box.layer.value, box.head.value = layer, head
            assert "⚠️" not in box.readout.value
            seen.add(box.readout.value)
            plots.add(shown(box.out))
    assert len(seen) >= 4
    assert len(plots) == len(seen), "every setting draws its own map"
    box.text.value = "7/2/2049"
    assert "7/2/2049" in box.readout.value
    for bad, words in [("", "empty"), ("14 März", "not in the vocabulary"), ("9" * 41, "at most")]:
        box.text.value = bad
        assert "⚠️" in box.readout.value and words in box.readout.value
        assert box.out.outputs == (), "no stale map beside the message"
    box.text.value = "1"  # the shortest input draws too
    assert "⚠️" not in box.readout.value
    shown(box.out)


# ----------------------------------------------------------------------------- date spans


def test_date_spans_find_year_month_and_day_in_every_format():
    import datetime

    from course_utils.data import _date_formats

    date = datetime.date(2019, 2, 7)
    for source in _date_formats(date):
        spans = date_spans(source)
        text = {field: source[span.start : span.stop] for field, span in spans.items()}
        assert text["year"] == "2019", source
        assert int(text["day"]) == 7, source
        assert text["month"].lower().startswith("feb") or int(text["month"]) == 2, source
    assert OUTPUT_FIELDS["year"] == range(0, 4) and "2019-02-07"[8:10] == "07"


@pytest.mark.parametrize("bad", ["hello", "12.05", "3 4 2019 5", "Feb 2019"])
def test_date_spans_refuse_what_is_not_a_date(bad):
    with pytest.raises(ValueError):
        date_spans(bad)


def test_the_layer_slider_is_disabled_when_there_is_only_one_layer(model, vocabs):
    src, tgt = vocabs
    assert not translation_explorer(model, src, tgt).layer.disabled  # two decoder layers
    torch.manual_seed(0)
    one = Transformer(len(src), len(tgt), d_model=16, num_heads=2, num_decoder_layers=1, max_len=40)
    box = translation_explorer(one.eval(), src, tgt)
    assert box.layer.disabled and "1 decoder layer" in box.layer.tooltip
    plt.close("all")
