"""Lesson 03: the general-score and local-window checkers, and the Luong explorer's logic."""

from __future__ import annotations

import math

import pytest
import torch
from checks import assert_rejected

from course_utils.attention import LocalAttention, LuongAttention
from course_utils.data import Vocab
from course_utils.exercises import (
    check_general_score,
    check_local_window,
    reference_general_score,
    reference_local_window,
)
from course_utils.exercises.lesson03 import QUIZ
from course_utils.seq2seq import build_attention_model
from course_utils.widgets import alignment_case, draw_alignment, luong_explorer

# ----------------------------------------------------------------------------- checkers


def test_the_general_score_reference_equals_luong_attention():
    torch.manual_seed(0)
    attention = LuongAttention(4, 6, score="general")
    query, keys = torch.randn(2, 3, 4), torch.randn(2, 5, 6)
    torch.testing.assert_close(
        reference_general_score(query, keys, attention.W.weight), attention.score(query, keys)
    )


GENERAL_MISTAKES = {
    "wrong order": (lambda q, k, W: k @ W.T @ q.transpose(1, 2), "wrong order"),
    "forgot W": (lambda q, k, W: q @ k.transpose(1, 2), "you forgot W"),
    "W transposed": (lambda q, k, W: q @ W.T @ k.transpose(1, 2), "Wᵀ instead of W"),
    "softmax": (
        lambda q, k, W: torch.softmax(q @ W @ k.transpose(1, 2), dim=-1),
        "applied the softmax",
    ),
    "scaled": (
        lambda q, k, W: q @ W @ k.transpose(1, 2) / math.sqrt(q.shape[-1]),
        "divided by √d",
    ),
    "W multiplied after the keys": (
        lambda q, k, W: q @ k.transpose(1, 2) @ W,
        "the sizes do not fit",
    ),
    "W on the key side (Wᵀ)": (lambda q, k, W: q @ (k @ W).transpose(1, 2), "Wᵀ instead of W"),
}


@pytest.mark.parametrize("mistake", sorted(GENERAL_MISTAKES))
def test_general_score_checker_names_the_mistake(mistake):
    fn, words = GENERAL_MISTAKES[mistake]
    assert_rejected(check_general_score(fn), words)


def _slice_window(p_t, length, window):  # a negative start wraps around in Python slicing
    mask = torch.zeros(length, dtype=torch.bool)
    mask[int(p_t) - window : int(p_t) + window + 1] = True
    return mask


WINDOW_MISTAKES = {
    "strict inequality": (
        lambda p, n, d: (torch.arange(n) - round(p)).abs() < d,
        "off by one",
    ),
    "not clipped (slicing)": (_slice_window, "near the edge"),
    "not clipped (2D + 1 entries)": (
        lambda p, n, d: torch.ones(2 * d + 1, dtype=torch.bool),
        "clip the window",
    ),
    "centred one to the right": (
        lambda p, n, d: (torch.arange(n) - (round(p) + 1)).abs() <= d,
        "centred on p_t +1",
    ),
    "real-valued centre, not rounded": (
        lambda p, n, d: (torch.arange(n) - p).abs() <= d,
        "nearest source position",
    ),
    "inverted": (lambda p, n, d: (torch.arange(n) - round(p)).abs() > d, "inverted"),
    "float mask": (
        lambda p, n, d: ((torch.arange(n) - round(p)).abs() <= d).float(),
        "make it boolean",
    ),
}


@pytest.mark.parametrize("mistake", sorted(WINDOW_MISTAKES))
def test_local_window_checker_names_the_mistake(mistake):
    fn, words = WINDOW_MISTAKES[mistake]
    assert_rejected(check_local_window(fn), words)


def test_the_local_window_reference_matches_local_attention():
    """Monotonic LocalAttention with p_t = 2 attends exactly where the reference allows."""
    torch.manual_seed(0)
    attention = LocalAttention(4, 4, score="dot", window=1, mode="monotonic")
    query, keys = torch.randn(1, 1, 4), torch.randn(1, 6, 4)
    _, weights = attention(query, keys, keys, positions=2)
    assert torch.equal(weights[0, 0] > 0, reference_local_window(2, 6, 1))


