"""Lesson 01: probe a trained seq2seq model with lengths, examples or the learner's input."""

from __future__ import annotations

import html
import random

import ipywidgets as widgets

from ..data import Vocab, task_target
from ..seq2seq import Seq2Seq, translate
from ._show import warning_html


def highlight_errors(target: str, output: str) -> str:
    """HTML of ``output`` beside ``target`` with wrong, missing and extra symbols marked."""
    cells = []
    for i in range(max(len(target), len(output))):
        want = target[i] if i < len(target) else None
        got = output[i] if i < len(output) else None
        if got is None:
            cells.append('<span style="background:#fce8e6;color:#a50e0e" title="missing">·</span>')
        elif want is None:
            cells.append(
                f'<span style="background:#fce8e6;color:#a50e0e;text-decoration:line-through" '
                f'title="extra">{html.escape(got)}</span>'
            )
        elif got == want:
            cells.append(f'<span style="color:#137333">{html.escape(got)}</span>')
        else:
            cells.append(
                f'<span style="background:#fce8e6;color:#a50e0e;font-weight:bold" '
                f'title="expected {html.escape(want)}">{html.escape(got)}</span>'
            )
    return "".join(cells)


def seq2seq_case(model: Seq2Seq, source: str, vocab: Vocab, task: str = "copy") -> dict:
    """Run one source through ``model``: source, target, output, token accuracy, exact match."""
    target = task_target(task, source)
    output, _ = translate(model, source, vocab, vocab, max_len=len(source) + 10)
    hits = sum(a == b for a, b in zip(output, target))
    return {
        "source": source,
        "target": target,
        "output": output,
        "token_accuracy": hits / len(target),
        "exact": output == target,
    }


def _case_html(case: dict) -> str:
    mono = "font-family:monospace;font-size:15px;letter-spacing:1px"
    verdict = "an exact match" if case["exact"] else "not an exact match"
    return (
        f'<table style="{mono}">'
        f"<tr><td>input&nbsp;</td><td>{html.escape(case['source'])}</td></tr>"
        f"<tr><td>target&nbsp;</td><td>{html.escape(case['target'])}</td></tr>"
        f"<tr><td>output&nbsp;</td><td>{highlight_errors(case['target'], case['output'])}</td></tr>"
        f"</table><p>length {len(case['source'])}: {case['token_accuracy']:.0%} of the symbols "
        f"right, {verdict}.</p>"
    )


def bottleneck_explorer(
    model: Seq2Seq, vocab: Vocab, task: str = "copy", alphabet: str | None = None
) -> widgets.VBox:
    """Length and example sliders (or the learner's own input) -> input, target and output,
    with the model's mistakes highlighted."""
    symbols = alphabet or "".join(s for s in vocab.itos[4:] if len(s) == 1)
    max_len = model.max_src_len or 40
    length = widgets.IntSlider(value=10, min=1, max=max_len, description="length")
    example = widgets.IntSlider(value=0, min=0, max=99, description="example")
    own = widgets.Text(
        value="",
        placeholder=f"or type your own ({symbols[:10]}...); clear it to use the sliders",
        description="your input",
        layout=widgets.Layout(width="480px"),
    )
    view = widgets.HTML()

    def update(_=None):
        if own.value.strip():
            source = own.value.strip()
        else:
            rng = random.Random(f"{length.value}-{example.value}")
            source = "".join(rng.choice(symbols) for _ in range(length.value))
        try:
            view.value = _case_html(seq2seq_case(model, source, vocab, task))
        except ValueError as err:
            view.value = warning_html(err)

    for control in (length, example, own):
        control.observe(update, names="value")
    update()
    box = widgets.VBox([widgets.HBox([length, example]), own, view])
    box.length, box.example, box.own, box.view = length, example, own, view
    return box
