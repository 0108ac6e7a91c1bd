"""The course's plots: attention heatmaps, training curves, accuracy by input length.

One function per kind of picture, so every lesson draws it the same way. Each takes an
optional ``ax`` and returns the axes (or figure) it drew on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch

from .training import BucketScore, History


def _to_numpy(weights) -> np.ndarray:
    if isinstance(weights, torch.Tensor):
        weights = weights.detach().float().cpu().numpy()
    return np.asarray(weights, dtype=float)


def _tick_fontsize(n: int) -> int:
    return 11 if n <= 12 else 9 if n <= 24 else 7


def plot_attention(
    weights,
    src_tokens: Sequence[str],
    tgt_tokens: Sequence[str],
    ax: plt.Axes | None = None,
    title: str | None = None,
    cmap: str = "viridis",
    annotate: bool | None = None,
    colorbar: bool = True,
) -> plt.Axes:
    """Heatmap of attention ``weights (len(tgt_tokens), len(src_tokens))``.

    Rows are outputs (queries), columns are source tokens (keys); every row sums to 1. The
    figure grows with the sequence and the labels shrink, so a 40x40 map stays readable.
    Values are printed in the cells when the map is small (``annotate=None`` decides).
    """
    w = _to_numpy(weights)
    if w.ndim != 2 or w.shape != (len(tgt_tokens), len(src_tokens)):
        raise ValueError(
            f"weights have shape {w.shape}, but there are {len(tgt_tokens)} target and "
            f"{len(src_tokens)} source tokens: expected ({len(tgt_tokens)}, {len(src_tokens)})"
        )
    rows, cols = w.shape
    if ax is None:
        cell = 0.45 if max(rows, cols) <= 12 else 0.22
        width = min(max(3.5, cols * cell + 1.5), 14)
        height = min(max(2.5, rows * cell + 0.8), 14)
        _, ax = plt.subplots(figsize=(width, height))
    if annotate is None:
        annotate = max(rows, cols) <= 10
    sns.heatmap(
        w,
        ax=ax,
        cmap=cmap,
        vmin=0.0,
        vmax=1.0,
        square=True,
        annot=annotate,
        fmt=".2f",
        annot_kws={"fontsize": 8},
        xticklabels=[str(t) for t in src_tokens],
        yticklabels=[str(t) for t in tgt_tokens],
        cbar=colorbar,
        cbar_kws={"shrink": 0.6, "label": "attention weight"} if colorbar else None,
    )
    ax.tick_params(axis="x", labelsize=_tick_fontsize(cols), rotation=0)
    ax.tick_params(axis="y", labelsize=_tick_fontsize(rows), rotation=0)
    ax.set_xlabel("source token (key)")
    ax.set_ylabel("output token (query)")
    if title:
        ax.set_title(title)
    return ax


def plot_history(history: History, ax: plt.Axes | None = None, window: int = 25, label=None):
    """Training loss per step (light) and its running mean over ``window`` steps (bold)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    (line,) = ax.plot(history.step, history.smoothed_loss(window), lw=2, label=label)
    ax.plot(history.step, history.loss, lw=0.6, alpha=0.3, color=line.get_color())
    ax.set_xlabel("training step")
    ax.set_ylabel("loss (cross-entropy)")
    ax.grid(alpha=0.3)
    if label:
        ax.legend()
    return ax


def plot_accuracy_by_length(
    results: Mapping[str, Sequence[BucketScore]], title: str | None = None
) -> plt.Figure:
    """Token accuracy and exact match per input-length bucket, one bar colour per model."""
    if not results:
        raise ValueError("no results to plot: pass {model name: accuracy_by_length(...)}")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    names = list(results)
    labels = [s.label for s in results[names[0]]]
    x = np.arange(len(labels))
    width = 0.8 / len(names)
    palette = sns.color_palette("colorblind", len(names))
    for ax, metric, nice in zip(axes, ("token_accuracy", "exact_match"), ("token", "exact match")):
        for k, name in enumerate(names):
            values = [getattr(s, metric) for s in results[name]]
            bars = ax.bar(
                x + (k - (len(names) - 1) / 2) * width, values, width, label=name, color=palette[k]
            )
            ax.bar_label(bars, fmt="%.2f", fontsize=8, padding=1)
        ax.set_xticks(x, labels)
        ax.set_xlabel("input length")
        ax.set_title(f"{nice} accuracy")
        ax.set_ylim(0, 1.25)  # headroom for the bar labels and the legend
        ax.set_yticks(np.linspace(0, 1, 6))
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("accuracy")
    if len(names) > 1:  # one row above the bars, so it never hides a label
        axes[0].legend(loc="upper center", ncol=len(names), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_weights(weights, labels: Sequence[str], ax: plt.Axes | None = None, title=None):
    """Bar chart of one distribution (e.g. softmax weights over a few keys)."""
    w = _to_numpy(weights).ravel()
    if len(w) != len(labels):
        raise ValueError(f"{len(w)} weights but {len(labels)} labels")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3))
    bars = ax.bar(range(len(w)), w, color=sns.color_palette("colorblind")[0])
    ax.bar_label(bars, fmt="%.2f", fontsize=9, padding=1)
    ax.set_xticks(range(len(w)), labels)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("weight")
    if title:
        ax.set_title(title)
    return ax
