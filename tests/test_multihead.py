"""MultiHeadAttention: equal to nn.MultiheadAttention with the same weights, masks included."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from course_utils.attention import MultiHeadAttention, causal_mask, scaled_dot_product_attention

D_MODEL, HEADS = 16, 4


def _pair(bias=True, heads=HEADS, seed=0):
    torch.manual_seed(seed)
    theirs = nn.MultiheadAttention(D_MODEL, heads, bias=bias, batch_first=True).eval()
    return theirs, MultiHeadAttention.from_torch(theirs).eval()


def _torch(theirs, q, k, v, **masks):
    return theirs(q, k, v, need_weights=True, average_attn_weights=False, **masks)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("heads", [1, 2, 4, 8])
def test_equals_pytorch_for_self_and_cross_attention(bias, heads):
    theirs, ours = _pair(bias, heads)
    for l_q, l_k in [(5, 5), (3, 7)]:
        q, k, v = (
            torch.randn(2, l_q, D_MODEL),
            torch.randn(2, l_k, D_MODEL),
            torch.randn(2, l_k, D_MODEL),
        )
        expected_out, expected_weights = _torch(theirs, q, k, v)
        out, weights = ours(q, k, v)
        assert weights.shape == (2, heads, l_q, l_k)
        torch.testing.assert_close(out, expected_out, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(weights, expected_weights, atol=1e-6, rtol=1e-5)


def test_equals_pytorch_with_a_padding_mask_in_the_opposite_convention():
    theirs, ours = _pair()
    q, k = torch.randn(3, 4, D_MODEL), torch.randn(3, 6, D_MODEL)
    may_attend = torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] + [0] * 5], dtype=torch.bool)
    expected_out, expected_weights = _torch(theirs, q, k, k, key_padding_mask=~may_attend)
    out, weights = ours(q, k, k, key_padding_mask=may_attend)
    torch.testing.assert_close(out, expected_out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(weights, expected_weights, atol=1e-6, rtol=1e-5)
    assert torch.all(weights[1, :, :, 4:] == 0) and torch.all(weights[2, :, :, 1:] == 0)


def test_equals_pytorch_with_a_causal_mask():
    theirs, ours = _pair()
    x = torch.randn(2, 6, D_MODEL)
    expected_out, expected_weights = _torch(theirs, x, x, x, attn_mask=~causal_mask(6))
    out, weights = ours(x, x, x, attn_mask=causal_mask(6))
    torch.testing.assert_close(out, expected_out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(weights, expected_weights, atol=1e-6, rtol=1e-5)
    assert torch.all(weights.triu(diagonal=1) == 0), "no weight on the future"


def test_heads_are_independent_scaled_dot_product_attentions():
    _, ours = _pair()
    x = torch.randn(2, 5, D_MODEL)
    out, weights = ours(x, x, x)
    q, k, v = (ours.split_heads(layer(x)) for layer in (ours.W_q, ours.W_k, ours.W_v))
    per_head, per_head_weights = scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(weights, per_head_weights)
    torch.testing.assert_close(out, ours.W_o(ours.merge_heads(per_head)))


def test_split_then_merge_heads_is_the_identity_and_split_groups_features_by_head():
    _, ours = _pair()
    x = torch.arange(2 * 3 * D_MODEL, dtype=torch.float).view(2, 3, D_MODEL)
    heads = ours.split_heads(x)
    assert heads.shape == (2, HEADS, 3, D_MODEL // HEADS)
    torch.testing.assert_close(heads[:, 1], x[..., 4:8])  # head 1 owns features 4..7
    torch.testing.assert_close(ours.merge_heads(heads), x)


def test_a_fully_masked_query_gives_zero_weights_and_finite_gradients():
    _, ours = _pair()
    x = torch.randn(1, 3, D_MODEL, requires_grad=True)
    mask = torch.ones(3, 3, dtype=torch.bool)
    mask[1] = False
    out, weights = ours(x, x, x, attn_mask=mask)
    assert torch.all(weights[:, :, 1] == 0)
    out.sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("d_model, heads", [(16, 3), (10, 4), (16, 0)])
def test_num_heads_that_does_not_divide_d_model_is_refused(d_model, heads):
    with pytest.raises(ValueError, match="must divide d_model"):
        MultiHeadAttention(d_model, heads)


def test_bad_shapes_are_refused_naming_them():
    _, ours = _pair()
    with pytest.raises(ValueError, match=r"query must be \(B, L, 16\), got \(2, 5, 8\)"):
        ours(torch.randn(2, 5, 8), torch.randn(2, 5, 16), torch.randn(2, 5, 16))
    with pytest.raises(ValueError, match="key \\(2, 5, 16\\), value \\(2, 4, 16\\)"):
        ours(torch.randn(2, 5, 16), torch.randn(2, 5, 16), torch.randn(2, 4, 16))


def test_dropout_acts_only_in_training_mode():
    torch.manual_seed(0)
    ours = MultiHeadAttention(D_MODEL, HEADS, dropout=0.5)
    x = torch.randn(2, 5, D_MODEL)
    ours.eval()
    first, _ = ours(x, x, x)
    second, _ = ours(x, x, x)
    torch.testing.assert_close(first, second)
    ours.train()
    dropped, weights = ours(x, x, x)
    assert not torch.allclose(dropped, first)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, HEADS, 5))


def test_from_torch_refuses_different_key_and_value_sizes():
    theirs = nn.MultiheadAttention(D_MODEL, HEADS, kdim=8, vdim=8, batch_first=True)
    with pytest.raises(ValueError, match="kdim = vdim = embed_dim"):
        MultiHeadAttention.from_torch(theirs)


def test_one_big_head_and_many_small_heads_have_the_same_parameter_count():
    count = lambda module: sum(p.numel() for p in module.parameters())
    assert count(MultiHeadAttention(D_MODEL, 1)) == count(MultiHeadAttention(D_MODEL, 8))
    assert count(MultiHeadAttention(D_MODEL, 4)) == 4 * (D_MODEL * D_MODEL + D_MODEL)


def test_the_two_masks_are_named_so_batch_equal_to_length_is_not_ambiguous():
    """With B == L_q a (B, L_k) padding mask and a (L_q, L_k) causal mask have the same shape:
    the argument's name says which it is."""
    attention = MultiHeadAttention(D_MODEL, HEADS)
    x = torch.randn(3, 3, D_MODEL)
    _, causal = attention(x, x, x, attn_mask=causal_mask(3))
    assert torch.all(causal[:, :, 0, 1:] == 0)  # the first query of every sequence sees itself
    padding = torch.tensor([[True, False, False], [True, True, False], [True, True, True]])
    _, padded = attention(x, x, x, key_padding_mask=padding)
    assert torch.all(padded[0, :, :, 1:] == 0) and torch.all(padded[2] > 0)  # per sequence


