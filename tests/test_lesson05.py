"""Lesson 05: the reversal task, the encoding and self-attention checkers, and the explorers."""

from __future__ import annotations

import math

import ipywidgets as widgets
import pytest
import torch
from checks import assert_rejected
from torch import nn

from course_utils.attention import scaled_dot_product_attention
from course_utils.exercises import (
    QUIZZES,
    check_positional_encoding,
    check_self_attention,
    reference_positional_encoding,
    reference_self_attention,
)
from course_utils.tasks import (
    IGNORE_INDEX,
    ORDER_ALPHABET,
    bag_ceiling,
    make_reversal_data,
    order_vocab,
    reverse_tokens,
    tagging_accuracy,
    tagging_loader,
    tagging_loss,
)
from course_utils.training import fit
from course_utils.transformer import TransformerTagger, sinusoidal_positional_encoding
from course_utils.widgets import (
    attention_maps,
    encoding_readout,
    parse_sequence,
    plot_attention_maps,
    plot_encoding,
    positional_encoding_explorer,
    self_attention_case,
    self_attention_explorer,
)

LENGTH = 6


@pytest.fixture(scope="module")
def vocab():
    return order_vocab()


def _tagger(vocab, positions="sinusoidal", layers=2, heads=2):
    torch.manual_seed(0)
    model = TransformerTagger(
        len(vocab),
        d_model=16,
        num_heads=heads,
        num_layers=layers,
        max_len=LENGTH,
        positions=positions,
    )
    return model.eval()


# ----------------------------------------------------------------------------- the task


def test_reversal_data_is_seeded_and_labels_are_the_mirrored_tokens(vocab):
    tokens, targets = make_reversal_data(50, 8, vocab, seed=3)
    assert tokens.shape == targets.shape == (50, 8)
    assert torch.equal(targets[:, 0], tokens[:, 7]) and torch.equal(targets[:, 5], tokens[:, 2])
    assert torch.equal(targets, reverse_tokens(tokens))
    assert tokens.min() >= 4 and tokens.max() < len(vocab)  # symbols only: no pad, bos, eos, unk
    again, _ = make_reversal_data(50, 8, vocab, seed=3)
    other, _ = make_reversal_data(50, 8, vocab, seed=4)
    assert torch.equal(tokens, again) and not torch.equal(tokens, other)


def test_every_symbol_of_the_alphabet_appears(vocab):
    tokens, _ = make_reversal_data(200, 8, vocab, seed=0)
    assert len(ORDER_ALPHABET) == 16
    assert set(tokens.unique().tolist()) == set(range(4, 4 + len(ORDER_ALPHABET)))


@pytest.mark.parametrize("kwargs", [{"n": 0}, {"n": 5, "length": 0}])
def test_reversal_data_rejects_empty_sizes(kwargs):
    with pytest.raises(ValueError, match="must be >= 1"):
        make_reversal_data(**kwargs)


def test_order_vocab_rejects_repeated_symbols():
    with pytest.raises(ValueError, match="without repeats"):
        order_vocab("aab")


def test_tagging_loader_is_seeded(vocab):
    data = make_reversal_data(40, 4, vocab, seed=0)
    first = [b[0] for b in tagging_loader(*data, batch_size=16, seed=1)]
    second = [b[0] for b in tagging_loader(*data, batch_size=16, seed=1)]
    assert len(first) == 3 and all(torch.equal(a, b) for a, b in zip(first, second))


def test_bag_ceiling_by_hand():
    # a a b c: each 'a' sees {a, b, c} among the others (best 1/3), 'b' and 'c' see {a, a, ...}
    assert bag_ceiling([[1, 1, 2, 3]]) == pytest.approx((1 / 3 + 1 / 3 + 2 / 3 + 2 / 3) / 4)
    assert bag_ceiling([[5, 6]]) == pytest.approx(1.0)  # the other token is the partner
    assert bag_ceiling([[1, 1, 2]]) == pytest.approx(2 / 3)  # odd: the middle is its own partner
    assert bag_ceiling(torch.tensor([[7]])) == 1.0


