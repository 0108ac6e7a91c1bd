"""Lesson 04: the scaled-attention and causal-mask checkers, and the √d_k scaling explorer."""

from __future__ import annotations

import math

import ipywidgets as widgets
import pytest
import torch
from checks import assert_rejected
from torch.nn import functional as F

from course_utils.attention import causal_mask, scaled_dot_product_attention
from course_utils.exercises import (
    QUIZZES,
    check_causal_mask,
    check_scaled_attention,
    reference_causal_mask,
    reference_scaled_attention,
)
from course_utils.widgets import (
    DK_CHOICES,
    plot_scaling,
    row_entropy,
    sample_scores,
    scaling_explorer,
    score_statistics,
    softmax_grad_norm,
    softmax_jacobian,
)

# ----------------------------------------------------------------------------- checkers: common


def test_the_references_agree_with_course_utils_and_pytorch():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 4, 8), torch.randn(2, 6, 8), torch.randn(2, 6, 3)
    mask = torch.rand(2, 4, 6) > 0.3
    mask[..., 0] = True  # no fully masked row, where PyTorch's backends may differ
    out, weights = reference_scaled_attention(q, k, v, mask)
    ours, our_weights = scaled_dot_product_attention(q, k, v, mask)
    assert torch.allclose(out, ours, atol=1e-6) and torch.allclose(weights, our_weights)
    assert torch.allclose(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), atol=1e-5)
    assert torch.equal(reference_causal_mask(5), causal_mask(5))


def test_the_quiz_has_three_or_four_questions():
    assert 3 <= len(QUIZZES["04"]) <= 4


# ----------------------------------------------------------------------------- scaled attention


def _attention(scale=None, dim=-1, values="v", fill=None, invert=False, zero_after=True):
    """A configurable (mostly wrong) learner: scale="none"/"d_k", fill=-inf or a number."""

    def attention(q, k, v, mask=None):
        d_k = q.shape[-1]
        factor = {None: 1 / math.sqrt(d_k), "none": 1.0, "d_k": 1 / d_k}[scale]
        scores = q @ k.transpose(-2, -1) * factor
        if mask is not None:
            blocked = mask if invert else ~mask
            value = torch.finfo(scores.dtype).min if fill is None else fill
            scores = scores.masked_fill(blocked, value)
        weights = torch.softmax(scores, dim=dim)
        if mask is not None and zero_after:
            weights = weights * ~blocked
        return weights @ (v if values == "v" else k), weights

    return attention


def test_scaled_attention_accepts_the_reference_by_another_route():
    def via_course_utils(q, k, v, mask=None):
        return scaled_dot_product_attention(q, k, v, mask)

    assert check_scaled_attention(via_course_utils).passed


@pytest.mark.parametrize(
    ("wrong", "words"),
    [
        (_attention(scale="none"), "without the scale"),
        (_attention(scale="d_k"), "you divided the scores by d_k = 16; divide by √d_k"),
        (_attention(dim=-2), "softmax over the wrong dim"),
        (_attention(values="k"), "you returned weights @ k"),
        (_attention(invert=True), "your mask is inverted"),
        (_attention(fill=float("-inf"), zero_after=False), "gave NaN"),
        (_attention(fill=-1e9, zero_after=False), "got uniform weights"),
    ],
    ids=["no-scale", "scale-by-d_k", "softmax-dim-2", "weights@k", "inverted", "-inf", "uniform"],
)
def test_scaled_attention_names_the_typical_mistake(wrong, words):
    assert_rejected(check_scaled_attention(wrong), words)


def test_scaled_attention_rejects_an_ignored_mask():
    def ignores_mask(q, k, v, mask=None):
        return reference_scaled_attention(q, k, v)

    assert_rejected(check_scaled_attention(ignores_mask), "the mask was ignored")


def test_scaled_attention_rejects_masking_the_weights_after_the_softmax():
    def masks_after(q, k, v, mask=None):
        weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
        weights = weights * mask if mask is not None else weights
        return weights @ v, weights

    assert_rejected(check_scaled_attention(masks_after), "mask the scores before the softmax")


def test_scaled_attention_asks_for_a_pair():
    def out_only(q, k, v, mask=None):
        return reference_scaled_attention(q, k, v, mask)[0]

    assert_rejected(check_scaled_attention(out_only), "return a pair: (out, weights)")


# ----------------------------------------------------------------------------- causal mask


@pytest.mark.parametrize(
    ("wrong", "words"),
    [
        (lambda n: torch.ones(n, n, dtype=torch.bool).triu(), "upper triangular"),
        (lambda n: torch.ones(n, n, dtype=torch.bool).tril(-1), "the diagonal is False"),
        (lambda n: torch.ones(n, n, dtype=torch.bool).triu(1), "True on the future positions"),
        (
            lambda n: torch.full((n, n), float("-inf")).triu(1),
            "additive float mask (0 and -inf)",
        ),
        (lambda n: torch.ones(n, n).tril(), "dtype torch.float32; return booleans"),
        (lambda n: torch.ones(n, n, dtype=torch.bool), "should be True exactly where j <= i"),
        (lambda n: [[True] * n] * n, "return a torch.Tensor, got list"),
        (lambda n: torch.ones(n, dtype=torch.bool), "has shape"),
    ],
    ids=["triu", "no-diagonal", "inverted", "additive", "float", "all-true", "list", "shape"],
)
def test_causal_mask_names_the_typical_mistake(wrong, words):
    assert_rejected(check_causal_mask(wrong), words)


