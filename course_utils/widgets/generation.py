"""Lesson 07: sample from a trained GPT, and see which tokens each position may attend to.

``generation_explorer``: a prompt, a temperature and a top-k -> the next-token distribution
the sampler draws from, and a few sampled continuations. ``causal_explorer``: a prompt -> the
causal mask over its characters, or the trained model's attention for a layer and head.
"""

from __future__ import annotations

import html
from collections.abc import Callable

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
from matplotlib.patches import Rectangle
from torch.nn import functional as F

from ..attention import causal_mask, record_attention
from ..data import Vocab
from ..plots import plot_attention
from ..training import evaluating
from ..transformer import GPT
from ..transformer.gpt import check_sampling, keep_top_k
from ._show import clear, show_figure, warning_html

__all__ = [
    "attention_map",
    "causal_explorer",
    "encode_prompt",
    "generation_explorer",
    "next_token_probabilities",
    "plot_next_token",
    "plot_visibility",
    "sample_continuations",
    "token_labels",
    "visibility_sentence",
]

_WIDE = {"description_width": "initial"}


def token_labels(vocab: Vocab) -> list[str]:
    """One character per token id, so bar labels do not overlap: the symbol itself, or
    ∅ for ``<pad>``, ^ for ``<bos>``, ⏎ for ``<eos>`` and � for ``<unk>``."""
    short = {vocab.PAD: "∅", vocab.BOS: "^", vocab.EOS: "⏎", vocab.UNK: "\ufffd"}
    return [short.get(s, s) for s in vocab.itos]


def encode_prompt(prompt: str, vocab: Vocab, block_size: int | None = None) -> list[int]:
    """Token ids of ``prompt``; a ValueError that a learner can act on if it cannot be used."""
    if not isinstance(prompt, str) or prompt == "":
        raise ValueError("type a prompt first: at least one character, e.g. 07+45=")
    missing = vocab.unknown(prompt)
    if missing:
        known = "".join(s for s in vocab.itos if len(s) == 1)
        shown = ", ".join(repr(s) for s in missing)
        raise ValueError(f"{shown} not in the vocabulary: this model knows only {known!r}")
    if block_size is not None and len(prompt) > block_size:
        raise ValueError(
            f"the prompt has {len(prompt)} characters; this model sees at most {block_size}"
        )
    return vocab.encode(prompt)


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def next_token_probabilities(
    model: GPT, vocab: Vocab, prompt: str, temperature: float = 1.0, top_k: int | None = None
) -> torch.Tensor:
    """``(V,)`` on the CPU: the distribution ``sample_next`` draws the token after ``prompt``
    from; temperature 0 puts all the mass on the argmax (greedy)."""
    ids = encode_prompt(prompt, vocab, model.config.block_size)
    check_sampling(temperature, top_k, model.config.vocab_size)
    with evaluating(model):
        logits = model(torch.tensor([ids], device=_device(model)))[0, -1].float().cpu()  # (V,)
    if temperature == 0:
        return F.one_hot(logits.argmax(), len(logits)).float()
    logits = logits / temperature
    if top_k is not None:
        logits = keep_top_k(logits, top_k)
    return torch.softmax(logits, dim=-1)


def sample_continuations(
    model: GPT,
    vocab: Vocab,
    prompt: str,
    temperature: float = 1.0,
    top_k: int | None = None,
    n: int = 5,
    max_new_tokens: int = 8,
    seed: int = 0,
) -> list[str]:
    """``n`` continuations of ``prompt`` (the new text only, up to ``<eos>``), seeded."""
    ids = encode_prompt(prompt, vocab, model.config.block_size)
    device = _device(model)
    generator = torch.Generator(device=device).manual_seed(seed)
    prompts = torch.tensor([ids] * n, device=device)  # (n, T)
    out = model.generate(
        prompts, max_new_tokens, temperature, top_k, generator=generator, stop_token=vocab.eos_id
    )
    return [vocab.to_text(row[len(ids) :].tolist()) for row in out]


def plot_next_token(
    probs: torch.Tensor, vocab: Vocab, ax: plt.Axes | None = None, title: str | None = None
) -> plt.Axes:
    """Bar chart of a next-token distribution ``probs (V,)``, one bar per token."""
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 2.8))
    labels = token_labels(vocab)
    values = probs.detach().float().cpu().numpy()
    colours = ["#dd8452" if p > 0 else "#c8c8c8" for p in values]
    ax.bar(range(len(values)), values, color=colours)
    ax.set_xticks(range(len(values)), labels)
    ax.set(ylim=(0, 1.05), ylabel="probability", xlabel="next token (⏎ = <eos>)")
    if title:
        ax.set_title(title)
    return ax


