"""widgets: the explorers' logic, driven by setting control values (no browser needed)."""

from __future__ import annotations

import base64
import math
import re

import ipywidgets as widgets
import matplotlib.pyplot as plt
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F

from course_utils.data import Vocab, task_target
from course_utils.quizzes import QUIZZES, Question
from course_utils.seq2seq import Seq2Seq, build_bottleneck_model
from course_utils.widgets import (
    bottleneck_explorer,
    entropy,
    highlight_errors,
    quiz,
    seq2seq_case,
    softmax_explorer,
    temperature_softmax,
)

FAST = settings(max_examples=30, deadline=None)
SYMBOLS = "abcdefgh"
MAX_SRC_LEN = 12


# ----------------------------------------------------------------------------- softmax


@given(
    st.lists(st.floats(-50, 50), min_size=1, max_size=8),
    st.floats(min_value=1e-2, max_value=1e2),
)
@FAST
def test_temperature_softmax_is_a_distribution(scores, temperature):
    weights = temperature_softmax(scores, temperature)
    assert weights.shape == (len(scores),)
    assert (weights >= 0).all()
    assert float(weights.sum()) == pytest.approx(1.0, abs=1e-9)


def test_low_temperature_is_nearly_one_hot_on_the_largest_score():
    weights = temperature_softmax([2.0, 1.0, 0.5, -1.0], 0.01)
    assert int(weights.argmax()) == 0
    assert float(weights[0]) > 0.999


def test_high_temperature_is_nearly_uniform():
    weights = temperature_softmax([2.0, 1.0, 0.5, -1.0], 100.0)
    assert torch.allclose(weights, torch.full((4,), 0.25, dtype=weights.dtype), atol=0.01)


def test_temperature_one_is_the_plain_softmax():
    scores = torch.tensor([0.3, -1.2, 2.0])
    torch.testing.assert_close(
        temperature_softmax(scores, 1.0), torch.softmax(scores.double(), dim=-1)
    )


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan")])
def test_temperature_must_be_positive(temperature):
    with pytest.raises(ValueError, match="temperature must be positive"):
        temperature_softmax([1.0, 2.0], temperature)


def test_entropy_of_a_one_hot_distribution_is_zero():
    assert entropy(torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)) == pytest.approx(0.0)


def test_entropy_of_a_float32_one_hot_distribution_is_zero():
    assert entropy(torch.tensor([0.0, 1.0, 0.0])) == pytest.approx(0.0)


@pytest.mark.parametrize("n", [2, 4, 10])
def test_entropy_of_a_uniform_distribution_is_log_n(n):
    assert entropy(torch.full((n,), 1.0 / n, dtype=torch.float64)) == pytest.approx(math.log(n))


def _readout_numbers(explorer) -> tuple[float, float]:
    text = explorer.readout.value
    largest = float(re.search(r"largest weight <b>([\d.]+)</b>", text).group(1))
    ent = float(re.search(r"entropy <b>([\d.]+)</b>", text).group(1))
    return largest, ent


def test_softmax_explorer_readout_follows_the_slider(shown):
    explorer = softmax_explorer()
    before, plot = explorer.readout.value, shown(explorer.out)
    explorer.slider.value = 5.0
    assert explorer.readout.value != before
    assert shown(explorer.out) != plot
    assert "temperature 5.00" in explorer.readout.value


def test_softmax_explorer_works_at_the_slider_extremes():
    explorer = softmax_explorer()
    slider = explorer.slider
    assert isinstance(slider, widgets.FloatLogSlider)
    explorer.slider.value = slider.base**slider.min  # 10**-2
    largest, ent = _readout_numbers(explorer)
    assert largest == pytest.approx(1.0, abs=0.01)
    assert ent == pytest.approx(0.0, abs=0.01)
    explorer.slider.value = slider.base**slider.max  # 10**2
    largest, ent = _readout_numbers(explorer)
    assert largest == pytest.approx(0.25, abs=0.02)
    assert ent == pytest.approx(math.log(4), abs=0.01)


@pytest.mark.parametrize(
    ("scores", "labels", "words"),
    [
        ([], [], "at least one score"),
        ([[1.0, 2.0]], ["a"], "one number per label"),
        (["a", "b"], ["a", "b"], "scores must be numbers"),
    ],
)
def test_softmax_explorer_explains_scores_it_cannot_show(scores, labels, words):
    with pytest.raises(ValueError, match=words):
        softmax_explorer(scores, labels)


def test_softmax_explorer_rejects_mismatched_scores_and_labels():
    with pytest.raises(ValueError, match="3 scores but 2 labels"):
        softmax_explorer((1.0, 2.0, 3.0), ("a", "b"))


# ----------------------------------------------------------------------------- highlight_errors


def test_highlight_errors_marks_wrong_and_missing_symbols():
    html = highlight_errors("abcd", "abx")
    assert html.count('title="expected c"') == 1
    assert html.count('title="missing"') == 1
    assert html.count("title=") == 2
    assert html.count("<span") == 4


