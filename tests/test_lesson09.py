"""Lesson 09: the three checkers (patchify, CLS + positions, attention rollout), the quiz, and the
vision explorer's logic and controls."""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import pytest
import torch
from checks import assert_rejected
from torch.nn import functional as F

from course_utils.attention import record_attention
from course_utils.exercises import (
    NOT_ATTEMPTED,
    PASSED,
    QUIZZES,
    SOLUTIONS,
    check_attention_rollout,
    check_patchify,
    check_prepend_cls,
    reference_attention_rollout,
    reference_patchify,
    reference_prepend_cls,
)
from course_utils.vit import VisionTransformer, attention_rollout, patchify
from course_utils.widgets import (
    classify_image,
    cls_attention,
    plot_attention_overlay,
    plot_patches,
    plot_position_similarity,
    position_similarity,
    vit_explorer,
)

torch.set_num_threads(1)


def _stub(*args):
    raise NotImplementedError


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return VisionTransformer(d_model=16, num_heads=2, num_layers=2).eval()


@pytest.fixture(scope="module")
def images():
    generator = torch.Generator().manual_seed(0)
    return torch.rand(6, 1, 8, 8, generator=generator), torch.tensor([0, 1, 2, 3, 4, 5])


# ----------------------------------------------------------------------------- the references


def test_the_references_equal_course_utils():
    images = torch.randn(2, 3, 8, 8)
    assert torch.equal(reference_patchify(images, 2), patchify(images, 2))
    attentions = [torch.softmax(torch.randn(2, 2, 5, 5), -1) for _ in range(3)]
    torch.testing.assert_close(
        reference_attention_rollout(attentions), attention_rollout(attentions)
    )
    vit = VisionTransformer(d_model=8, num_heads=2, num_layers=1)
    x = torch.rand(3, 1, 8, 8)
    tokens = reference_prepend_cls(vit.patch_embedding(x), vit.cls_token, vit.position_embedding)
    assert tokens.shape == (3, 17, 8)
    torch.testing.assert_close(
        tokens[:, 0], (vit.cls_token[0] + vit.position_embedding[:, 0]).expand(3, -1)
    )


@pytest.mark.parametrize(
    ("check", "reference"),
    [
        (check_patchify, reference_patchify),
        (check_prepend_cls, reference_prepend_cls),
        (check_attention_rollout, reference_attention_rollout),
    ],
)
def test_each_checker_accepts_the_reference_and_waits_for_a_stub(check, reference):
    assert check(reference).status == PASSED
    result = check(_stub)
    assert result.status == NOT_ATTEMPTED and "not attempted yet" in result.message


def test_the_solutions_are_registered():
    assert {"patchify", "prepend_cls", "attention_rollout"} <= set(SOLUTIONS)


# ----------------------------------------------------------------------------- patchify


