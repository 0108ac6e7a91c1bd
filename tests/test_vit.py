"""vit: patches in row-major order, a linear layer on patches is a strided convolution, the ViT's
shapes and maps, and attention rollout."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from course_utils.attention import record_attention
from course_utils.vit import (
    PatchEmbedding,
    VisionTransformer,
    attention_rollout,
    cls_attention_map,
    patchify,
)


def test_patchify_cuts_row_major_patches():
    image = torch.arange(16.0).view(1, 1, 4, 4)
    patches = patchify(image, 2)
    assert patches.shape == (1, 4, 4)
    assert patches[0, 0].tolist() == [0, 1, 4, 5]  # top left
    assert patches[0, 1].tolist() == [2, 3, 6, 7]  # top right comes second: row-major
    assert patches[0, 2].tolist() == [8, 9, 12, 13]
    assert patches[0, 3].tolist() == [10, 11, 14, 15]


def test_patchify_flattens_channels_first_like_a_conv_weight():
    images = torch.randn(2, 3, 6, 6)
    patches = patchify(images, 3)  # (2, 4, 27)
    assert patches.shape == (2, 4, 27)
    torch.testing.assert_close(patches[1, 3].view(3, 3, 3), images[1, :, 3:, 3:])


@pytest.mark.parametrize("channels, patch, size", [(1, 2, 8), (3, 4, 8), (2, 1, 3)])
def test_a_linear_layer_on_patches_is_a_strided_convolution(channels, patch, size):
    torch.manual_seed(0)
    embed = PatchEmbedding(channels, patch, 16)
    images = torch.randn(2, channels, size, size)
    conv = embed.as_conv()
    expected = conv(images).flatten(2).transpose(1, 2)  # (B, d, gh, gw) -> (B, N, d)
    torch.testing.assert_close(embed(images), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        embed(images), F.conv2d(images, conv.weight, conv.bias, stride=patch).flatten(2).mT
    )


def test_patchify_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"must divide.*\(1, 1, 8, 6\)"):
        patchify(torch.zeros(1, 1, 8, 6), 4)
    with pytest.raises(ValueError, match=r"\(8, 8\)"):
        patchify(torch.zeros(8, 8), 2)
    with pytest.raises(ValueError, match=r"\(2, 3, 8, 8\)"):
        PatchEmbedding(1, 2, 8)(torch.zeros(2, 3, 8, 8))


def test_vision_transformer_shapes_and_maps():
    torch.manual_seed(0)
    model = VisionTransformer(image_size=8, patch_size=2, num_layers=3, d_model=32, num_heads=4)
    with record_attention(model) as maps:
        logits = model(torch.rand(5, 1, 8, 8))
    assert logits.shape == (5, 10)
    assert maps.names == ["layers.0.self", "layers.1.self", "layers.2.self"]
    assert maps.layers("self")[0].shape == (5, 4, 17, 17)  # 16 patches + CLS
    with pytest.raises(ValueError, match=r"\(5, 1, 6, 6\)"):
        model(torch.rand(5, 1, 6, 6))
    with pytest.raises(ValueError, match="must divide image_size"):
        VisionTransformer(image_size=8, patch_size=3)


@pytest.mark.parametrize("dtype", [torch.float64, torch.uint8])
def test_images_of_another_dtype_than_the_model_are_refused_with_the_fix(dtype):
    torch.manual_seed(0)
    model = VisionTransformer(image_size=8, patch_size=2, num_layers=1, d_model=16, num_heads=2)
    images = torch.rand(2, 1, 8, 8).to(dtype)  # scikit-learn's digits come as float64
    with pytest.raises(ValueError, match=rf"torch.float32.*got {dtype}.*images.float\(\)"):
        model(images)
    assert model.double()(images.double()).dtype == torch.float64  # a float64 model is fine


def test_vision_transformer_uses_where_things_are():
    """Learned positions: moving a patch changes the prediction (with all-zero positions a ViT
    could not tell a digit from its patches shuffled)."""
    torch.manual_seed(0)
    model = VisionTransformer(image_size=4, patch_size=2, num_layers=1, d_model=16, num_heads=2)
    image = torch.rand(1, 1, 4, 4)
    swapped = image.clone()
    swapped[..., :2, :2], swapped[..., :2, 2:] = image[..., :2, 2:], image[..., :2, :2]
    assert not torch.allclose(model(image), model(swapped), atol=1e-6)
    with torch.no_grad():
        model.position_embedding.zero_()
    torch.testing.assert_close(model(image), model(swapped), atol=1e-5, rtol=1e-5)


def _tiny_vit(num_layers=2):
    torch.manual_seed(0)
    return VisionTransformer(
        image_size=4, patch_size=2, num_layers=num_layers, d_model=16, num_heads=2
    ).eval()


def _logits_with_last_layer_changed_at(model, images, positions):
    """Logits after adding noise to the last layer's output at ``positions`` (of N+1 tokens)."""

    def add_noise(module, inputs, x):
        noise = torch.zeros_like(x)
        noise[:, positions] = torch.randn(x.shape[0], len(positions), x.shape[-1])
        return x + 3 * noise

    handle = model.layers[-1].register_forward_hook(add_noise)
    try:
        return model(images)
    finally:
        handle.remove()


