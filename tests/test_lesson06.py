"""Lesson 06: the split/merge-heads checkers, the two-relation task and the head explorer."""

from __future__ import annotations

import ipywidgets as widgets
import pytest
import torch
from checks import assert_rejected

from course_utils import fit, seed_everything
from course_utils.attention import MultiHeadAttention
from course_utils.exercises import (
    QUIZZES,
    check_merge_heads,
    check_split_heads,
    reference_merge_heads,
    reference_split_heads,
)
from course_utils.tasks import (
    IGNORE_INDEX,
    decode_difference,
    make_relation_task,
    relation_num_classes,
    relation_queries,
    relation_targets,
    relation_tokens_text,
    tagging_accuracy,
    tagging_loader,
    tagging_loss,
)
from course_utils.transformer import TransformerTagger
from course_utils.widgets import head_maps, heads_explorer, offset_mass, plot_heads

CHECKERS = {"split_heads": check_split_heads, "merge_heads": check_merge_heads}


# ----------------------------------------------------------------------------- checkers: common


@pytest.mark.parametrize("name", sorted(CHECKERS))
def test_a_non_tensor_is_rejected(name):
    assert_rejected(CHECKERS[name](lambda *a: [1, 2, 3]), "torch.Tensor")


def test_the_references_equal_the_course_module():
    torch.manual_seed(0)
    mha = MultiHeadAttention(24, 4)
    x = torch.randn(3, 7, 24)
    assert torch.equal(reference_split_heads(x, 4), mha.split_heads(x))
    heads = mha.split_heads(x)
    assert torch.equal(reference_merge_heads(heads), mha.merge_heads(heads))
    assert torch.equal(reference_merge_heads(reference_split_heads(x, 4)), x)


