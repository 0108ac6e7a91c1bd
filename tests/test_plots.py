"""plots: attention heatmaps, training curves and accuracy by length."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from course_utils.plots import (
    plot_accuracy_by_length,
    plot_attention,
    plot_history,
    plot_weights,
)
from course_utils.training import BucketScore, History


def _weights(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.random((rows, cols))
    return w / w.sum(axis=1, keepdims=True)


def _labels(ax_labels):
    return [t.get_text() for t in ax_labels]


# ----------------------------------------------------------------------------- plot_attention


def test_plot_attention_labels_rows_with_outputs_and_columns_with_sources():
    src, tgt = list("abcd"), list("xyz")
    ax = plot_attention(_weights(3, 4), src, tgt, title="alignment")
    assert isinstance(ax, plt.Axes)
    assert _labels(ax.get_xticklabels()) == src
    assert _labels(ax.get_yticklabels()) == tgt
    assert ax.get_title() == "alignment"
    assert "source" in ax.get_xlabel() and "output" in ax.get_ylabel()


def test_plot_attention_annotates_small_maps_with_their_values():
    w = _weights(3, 4)
    ax = plot_attention(w, list("abcd"), list("xyz"))
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 12
    assert texts == [f"{v:.2f}" for v in w.ravel()]


def test_plot_attention_keeps_every_label_on_a_40_by_40_map_and_does_not_annotate_it():
    src = [f"s{i}" for i in range(40)]
    tgt = [f"t{i}" for i in range(40)]
    ax = plot_attention(_weights(40, 40), src, tgt)
    assert _labels(ax.get_xticklabels()) == src
    assert _labels(ax.get_yticklabels()) == tgt
    assert len(ax.texts) == 0
    width, height = ax.figure.get_size_inches()
    assert width <= 14 and height <= 14


def test_plot_attention_annotate_flag_overrides_the_default():
    ax = plot_attention(_weights(3, 4), list("abcd"), list("xyz"), annotate=False)
    assert len(ax.texts) == 0


@pytest.mark.parametrize(("shape", "n_tgt", "n_src"), [((3, 4), 4, 3), ((2, 5), 3, 4)])
def test_plot_attention_shape_mismatch_names_both_shapes(shape, n_tgt, n_src):
    with pytest.raises(ValueError) as info:
        plot_attention(np.ones(shape), ["s"] * n_src, ["t"] * n_tgt)
    message = str(info.value)
    assert str(shape) in message
    assert f"({n_tgt}, {n_src})" in message


def test_plot_attention_rejects_a_batch_of_maps():
    with pytest.raises(ValueError, match=r"shape \(1, 3, 4\)"):
        plot_attention(np.ones((1, 3, 4)), list("abcd"), list("xyz"))


def test_plot_attention_accepts_tensors_and_numpy_alike():
    w = _weights(3, 4)
    from_numpy = plot_attention(w, list("abcd"), list("xyz"))
    tensor = torch.tensor(w, dtype=torch.float32, requires_grad=True)
    from_tensor = plot_attention(tensor, list("abcd"), list("xyz"))
    assert [t.get_text() for t in from_tensor.texts] == [t.get_text() for t in from_numpy.texts]
    np.testing.assert_allclose(
        from_tensor.collections[0].get_array(), from_numpy.collections[0].get_array(), atol=1e-6
    )


def test_plot_attention_draws_on_a_given_axes():
    _, ax = plt.subplots()
    assert plot_attention(_weights(2, 2), ["a", "b"], ["x", "y"], ax=ax, colorbar=False) is ax


# ----------------------------------------------------------------------------- plot_history


def test_plot_history_draws_the_smoothed_and_raw_loss():
    history = History(step=[1, 2, 3, 4], loss=[4.0, 2.0, 3.0, 1.0])
    ax = plot_history(history, window=2, label="gru")
    smoothed, raw = ax.get_lines()
    assert list(smoothed.get_xdata()) == [1, 2, 3, 4]
    assert list(smoothed.get_ydata()) == pytest.approx([4.0, 3.0, 2.5, 2.0])
    assert list(raw.get_ydata()) == [4.0, 2.0, 3.0, 1.0]
    assert raw.get_color() == smoothed.get_color()
    assert ax.get_legend() is not None


def test_plot_history_overlays_runs_on_one_axes():
    a = History(step=[1, 2], loss=[1.0, 0.5])
    b = History(step=[1, 2], loss=[2.0, 1.0])
    ax = plot_history(a, label="a")
    assert plot_history(b, ax=ax, label="b") is ax
    assert len(ax.get_lines()) == 4


# ----------------------------------------------------------------------------- accuracy by length


def _scores(token, exact):
    return [
        BucketScore(4 + 10 * i, 13 + 10 * i, 10, e, t) for i, (t, e) in enumerate(zip(token, exact))
    ]


def test_plot_accuracy_by_length_draws_one_bar_group_per_model():
    results = {
        "bottleneck": _scores([0.9, 0.5, 0.2], [0.8, 0.3, 0.0]),
        "attention": _scores([1.0, 0.95, 0.9], [1.0, 0.9, 0.8]),
    }
    fig = plot_accuracy_by_length(results, title="reversal")
    token_ax, exact_ax = fig.axes[:2]
    for ax, metric in ((token_ax, "token_accuracy"), (exact_ax, "exact_match")):
        assert len(ax.containers) == 2
        for container, name in zip(ax.containers, results):
            heights = [bar.get_height() for bar in container]
            assert heights == pytest.approx([getattr(s, metric) for s in results[name]])
        assert _labels(ax.get_xticklabels()) == ["4-13", "14-23", "24-33"]
    assert [t.get_text() for t in token_ax.get_legend().get_texts()] == list(results)
    assert fig.get_suptitle() == "reversal"


def test_plot_accuracy_by_length_with_one_model_has_no_legend():
    fig = plot_accuracy_by_length({"only": _scores([0.5, 0.4], [0.2, 0.1])})
    assert len(fig.axes[0].containers) == 1
    assert fig.axes[0].get_legend() is None


def test_plot_accuracy_by_length_rejects_empty_results():
    with pytest.raises(ValueError, match="no results to plot"):
        plot_accuracy_by_length({})


# ----------------------------------------------------------------------------- plot_weights


def test_plot_weights_draws_one_labelled_bar_per_weight():
    weights = torch.tensor([0.1, 0.2, 0.7])
    ax = plot_weights(weights, ["a", "b", "c"], title="softmax")
    assert [bar.get_height() for bar in ax.patches] == pytest.approx([0.1, 0.2, 0.7])
    assert _labels(ax.get_xticklabels()) == ["a", "b", "c"]
    assert ax.get_title() == "softmax"


def test_plot_weights_rejects_mismatched_labels():
    with pytest.raises(ValueError, match="3 weights but 2 labels"):
        plot_weights([0.2, 0.3, 0.5], ["a", "b"])