def test_the_classifier_reads_the_cls_position_and_nothing_else():
    """The head classifies token 0 (CLS): what the last layer leaves at the patch positions does
    not reach the logits, what it leaves at CLS does. Mean pooling or reading a patch fails."""
    model = _tiny_vit()
    images = torch.rand(3, 1, 4, 4)
    with torch.no_grad():
        logits = model(images)
        patches_changed = _logits_with_last_layer_changed_at(model, images, [1, 2, 3, 4])
        cls_changed = _logits_with_last_layer_changed_at(model, images, [0])
    torch.testing.assert_close(patches_changed, logits)
    assert (cls_changed - logits).abs().max() > 1e-3, "the logits ignore the CLS position"


def test_the_learned_cls_token_is_what_goes_in_at_position_0():
    model = _tiny_vit()
    images = torch.rand(3, 1, 4, 4)
    logits = model(images)
    logits.sum().backward()
    assert model.cls_token.grad.abs().max() > 0, "the CLS parameter gets no gradient"
    with torch.no_grad():
        model.cls_token.add_(
            torch.randn_like(model.cls_token)
        )  # LayerNorm cancels a constant shift
        assert (model(images) - logits).abs().max() > 1e-3, "changing CLS changes nothing"


def _random_attention(batch=2, heads=3, tokens=5, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(batch, heads, tokens, tokens, generator=generator), dim=-1)


def test_rollout_rows_are_distributions_and_multiply_through_layers():
    layers = [_random_attention(seed=s) for s in range(3)]
    rollout = attention_rollout(layers)
    assert rollout.shape == (2, 5, 5)
    torch.testing.assert_close(rollout.sum(-1), torch.ones(2, 5))
    eye = torch.eye(5)
    mixed = [0.5 * eye + 0.5 * w.mean(1) for w in layers]
    torch.testing.assert_close(rollout, mixed[2] @ mixed[1] @ mixed[0])


def test_rollout_extremes():
    layers = [_random_attention(seed=s) for s in range(2)]
    torch.testing.assert_close(
        attention_rollout(layers, residual=1.0), torch.eye(5).expand(2, 5, 5)
    )
    plain = attention_rollout(layers, residual=0.0)
    torch.testing.assert_close(plain, layers[1].mean(1) @ layers[0].mean(1))
    with pytest.raises(ValueError, match="at least one layer"):
        attention_rollout([])
    with pytest.raises(ValueError, match=r"\(2, 5, 5\)"):
        attention_rollout([torch.ones(2, 5, 5)])


def test_cls_attention_map_drops_cls_and_keeps_patch_order():
    rollout = torch.zeros(1, 5, 5)
    rollout[0, 0, 2] = 1.0  # CLS looks at patch 1: top right of a 2x2 grid
    image = cls_attention_map(rollout, grid=2)
    assert image.shape == (1, 2, 2) and image[0, 0, 1] == 1.0 and image.sum() == 1.0
    with pytest.raises(ValueError, match="3×3 grid"):
        cls_attention_map(rollout, grid=3)