def test_the_local_window_reference_matches_predictive_local_attention():
    """local-p's window is centred on round(p_t), like the reference's."""
    torch.manual_seed(0)
    attention = LocalAttention(4, 4, score="dot", window=2, mode="predictive")
    query, keys = torch.randn(1, 6, 4), torch.randn(1, 12, 4)
    _, weights = attention(query, keys, keys)
    for row, centre in enumerate(attention.last_centres[0].tolist()):
        assert torch.equal(weights[0, row] > 0, reference_local_window(centre, 12, 2))


def test_quiz_questions_are_well_formed():
    assert 3 <= len(QUIZ) <= 4
    for question in QUIZ:
        assert question.grade(question.answer)[0]


# ----------------------------------------------------------------------------- explorer

SRC = Vocab("0123456789 /.abcdefghijklmnopqrstuvwxyzJFMASOND,")
TGT = Vocab("0123456789-")
EXAMPLES = [("14 July 1989", "1989-07-14"), ("01.02.2003", "2003-02-01")]


def _models():
    torch.manual_seed(0)
    kwargs = dict(embed_dim=8, hidden_dim=8, feed_context=False, bidirectional=False)
    return {
        "dot": build_attention_model(len(SRC), len(TGT), attention="dot", **kwargs),
        "local-p": build_attention_model(
            len(SRC),
            len(TGT),
            attention=LocalAttention(8, 8, window=2, mode="predictive"),
            **kwargs,
        ),
    }


@pytest.fixture(scope="module")
def models():
    return _models()


def test_alignment_case_has_one_row_per_output_step_and_restores_the_window(models):
    case = alignment_case(models["local-p"], "14 July 1989", SRC, TGT, window=7, target="x")
    assert case["weights"].shape == (len(case["labels"]), len("14 July 1989"))
    assert len(case["centres"]) == len(case["labels"])
    assert case["window"] == 7 and case["exact"] is False
    assert models["local-p"].decoder.attention.window == 2, "the trained window is restored"
    assert alignment_case(models["dot"], "1.2.2003", SRC, TGT)["centres"] is None


@pytest.mark.parametrize("window", [0, 30])
def test_alignment_draws_at_the_window_extremes(models, window):
    case = alignment_case(models["local-p"], "01.02.2003", SRC, TGT, window=window)
    assert torch.isfinite(case["weights"]).all()
    if window == 30:  # the whole source fits in the window: every row sums to 1
        torch.testing.assert_close(case["weights"].sum(-1), torch.ones(len(case["labels"])))
    assert draw_alignment(case, title="extreme") is not None


def test_alignment_case_rejects_bad_input(models):
    with pytest.raises(ValueError, match="not in the vocabulary"):
        alignment_case(models["dot"], "14 July 1989 ☃", SRC, TGT)
    with pytest.raises(ValueError, match="empty"):
        alignment_case(models["dot"], "", SRC, TGT)


def test_explorer_controls_change_the_output(models, shown):
    explorer = luong_explorer(models, SRC, TGT, EXAMPLES)
    plots = {shown(explorer.plot)}
    assert explorer.window.disabled, "the window means nothing to global attention"
    first = explorer.case
    explorer.example.value = 1
    assert explorer.case["source"] == "01.02.2003"
    explorer.score.value = "local-p"
    assert not explorer.window.disabled
    assert explorer.case["window"] == 2 and "window D = 2" in explorer.view.value
    before = explorer.case["weights"]
    plots.add(shown(explorer.plot))
    explorer.window.value = 0
    assert explorer.case["window"] == 0
    assert not torch.equal(before, explorer.case["weights"])
    plots.add(shown(explorer.plot))
    assert len(plots) == 3
    explorer.window.value = explorer.window.max
    assert explorer.case["window"] == 30
    assert first["source"] == "14 July 1989"


def test_explorer_shows_a_message_for_bad_input_and_recovers(models, shown):
    explorer = luong_explorer(models, SRC, TGT, EXAMPLES)
    explorer.own.value = "July 4th ☃"
    assert explorer.case is None
    assert "not in the vocabulary" in explorer.view.value
    assert explorer.plot.outputs == (), "no stale plot beside the message"
    explorer.own.value = "4 July 1976"
    assert explorer.case["source"] == "4 July 1976" and explorer.case["target"] is None
    explorer.own.value = ""
    assert explorer.case["source"] == "14 July 1989"
    shown(explorer.plot)


def test_explorer_needs_models_and_examples(models):
    with pytest.raises(ValueError, match="no models"):
        luong_explorer({}, SRC, TGT, EXAMPLES)
    with pytest.raises(ValueError, match="no examples"):
        luong_explorer(models, SRC, TGT, [])
