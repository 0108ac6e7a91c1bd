"""Lesson 08: type a date, see the Transformer's output and where its decoder looked.

``cross_attention_map`` runs one source through a trained ``Transformer`` (greedy decoding,
then one teacher-forced pass over its own output) and returns the cross-attention of one
layer and one head, or the mean of the heads. ``translation_explorer`` puts it in a widget.
"""

from __future__ import annotations

import html
import re

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

from ..attention import record_attention
from ..data import Vocab
from ..plots import plot_attention
from ..seq2seq import check_source, translate
from ..training import evaluating
from ..transformer import Transformer
from ._show import clear, show_figure, warning_html

__all__ = [
    "MEAN_OF_HEADS",
    "OUTPUT_FIELDS",
    "cross_attention_map",
    "date_spans",
    "plot_cross_attention",
    "translation_explorer",
]

MEAN_OF_HEADS = "mean"
# which characters of the ISO output YYYY-MM-DD write the year, the month and the day
OUTPUT_FIELDS = {"year": range(0, 4), "month": range(5, 7), "day": range(8, 10)}
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WIDE = {"description_width": "initial"}


def date_spans(source: str) -> dict[str, range]:
    """Where the year, the month and the day are written in a human date of ``make_dates``:
    ``{"year": range, "month": range, "day": range}`` of character positions.

    The year is the 4-digit number; with dots the order is day.month.year, with slashes the
    month comes before the day (``m/d/yyyy`` and ``yyyy/mm/dd``); otherwise the month is the
    (abbreviated) month name and the day the other number. A ValueError if it is not a date.
    """
    tokens = [(m.group(), range(m.start(), m.end())) for m in re.finditer(r"[A-Za-z]+|\d+", source)]
    numbers = [(t, span) for t, span in tokens if t.isdigit()]
    years = [span for t, span in numbers if len(t) == 4]
    others = [span for t, span in numbers if len(t) != 4]
    names = [span for t, span in tokens if t[:3].lower() in _MONTHS and not t.isdigit()]
    if len(years) != 1:
        raise ValueError(f"no single 4-digit year in {source!r}")
    if "." in source or "/" in source:
        if len(others) != 2:
            raise ValueError(f"expected a day and a month number in {source!r}")
        first, second = others
        day, month = (first, second) if "." in source else (second, first)
    else:
        if len(others) != 1 or len(names) != 1:
            raise ValueError(f"expected one day number and one month name in {source!r}")
        day, month = others[0], names[0]
    return {"year": years[0], "month": month, "day": day}


@torch.no_grad()
def cross_attention_map(
    model: Transformer,
    text: str,
    src_vocab: Vocab,
    tgt_vocab: Vocab,
    layer: int = -1,
    head: int | str = MEAN_OF_HEADS,
    max_chars: int | None = None,
) -> tuple[str, torch.Tensor]:
    """The greedy output for ``text`` and the cross-attention ``(len(output) + 1, len(text))``
    of decoder ``layer`` and ``head`` (``"mean"`` = the mean over heads) while the decoder
    reads ``<bos>`` + its own output: row t is the step that writes output character t (the
    last row writes ``<eos>``). A ValueError says what is wrong with the input."""
    limit = max_chars if max_chars is not None else getattr(model, "max_src_len", None)
    if isinstance(text, str) and text.strip() == "":
        raise ValueError("the input is empty: type a date, e.g. 14 March 1987")
    ids = check_source(text, src_vocab, limit)
    num_layers, num_heads = len(model.decoder), model.decoder[0].cross_attn.num_heads
    if not -num_layers <= layer < num_layers:
        raise ValueError(f"layer must be in 0..{num_layers - 1}, got {layer}")
    if head != MEAN_OF_HEADS and not (isinstance(head, int) and 0 <= head < num_heads):
        raise ValueError(f"head must be in 0..{num_heads - 1} or {MEAN_OF_HEADS!r}, got {head}")
    output, _ = translate(model, text, src_vocab, tgt_vocab)
    device = next(model.parameters()).device
    src = torch.tensor([ids], device=device)
    tgt_in = torch.tensor([tgt_vocab.encode(output, add_bos=True)], device=device)
    with evaluating(model), record_attention(model) as maps:
        model(src, torch.tensor([len(ids)], device=device), tgt_in)
    weights = maps.layers("cross")[layer][0]  # (H, T, S)
    weights = weights.mean(dim=0) if head == MEAN_OF_HEADS else weights[head]
    return output, weights.float().cpu()


