"""Lesson 06: the head explorer. Pick a layer, a head (or all of them) and an example, and see
where each head of a trained Transformer looks.

The logic (``head_maps``, ``offset_mass``, ``plot_heads``) is plain functions; the explorer
wires them to a layer dropdown, a head dropdown and an example slider.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

from ..attention import record_attention
from ..plots import plot_attention
from ..training import evaluating
from ._show import clear, show_figure, warning_html

__all__ = ["head_maps", "heads_explorer", "offset_mass", "plot_heads"]

ALL_HEADS = -1  # the head dropdown's value for "all heads side by side"


@torch.no_grad()
def head_maps(model: torch.nn.Module, tokens: torch.Tensor) -> list[torch.Tensor]:
    """Run ``model`` on ``tokens`` (T,) or (B, T) and return its attention maps, one
    ``(B, H, T, T)`` CPU tensor per layer (recorded with ``record_attention``)."""
    if not isinstance(tokens, torch.Tensor) or tokens.dim() not in (1, 2) or tokens.numel() == 0:
        shape = tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens).__name__
        raise ValueError(f"tokens must be a non-empty (T,) or (B, T) tensor of ids, got {shape}")
    batch = tokens[None] if tokens.dim() == 1 else tokens
    device = next(model.parameters()).device
    with evaluating(model), record_attention(model) as maps:
        model(batch.to(device))
    return [w.float().cpu() for w in maps.layers("self")]


def offset_mass(
    weights: torch.Tensor, offset: int, queries: Sequence[int] | torch.Tensor | None = None
) -> torch.Tensor:
    """Mean attention weight that query ``i`` puts on key ``i + offset``, per head.

    ``weights (B, H, T, T)`` or ``(H, T, T)`` -> ``(H,)``: averaged over the batch and over
    ``queries`` (default: every ``i`` for which ``i + offset`` is a position). 1.0 means the
    head always looks exactly ``offset`` places away.
    """
    if weights.dim() == 3:
        weights = weights[None]
    if weights.dim() != 4 or weights.shape[-1] != weights.shape[-2]:
        raise ValueError(f"weights must be (B, H, T, T) self-attention, got {tuple(weights.shape)}")
    length = weights.shape[-1]
    if queries is None:
        queries = [i for i in range(length) if 0 <= i + offset < length]
    queries = torch.as_tensor(queries, dtype=torch.long).flatten()
    keys = queries + offset
    if len(queries) == 0 or queries.min() < 0 or keys.min() < 0 or keys.max() >= length:
        raise ValueError(
            f"offset {offset} from queries {queries.tolist()} leaves the {length} positions"
        )
    return weights[:, :, queries, keys].mean(dim=(0, 2))  # (H,)


def plot_heads(
    weights: torch.Tensor,
    tokens: Sequence[str],
    head: int | None = None,
    layer: int = 0,
    title: str | None = None,
) -> plt.Figure:
    """One layer's maps ``weights (H, T, T)``: all heads side by side (``head=None``) or one
    head, larger, with its weights written in the cells. Tokens label both axes; ``title``
    goes above the whole figure."""
    if weights.dim() != 3 or weights.shape[1:] != (len(tokens), len(tokens)):
        raise ValueError(
            f"weights must be (H, T, T) with T = {len(tokens)} tokens, got {tuple(weights.shape)}"
        )
    num_heads = weights.shape[0]
    labels = [str(t) for t in tokens]
    if head is not None and not 0 <= head < num_heads:
        raise ValueError(f"head {head} does not exist: this layer has heads 0..{num_heads - 1}")
    if head is None:
        fig, axes = plt.subplots(1, num_heads, figsize=(3.4 * num_heads + 0.6, 3.6), squeeze=False)
        for h, ax in enumerate(axes[0]):
            plot_attention(weights[h], labels, labels, ax=ax, colorbar=False, annotate=False)
            ax.set_title(f"layer {layer}, head {h}")
            ax.set_xlabel("key")
            ax.set_ylabel("query" if h == 0 else "")
    else:
        fig, ax = plt.subplots(figsize=(6.5, 5.5))
        plot_attention(weights[head], labels, labels, ax=ax, annotate=len(labels) <= 12)
        ax.set_title(f"layer {layer}, head {head}")
        ax.set_xlabel("key (the token looked at)")
        ax.set_ylabel("query (the position looking)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _readout_html(
    maps: list[torch.Tensor],
    layer: int,
    offsets: Sequence[int],
    queries: Sequence[int] | None,
    text: list[str],
    verdict: str,
) -> str:
    mono = "font-family:monospace;font-size:15px;letter-spacing:2px"
    rows = [f'<p>input <span style="{mono}">{html.escape(" ".join(text))}</span>{verdict}</p>']
    if offsets:
        masses = {offset: offset_mass(maps[layer], offset, queries) for offset in offsets}
        cells = []
        for h in range(maps[layer].shape[1]):
            parts = ", ".join(f"{float(masses[o][h]):.2f} on offset {o:+d}" for o in offsets)
            cells.append(f"head {h}: {parts}")
        rows.append(f"<p>layer {layer}, mean weight per head · " + " · ".join(cells) + "</p>")
    return "".join(rows)


def heads_explorer(
    model: torch.nn.Module,
    tokens: torch.Tensor,
    labels: torch.Tensor | None = None,
    token_text: Callable[[torch.Tensor], list[str]] | None = None,
    offsets: Sequence[int] = (),
    queries: Sequence[int] | None = None,
    ignore_index: int = -100,
) -> widgets.VBox:
    """Layer and head dropdowns and an example slider over ``tokens (N, T)`` -> the chosen
    layer's attention maps (all heads side by side, or one head with its weights).

    ``labels (N, T)`` adds how many labelled positions the model gets right;
    ``offsets`` adds each head's mean weight on keys that many places away (over the query
    positions ``queries``, default all that have such a key).
    """
    if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2 or tokens.shape[0] == 0:
        raise ValueError("tokens must be a non-empty (N, T) tensor of examples")
    token_text = token_text or (lambda ids: [str(t) for t in ids.tolist()])
    first = head_maps(model, tokens[:1])
    num_layers, num_heads = len(first), first[0].shape[1]
    style = {"description_width": "initial"}
    layer = widgets.Dropdown(
        options=[(f"layer {i}", i) for i in range(num_layers)], value=0, description="layer"
    )
    head = widgets.Dropdown(
        options=[("all heads", ALL_HEADS)] + [(f"head {h}", h) for h in range(num_heads)],
        value=ALL_HEADS,
        description="head",
    )
    example = widgets.IntSlider(
        value=0,
        min=0,
        max=len(tokens) - 1,
        description="example",
        continuous_update=False,
        style=style,
    )
    readout, out = widgets.HTML(), widgets.Output()

    def update(_=None):
        row = tokens[example.value]
        try:
            maps = head_maps(model, row)  # one (1, H, T, T) per layer
            verdict = ""
            if labels is not None:
                with torch.no_grad():
                    device = next(model.parameters()).device
                    predicted = model(row[None].to(device)).argmax(-1)[0].cpu()
                target = labels[example.value]
                scored = target != ignore_index
                hits = int((predicted[scored] == target[scored]).sum())
                verdict = f" · {hits} of {int(scored.sum())} labelled positions right"
            text = token_text(row)
            readout.value = _readout_html(maps, layer.value, offsets, queries, text, verdict)
        except ValueError as err:
            readout.value = warning_html(err)
            clear(out)
            return
        chosen = None if head.value == ALL_HEADS else head.value
        plot_heads(maps[layer.value][0], text, chosen, layer.value)
        show_figure(out)

    for control in (layer, head, example):
        control.observe(update, names="value")
    update()
    box = widgets.VBox([widgets.HBox([layer, head, example]), readout, out])
    box.layer, box.head, box.example, box.readout, box.out = layer, head, example, readout, out
    return box