def test_the_checkers_accept_other_right_answers():
    def split_by_permute(x, num_heads):
        b, length, d = x.shape
        return x.reshape(b, length, num_heads, d // num_heads).permute(0, 2, 1, 3)

    def merge_by_cat(x):
        return torch.cat(list(x.unbind(dim=1)), dim=-1)  # [head 0 | head 1 | ...]

    assert check_split_heads(split_by_permute).passed
    assert check_merge_heads(merge_by_cat).passed


def test_the_quiz_has_three_or_four_questions():
    assert 3 <= len(QUIZZES["06"]) <= 4


# ----------------------------------------------------------------------------- split heads


def _split(order):
    def split(x, num_heads):
        b, length, d = x.shape
        dh = d // num_heads
        if order == "no transpose, heads mixed":
            return x.view(b, num_heads, length, dh)
        if order == "forgot the transpose":
            return x.view(b, length, num_heads, dh)
        if order == "interleaved":
            return x.view(b, length, dh, num_heads).permute(0, 3, 1, 2)
        if order == "swapped":
            return x.view(b, length, dh, num_heads).transpose(1, 2)
        if order == "off by one":
            return x.view(b, length, num_heads, dh).transpose(1, 2).roll(1, dims=1)
        raise AssertionError(order)

    return split


@pytest.mark.parametrize(
    "order, words",
    [
        ("no transpose, heads mixed", "mixed over positions"),
        ("forgot the transpose", "forgot the transpose"),
        ("interleaved", "every H-th feature"),
        ("swapped", "swapped"),
        ("off by one", "yours differ"),
    ],
)
def test_split_heads_names_the_typical_mistake(order, words):
    assert_rejected(check_split_heads(_split(order)), words)


# ----------------------------------------------------------------------------- merge heads


@pytest.mark.parametrize(
    "wrong, words",
    [
        (lambda x: x.reshape(x.shape[0], x.shape[2], -1), "without moving the head axis back"),
        (lambda x: x.transpose(1, 2).view(x.shape[0], x.shape[2], -1), "refused .view"),
        (lambda x: x.permute(0, 2, 3, 1).reshape(x.shape[0], x.shape[2], -1), "interleaved"),
        (lambda x: x.mean(dim=1), "summed or averaged the heads"),
        (lambda x: x.transpose(1, 2), "did not join the last two axes"),
        (lambda x: x.transpose(1, 2).reshape(x.shape[0], x.shape[2], -1) + 1, "should give back x"),
    ],
)
def test_merge_heads_names_the_typical_mistake(wrong, words):
    assert_rejected(check_merge_heads(wrong), words)


def test_merge_heads_via_contiguous_view_is_accepted():
    def merge(x):
        b, h, length, dh = x.shape
        return x.transpose(1, 2).contiguous().view(b, length, h * dh)

    assert check_merge_heads(merge).passed


# ----------------------------------------------------------------------------- the task


def test_relation_task_is_seeded_and_labels_the_difference():
    tokens, labels = make_relation_task(50, length=12, num_values=10, before=1, after=2, seed=3)
    again, _ = make_relation_task(50, length=12, num_values=10, before=1, after=2, seed=3)
    other, _ = make_relation_task(50, length=12, num_values=10, before=1, after=2, seed=4)
    assert torch.equal(tokens, again) and not torch.equal(tokens, other)
    assert tokens.shape == labels.shape == (50, 12)
    assert tokens.min() >= 1 and tokens.max() <= 10  # 0 is padding
    values = tokens - 1
    for i in range(12):
        if 1 <= i < 10:
            diff = decode_difference(labels[:, i], 10)
            assert torch.equal(diff, values[:, i - 1] - values[:, i + 2])
        else:
            assert (labels[:, i] == IGNORE_INDEX).all()
    scored = labels[labels != IGNORE_INDEX]
    assert scored.min() >= 0 and scored.max() < relation_num_classes(10)


def test_the_difference_is_asymmetric_and_each_token_alone_leaves_ten_answers():
    values = torch.tensor([[3, 0, 0, 7], [7, 0, 0, 3]])
    labels = relation_targets(values, 10, before=1, after=2)
    assert decode_difference(labels[:, 1], 10).tolist() == [-4, 4]
    tokens, labels = make_relation_task(4000, num_values=10, seed=0)
    first = tokens[:, 0] - 1
    answers = decode_difference(labels[:, 1], 10)
    for a in range(10):
        assert len(set(answers[first == a].tolist())) == 10  # x[i+2] still free: 10 answers


def test_relation_queries_are_the_positions_with_both_neighbours():
    assert relation_queries(12, 1, 2).tolist() == list(range(1, 10))
    assert relation_queries(4, 1, 2).tolist() == [1]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n": 0},
        {"n": 5, "length": 3},
        {"n": 5, "before": 0},
        {"n": 5, "after": 1.5},
        {"n": 5, "num_values": 1},
    ],
)
def test_bad_task_sizes_raise_a_clear_value_error(kwargs):
    with pytest.raises(ValueError):
        make_relation_task(**kwargs)


def test_tokens_text_shows_digits_and_padding():
    assert relation_tokens_text(torch.tensor([1, 10, 0])) == ["0", "9", "·"]


def test_loader_loss_and_accuracy_train_a_tagger_a_little():
    tokens, labels = make_relation_task(256, seed=0)
    batches = list(tagging_loader(tokens, labels, batch_size=64, seed=0))
    assert len(batches) == 4 and batches[0][0].shape == (64, 12)
    again = list(tagging_loader(tokens, labels, batch_size=64, seed=0))
    assert torch.equal(batches[0][0], again[0][0])  # a seeded order
    seed_everything(0)
    model = TransformerTagger(11, d_model=16, num_heads=2, num_layers=1, max_len=12, num_classes=19)
    before = tagging_loss(model, (tokens, labels)).item()
    fit(model, batches, tagging_loss, steps=10, lr=1e-2, progress=False)
    assert tagging_loss(model, (tokens, labels)).item() < before
    accuracy = tagging_accuracy(model, tokens, labels, batch_size=100)
    assert 0.0 <= accuracy <= 1.0
    with pytest.raises(ValueError):
        tagging_loader(tokens, labels[:, :5])


# ----------------------------------------------------------------------------- explorer logic


def _model(num_layers=2, num_heads=4):
    seed_everything(0)
    return TransformerTagger(
        11, d_model=16, num_heads=num_heads, num_layers=num_layers, max_len=12, num_classes=19
    ).eval()