def test_highlight_errors_marks_extra_symbols():
    html = highlight_errors("ab", "abcd")
    assert html.count('title="extra"') == 2
    assert html.count("title=") == 2


def test_highlight_errors_marks_nothing_on_a_perfect_output():
    html = highlight_errors("abc", "abc")
    assert "title=" not in html
    assert re.sub(r"<[^>]+>", "", html) == "abc"


def test_highlight_errors_escapes_html():
    html = highlight_errors("<a>", "<b>")
    assert "&lt;" in html and "&gt;" in html
    assert "<a>" not in html and "<b>" not in html
    assert 'title="expected a"' in html


# ----------------------------------------------------------------------------- seq2seq_case


@pytest.fixture
def vocab():
    return Vocab(SYMBOLS)


@pytest.fixture
def model(vocab):
    torch.manual_seed(0)
    return build_bottleneck_model(
        len(vocab), len(vocab), embed_dim=8, hidden_dim=8, max_src_len=MAX_SRC_LEN
    )


class _ScriptedDecoder(nn.Module):
    """Emits the ids of ``script`` one per step, then <eos>."""

    def __init__(self, ids: list[int], vocab_size: int, eos_id: int = 2):
        super().__init__()
        self.ids, self.vocab_size, self.eos_id = ids, vocab_size, eos_id
        self.weight = nn.Parameter(torch.zeros(1))

    def step(self, token, state, encoder_outputs=None, src_mask=None, position=None):
        if token[0] == 1:  # <bos>: start over
            self.t = 0
        next_id = self.ids[self.t] if self.t < len(self.ids) else self.eos_id
        self.t += 1
        return F.one_hot(torch.tensor([next_id]), self.vocab_size).float(), state, None


def _scripted_model(model, vocab, output: str) -> Seq2Seq:
    return Seq2Seq(model.encoder, _ScriptedDecoder(vocab.encode(output), len(vocab)))


def test_seq2seq_case_reports_consistent_values(model, vocab):
    case = seq2seq_case(model, "abcde", vocab, task="reverse")
    assert set(case) == {"source", "target", "output", "token_accuracy", "exact"}
    assert case["source"] == "abcde"
    assert case["target"] == task_target("reverse", "abcde") == "edcba"
    assert isinstance(case["output"], str)
    hits = sum(a == b for a, b in zip(case["output"], case["target"]))
    assert case["token_accuracy"] == pytest.approx(hits / 5)
    assert 0.0 <= case["token_accuracy"] <= 1.0
    assert case["exact"] == (case["output"] == case["target"])


def test_seq2seq_case_scores_a_right_and_a_wrong_output(model, vocab):
    right = seq2seq_case(_scripted_model(model, vocab, "cba"), "abc", vocab, task="reverse")
    assert right["output"] == "cba"
    assert right["exact"] is True and right["token_accuracy"] == 1.0
    wrong = seq2seq_case(_scripted_model(model, vocab, "cbaa"), "abc", vocab, task="reverse")
    assert wrong["exact"] is False and wrong["token_accuracy"] == 1.0
    short = seq2seq_case(_scripted_model(model, vocab, "c"), "abc", vocab, task="reverse")
    assert short["token_accuracy"] == pytest.approx(1 / 3)


def test_seq2seq_case_rejects_bad_input(model, vocab):
    with pytest.raises(ValueError, match="not in the vocabulary"):
        seq2seq_case(model, "abz", vocab)


# ----------------------------------------------------------------------------- bottleneck_explorer


@pytest.fixture
def explorer(model, vocab):
    return bottleneck_explorer(model, vocab, task="copy")


def _input_row(view_html: str) -> str:
    return re.search(r"<td>input&nbsp;</td><td>(.*?)</td>", view_html).group(1)


def test_bottleneck_explorer_shows_input_target_and_output(explorer):
    html = explorer.view.value
    source = _input_row(html)
    assert len(source) == explorer.length.value
    assert set(source) <= set(SYMBOLS)
    assert f"<td>target&nbsp;</td><td>{source}</td>" in html  # copy task
    assert f"length {len(source)}:" in html


def test_bottleneck_explorer_view_changes_with_length_and_example(explorer):
    first = explorer.view.value
    explorer.length.value = 5
    after_length = explorer.view.value
    assert after_length != first
    assert len(_input_row(after_length)) == 5
    explorer.example.value = 1
    assert explorer.view.value != after_length
    explorer.example.value = 0
    assert explorer.view.value == after_length, "the same controls give the same example"


def test_bottleneck_explorer_works_at_length_1_and_at_the_model_limit(explorer):
    assert explorer.length.min == 1 and explorer.length.max == MAX_SRC_LEN
    for length in (explorer.length.min, explorer.length.max):
        explorer.length.value = length
        assert "⚠️" not in explorer.view.value
        assert len(_input_row(explorer.view.value)) == length
        assert f"length {length}:" in explorer.view.value


