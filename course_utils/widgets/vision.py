"""Lesson 09: see an image as patches and what a Vision Transformer's CLS token attends to.

``plot_patches`` cuts a digit into its numbered patches; ``cls_attention`` gives the CLS
token's attention over the patch grid for one layer and head, their mean, or the rollout
through all layers; ``plot_attention_overlay`` lays it over the image; ``position_similarity``
and ``plot_position_similarity`` draw the cosine similarity of learned position embeddings as
in the ViT paper; ``vit_explorer`` wires an image index, a layer and a head to the overlay and
the prediction.
"""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
from matplotlib.patches import Rectangle
from torch.nn import functional as F

from ..attention import record_attention
from ..training import evaluating
from ..vit import VisionTransformer, attention_rollout, cls_attention_map
from ._show import clear, show_figure, warning_html

__all__ = [
    "cls_attention",
    "classify_image",
    "plot_attention_overlay",
    "plot_patches",
    "plot_position_similarity",
    "position_similarity",
    "vit_explorer",
]

_WIDE = {"description_width": "initial"}
ROLLOUT, MEAN = "rollout", "mean"


def _image_2d(image: torch.Tensor) -> torch.Tensor:
    """A ``(H, W)`` CPU float image from ``(H, W)``, ``(1, H, W)`` or ``(1, 1, H, W)``."""
    image = image.detach().float().cpu()
    while image.dim() > 2:
        if image.shape[0] != 1:
            raise ValueError(f"expected one grey image, got shape {tuple(image.shape)}")
        image = image[0]
    return image


def plot_patches(
    image: torch.Tensor, patch_size: int, ax: plt.Axes | None = None, title: str | None = None
) -> plt.Axes:
    """A grey image with its ``patch_size`` grid drawn and each patch numbered in row-major
    order (the order of the ViT's tokens)."""
    image = _image_2d(image)
    height, width = image.shape
    if patch_size < 1 or height % patch_size or width % patch_size:
        raise ValueError(f"patch_size={patch_size} must divide the image size {height}×{width}")
    if ax is None:
        _, ax = plt.subplots(figsize=(3.2, 3.2))
    ax.imshow(image.numpy(), cmap="gray_r", vmin=0, vmax=1)
    grid_w = width // patch_size
    for row in range(height // patch_size):
        for col in range(grid_w):
            y, x = row * patch_size - 0.5, col * patch_size - 0.5
            ax.add_patch(Rectangle((x, y), patch_size, patch_size, fill=False, ec="#dd8452", lw=2))
            ax.text(
                x + 0.15,
                y + 0.15,
                str(row * grid_w + col),
                color="#1f4e99",
                fontsize=8,
                va="top",
                ha="left",
                fontweight="bold",
            )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or f"{patch_size}×{patch_size} patches, row-major")
    return ax


def _check_layer_head(model: VisionTransformer, layer, head) -> None:
    num_layers, num_heads = len(model.layers), model.layers[0].self_attn.num_heads
    if layer != ROLLOUT and not (isinstance(layer, int) and 0 <= layer < num_layers):
        raise ValueError(f"layer must be 'rollout' or in 0..{num_layers - 1}, got {layer!r}")
    if head != MEAN and not (isinstance(head, int) and 0 <= head < num_heads):
        raise ValueError(f"head must be 'mean' or in 0..{num_heads - 1}, got {head!r}")


@torch.no_grad()
def classify_image(model: VisionTransformer, image: torch.Tensor) -> torch.Tensor:
    """``(10,)`` class probabilities on the CPU for one image ``(C, H, W)``."""
    device = next(model.parameters()).device
    with evaluating(model):
        logits = model(image.reshape(1, -1, *image.shape[-2:]).to(device))  # (1, classes)
    return torch.softmax(logits[0].float(), dim=-1).cpu()


@torch.no_grad()
def cls_attention(
    model: VisionTransformer, image: torch.Tensor, layer: int | str = ROLLOUT, head=MEAN
) -> torch.Tensor:
    """``(grid, grid)``: how much the CLS token attends to each patch of ``image``.

    ``layer`` is a layer index or ``"rollout"`` (all layers, Abnar & Zuidema 2020, heads
    averaged); ``head`` is a head index or ``"mean"`` (ignored for the rollout).
    """
    _check_layer_head(model, layer, head)
    with record_attention(model) as maps:
        classify_image(model, image)
    attentions = [w.float().cpu() for w in maps.layers("self")]  # (1, H, N+1, N+1) each
    if layer == ROLLOUT:
        return cls_attention_map(attention_rollout(attentions), model.grid)[0]
    weights = attentions[layer][0]  # (H, N+1, N+1)
    weights = weights.mean(0) if head == MEAN else weights[head]  # (N+1, N+1)
    return weights[0, 1:].reshape(model.grid, model.grid)  # CLS row, without CLS itself


