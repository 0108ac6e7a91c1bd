"""Lesson 02: the alignment explorer. Pick a test example (or type your own input) and an
output step, and see where that step looked in the source."""

from __future__ import annotations

import html
from collections.abc import Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle

from ..data import Pair, Vocab
from ..plots import plot_attention, plot_weights
from ..seq2seq import Seq2Seq, decode_text
from ._show import clear, show_figure, warning_html
from .seq2seq import highlight_errors

__all__ = ["alignment_example", "alignment_explorer", "draw_step_alignment", "step_view"]


def alignment_example(
    model: Seq2Seq, source: str, src_vocab: Vocab, tgt_vocab: Vocab, target: str | None = None
) -> dict:
    """Decode ``source`` greedily and keep the alignment.

    Returns source, target (or None), output (the text), the row labels (one per decoding
    step: the symbol written, ``<eos>`` included) and the weights ``(len(rows), len(source))``.
    """
    decoded = decode_text(model, source, src_vocab, tgt_vocab)
    if decoded.attention is None:
        raise ValueError("this model has no attention to show: use an attention model")
    tokens = decoded.tokens[0].tolist()
    if tgt_vocab.eos_id in tokens:
        tokens = tokens[: tokens.index(tgt_vocab.eos_id) + 1]  # up to and with the first <eos>
    rows = [tgt_vocab.itos[t] for t in tokens]  # one label per decoding step, specials too
    weights = decoded.attention[0, : len(rows)].cpu()  # (L, S)
    output = tgt_vocab.to_text(tokens)
    return {
        "source": source,
        "target": target,
        "output": output,
        "rows": rows,
        "weights": weights,  # (L, S)
    }


def step_view(case: dict, step: int) -> tuple[int, str]:
    """The step actually shown (clamped to the output) and a sentence about it.

    Steps count from 0; a step past the end of the output shows the last one and says so.
    """
    last = len(case["rows"]) - 1
    shown = min(max(int(step), 0), last)
    weights = case["weights"][shown]  # (S,)
    peak = int(weights.argmax())
    sentence = (
        f"output step {shown} wrote <b>{html.escape(case['rows'][shown])}</b> and looked most "
        f"at source position {peak} (<b>{html.escape(case['source'][peak])}</b>, weight "
        f"{float(weights[peak]):.2f})."
    )
    if shown != step:
        sentence = (
            f"the output has only {last + 1} steps (0-{last}), so step {step} does not exist; "
            f"showing step {shown}. " + sentence
        )
    return shown, sentence


def draw_step_alignment(case: dict, step: int) -> plt.Figure:
    """Bar chart of one step's weights over the source, beside the whole heatmap with that
    step's row outlined."""
    shown, _ = step_view(case, step)
    source, weights = list(case["source"]), case["weights"]
    height = min(max(4.2, 0.15 * len(case["rows"]) + 1.5), 7.5)  # long outputs get taller maps
    fig, (bar_ax, map_ax) = plt.subplots(1, 2, figsize=(12, height))
    plot_weights(weights[shown], source, ax=bar_ax, title=f"step {shown}: {case['rows'][shown]!r}")
    bar_ax.set_xlabel("source token")
    bar_ax.set_box_aspect(0.6)  # a bar chart of fixed shape, however tall the map is
    if len(source) > 12:  # the numbers on the bars would overlap
        for text in bar_ax.texts:
            text.set_visible(False)
        bar_ax.tick_params(axis="x", labelsize=7)
    plot_attention(weights, source, case["rows"], ax=map_ax, colorbar=False, annotate=False)
    map_ax.add_patch(
        Rectangle((0, shown), len(source), 1, fill=False, edgecolor="red", lw=2, clip_on=False)
    )
    map_ax.set_title("all steps (the red box is the step on the left)")
    fig.tight_layout()
    return fig


def _case_html(case: dict) -> str:
    mono = "font-family:monospace;font-size:15px;letter-spacing:1px"
    target_row = (
        f"<tr><td>target&nbsp;</td><td>{html.escape(case['target'])}</td></tr>"
        if case["target"] is not None
        else ""
    )
    verdict, output = "", html.escape(case["output"])
    if case["target"] is not None:  # mark wrong, missing and extra symbols as lesson 01 does
        verdict = " ✅ right" if case["output"] == case["target"] else " ❌ wrong"
        output = highlight_errors(case["target"], case["output"])
    return (
        f'<table style="{mono}">'
        f"<tr><td>input&nbsp;</td><td>{html.escape(case['source'])}</td></tr>{target_row}"
        f"<tr><td>output&nbsp;</td><td>{output}{verdict}</td></tr></table>"
    )


def alignment_explorer(
    model: Seq2Seq, pairs: Sequence[Pair], src_vocab: Vocab, tgt_vocab: Vocab
) -> widgets.VBox:
    """Example and output-step sliders over ``pairs`` (or the learner's own input) -> the
    output, one step's weights over the source, and the whole alignment heatmap."""
    if len(pairs) == 0:
        raise ValueError("no examples to explore: pass a non-empty list of (source, target)")
    style = {"description_width": "initial"}
    longest = max(len(s) for s, _ in pairs)
    example = widgets.IntSlider(
        value=0, min=0, max=len(pairs) - 1, description="test example", style=style
    )
    step = widgets.IntSlider(
        value=0, min=0, max=longest + 10, description="output step", style=style
    )
    own = widgets.Text(
        value="",
        placeholder="or type your own input; clear it to use the sliders",
        description="your input",
        style=style,
        layout=widgets.Layout(width="480px"),
    )
    view, message, out = widgets.HTML(), widgets.HTML(), widgets.Output()

    def update(_=None):
        try:
            if own.value.strip():
                case = alignment_example(model, own.value.strip(), src_vocab, tgt_vocab)
            else:
                source, target = pairs[example.value]
                case = alignment_example(model, source, src_vocab, tgt_vocab, target)
        except ValueError as err:
            view.value = warning_html(err)
            message.value = ""
            clear(out)
            return
        view.value = _case_html(case)
        message.value = step_view(case, step.value)[1]
        draw_step_alignment(case, step.value)
        show_figure(out)

    for control in (example, step, own):
        control.observe(update, names="value")
    update()
    box = widgets.VBox([widgets.HBox([example, step]), own, view, message, out])
    box.example, box.step, box.own, box.view, box.message, box.out = (
        example,
        step,
        own,
        view,
        message,
        out,
    )
    return box