def test_the_bag_guess_reaches_the_ceiling_and_no_more(vocab):
    # Predict, at each position, the most common *other* token: an order-blind rule.
    tokens, targets = make_reversal_data(3000, 8, vocab, seed=0)
    hits = 0
    for row, target in zip(tokens.tolist(), targets.tolist()):
        for i in range(len(row)):
            others = row[:i] + row[i + 1 :]
            guess = max(sorted(set(others)), key=others.count)
            hits += guess == target[i]
    assert hits / targets.numel() == pytest.approx(bag_ceiling(tokens), abs=0.02)
    assert 0.2 < bag_ceiling(tokens) < 0.35  # well above 1/16, far below 1


def test_self_attention_without_positions_is_permutation_equivariant(vocab):
    tokens, _ = make_reversal_data(4, LENGTH, vocab, seed=0)
    permutation = torch.tensor([3, 0, 5, 1, 4, 2])
    blind = _tagger(vocab, positions="none")
    with torch.no_grad():
        assert torch.allclose(
            blind(tokens)[:, permutation], blind(tokens[:, permutation]), atol=1e-5
        )
        positioned = _tagger(vocab, positions="sinusoidal")
        moved = positioned(tokens[:, permutation])
        assert not torch.allclose(positioned(tokens)[:, permutation], moved, atol=1e-3)


def test_tagging_loss_and_accuracy(vocab):
    tokens, targets = make_reversal_data(64, LENGTH, vocab, seed=0)

    class Oracle(nn.Module):  # logits that put everything on the right label
        def __init__(self):
            super().__init__()
            self.dummy = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return 20 * nn.functional.one_hot(x.flip(-1), len(vocab)).float() + self.dummy

    assert tagging_accuracy(Oracle(), tokens, targets, batch_size=10) == 1.0
    assert tagging_loss(Oracle(), (tokens, targets)) < 1e-6
    model = _tagger(vocab)
    before = tagging_loss(model, (tokens, targets)).item()
    assert before == pytest.approx(math.log(len(vocab)), rel=0.3)  # near uniform at the start
    fit(model, tagging_loader(tokens, targets, 32), tagging_loss, steps=10, lr=1e-2, progress=False)
    assert tagging_loss(model, (tokens, targets)).item() < before
    assert 0.0 <= tagging_accuracy(model, tokens, targets) <= 1.0


# ----------------------------------------------------------------------------- checkers: common


def test_the_references_agree_with_course_utils():
    assert torch.allclose(
        reference_positional_encoding(30, 12), sinusoidal_positional_encoding(30, 12), atol=1e-6
    )
    torch.manual_seed(0)
    x, w_q, w_k, w_v = torch.randn(2, 5, 6), torch.randn(6, 4), torch.randn(6, 4), torch.randn(6, 3)
    out, weights = reference_self_attention(x, w_q, w_k, w_v)
    tested_out, tested_weights = scaled_dot_product_attention(x @ w_q, x @ w_k, x @ w_v)
    assert torch.allclose(out, tested_out, atol=1e-6) and torch.allclose(weights, tested_weights)


def test_the_quiz_has_three_or_four_questions():
    assert 3 <= len(QUIZZES["05"]) <= 4


# ----------------------------------------------------------------------------- encoding checker


def _encoding(swap=False, halves=False, exponent="2i", start=0, multiply=False, cosine=True):
    """A configurable (mostly wrong) learner's encoding."""

    def encoding(max_len, d_model):
        position = torch.arange(start, start + max_len, dtype=torch.float32)[:, None]
        pairs = torch.arange(d_model // 2, dtype=torch.float32)
        power = {"2i": 2 * pairs, "i": pairs}[exponent] / d_model
        angle = position * 10000**power if multiply else position / 10000**power
        first, second = torch.sin(angle), torch.cos(angle) if cosine else torch.sin(angle)
        if swap:
            first, second = second, first
        if halves:
            return torch.cat([first, second], dim=1)
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2], pe[:, 1::2] = first, second
        return pe

    return encoding