def test_bottleneck_explorer_without_a_limit_allows_length_40(vocab):
    torch.manual_seed(0)
    unlimited = build_bottleneck_model(len(vocab), len(vocab), embed_dim=8, hidden_dim=8)
    explorer = bottleneck_explorer(unlimited, vocab)
    assert explorer.length.max == 40
    explorer.length.value = 40
    assert len(_input_row(explorer.view.value)) == 40


def test_own_input_overrides_the_random_example(explorer):
    explorer.own.value = "  hgf "
    assert _input_row(explorer.view.value) == "hgf"
    shown = explorer.view.value
    explorer.length.value = 3
    explorer.example.value = 7
    assert explorer.view.value == shown


def test_empty_own_input_falls_back_to_the_random_example(explorer):
    random_view = explorer.view.value
    explorer.own.value = "abc"
    assert explorer.view.value != random_view
    explorer.own.value = "   "
    assert explorer.view.value == random_view


def test_own_input_with_unknown_symbols_shows_a_warning(explorer):
    explorer.own.value = "abz!"
    html = explorer.view.value
    assert "⚠️" in html
    assert "are not in the vocabulary" in html
    assert "<table" not in html


def test_too_long_own_input_shows_the_limit(explorer):
    explorer.own.value = "a" * (MAX_SRC_LEN + 1)
    html = explorer.view.value
    assert "⚠️" in html
    assert f"accepts at most {MAX_SRC_LEN}" in html


def test_own_input_warning_escapes_html(explorer):
    explorer.own.value = "<script>"
    assert "<script>" not in explorer.view.value
    assert "&lt;" in explorer.view.value


# ----------------------------------------------------------------------------- quiz


def _rows(box):
    return [
        {
            "prompt": row.children[0],
            "choice": row.children[1],
            "button": row.children[2],
            "feedback": row.children[3],
        }
        for row in box.children
    ]


@pytest.mark.parametrize("lesson", sorted(QUIZZES))
def test_quiz_has_one_row_per_question(lesson):
    questions = QUIZZES[lesson]
    rows = _rows(quiz(questions))
    assert len(rows) == len(questions)
    for number, (row, question) in enumerate(zip(rows, questions), start=1):
        assert row["prompt"].value.startswith(f"<b>{number}. ")
        assert [label for label, _ in row["choice"].options] == list(question.options)
        assert row["choice"].value is None
        assert row["feedback"].value == ""


@pytest.mark.parametrize("lesson", sorted(QUIZZES))
def test_quiz_check_button_grades_the_chosen_option(lesson):
    questions = QUIZZES[lesson]
    rows = _rows(quiz(questions))
    for row, question in zip(rows, questions):
        row["choice"].value = question.answer
        row["button"].click()
        assert "Correct" in row["feedback"].value
        wrong = (question.answer + 1) % len(question.options)
        row["choice"].value = wrong
        row["button"].click()
        assert "Not quite" in row["feedback"].value


def test_quiz_check_without_a_choice_asks_for_one():
    row = _rows(quiz(QUIZZES["01"]))[0]
    row["button"].click()
    assert "Pick an option" in row["feedback"].value


def test_quiz_buttons_grade_their_own_question():
    questions = [
        Question("first?", ("a", "b"), 0, "first why"),
        Question("second?", ("a", "b"), 1, "second why"),
    ]
    first, second = _rows(quiz(questions))
    first["choice"].value = 0
    second["choice"].value = 0
    first["button"].click()
    second["button"].click()
    assert "Correct" in first["feedback"].value and "first why" in first["feedback"].value
    assert "Not quite" in second["feedback"].value and "second why" in second["feedback"].value


def test_quiz_escapes_html_in_prompts():
    box = quiz([Question("Is <b> bold?", ("yes", "no"), 0, "it is a tag")])
    assert "&lt;b&gt; bold" in _rows(box)[0]["prompt"].value


# ----------------------------------------------------------------------------- showing a plot


def test_show_figure_replaces_the_output_with_one_png_and_closes_the_figure():
    from course_utils.widgets._show import clear, show_figure

    out = widgets.Output()
    for colour in ("red", "blue"):
        fig, ax = plt.subplots(figsize=(2, 1))
        ax.plot([0, 1], color=colour)
        show_figure(out, fig)
        assert plt.get_fignums() == [], "the figure is closed once it is shown"
        (output,) = out.outputs  # replaced, not appended
        png = base64.b64decode(output["data"]["image/png"])
        assert png.startswith(b"\x89PNG") and output["data"]["text/plain"].startswith("<Figure")
        if colour == "red":
            first = png
    assert png != first
    plt.plot([0, 1])
    show_figure(out)  # the current figure by default
    assert len(out.outputs) == 1 and plt.get_fignums() == []
    clear(out)
    assert out.outputs == ()


def test_warning_html_escapes_the_message():
    from course_utils.widgets._show import warning_html

    line = warning_html(ValueError("symbol '<' is not in the vocabulary"))
    assert "⚠️" in line and "&lt;" in line and "<'" not in line