def test_both_masks_together_block_what_either_blocks():
    theirs, ours = _pair()
    x = torch.randn(2, 4, D_MODEL)
    pad = torch.tensor([[True] * 4, [True, True, False, False]])
    expected, _ = _torch(theirs, x, x, x, attn_mask=~causal_mask(4), key_padding_mask=~pad)
    out, weights = ours(x, x, x, key_padding_mask=pad, attn_mask=causal_mask(4))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert torch.all(weights[1, :, :, 2:] == 0) and torch.all(weights.triu(1) == 0)


@pytest.mark.parametrize(
    "masks, words",
    [
        (
            {"key_padding_mask": torch.ones(3, 5, dtype=torch.bool)},
            r"must be \(B, L_k\) = \(2, 5\)",
        ),
        (
            {"key_padding_mask": torch.ones(2, 4, dtype=torch.bool)},
            r"\(B, L_k\) = \(2, 5\), got \(2, 4\)",
        ),
        (
            {"attn_mask": torch.ones(5, 4, dtype=torch.bool)},
            r"attn_mask must be \(L_q, L_k\) = \(5, 5\)",
        ),
        ({"attn_mask": torch.ones(2, 5, 5, dtype=torch.bool)}, r"or 4-D .* got \(2, 5, 5\)"),
        ({"attn_mask": torch.ones(1, 1, 4, 5, dtype=torch.bool)}, r"does not fit the scores"),
        ({"key_padding_mask": torch.ones(2, 5)}, r"key_padding_mask must be boolean"),
    ],
)
def test_a_mask_of_the_wrong_shape_or_type_is_refused_naming_the_shapes(masks, words):
    _, ours = _pair()
    x = torch.randn(2, 5, D_MODEL)
    with pytest.raises(ValueError, match=words):
        ours(x, x, x, **masks)