def _grid(images, p):
    b, c, h, w = images.shape
    return images.reshape(b, c, h // p, p, w // p, p), (b, (h // p) * (w // p), c * p * p)


def test_check_patchify_accepts_other_right_answers():
    assert check_patchify(patchify).status == PASSED
    assert check_patchify(lambda x, p: F.unfold(x, p, stride=p).transpose(1, 2)).status == PASSED


@pytest.mark.parametrize(
    ("order", "words"),
    [
        ((0, 4, 2, 1, 3, 5), "column-major order"),
        ((0, 2, 4, 3, 5, 1), "channels last"),
        ((0, 2, 4, 1, 5, 3), "flattened column by column"),
    ],
)
def test_check_patchify_names_the_layout_mistake(order, words):
    def wrong(images, p):
        grid, shape = _grid(images, p)
        return grid.permute(*order).reshape(shape)

    assert_rejected(check_patchify(wrong), words)


def test_check_patchify_rejects_a_plain_reshape_and_transposed_output():
    assert_rejected(
        check_patchify(lambda x, p: x.reshape(_grid(x, p)[1])), "a plain reshape cuts the image"
    )
    assert_rejected(
        check_patchify(lambda x, p: patchify(x, p).transpose(1, 2)), "one row per patch"
    )


def test_check_patchify_rejects_in_place_changes():
    def in_place(images, p):
        out = patchify(images, p).clone()
        images.zero_()
        return out

    assert_rejected(check_patchify(in_place), "changed the images")


# ----------------------------------------------------------------------------- CLS + positions


def _expand(cls, patches):
    return cls.expand(len(patches), -1, -1)


@pytest.mark.parametrize(
    ("wrong", "words"),
    [
        (lambda x, c, p: torch.cat([x, _expand(c, x)], 1) + p, "CLS token went to the end"),
        (lambda x, c, p: torch.cat([_expand(c, x), x], 1), "position embeddings are missing"),
        (
            lambda x, c, p: torch.cat([_expand(c, x), x + p[:, 1:]], 1),
            "only the patches got position embeddings",
        ),
        (lambda x, c, p: torch.cat([_expand(c, x), x + p[:, :-1]], 1), "index 0 is CLS's"),
        (lambda x, c, p: torch.cat([c, x], 1) + p, "expand CLS to the batch"),
        (lambda x, c, p: x + p[:, 1:], "extra token in front"),
    ],
)
def test_check_prepend_cls_names_the_mistake(wrong, words):
    assert_rejected(check_prepend_cls(wrong), words)


# ----------------------------------------------------------------------------- attention rollout


def _rollout(attentions, residual=0.5, reverse=False, reduce="mean"):
    result = None
    for weights in attentions:
        mixed = weights.mean(1) if reduce == "mean" else weights.max(1).values
        mixed = residual * torch.eye(mixed.shape[-1]) + (1 - residual) * mixed
        mixed = mixed / mixed.sum(-1, keepdim=True)
        if result is not None:
            mixed = result @ mixed if reverse else mixed @ result
        result = mixed
    return result


@pytest.mark.parametrize(
    ("wrong", "words"),
    [
        (lambda a: _rollout(a, residual=0.0), "residual connection is missing"),
        (lambda a: _rollout(a, reverse=True), "wrong order"),
        (lambda a: _rollout(a, reduce="max"), "not the max"),
        (lambda a: _rollout(a[-1:]), "the last layer alone"),
        (lambda a: a[0], "average over the heads"),
    ],
)
def test_check_attention_rollout_names_the_mistake(wrong, words):
    assert_rejected(check_attention_rollout(wrong), words)


def test_the_rollout_checker_can_tell_the_order_apart():
    attentions = [torch.softmax(torch.randn(2, 3, 5, 5) * 2, -1) for _ in range(3)]
    assert not torch.allclose(_rollout(attentions), _rollout(attentions, reverse=True), atol=1e-3)


# ----------------------------------------------------------------------------- quiz


def test_the_quiz_has_three_or_four_questions_with_explanations():
    questions = QUIZZES["09"]
    assert 3 <= len(questions) <= 4
    for question in questions:
        assert question.grade(question.answer)[0] and question.why


# ----------------------------------------------------------------------------- explorer logic


def test_cls_attention_is_a_grid_for_every_layer_and_head_and_the_rollout(model, images):
    image = images[0][0]
    rollout = cls_attention(model, image)
    assert rollout.shape == (4, 4) and (rollout >= 0).all()
    assert rollout.sum() < 1  # the CLS token keeps some attention on itself
    maps = {
        (layer, head): cls_attention(model, image, layer, head)
        for layer in range(2)
        for head in (0, 1, "mean")
    }
    for value in maps.values():
        assert value.shape == (4, 4)
    # one layer's CLS row over the patches, without CLS: sums to 1 minus its weight on itself
    with torch.no_grad(), record_attention(model.eval()) as recorded:
        model(image.reshape(1, -1, *image.shape[-2:]))
    weights = recorded.layers("self")[1][0, 1]  # layer 1, head 1: (N+1, N+1)
    torch.testing.assert_close(maps[(1, 1)].flatten(), weights[0, 1:])
    torch.testing.assert_close(
        maps[(1, "mean")], (maps[(1, 0)] + maps[(1, 1)]) / 2, atol=1e-6, rtol=1e-5
    )
    assert not torch.allclose(maps[(0, 0)], maps[(0, 1)])


@pytest.mark.parametrize(("layer", "head"), [(2, 0), (-1, 0), (0, 2), ("last", 0)])
def test_cls_attention_rejects_a_layer_or_head_that_does_not_exist(model, images, layer, head):
    with pytest.raises(ValueError, match="must be"):
        cls_attention(model, images[0][0], layer, head)


def test_classify_image_gives_probabilities(model, images):
    probs = classify_image(model, images[0][1])
    assert probs.shape == (10,) and probs.sum().item() == pytest.approx(1.0, abs=1e-5)


def test_position_similarity_is_cosine():
    table = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]])
    similarity = position_similarity(table[None])
    torch.testing.assert_close(
        similarity, torch.tensor([[1.0, 0.0, -1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 1.0]])
    )
    with pytest.raises(ValueError, match="position embeddings"):
        position_similarity(torch.zeros(3))


def test_the_plots_draw_and_check_their_inputs(images):
    image = images[0][0]
    ax = plot_patches(image, 2)
    assert len(ax.texts) == 16 and ax.texts[5].get_text() == "5"
    assert len(plot_patches(image, 4).texts) == 4
    with pytest.raises(ValueError, match="must divide"):
        plot_patches(image, 3)
    assert len(plot_attention_overlay(image, torch.zeros(4, 4)).images) == 2  # a blank map draws
    figure = plot_position_similarity(torch.eye(16), 4)
    assert len(figure.axes) == 17  # 16 small maps and the colour bar
    with pytest.raises(ValueError, match=r"\(16, 16\)"):
        plot_position_similarity(torch.eye(9), 4)


# ----------------------------------------------------------------------------- the explorer


def test_vit_explorer_controls_change_the_output_and_every_extreme_draws(model, images, shown):
    box = vit_explorer(model, *images)
    assert isinstance(box, widgets.VBox)
    assert box.picker.style.description_width == "initial"
    first = box.readout.value
    assert "prediction" in first and "rollout" in first and "⚠️" not in first
    assert box.head.disabled  # no head choice for the rollout
    seen, plots = {first}, {shown(box.out)}
    for index in (box.picker.min, box.picker.max):
        box.picker.value = index
        for layer in [value for _, value in box.layer.options]:
            box.layer.value = layer
            for head in [value for _, value in box.head.options]:
                box.head.value = head
                assert "⚠️" not in box.readout.value
                assert f"image {index}:" in box.readout.value
                seen.add(box.readout.value)
                plots.add(shown(box.out))
    assert not box.head.disabled
    assert len(seen) > 10
    assert len(plots) == len(seen), "every setting draws its own picture"


def test_vit_explorer_rejects_images_without_labels(model, images):
    with pytest.raises(ValueError, match="as many labels as images"):
        vit_explorer(model, images[0], images[1][:3])
