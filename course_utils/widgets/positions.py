"""Lesson 05: what a self-attention model looks at, and what the positional encoding is.

``self_attention_explorer``: type a sequence, see the trained tagger's output and the
attention map of every layer and head (with and without positions, side by side if given
several models). ``positional_encoding_explorer``: sliders over position and dimension of the
sinusoidal encoding PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(p / 10000^(2i/d)).
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Rectangle

from ..attention import record_attention
from ..data import Vocab
from ..plots import plot_attention
from ..training import evaluating
from ..transformer import TransformerTagger, sinusoidal_positional_encoding
from ._show import clear, show_figure, warning_html
from .seq2seq import highlight_errors

__all__ = [
    "attention_maps",
    "encoding_readout",
    "parse_sequence",
    "plot_attention_maps",
    "plot_encoding",
    "positional_encoding_explorer",
    "self_attention_case",
    "self_attention_explorer",
]

BASE = 10000.0


# ----------------------------------------------------------------------------- attention maps


def parse_sequence(text: str, vocab: Vocab, max_len: int) -> list[int]:
    """Ids of the symbols in ``text`` (spaces are ignored); ValueError with a readable reason
    for an empty input, unknown symbols or more than ``max_len`` symbols."""
    symbols = [ch for ch in str(text) if not ch.isspace()]
    known = "".join(s for s in vocab.itos[len(Vocab.SPECIALS) :] if len(s) == 1)
    if not symbols:
        raise ValueError(f"type a sequence of symbols from {known!r}, e.g. {known[:max_len]!r}")
    missing = vocab.unknown(symbols)
    if missing:
        listed = ", ".join(repr(s) for s in missing)
        raise ValueError(f"unknown symbol(s) {listed}: this model only knows {known!r}")
    if len(symbols) > max_len:
        raise ValueError(
            f"{len(symbols)} symbols is too long: this model has positions 0..{max_len - 1}, "
            f"so at most {max_len} symbols"
        )
    return vocab.encode(symbols)


@torch.no_grad()
def attention_maps(model: TransformerTagger, ids: list[int]) -> tuple[list[int], list]:
    """Run ``model`` on one sequence; its predicted ids and one ``(H, T, T)`` map per layer."""
    device = next(model.parameters()).device
    with evaluating(model), record_attention(model) as maps:
        logits = model(torch.tensor([ids], device=device))  # (1, T, C)
    predicted = logits[0].argmax(dim=-1).tolist()
    return predicted, [weights[0].cpu() for weights in maps.layers("self")]


def self_attention_case(
    model: TransformerTagger,
    text: str,
    vocab: Vocab,
    target_fn: Callable[[str], str] | None = None,
) -> dict:
    """Everything the explorer shows for one input: source, output, target (or None), the
    share of positions right, and the maps (one ``(H, T, T)`` per layer)."""
    ids = parse_sequence(text, vocab, model.positions.max_len)
    predicted, maps = attention_maps(model, ids)
    source = vocab.to_text(ids)
    output = "".join(vocab.itos[i] if len(vocab.itos[i]) == 1 else "\ufffd" for i in predicted)
    target = target_fn(source) if target_fn is not None else None
    accuracy = None if target is None else sum(a == b for a, b in zip(output, target)) / len(target)
    return {
        "source": source,
        "output": output,
        "target": target,
        "accuracy": accuracy,
        "maps": maps,
    }


def plot_attention_maps(maps: list, symbols: list[str], title: str | None = None) -> plt.Figure:
    """A grid of heatmaps: one row per layer, one column per head, ``maps[l]`` is ``(H, T, T)``."""
    if not maps:
        raise ValueError("no attention maps to draw: the model has no layers")
    layers, heads = len(maps), maps[0].shape[0]
    n = len(symbols)
    if any(tuple(m.shape) != (heads, n, n) for m in maps):
        raise ValueError(
            f"each map must be (heads, {n}, {n}) for {n} symbols, got "
            f"{[tuple(m.shape) for m in maps]}"
        )
    side = min(max(2.6, 0.32 * n + 1.4), 5.5)
    fig, axes = plt.subplots(
        layers, heads, figsize=(side * heads + 0.8, side * layers), squeeze=False
    )
    labels = [f"{s}{i}" for i, s in enumerate(symbols)]  # symbol and position: "a0", "b1", ...
    for layer in range(layers):
        for head in range(heads):
            ax = axes[layer, head]
            plot_attention(
                maps[layer][head],
                labels,
                labels,
                ax=ax,
                annotate=False,
                colorbar=head == heads - 1,
                title=f"layer {layer + 1}, head {head + 1}",
            )
            ax.set_xlabel("key (attended to)")
            ax.set_ylabel("query" if head == 0 else "")
    if title:
        fig.suptitle(title, y=1.0)
    fig.tight_layout()
    return fig


def _case_html(case: dict, name: str, trained_length: int | None) -> str:
    mono = "font-family:monospace;font-size:15px;letter-spacing:1px"
    rows = f"<tr><td>input&nbsp;</td><td>{html.escape(case['source'])}</td></tr>"
    if case["target"] is not None:
        rows += f"<tr><td>target&nbsp;</td><td>{html.escape(case['target'])}</td></tr>"
        shown = highlight_errors(case["target"], case["output"])
    else:
        shown = html.escape(case["output"])
    rows += f"<tr><td>output&nbsp;</td><td>{shown}</td></tr>"
    text = f'<table style="{mono}">{rows}</table><p>model: <b>{html.escape(name)}</b>'
    if case["accuracy"] is not None:
        text += f"; {case['accuracy']:.0%} of the positions right"
    text += ".</p>"
    n = len(case["source"])
    if trained_length is not None and n != trained_length:
        text += (
            f'<p style="color:#8a5a00">ℹ️ the model was trained on sequences of exactly '
            f"{trained_length} symbols; at length {n} it is outside what it learned, so expect "
            "mistakes (watch where the maps still look).</p>"
        )
    return text


def self_attention_explorer(
    models: TransformerTagger | Mapping[str, TransformerTagger],
    vocab: Vocab,
    example: str = "abcdefgh",
    target_fn: Callable[[str], str] | None = None,
    trained_length: int | None = None,
) -> widgets.VBox:
    """Type a sequence -> the model's output (beside ``target_fn(input)``, mistakes marked)
    and its attention map for every layer and head. With several models, a dropdown picks one."""
    if isinstance(models, torch.nn.Module):
        models = {"model": models}
    if not models:
        raise ValueError("give at least one model")
    choice = widgets.Dropdown(
        options=list(models),
        value=next(iter(models)),
        description="model",
        disabled=len(models) == 1,
        style={"description_width": "initial"},
    )
    own = widgets.Text(
        value=example,
        placeholder="type a sequence, e.g. " + example,
        description="your sequence",
        continuous_update=False,
        style={"description_width": "initial"},
        layout=widgets.Layout(width="420px"),
    )
    view = widgets.HTML()
    out = widgets.Output()

    def update(_=None):
        model = models[choice.value]
        try:
            case = self_attention_case(model, own.value, vocab, target_fn)
        except ValueError as err:
            view.value = warning_html(err)
            clear(out)
            return
        view.value = _case_html(case, choice.value, trained_length)
        plot_attention_maps(case["maps"], list(case["source"]), f"{choice.value}: attention")
        show_figure(out)

    choice.observe(update, names="value")
    own.observe(update, names="value")
    update()
    box = widgets.VBox([widgets.HBox([own, choice]), view, out])
    box.own, box.choice, box.view, box.out = own, choice, view, out
    return box


# ----------------------------------------------------------------------------- the encoding


def _check_index(name: str, value, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if not 0 <= value < limit:
        raise ValueError(f"{name} must be in 0..{limit - 1}, got {value}")
    return int(value)


def encoding_readout(position: int, dimension: int, max_len: int = 64, d_model: int = 64) -> dict:
    """The value PE[position, dimension] and what it is made of.

    Returns ``value``, ``function`` ("sin" for an even dimension, "cos" for an odd one),
    ``pair`` (i, so that the dimension is 2i or 2i + 1), ``frequency`` 1 / 10000^(2i/d) and
    ``wavelength`` 2π / frequency (in positions).
    """
    position = _check_index("position", position, max_len)
    dimension = _check_index("dimension", dimension, d_model)
    pair = dimension // 2
    frequency = 1.0 / BASE ** (2 * pair / d_model)
    angle = position * frequency
    value = math.sin(angle) if dimension % 2 == 0 else math.cos(angle)
    return {
        "value": value,
        "function": "sin" if dimension % 2 == 0 else "cos",
        "pair": pair,
        "frequency": frequency,
        "wavelength": 2 * math.pi / frequency,
    }


def plot_encoding(position: int, dimension: int, max_len: int = 64, d_model: int = 64):
    """Three panels: the encoding (max_len × d_model) with the chosen row and column outlined;
    the chosen dimension's wave over positions with the chosen position marked; and the chosen
    position's vector over dimensions with the chosen dimension marked."""
    readout = encoding_readout(position, dimension, max_len, d_model)
    table = sinusoidal_positional_encoding(max_len, d_model).numpy()
    fig = plt.figure(figsize=(13, 4.2))
    grid = fig.add_gridspec(2, 2, width_ratios=(1.0, 1.3), hspace=0.75, wspace=0.4)
    ax_map = fig.add_subplot(grid[:, 0])
    ax_wave = fig.add_subplot(grid[0, 1])
    ax_row = fig.add_subplot(grid[1, 1])

    image = ax_map.imshow(
        table, aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest"
    )
    outline = {"fill": False, "edgecolor": "black", "linewidth": 1.8}
    ax_map.add_patch(Rectangle((-0.5, position - 0.5), d_model, 1, **outline))  # the row
    ax_map.add_patch(Rectangle((dimension - 0.5, -0.5), 1, max_len, **outline))  # the column
    ax_map.set(
        xlabel="dimension",
        ylabel="position",
        title=f"PE ({max_len} positions × {d_model} dimensions)",
    )
    fig.colorbar(image, ax=ax_map, fraction=0.046, pad=0.03, label="value")

    positions = np.arange(max_len)
    fine = np.linspace(0, max_len - 1, 400)
    wave = np.sin if readout["function"] == "sin" else np.cos
    ax_wave.plot(fine, wave(fine * readout["frequency"]), color="#9aa0a6", lw=1)
    ax_wave.plot(positions, table[:, dimension], ".", color="#4c72b0", ms=5)
    ax_wave.plot(position, readout["value"], "o", color="#dd8452", ms=9)
    ax_wave.set(
        xlim=(-0.5, max_len - 0.5),
        ylim=(-1.15, 1.15),
        xlabel="position",
        ylabel="value",
        title=f"dimension {dimension}: {readout['function']}, wavelength "
        f"{readout['wavelength']:.3g} positions",
    )
    ax_wave.grid(alpha=0.3)

    ax_row.bar(np.arange(d_model), table[position], color="#4c72b0", width=0.8)
    ax_row.bar([dimension], [table[position, dimension]], color="#dd8452", width=0.8)
    ax_row.set(
        xlim=(-0.7, d_model - 0.3),
        ylim=(-1.15, 1.15),
        xlabel="dimension",
        ylabel="value",
        title=f"position {position}: its vector PE[{position}]",
    )
    ax_row.grid(alpha=0.3, axis="y")
    return fig


