"""Lesson 03: compare Luong's scores and local windows on one input, as alignment heatmaps."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

from ..attention import LocalAttention
from ..data import Pair, Vocab
from ..plots import plot_attention
from ..seq2seq import Seq2Seq, decode_text
from ._show import clear, show_figure, warning_html
from .seq2seq import highlight_errors

__all__ = ["alignment_case", "draw_alignment", "luong_explorer"]


def _local_attention(model: Seq2Seq) -> LocalAttention | None:
    attention = getattr(model.decoder, "attention", None)
    return attention if isinstance(attention, LocalAttention) else None


@torch.no_grad()
def alignment_case(
    model: Seq2Seq,
    source: str,
    src_vocab: Vocab,
    tgt_vocab: Vocab,
    window: int | None = None,
    target: str | None = None,
    max_len: int = 16,
) -> dict:
    """Greedy output of ``model`` for ``source`` with its alignment ``weights (L, S)``.

    For a local model, ``window`` (if given) replaces the trained window D for this one call,
    and ``centres`` holds p_t for every output step. Bad input raises a ValueError that says
    what is wrong.
    """
    if window is not None and window < 0:
        raise ValueError(f"the window must be >= 0, got {window}")
    local = _local_attention(model)
    centres: list[float] = []
    hook = None
    trained_window = local.window if local is not None else None
    if local is not None:
        hook = local.register_forward_hook(
            lambda module, args, out: centres.extend(module.last_centres.flatten().tolist())
        )
        if window is not None:
            local.window = window
    try:
        decoded = decode_text(model, source, src_vocab, tgt_vocab, max_len)
    finally:
        if hook is not None:
            hook.remove()
            local.window = trained_window
    tokens = decoded.tokens[0].tolist()
    steps = tokens.index(tgt_vocab.eos_id) + 1 if tgt_vocab.eos_id in tokens else len(tokens)
    labels = [tgt_vocab.itos[i] for i in tokens[:steps]]
    output = tgt_vocab.to_text(tokens)
    return {
        "source": source,
        "target": target,
        "output": output,
        "exact": None if target is None else output == target,
        "labels": labels,  # one per output step, <eos> included
        "weights": decoded.attention[0, :steps].cpu(),  # (L, S)
        "centres": centres[:steps] if local is not None else None,
        "window": (window if window is not None else trained_window) if local is not None else None,
    }


def draw_alignment(case: dict, title: str | None = None, ax: plt.Axes | None = None) -> plt.Axes:
    """The heatmap of ``alignment_case``; for a local model, p_t as white dots and the edges
    of the window (centred on the nearest position, as in ``LocalAttention``) as white ticks."""
    ax = plot_attention(case["weights"], list(case["source"]), case["labels"], ax=ax, title=title)
    if case["centres"] is not None:
        last = len(case["source"]) - 1
        rows = [i + 0.5 for i in range(len(case["centres"]))]
        nearest = [min(max(round(c), 0), last) for c in case["centres"]]
        ax.plot([c + 0.5 for c in case["centres"]], rows, "o", color="white", ms=4, label="p_t")
        ax.plot([c - case["window"] for c in nearest], rows, "|", color="white", ms=9, mew=1.5)
        ax.plot([c + case["window"] + 1 for c in nearest], rows, "|", color="white", ms=9, mew=1.5)
        ax.set_xlim(0, len(case["source"]))
        ax.legend(loc="lower left", fontsize=8, framealpha=0.5)
    return ax


def _case_html(name: str, case: dict) -> str:
    mono = "font-family:monospace;font-size:15px;letter-spacing:1px"
    rows = f"<tr><td>input&nbsp;</td><td>{html.escape(case['source'])}</td></tr>"
    if case["target"] is not None:
        output = highlight_errors(case["target"], case["output"])
        rows += f"<tr><td>target&nbsp;</td><td>{html.escape(case['target'])}</td></tr>"
    else:
        output = html.escape(case["output"]) or "(empty)"
    rows += f"<tr><td>output&nbsp;</td><td>{output}</td></tr>"
    if case["window"] is None:
        note = f"<b>{name}</b>: global attention, every source position may be attended."
    else:
        note = (
            f"<b>{name}</b>: local attention, window D = {case['window']} "
            f"(positions |s - p_t| &le; {case['window']})."
        )
        if not bool(case["weights"].sum(-1).gt(0).all()):
            note += " Some steps have no source position in their window: zero weights."
    if case["exact"] is not None:
        note += " Exact match." if case["exact"] else " Not an exact match."
    return f'<table style="{mono}">{rows}</table><p>{note}</p>'


def luong_explorer(
    models: Mapping[str, Seq2Seq],
    src_vocab: Vocab,
    tgt_vocab: Vocab,
    examples: Sequence[Pair],
    max_window: int = 30,
) -> widgets.VBox:
    """Score dropdown, window slider, example slider and a text box -> output and heatmap.

    ``models`` maps a name ("dot", "general", "concat", "local-m", "local-p") to a trained
    model. The window slider changes D of the local models at decoding time (they were trained
    with one D); global models ignore it.
    """
    if not models:
        raise ValueError("no models to explore: pass {score name: trained model}")
    if not examples:
        raise ValueError("no examples: pass a few (source, target) pairs")
    names = list(models)
    trained = next((a.window for a in map(_local_attention, models.values()) if a), 3)
    score = widgets.Dropdown(options=names, value=names[0], description="score")
    window = widgets.IntSlider(
        value=min(trained, max_window),
        min=0,
        max=max_window,
        description="window D (local only)",
        style={"description_width": "initial"},
    )
    example = widgets.IntSlider(
        value=0,
        min=0,
        max=len(examples) - 1,
        description="test example",
        style={"description_width": "initial"},
    )
    own = widgets.Text(
        value="",
        placeholder="or type a date, e.g. 14 July 1989; clear it to use the examples",
        description="your date",
        layout=widgets.Layout(width="480px"),
    )
    view, plot = widgets.HTML(), widgets.Output()
    box = widgets.VBox([widgets.HBox([score, window]), example, own, view, plot])

    def update(_=None):
        name = score.value
        model = models[name]
        window.disabled = _local_attention(model) is None
        if own.value.strip():
            source, target = own.value.strip(), None
        else:
            source, target = examples[example.value]
        try:
            case = alignment_case(
                model, source, src_vocab, tgt_vocab, window=window.value, target=target
            )
        except ValueError as err:
            box.case = None
            view.value = warning_html(err)
            clear(plot)
            return
        box.case = case
        view.value = _case_html(name, case)
        draw_alignment(case, title=f"{name} attention")
        show_figure(plot)

    for control in (score, window, example, own):
        control.observe(update, names="value")
    box.score, box.window, box.example, box.own, box.view, box.plot = (
        score,
        window,
        example,
        own,
        view,
        plot,
    )
    update()
    return box