def _odd_columns_use_their_own_exponent(max_len, d_model):
    j = torch.arange(d_model, dtype=torch.float32)
    angle = torch.arange(max_len, dtype=torch.float32)[:, None] / 10000 ** (j / d_model)
    return torch.where(j % 2 == 0, torch.sin(angle), torch.cos(angle))


def test_encoding_checker_accepts_the_tested_function():
    assert check_positional_encoding(sinusoidal_positional_encoding).passed


@pytest.mark.parametrize(
    ("wrong", "words"),
    [
        (_encoding(swap=True), "sin and cos are swapped"),
        (_encoding(halves=True), "all the sines first and then all the cosines"),
        (_encoding(exponent="i"), "it is 2i/d_model"),
        (_odd_columns_use_their_own_exponent, "both columns of a pair share one frequency"),
        (_encoding(start=1), "your positions start at 1"),
        (_encoding(multiply=True), "divide by it"),
        (_encoding(cosine=False), "every column is a sine"),
        (lambda n, d: reference_positional_encoding(n, d).T, "did you transpose?"),
        (lambda n, d: reference_positional_encoding(n, d).tolist(), "should be a torch.Tensor"),
        (lambda n, d: reference_positional_encoding(n, d).long(), "return floats"),
        (lambda n, d: reference_positional_encoding(n, d) * 2, "outside [-1, 1]"),
    ],
    ids=[
        "swap",
        "halves",
        "exponent-i",
        "exponent-j",
        "start-1",
        "multiply",
        "no-cos",
        "transposed",
        "list",
        "int",
        "scaled",
    ],
)
def test_encoding_checker_names_the_typical_mistake(wrong, words):
    assert_rejected(check_positional_encoding(wrong), words)


def test_encoding_checker_points_at_a_wrong_entry():
    def one_wrong(max_len, d_model):
        pe = reference_positional_encoding(max_len, d_model)
        pe[2, 3] = 0.5
        return pe

    assert_rejected(check_positional_encoding(one_wrong), "PE[2, 3] = 0.5000")


# ----------------------------------------------------------------------------- attention checker


def _self_attention(scale="d_k", dim=-1, keys="W_k", queries="W_q", values="v", swap=False):
    """A configurable (mostly wrong) learner's single-head self-attention."""

    def attention(x, W_q, W_k, W_v):
        weights_by_name = {"W_q": W_q, "W_k": W_k}
        q, k = x @ weights_by_name[queries], x @ weights_by_name[keys]
        if swap:
            q, k = k, q
        factor = {
            "d_k": 1 / math.sqrt(q.shape[-1]),
            "none": 1.0,
            "d_model": 1 / math.sqrt(x.shape[-1]),
            "d_k^1": 1 / q.shape[-1],
        }[scale]
        weights = torch.softmax(q @ k.transpose(-2, -1) * factor, dim=dim)
        return weights @ {"v": x @ W_v, "x": x, "k": k}[values], weights

    return attention


def test_self_attention_checker_accepts_course_utils_on_the_projections():
    def via_course_utils(x, W_q, W_k, W_v):
        return scaled_dot_product_attention(x @ W_q, x @ W_k, x @ W_v)

    assert check_self_attention(via_course_utils).passed


@pytest.mark.parametrize(
    ("wrong", "words"),
    [
        (_self_attention(scale="none"), "without the scale"),
        (_self_attention(scale="d_model"), "you divided the scores by √d_model"),
        (_self_attention(scale="d_k^1"), "you divided the scores by d_k = 4"),
        (_self_attention(dim=-2), "softmax over the wrong axis"),
        (_self_attention(keys="W_q"), "you projected the keys with W_q"),
        (_self_attention(queries="W_k"), "you projected the queries with W_k"),
        (_self_attention(swap=True), "queries and keys are swapped"),
        (_self_attention(values="x"), "you mixed x itself"),
        (_self_attention(values="k"), "the output is weights @ v"),
    ],
    ids=[
        "no-scale",
        "sqrt-d_model",
        "d_k",
        "dim-2",
        "keys-W_q",
        "queries-W_k",
        "swapped",
        "values-x",
        "values-k",
    ],
)
def test_self_attention_checker_names_the_typical_mistake(wrong, words):
    assert_rejected(check_self_attention(wrong), words)