def plot_cross_attention(
    weights: torch.Tensor,
    source: str,
    output: str,
    ax: plt.Axes | None = None,
    title: str | None = None,
) -> plt.Axes:
    """Heatmap of ``weights (len(output) + 1, len(source))``: rows the output characters and
    ``<eos>`` (⏎), columns the input characters (a space shows as ␣)."""
    rows = [*output, "⏎"]
    cols = ["␣" if c == " " else c for c in source]
    if tuple(weights.shape) != (len(rows), len(cols)):
        raise ValueError(
            f"weights {tuple(weights.shape)} do not match {len(rows)} output rows (with <eos>) "
            f"and {len(cols)} input characters"
        )
    if ax is None:
        _, ax = plt.subplots(figsize=(max(5.0, 0.32 * len(cols) + 2), 4.2))
    plot_attention(weights, cols, rows, ax=ax, annotate=False)
    ax.set_xlabel("input character (key)")
    ax.set_ylabel("output character (query)")
    if title:
        ax.set_title(title)
    return ax


def translation_explorer(
    model: Transformer,
    src_vocab: Vocab,
    tgt_vocab: Vocab,
    text: str = "14 March 1987",
    max_chars: int | None = None,
) -> widgets.VBox:
    """A text box for a date in any format, a layer selector and a head selector (with the
    mean of the heads) -> the model's ISO output and the cross-attention map."""
    num_layers, num_heads = len(model.decoder), model.decoder[0].cross_attn.num_heads
    box_text = widgets.Text(value=text, description="date", style=_WIDE, continuous_update=False)
    layer = widgets.IntSlider(
        value=num_layers - 1,
        min=0,
        max=num_layers - 1,
        description="decoder layer",
        style=_WIDE,
        continuous_update=False,
        disabled=num_layers == 1,  # nothing to choose: say so instead of an inert slider
        tooltip=f"this model has {num_layers} decoder layer(s)",
    )
    head = widgets.Dropdown(
        options=[("mean of heads", MEAN_OF_HEADS)] + [(f"head {h}", h) for h in range(num_heads)],
        value=MEAN_OF_HEADS,
        description="head",
        style=_WIDE,
    )
    readout = widgets.HTML()
    out = widgets.Output()

    def update(_=None):
        try:
            output, weights = cross_attention_map(
                model, box_text.value, src_vocab, tgt_vocab, layer.value, head.value, max_chars
            )
        except ValueError as err:
            readout.value = warning_html(err)
            clear(out)
            return
        which = "mean of the heads" if head.value == MEAN_OF_HEADS else f"head {head.value}"
        readout.value = (
            f'<p style="font-family:monospace;font-size:15px">{html.escape(box_text.value)} '
            f"→ <b>{html.escape(output) or '(nothing)'}</b></p><p>cross-attention of decoder "
            f"layer {layer.value}, {which}: row t is the step that writes output character t, "
            f"the last row the end token ⏎; each row sums to 1 over the input.</p>"
        )
        plot_cross_attention(
            weights,
            box_text.value,
            output,
            title=f"cross-attention, decoder layer {layer.value}, {which}",
        )
        show_figure(out)

    for control in (box_text, layer, head):
        control.observe(update, names="value")
    update()
    box = widgets.VBox([box_text, widgets.HBox([layer, head]), readout, out])
    box.text, box.layer, box.head, box.readout, box.out = box_text, layer, head, readout, out
    return box