def test_offset_mass_reads_a_head_that_looks_one_back():
    length = 6
    back = torch.zeros(length, length)
    back[torch.arange(1, length), torch.arange(length - 1)] = 1.0  # query i -> key i - 1
    back[0, 0] = 1.0
    uniform = torch.full((length, length), 1 / length)
    weights = torch.stack([back, uniform])[None]  # (1, H=2, T, T)
    assert torch.allclose(offset_mass(weights, -1), torch.tensor([1.0, 1 / length]))
    assert torch.allclose(offset_mass(weights[0], 2), torch.tensor([0.0, 1 / length]))
    assert torch.allclose(offset_mass(weights, 0, queries=[0]), torch.tensor([1.0, 1 / length]))
    with pytest.raises(ValueError):
        offset_mass(weights, 5, queries=[3])
    with pytest.raises(ValueError):
        offset_mass(torch.zeros(2, 3, 4), 1)


def test_head_maps_gives_one_map_per_layer_and_rows_sum_to_one():
    model = _model()
    tokens, _ = make_relation_task(3, seed=0)
    maps = head_maps(model, tokens)
    assert len(maps) == 2 and maps[0].shape == (3, 4, 12, 12)
    assert torch.allclose(maps[1].sum(-1), torch.ones(3, 4, 12), atol=1e-5)
    assert head_maps(model, tokens[0])[0].shape == (1, 4, 12, 12)
    with pytest.raises(ValueError):
        head_maps(model, torch.zeros(0, dtype=torch.long))


@pytest.mark.parametrize("head", [None, 0, 3])
def test_plot_heads_draws_all_heads_or_one(head):
    weights = torch.softmax(torch.randn(4, 5, 5), dim=-1)
    fig = plot_heads(weights, list("abcde"), head=head, layer=1)
    assert len([ax for ax in fig.axes if ax.get_title()]) == (4 if head is None else 1)
    titled = plot_heads(weights, list("abcde"), head=head, title="all of them")
    assert titled._suptitle is not None and titled._suptitle.get_text() == "all of them"
    with pytest.raises(ValueError):
        plot_heads(weights, list("abcde"), head=4)
    with pytest.raises(ValueError):
        plot_heads(weights, list("abc"))


def test_explorer_controls_change_the_view_and_every_extreme_draws(shown):
    model = _model(num_heads=2)
    tokens, labels = make_relation_task(5, seed=0)
    box = heads_explorer(
        model,
        tokens,
        labels,
        token_text=relation_tokens_text,
        offsets=(-1, 2),
        queries=range(1, 10),
    )
    assert isinstance(box, widgets.VBox)
    assert box.example.style.description_width == "initial"
    assert [v for _, v in box.layer.options] == [0, 1]
    assert [v for _, v in box.head.options] == [-1, 0, 1]  # all heads, then each head
    seen, plots = {box.readout.value}, {shown(box.out)}
    # each control to its extremes, one change at a time: every value must draw
    for name, value in [
        ("layer", 1),
        ("head", 1),
        ("head", 0),
        ("example", 4),
        ("head", -1),
        ("layer", 0),
    ]:
        getattr(box, name).value = value
        assert "⚠️" not in box.readout.value
        assert f"layer {box.layer.value}" in box.readout.value
        assert "offset -1" in box.readout.value and "offset +2" in box.readout.value
        assert "labelled positions right" in box.readout.value
        seen.add(box.readout.value)
        plots.add(shown(box.out))
    assert len(seen) >= 3  # the layer and the example change the readout
    assert len(plots) == 7  # every change drew a different plot


def test_explorer_works_without_labels_or_offsets_and_rejects_empty_input():
    box = heads_explorer(_model(num_layers=1, num_heads=1), make_relation_task(1, seed=0)[0])
    assert [v for _, v in box.layer.options] == [0]
    assert box.example.max == 0
    assert "⚠️" not in box.readout.value and "offset" not in box.readout.value
    with pytest.raises(ValueError):
        heads_explorer(_model(), torch.zeros(0, 12, dtype=torch.long))