def plot_attention_overlay(
    image: torch.Tensor,
    attention: torch.Tensor,
    ax: plt.Axes | None = None,
    title: str | None = None,
    alpha: float = 0.6,
) -> plt.Axes:
    """The grey image with a ``(grid, grid)`` attention map over it, each cell covering its
    patch (brighter = more attention; scaled to the map's own maximum)."""
    image = _image_2d(image)
    attention = attention.detach().float().cpu()
    height, width = image.shape
    if ax is None:
        _, ax = plt.subplots(figsize=(3.2, 3.2))
    ax.imshow(image.numpy(), cmap="gray", vmin=0, vmax=1)
    top = float(attention.max()) if float(attention.max()) > 0 else 1.0
    ax.imshow(
        attention.numpy(),
        cmap="inferno",
        alpha=alpha,
        vmin=0,
        vmax=top,
        extent=(-0.5, width - 0.5, height - 0.5, -0.5),
        interpolation="nearest",
    )
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def position_similarity(position_embedding: torch.Tensor) -> torch.Tensor:
    """``(N, d)`` or ``(1, N, d)`` -> ``(N, N)`` cosine similarity of every pair of rows."""
    table = position_embedding.detach().float().cpu()
    if table.dim() == 3:
        table = table[0]
    if table.dim() != 2:
        raise ValueError(f"expected (N, d) position embeddings, got {tuple(table.shape)}")
    unit = F.normalize(table, dim=-1)
    return unit @ unit.T  # (N, N)


def plot_position_similarity(similarity: torch.Tensor, grid: int, title: str | None = None):
    """The ViT paper's figure: for each patch position (row, col) a small ``grid × grid`` map of
    its cosine similarity to every patch position. ``similarity`` is ``(N, N)``, N = grid²,
    patches only (no CLS). Returns the figure."""
    if tuple(similarity.shape) != (grid * grid, grid * grid):
        raise ValueError(
            f"similarity must be ({grid * grid}, {grid * grid}) for a {grid}×{grid} grid, got "
            f"{tuple(similarity.shape)}"
        )
    fig, axes = plt.subplots(grid, grid, figsize=(1.3 * grid + 1, 1.3 * grid), squeeze=False)
    similarity = similarity.detach().float().cpu()
    for index in range(grid * grid):
        ax = axes[index // grid][index % grid]
        image = ax.imshow(
            similarity[index].reshape(grid, grid).numpy(), cmap="viridis", vmin=-1, vmax=1
        )
        ax.plot(index % grid, index // grid, "w+", ms=6)
        ax.set_xticks([])
        ax.set_yticks([])
    for col in range(grid):
        axes[grid - 1][col].set_xlabel(f"col {col}", fontsize=8)
    for row in range(grid):
        axes[row][0].set_ylabel(f"row {row}", fontsize=8)
    fig.colorbar(image, ax=axes, shrink=0.8, label="cosine similarity")
    fig.suptitle(title or "similarity of position embeddings (+ = the patch itself)")
    return fig


def vit_explorer(
    model: VisionTransformer, images: torch.Tensor, labels: torch.Tensor, index: int = 0
) -> widgets.VBox:
    """An image index, a layer (or the rollout) and a head (or their mean) -> the CLS token's
    attention over the image, the prediction and its probability."""
    if len(images) != len(labels) or len(images) == 0:
        raise ValueError(f"need as many labels as images, got {len(images)} and {len(labels)}")
    num_layers, num_heads = len(model.layers), model.layers[0].self_attn.num_heads
    picker = widgets.IntSlider(
        value=min(max(index, 0), len(images) - 1),
        min=0,
        max=len(images) - 1,
        description="test image",
        style=_WIDE,
        continuous_update=False,
    )
    layer = widgets.Dropdown(
        options=[("rollout (all layers)", ROLLOUT)]
        + [(f"layer {i}", i) for i in range(num_layers)],
        value=ROLLOUT,
        description="layer",
        style=_WIDE,
    )
    head = widgets.Dropdown(
        options=[("mean of heads", MEAN)] + [(f"head {h}", h) for h in range(num_heads)],
        value=MEAN,
        description="head",
        style=_WIDE,
    )
    readout = widgets.HTML()
    out = widgets.Output()

    def update(_=None):
        head.disabled = layer.value == ROLLOUT
        i = int(picker.value)
        image, label = images[i], int(labels[i])
        try:
            attention = cls_attention(model, image, layer.value, head.value)
            probs = classify_image(model, image)
        except ValueError as err:
            readout.value = warning_html(err)
            clear(out)
            return
        guess = int(probs.argmax())
        verdict = "✓ right" if guess == label else "✗ wrong"
        where = "rollout through all layers" if layer.value == ROLLOUT else f"layer {layer.value}"
        which = (
            ""
            if layer.value == ROLLOUT
            else (", mean of heads" if head.value == MEAN else f", head {head.value}")
        )
        top = int(attention.argmax())
        readout.value = (
            f"<p>image {i}: label <b>{label}</b>, prediction <b>{guess}</b> "
            f"(p = {float(probs[guess]):.2f}) {verdict}. CLS attention ({where}{which}) is "
            f"largest on patch {top} ({float(attention.max()):.2f}).</p>"
        )
        fig, (ax_image, ax_probs) = plt.subplots(
            1, 2, figsize=(7.5, 3.2), gridspec_kw={"width_ratios": [1, 1.4]}
        )
        plot_attention_overlay(image, attention, ax=ax_image, title=f"CLS attention: {where}")
        colours = ["#55a868" if c == label else "#c8c8c8" for c in range(len(probs))]
        if guess != label:
            colours[guess] = "#c44e52"
        ax_probs.bar(range(len(probs)), probs.numpy(), color=colours)
        ax_probs.set_xticks(range(len(probs)))
        ax_probs.set(ylim=(0, 1.05), xlabel="class", ylabel="probability")
        ax_probs.set_title("prediction (green = true label)", fontsize=9)
        fig.tight_layout()
        show_figure(out)

    for control in (picker, layer, head):
        control.observe(update, names="value")
    update()
    box = widgets.VBox([widgets.HBox([picker, layer, head]), readout, out])
    box.picker, box.layer, box.head, box.readout, box.out = picker, layer, head, readout, out
    return box