def _sampling_name(temperature: float, top_k: int | None, vocab_size: int) -> str:
    if temperature == 0:
        return "greedy (temperature 0)"
    k = "all tokens" if top_k is None or top_k >= vocab_size else f"top-{top_k}"
    return f"temperature {temperature:g}, {k}"


def generation_explorer(
    model: GPT,
    vocab: Vocab,
    prompt: str = "07+45=",
    n_samples: int = 5,
    max_new_tokens: int = 8,
    answer: Callable[[str], str] | None = None,
) -> widgets.VBox:
    """A prompt box, temperature and top-k sliders and a seed -> the next-token distribution
    and ``n_samples`` sampled continuations. ``answer(prompt)``, if given, shows the right
    continuation (a ValueError from it means there is none)."""
    vocab_size = model.config.vocab_size
    text = widgets.Text(value=prompt, description="prompt", style=_WIDE)
    temperature = widgets.FloatSlider(
        value=1.0,
        min=0.0,
        max=3.0,
        step=0.1,
        description="temperature",
        style=_WIDE,
        continuous_update=False,
    )
    top_k = widgets.IntSlider(
        value=vocab_size,
        min=1,
        max=vocab_size,
        description="top-k",
        style=_WIDE,
        continuous_update=False,
        tooltip="keep the k most likely tokens; off at temperature 0, where greedy takes the top one",
    )
    still = "off when sampling cannot vary: temperature 0 or top-k 1"
    seed = widgets.IntText(
        value=0, description="seed", style=_WIDE, layout={"width": "140px"}, tooltip=still
    )
    again = widgets.Button(description="sample again", button_style="info", tooltip=still)
    readout = widgets.HTML()
    out = widgets.Output()

    def update(_=None):
        # Controls that could change nothing are shown off: greedy decoding ignores top-k, and
        # a seed only matters when more than one token can be drawn.
        top_k.disabled = temperature.value == 0
        seed.disabled = again.disabled = temperature.value == 0 or top_k.value == 1
        try:
            probs = next_token_probabilities(
                model, vocab, text.value, temperature.value, top_k.value
            )
            samples = sample_continuations(
                model,
                vocab,
                text.value,
                temperature.value,
                top_k.value,
                n_samples,
                max_new_tokens,
                int(seed.value),
            )
        except ValueError as err:
            readout.value = warning_html(err)
            clear(out)
            return
        setting = _sampling_name(temperature.value, top_k.value, vocab_size)
        lines = "".join(
            f"<li><code>{html.escape(text.value)}<b>{html.escape(s)}</b></code></li>"
            for s in samples
        )
        right = ""
        if answer is not None:
            try:
                right = f" Right answer: <code><b>{html.escape(answer(text.value))}</b></code>."
            except ValueError:
                right = ""
        readout.value = (
            f"<p>{setting}: {int((probs > 0).sum())} token(s) can be drawn next; the most likely "
            f"is <b>{html.escape(token_labels(vocab)[int(probs.argmax())])}</b> "
            f"({float(probs.max()):.2f}).{right}</p><p>{n_samples} samples (seed "
            f"{int(seed.value)}):</p><ul>{lines}</ul>"
        )
        plot_next_token(probs, vocab, title=f"next token after {text.value!r}: {setting}")
        show_figure(out)

    def resample(_):
        seed.value = int(seed.value) + 1  # triggers update

    for control in (text, temperature, top_k, seed):
        control.observe(update, names="value")
    again.on_click(resample)
    update()
    box = widgets.VBox(
        [widgets.HBox([text, seed, again]), widgets.HBox([temperature, top_k]), readout, out]
    )
    box.text, box.temperature, box.top_k, box.seed, box.again = (
        text,
        temperature,
        top_k,
        seed,
        again,
    )
    box.readout, box.out = readout, out
    return box


# ----------------------------------------------------------------------------- who sees whom


@torch.no_grad()
def attention_map(model: GPT, vocab: Vocab, prompt: str, layer: int, head: int) -> torch.Tensor:
    """The trained model's attention ``(T, T)`` over ``prompt`` for one layer and head."""
    ids = encode_prompt(prompt, vocab, model.config.block_size)
    c = model.config
    if not (0 <= layer < c.num_layers and 0 <= head < c.num_heads):
        raise ValueError(
            f"layer must be in 0..{c.num_layers - 1} and head in 0..{c.num_heads - 1}, "
            f"got layer {layer}, head {head}"
        )
    with evaluating(model), record_attention(model) as maps:
        model(torch.tensor([ids], device=_device(model)))
    return maps.layers("self")[layer][0, head].float().cpu()  # (T, T)


