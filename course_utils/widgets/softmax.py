"""Lesson 00: the softmax temperature slider, the course's first widget."""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as widgets
import torch

from ..plots import plot_weights
from ._show import show_figure


def temperature_softmax(scores: Sequence[float] | torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax(scores / temperature): low temperature sharpens, high temperature flattens."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    scores = torch.as_tensor(scores, dtype=torch.float64)
    return torch.softmax(scores / temperature, dim=-1)


def row_entropy(weights: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of each row of ``weights (..., n)`` (0 one-hot, log n uniform)."""
    return -torch.special.xlogy(weights, weights).sum(dim=-1)  # xlogy(0, 0) = 0


def entropy(weights: torch.Tensor) -> float:
    """Shannon entropy in nats of one distribution ``(n,)``, as a number."""
    return float(row_entropy(weights))


def _check_scores(scores) -> None:
    try:
        values = torch.as_tensor(scores, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"scores must be numbers, got {scores!r}") from err
    if values.dim() != 1:
        raise ValueError(f"give one number per label, a flat list; got shape {tuple(values.shape)}")
    if values.numel() == 0:
        raise ValueError("the softmax needs at least one score (and one label per score)")


def softmax_explorer(
    scores: Sequence[float] = (2.0, 1.0, 0.5, -1.0),
    labels: Sequence[str] = ("the", "cat", "sat", "down"),
) -> widgets.VBox:
    """A temperature slider over softmax weights: the course's first widget."""
    _check_scores(scores)
    if len(scores) != len(labels):
        raise ValueError(f"{len(scores)} scores but {len(labels)} labels")
    slider = widgets.FloatLogSlider(
        value=1.0,
        base=10,
        min=-2,
        max=2,
        step=0.05,
        description="temperature",
        continuous_update=True,
        readout_format=".2f",
        style={"description_width": "initial"},
    )
    readout = widgets.HTML()
    out = widgets.Output()

    def update(_=None):
        weights = temperature_softmax(scores, slider.value)
        readout.value = (
            f"temperature {slider.value:.2f}: largest weight <b>{float(weights.max()):.2f}</b>, "
            f"entropy <b>{entropy(weights):.2f}</b> nats (uniform would be "
            f"{torch.log(torch.tensor(float(len(scores)))):.2f})"
        )
        plot_weights(weights, labels, title=f"softmax(scores / {slider.value:.2f})")
        show_figure(out)

    slider.observe(update, names="value")
    update()
    box = widgets.VBox([slider, readout, out])
    box.slider, box.readout, box.out = slider, readout, out
    return box