# ----------------------------------------------------------------------------- the two backends


def _mask_cases(batch=3, length=6):
    pad = torch.ones(batch, length, dtype=torch.bool)
    pad[1, 4:] = False
    pad[2, 1:] = False
    return {
        "no mask": {},
        "padding": {"key_padding_mask": pad},
        "causal": {"attn_mask": causal_mask(length)},
        "padding and causal": {"key_padding_mask": pad, "attn_mask": causal_mask(length)},
        "a fully masked query": {
            "attn_mask": causal_mask(length) & (torch.arange(length) != 2)[:, None]
        },
    }


@pytest.mark.parametrize("case", list(_mask_cases()))
@pytest.mark.parametrize("training", [False, True])
def test_fast_path_equals_the_explicit_path(case, training):
    """need_weights=False runs PyTorch's fused kernel; it must give the explicit path's output
    (dropout 0, so train and eval differ only in the mode flags)."""
    _, ours = _pair()
    ours.train(training)
    x = torch.randn(3, 6, D_MODEL, requires_grad=True)
    masks = _mask_cases()[case]
    explicit, weights = ours(x, x, x, need_weights=True, **masks)
    fast, none = ours(x, x, x, need_weights=False, **masks)
    assert none is None and weights.shape == (3, HEADS, 6, 6)
    torch.testing.assert_close(fast, explicit, atol=1e-5, rtol=1e-5)
    (grad_explicit,) = torch.autograd.grad(explicit.square().sum(), x)
    (grad_fast,) = torch.autograd.grad(fast.square().sum(), x)
    torch.testing.assert_close(grad_fast, grad_explicit, atol=1e-4, rtol=1e-4)


def test_fast_path_with_a_kv_cache_equals_the_explicit_path_on_the_whole_sequence():
    from course_utils.attention import KVCache

    _, ours = _pair()
    x = torch.randn(2, 7, D_MODEL)
    full, _ = ours(x, x, x, attn_mask=causal_mask(7), need_weights=True)
    cache = KVCache()
    first, _ = ours(
        x[:, :4], x[:, :4], x[:, :4], attn_mask=causal_mask(4), need_weights=False, cache=cache
    )
    steps = [first]
    for t in range(4, 7):
        step, _ = ours(
            x[:, t : t + 1],
            x[:, t : t + 1],
            x[:, t : t + 1],
            attn_mask=causal_mask(1, offset=t),
            need_weights=False,
            cache=cache,
        )
        steps.append(step)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


def test_fast_path_equals_pytorch_without_weights():
    theirs, ours = _pair()
    x = torch.randn(2, 5, D_MODEL)
    pad = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    expected, _ = theirs(x, x, x, key_padding_mask=~pad, need_weights=False)
    out, _ = ours(x, x, x, key_padding_mask=pad, need_weights=False)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_the_fast_path_really_calls_pytorchs_kernel_and_the_explicit_one_does_not(monkeypatch):
    import course_utils.attention.multihead as multihead

    calls = []
    fused = multihead.F.scaled_dot_product_attention
    monkeypatch.setattr(
        multihead.F,
        "scaled_dot_product_attention",
        lambda *a, **k: calls.append(1) or fused(*a, **k),
    )
    _, ours = _pair()
    x = torch.randn(2, 5, D_MODEL)
    ours(x, x, x, need_weights=True)
    assert calls == []
    ours(x, x, x, need_weights=False)
    assert calls == [1]