# ----------------------------------------------------------------------------- explorer logic


def test_dk_choices_are_the_powers_of_two_from_4_to_1024():
    assert DK_CHOICES == (4, 8, 16, 32, 64, 128, 256, 512, 1024)


def test_sample_scores_is_seeded_and_scaling_only_divides_by_sqrt_dk():
    raw = sample_scores(64, scaled=False, n_queries=8, n_keys=5, seed=3)
    assert raw.shape == (8, 5)
    assert torch.equal(raw, sample_scores(64, scaled=False, n_queries=8, n_keys=5, seed=3))
    assert torch.allclose(sample_scores(64, True, 8, 5, 3), raw / 8)
    assert not torch.equal(raw, sample_scores(64, False, 8, 5, seed=4))


@pytest.mark.parametrize("d_k", [4, 64, 1024])
def test_unscaled_variance_grows_as_dk_and_scaled_variance_stays_near_one(d_k):
    assert score_statistics(d_k, scaled=False)["variance"] / d_k == pytest.approx(1.0, rel=0.2)
    assert score_statistics(d_k, scaled=True)["variance"] == pytest.approx(1.0, rel=0.2)


def test_without_scaling_the_softmax_saturates_and_its_gradient_vanishes():
    small, large = score_statistics(4, scaled=False), score_statistics(1024, scaled=False)
    assert large["max_weight"] > 0.9 > small["max_weight"]
    assert large["entropy"] < 0.2 < small["entropy"]
    assert large["grad_norm"] < small["grad_norm"] / 100
    assert large["grad_norm_mean"] < small["grad_norm_mean"] / 3


def test_with_scaling_the_softmax_stays_put_across_dk():
    stats = [score_statistics(d_k, scaled=True) for d_k in (4, 64, 1024)]
    for key in ("max_weight", "entropy", "grad_norm"):
        values = [s[key] for s in stats]
        assert max(values) < 1.5 * min(values), (key, values)


def test_softmax_jacobian_matches_autograd():
    scores = torch.randn(6, dtype=torch.float64)
    autograd = torch.autograd.functional.jacobian(lambda s: torch.softmax(s, -1), scores)
    assert torch.allclose(softmax_jacobian(torch.softmax(scores, -1)), autograd)
    assert float(softmax_grad_norm(scores)) == pytest.approx(float(autograd.norm()))


def test_row_entropy_is_zero_for_one_hot_and_log_n_for_uniform():
    weights = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]])
    assert torch.allclose(row_entropy(weights), torch.tensor([0.0, math.log(4)]))


@pytest.mark.parametrize(
    "kwargs", [{"d_k": 0}, {"d_k": 2.5}, {"d_k": 8, "n_keys": 1}, {"d_k": 8, "n_queries": 0}]
)
def test_bad_sizes_raise_a_clear_value_error(kwargs):
    with pytest.raises(ValueError, match="must be an int"):
        score_statistics(**kwargs)


@pytest.mark.parametrize("scaled", [True, False])
@pytest.mark.parametrize("d_k", [DK_CHOICES[0], DK_CHOICES[-1]])
def test_plot_scaling_draws_the_histogram_and_the_weights_at_the_extremes(d_k, scaled):
    scores = sample_scores(d_k, scaled, n_queries=32)
    fig = plot_scaling(scores, d_k, scaled)
    hist, bars = fig.axes
    assert hist.get_xlim() == (-100.0, 100.0)  # fixed, so the spread is visible
    assert f"std {float(scores.std()):.1f}" in hist.get_title()
    heights = [patch.get_height() for patch in bars.patches]
    assert len(heights) == 16
    assert sum(heights) == pytest.approx(1.0, abs=1e-6)
    assert f"d_k = {d_k}" in fig._suptitle.get_text()


def test_explorer_controls_change_the_readout_and_every_extreme_draws(shown):
    box = scaling_explorer(n_queries=64)
    plots = {shown(box.out)}
    assert isinstance(box, widgets.VBox)
    assert box.d_k.style.description_width == "initial"
    first = box.readout.value
    assert "d_k = 64" in first and "scores ÷ √d_k" in first
    seen = {first}
    for d_k in (DK_CHOICES[0], DK_CHOICES[-1]):
        for scaled in (True, False):
            box.d_k.value, box.scaled.value = d_k, scaled
            assert f"d_k = {d_k}" in box.readout.value
            assert "⚠️" not in box.readout.value
            seen.add(box.readout.value)
            plots.add(shown(box.out))
    assert len(seen) == 5
    assert len(plots) == 5  # every setting drew its own plot, in place of the last one
    box.d_k.value, box.scaled.value = 1024, False
    assert "no scaling" in box.readout.value