def test_self_attention_checker_asks_for_a_pair_and_checks_out():
    assert_rejected(
        check_self_attention(lambda *args: reference_self_attention(*args)[0]), "return a pair"
    )

    def wrong_out(x, W_q, W_k, W_v):
        out, weights = reference_self_attention(x, W_q, W_k, W_v)
        return out + 1, weights

    assert_rejected(check_self_attention(wrong_out), "out is not weights @ (x @ W_v)")


# ----------------------------------------------------------------------------- attention explorer


def test_parse_sequence_reads_symbols_and_explains_bad_input(vocab):
    assert parse_sequence("abc", vocab, 6) == vocab.encode("abc")
    assert parse_sequence(" a b  c ", vocab, 6) == vocab.encode("abc")  # spaces are ignored
    with pytest.raises(ValueError, match="type a sequence of symbols"):
        parse_sequence("   ", vocab, 6)
    with pytest.raises(ValueError, match=r"unknown symbol\(s\) 'z', 'Z'"):
        parse_sequence("azZ", vocab, 6)
    with pytest.raises(ValueError, match="7 symbols is too long.*at most 6"):
        parse_sequence("abcdefg", vocab, 6)


def test_attention_maps_have_one_distribution_per_query(vocab):
    model = _tagger(vocab, layers=3, heads=4)
    predicted, maps = attention_maps(model, vocab.encode("abcd"))
    assert len(predicted) == 4 and all(0 <= p < len(vocab) for p in predicted)
    assert len(maps) == 3 and all(m.shape == (4, 4, 4) for m in maps)
    assert torch.allclose(maps[0].sum(-1), torch.ones(4, 4))


def test_self_attention_case_scores_against_the_target(vocab):
    model = _tagger(vocab)
    case = self_attention_case(model, "abcdef", vocab, target_fn=lambda s: s[::-1])
    assert case["source"] == "abcdef" and case["target"] == "fedcba"
    assert len(case["output"]) == 6
    expected = sum(a == b for a, b in zip(case["output"], "fedcba")) / 6
    assert case["accuracy"] == pytest.approx(expected)
    assert self_attention_case(model, "ab", vocab)["target"] is None


def test_plot_attention_maps_draws_one_panel_per_layer_and_head(vocab):
    _, maps = attention_maps(_tagger(vocab, layers=2, heads=4), vocab.encode("abc"))
    fig = plot_attention_maps(maps, list("abc"), title="t")
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels][:2] == ["layer 1, head 1", "layer 1, head 2"]
    assert len(panels) == 8
    assert [t.get_text() for t in panels[0].get_xticklabels()] == ["a0", "b1", "c2"]
    with pytest.raises(ValueError, match="each map must be"):
        plot_attention_maps(maps, list("abcd"))


def test_attention_explorer_follows_the_text_and_the_model_choice(vocab, shown):
    models = {"no positions": _tagger(vocab, "none"), "sinusoidal": _tagger(vocab)}
    box = self_attention_explorer(models, vocab, example="abcdef", target_fn=lambda s: s[::-1])
    assert isinstance(box, widgets.VBox)
    assert not box.choice.disabled and box.own.style.description_width == "initial"
    first = box.view.value
    assert "fedcba" in first and "no positions" in first
    box.choice.value = "sinusoidal"
    assert "sinusoidal" in box.view.value
    plots = {shown(box.out)}
    for text in ("a", "ponmlk"):  # the shortest and the longest input
        box.own.value = text
        assert "⚠️" not in box.view.value and text[::-1] in box.view.value
        plots.add(shown(box.out))
    assert len(plots) == 3  # every change drew


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "type a sequence"),
        ("abq!", "unknown symbol(s) &#x27;q&#x27;"),
        ("abcdefg", "7 symbols is too long"),
    ],
)
def test_attention_explorer_shows_a_message_for_bad_input(vocab, text, words, shown):
    box = self_attention_explorer(_tagger(vocab), vocab)
    assert box.choice.disabled  # one model: nothing to choose
    box.own.value = text
    assert "⚠️" in box.view.value and words in box.view.value
    assert box.out.outputs == (), "no stale plot beside the message"
    box.own.value = "abc"
    shown(box.out)


