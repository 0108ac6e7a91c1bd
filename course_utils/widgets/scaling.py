"""Lesson 04: why scaled dot-product attention divides the scores by √d_k.

For random q, k with unit-variance entries, Var(q·k) = d_k. Without the 1/√d_k scale the
scores spread out as d_k grows, the softmax saturates (one weight near 1, entropy near 0) and
its Jacobian diag(w) - w wᵀ, the gradient that reaches the scores, vanishes.
"""

from __future__ import annotations

import math

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch

from ._show import clear, show_figure, warning_html
from .softmax import row_entropy

__all__ = [
    "DK_CHOICES",
    "plot_scaling",
    "row_entropy",
    "sample_scores",
    "scaling_explorer",
    "score_statistics",
    "softmax_grad_norm",
    "softmax_jacobian",
]

DK_CHOICES = tuple(2**i for i in range(2, 11))  # 4, 8, ..., 1024
HIST_RANGE = 100.0  # the histogram's fixed x-range, about 3 std of unscaled scores at d_k=1024


def _check_sizes(d_k, n_keys, n_queries) -> None:
    for name, value, least in (("d_k", d_k, 1), ("n_keys", n_keys, 2), ("n_queries", n_queries, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name} must be an int >= {least}, got {value!r}")


def sample_scores(
    d_k: int, scaled: bool = True, n_queries: int = 256, n_keys: int = 16, seed: int = 0
) -> torch.Tensor:
    """Scores ``(n_queries, n_keys)``: q·k (÷ √d_k if ``scaled``) for random N(0, 1) q, k.

    Every query gets its own keys; the same seed gives the same q, k for both settings.
    """
    _check_sizes(d_k, n_keys, n_queries)
    generator = torch.Generator().manual_seed(seed)
    q = torch.randn(n_queries, 1, d_k, generator=generator)  # (Q, 1, d_k)
    k = torch.randn(n_queries, n_keys, d_k, generator=generator)  # (Q, K, d_k)
    scores = (q * k).sum(dim=-1)  # (Q, K)
    return scores / math.sqrt(d_k) if scaled else scores


def softmax_jacobian(weights: torch.Tensor) -> torch.Tensor:
    """d softmax(s) / d s = diag(w) - w wᵀ for weights ``(..., n)``: ``(..., n, n)``."""
    return torch.diag_embed(weights) - weights[..., :, None] * weights[..., None, :]


def softmax_grad_norm(scores: torch.Tensor) -> torch.Tensor:
    """Frobenius norm of the softmax Jacobian at each row of ``scores (..., n)``: ``(...,)``."""
    weights = torch.softmax(scores.double(), dim=-1)
    return torch.linalg.matrix_norm(softmax_jacobian(weights)).to(scores.dtype)


def score_statistics(
    d_k: int, scaled: bool = True, n_queries: int = 256, n_keys: int = 16, seed: int = 0
) -> dict[str, float]:
    """What the explorer reads out, over ``n_queries`` random queries of ``n_keys`` keys each:

    ``variance`` of the scores, mean ``max_weight`` and ``entropy`` of the softmax weights,
    and the softmax Jacobian's Frobenius norm for a typical query (``grad_norm``, the median)
    and on average (``grad_norm_mean``).
    """
    return _statistics(sample_scores(d_k, scaled, n_queries, n_keys, seed))


def _statistics(scores: torch.Tensor) -> dict[str, float]:
    weights = torch.softmax(scores.double(), dim=-1)
    grad = softmax_grad_norm(scores.double())
    return {
        "variance": float(scores.double().var()),
        "max_weight": float(weights.max(dim=-1).values.mean()),
        "entropy": float(row_entropy(weights).mean()),
        "grad_norm": float(grad.median()),
        "grad_norm_mean": float(grad.mean()),
    }


def _readout_html(d_k: int, scaled: bool, stats: dict[str, float], n_keys: int) -> str:
    setting = "scores ÷ √d_k" if scaled else "no scaling"
    return (
        f"<b>d_k = {d_k}</b>, {setting}: score variance <b>{stats['variance']:.3g}</b> "
        f"(d_k = {d_k}) · largest weight <b>{stats['max_weight']:.2f}</b> on average · "
        f"entropy <b>{stats['entropy']:.2f}</b> nats (uniform: {math.log(n_keys):.2f}) · "
        f"softmax gradient norm <b>{stats['grad_norm']:.2g}</b> (typical query)"
    )


def plot_scaling(scores: torch.Tensor, d_k: int, scaled: bool) -> plt.Figure:
    """Histogram of all ``scores (Q, K)`` on a fixed x-range, and query 0's softmax weights."""
    fig, (ax_hist, ax_bar) = plt.subplots(1, 2, figsize=(10, 3.2))
    values = scores.flatten().numpy()
    bins = np.linspace(-HIST_RANGE, HIST_RANGE, 161)
    ax_hist.hist(np.clip(values, -HIST_RANGE, HIST_RANGE), bins=bins, color="#4c72b0")
    query = np.clip(scores[0].numpy(), -HIST_RANGE, HIST_RANGE)  # the query on the right
    ax_hist.plot(query, np.zeros_like(query), "|", color="#dd8452", ms=18, mew=1.5)
    ax_hist.set(
        xlim=(-HIST_RANGE, HIST_RANGE),
        xlabel="score" + (" q·k / √d_k" if scaled else " q·k"),
        ylabel="count",
        title=f"all scores: std {float(scores.std()):.1f} (orange: query 0)",
    )
    weights = torch.softmax(scores[0].double(), dim=-1).numpy()
    ax_bar.bar(range(len(weights)), weights, color="#dd8452")
    ax_bar.set(
        ylim=(0, 1.05),
        xlabel="key",
        ylabel="weight",
        title=f"softmax weights of query 0 (largest {weights.max():.2f})",
    )
    ax_bar.set_xticks(range(len(weights)))
    ax_bar.tick_params(axis="x", labelsize=7)
    fig.suptitle(f"d_k = {d_k}, " + ("scaled by 1/√d_k" if scaled else "not scaled"), y=1.02)
    return fig


def scaling_explorer(n_keys: int = 16, n_queries: int = 256, seed: int = 0) -> widgets.VBox:
    """A d_k slider and a scaling toggle -> score histogram, one query's softmax weights and
    the readouts (variance, largest weight, entropy, gradient norm) update together."""
    _check_sizes(4, n_keys, n_queries)
    d_k = widgets.SelectionSlider(
        options=list(DK_CHOICES),
        value=64,
        description="d_k",
        continuous_update=False,
        style={"description_width": "initial"},
    )
    scaled = widgets.ToggleButtons(
        options=[("scores ÷ √d_k", True), ("no scaling", False)],
        value=True,
        description="scaling",
        style={"description_width": "initial"},
    )
    readout = widgets.HTML()
    out = widgets.Output()

    def update(_=None):
        try:
            scores = sample_scores(d_k.value, scaled.value, n_queries, n_keys, seed)
            stats = _statistics(scores)
        except ValueError as err:
            readout.value = warning_html(err)
            clear(out)
            return
        readout.value = _readout_html(d_k.value, scaled.value, stats, n_keys)
        plot_scaling(scores, d_k.value, scaled.value)
        show_figure(out)

    d_k.observe(update, names="value")
    scaled.observe(update, names="value")
    update()
    box = widgets.VBox([widgets.HBox([d_k, scaled]), readout, out])
    box.d_k, box.scaled, box.readout, box.out = d_k, scaled, readout, out
    return box