def _readout_html(position: int, dimension: int, d_model: int, readout: dict) -> str:
    i = readout["pair"]
    index = f"2·{i}" if dimension % 2 == 0 else f"2·{i}+1"
    return (
        f"PE[{position}, {dimension}] = {readout['function']}({position} / 10000^({2 * i}/"
        f"{d_model})) = <b>{readout['value']:+.3f}</b> &nbsp;·&nbsp; dimension {dimension} = "
        f"{index}, frequency {readout['frequency']:.3g} per position, wavelength "
        f"<b>{readout['wavelength']:.3g}</b> positions"
    )


def positional_encoding_explorer(max_len: int = 64, d_model: int = 64) -> widgets.VBox:
    """Position and dimension sliders over the sinusoidal encoding: the table with the choice
    outlined, the chosen dimension's wave and the chosen position's vector."""
    if max_len < 1 or d_model < 1:
        raise ValueError(f"max_len and d_model must be >= 1, got {max_len}, {d_model}")
    style = {"description_width": "initial"}
    position = widgets.IntSlider(
        value=min(10, max_len - 1),
        min=0,
        max=max_len - 1,
        description="position p",
        continuous_update=False,
        style=style,
    )
    dimension = widgets.IntSlider(
        value=min(4, d_model - 1),
        min=0,
        max=d_model - 1,
        description="dimension",
        continuous_update=False,
        style=style,
    )
    readout = widgets.HTML()
    out = widgets.Output()

    def update(_=None):
        try:
            values = encoding_readout(position.value, dimension.value, max_len, d_model)
        except ValueError as err:
            readout.value = warning_html(err)
            clear(out)
            return
        readout.value = _readout_html(position.value, dimension.value, d_model, values)
        plot_encoding(position.value, dimension.value, max_len, d_model)
        show_figure(out)

    position.observe(update, names="value")
    dimension.observe(update, names="value")
    update()
    box = widgets.VBox([widgets.HBox([position, dimension]), readout, out])
    box.position, box.dimension, box.readout, box.out = position, dimension, readout, out
    return box