def test_attention_explorer_notes_a_length_it_was_not_trained_on(vocab):
    box = self_attention_explorer(_tagger(vocab), vocab, example="abcdef", trained_length=6)
    assert "trained on sequences" not in box.view.value
    box.own.value = "abc"
    assert "trained on sequences of exactly 6 symbols" in box.view.value


# ----------------------------------------------------------------------------- encoding explorer


@pytest.mark.parametrize(("position", "dimension"), [(0, 0), (63, 63), (10, 5), (0, 63), (63, 0)])
def test_encoding_readout_matches_the_tested_table(position, dimension):
    table = sinusoidal_positional_encoding(64, 64)
    readout = encoding_readout(position, dimension, 64, 64)
    assert readout["value"] == pytest.approx(float(table[position, dimension]), abs=1e-5)
    assert readout["function"] == ("sin" if dimension % 2 == 0 else "cos")
    assert readout["pair"] == dimension // 2
    assert readout["wavelength"] == pytest.approx(
        2 * math.pi * 10000 ** (2 * (dimension // 2) / 64)
    )


@pytest.mark.parametrize(
    ("position", "dimension"), [(-1, 0), (64, 0), (0, 64), (1.5, 0), (True, 0)]
)
def test_encoding_readout_rejects_indices_outside_the_table(position, dimension):
    with pytest.raises(ValueError, match="must be"):
        encoding_readout(position, dimension, 64, 64)


@pytest.mark.parametrize(("position", "dimension"), [(0, 0), (63, 63)])
def test_plot_encoding_marks_the_choice_at_the_extremes(position, dimension):
    fig = plot_encoding(position, dimension, 64, 64)
    titles = " | ".join(ax.get_title() for ax in fig.axes)
    assert f"dimension {dimension}:" in titles and f"position {position}:" in titles
    bars = [ax for ax in fig.axes if ax.get_title().startswith("position")][0].patches
    assert len(bars) == 65  # 64 dimensions, and the chosen one drawn again in orange


def test_encoding_explorer_sliders_change_the_readout_and_every_extreme_draws(shown):
    box = positional_encoding_explorer(max_len=32, d_model=16)
    assert box.position.max == 31 and box.dimension.max == 15
    assert box.position.style.description_width == "initial"
    seen, plots = {box.readout.value}, {shown(box.out)}
    for position in (0, 31):
        for dimension in (0, 15):
            box.position.value, box.dimension.value = position, dimension
            assert f"PE[{position}, {dimension}]" in box.readout.value
            assert "⚠️" not in box.readout.value
            seen.add(box.readout.value)
            plots.add(shown(box.out))
    assert len(seen) == 5
    assert len(plots) == 5


def test_encoding_explorer_works_with_one_position_and_one_dimension():
    box = positional_encoding_explorer(max_len=1, d_model=1)
    assert "PE[0, 0]" in box.readout.value


def test_tagging_accuracy_skips_unlabelled_positions_and_refuses_none(vocab):
    tokens, targets = make_reversal_data(6, 4, vocab, seed=0)

    class Oracle(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.dummy = torch.nn.Parameter(torch.zeros(1))

        def forward(self, t):
            return torch.nn.functional.one_hot(reverse_tokens(t), len(vocab)).float()

    partly = targets.clone()
    partly[:, 0] = 0  # wrong labels on the first position ...
    assert tagging_accuracy(Oracle(), tokens, partly) == 0.75
    partly[:, 0] = IGNORE_INDEX  # ... unless they are not scored at all
    assert tagging_accuracy(Oracle(), tokens, partly) == 1.0
    with pytest.raises(ValueError, match="no labelled positions"):
        tagging_accuracy(Oracle(), tokens, torch.full_like(targets, IGNORE_INDEX))
    with pytest.raises(ValueError, match=r"\(6, 4\) and labels \(6, 3\)"):
        tagging_loader(tokens, targets[:, :3])