def visibility_sentence(prompt: str, position: int) -> str:
    """HTML: which characters of ``prompt`` position ``position`` may attend to."""
    if not 0 <= position < len(prompt):
        raise ValueError(f"position must be in 0..{len(prompt) - 1}, got {position}")
    seen, hidden = prompt[: position + 1], prompt[position + 1 :]
    hidden_text = (
        f"it may not see <code>{html.escape(hidden)}</code>"
        if hidden
        else ("it is the last position, so it sees the whole prompt")
    )
    return (
        f"position {position} (<b>{html.escape(prompt[position])}</b>) may attend to "
        f"<code>{html.escape(seen)}</code> ({len(seen)} token{'s' * (len(seen) > 1)}); "
        f"{hidden_text}."
    )


def plot_visibility(
    prompt: str,
    weights: torch.Tensor | None = None,
    position: int | None = None,
    ax: plt.Axes | None = None,
    title: str | None = None,
) -> plt.Axes:
    """The causal mask over ``prompt`` (1 = may attend), or attention ``weights (T, T)`` with
    the blocked future greyed out; ``position`` outlines one query's row."""
    chars = list(prompt)
    mask = causal_mask(len(chars))
    shown = mask.float() if weights is None else weights.detach().float().cpu()
    cmap = "Blues" if weights is None else "viridis"
    ax = plot_attention(
        shown, chars, chars, ax=ax, cmap=cmap, annotate=False, colorbar=weights is not None
    )
    ax.set_xlabel("key: may it be seen?")
    ax.set_ylabel("query: the position looking")
    if weights is not None:
        for i, j in (~mask).nonzero().tolist():  # the future: blocked by the mask
            ax.add_patch(Rectangle((j, i), 1, 1, fc="#dddddd", ec="white", lw=0.5, zorder=4))
    if position is not None:
        ax.add_patch(
            Rectangle((0, position), len(chars), 1, fill=False, ec="#dd8452", lw=2.5, zorder=5)
        )
    ax.set_title(title or ("the causal mask (1 = may attend)" if weights is None else "attention"))
    return ax


def causal_explorer(model: GPT, vocab: Vocab, prompt: str = "07+45=250") -> widgets.VBox:
    """A prompt box, a position slider and a view selector (the mask, or one layer and head of
    the trained model's attention) -> the map with the chosen query's row outlined."""
    c = model.config
    text = widgets.Text(value=prompt, description="prompt", style=_WIDE)
    view = widgets.ToggleButtons(
        options=[("causal mask", "mask"), ("trained attention", "attention")],
        value="mask",
        description="show",
        style=_WIDE,
    )
    mask_note = "for the trained attention; the causal mask is the same in every layer and head"
    layer = widgets.IntSlider(
        value=0, min=0, max=c.num_layers - 1, description="layer", style=_WIDE, tooltip=mask_note
    )
    head = widgets.IntSlider(
        value=0, min=0, max=c.num_heads - 1, description="head", style=_WIDE, tooltip=mask_note
    )
    position = widgets.IntSlider(
        value=max(len(prompt) - 1, 0),
        min=0,
        max=max(len(prompt) - 1, 0),
        description="position",
        style=_WIDE,
    )
    readout = widgets.HTML()
    out = widgets.Output()

    def update(_=None):
        prompt_now = text.value
        try:
            encode_prompt(prompt_now, vocab, c.block_size)
        except ValueError as err:
            readout.value = warning_html(err)
            clear(out)
            return
        last = len(prompt_now) - 1
        if position.max != last:  # keep the slider inside the prompt, without a nested redraw
            position.unobserve(update, names="value")
            position.value = min(position.value, last)
            position.max = last
            position.observe(update, names="value")
        # The mask is the same for every layer and head: those sliders only mean something
        # for the trained attention (or when there is more than one to choose from).
        layer.disabled = view.value == "mask" or c.num_layers == 1
        head.disabled = view.value == "mask" or c.num_heads == 1
        weights = None
        if view.value == "attention":
            weights = attention_map(model, vocab, prompt_now, layer.value, head.value)
        readout.value = f"<p>{visibility_sentence(prompt_now, position.value)}</p>"
        title = (
            "the causal mask (1 = may attend)"
            if weights is None
            else f"trained attention, layer {layer.value}, head {head.value} (grey: masked)"
        )
        plot_visibility(prompt_now, weights, position.value, title=title)
        show_figure(out)

    for control in (text, view, layer, head, position):
        control.observe(update, names="value")
    update()
    box = widgets.VBox(
        [widgets.HBox([text, view]), widgets.HBox([layer, head, position]), readout, out]
    )
    box.text, box.view, box.layer, box.head, box.position = text, view, layer, head, position
    box.readout, box.out = readout, out
    return box
