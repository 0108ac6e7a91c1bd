"""attention: masks, masked softmax, scaled dot-product, additive, Luong and local attention.

The reference for ``scaled_dot_product_attention`` is PyTorch's own function; the score
functions are checked against hand computations from the modules' own weights.
"""

from __future__ import annotations

import math
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn import functional as F

from course_utils.attention import (
    AdditiveAttention,
    LocalAttention,
    LuongAttention,
    causal_mask,
    masked_softmax,
    padding_mask,
    scaled_dot_product_attention,
)

PROPERTY = settings(max_examples=40, deadline=None)
TOL = {torch.float32: dict(atol=1e-5, rtol=1e-4), torch.float64: dict(atol=1e-10, rtol=1e-9)}


def _shape(shape) -> str:
    """How the module prints a shape in its messages, escaped for ``pytest.raises(match=...)``."""
    return re.escape(str(tuple(shape)))


def _allowed_rows(mask: torch.Tensor | None, out_shape: torch.Size) -> torch.Tensor:
    """``(..., L_q)``: True for query rows with at least one key they may attend to."""
    if mask is None:
        return torch.ones(out_shape[:-1], dtype=torch.bool)
    return mask.any(dim=-1).expand(out_shape[:-1])


def _random_mask(shape, generator, p=0.6) -> torch.Tensor:
    return torch.rand(shape, generator=generator) < p


def _assert_matches_torch(q, k, v, mask=None, scale=None):
    out, weights = scaled_dot_product_attention(q, k, v, mask, scale=scale)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    assert out.shape == expected.shape
    assert weights.shape == out.shape[:-1] + k.shape[-2:-1]
    rows = _allowed_rows(mask, out.shape)
    torch.testing.assert_close(out[rows], expected[rows], **TOL[q.dtype])
    return out, weights


# ----------------------------------------------------------------------------- masks


@pytest.mark.parametrize("n", [1, 2, 5])
def test_causal_mask_is_boolean_lower_triangular_including_the_diagonal(n):
    mask = causal_mask(n)
    assert mask.dtype == torch.bool and mask.shape == (n, n)
    for i in range(n):
        for j in range(n):
            assert bool(mask[i, j]) == (j <= i)


def test_causal_mask_is_built_on_the_requested_device():
    device = torch.device("cuda" if torch.cuda.is_available() else "meta")
    mask = causal_mask(3, device=device)
    assert mask.device.type == device.type and mask.dtype == torch.bool
    assert causal_mask(3, device="cpu").device.type == "cpu"


@pytest.mark.parametrize("n", [0, -1])
def test_causal_mask_rejects_n_below_one(n):
    with pytest.raises(ValueError, match=f"n >= 1, got {n}"):
        causal_mask(n)


def test_causal_mask_with_sdpa_equals_torch_is_causal():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 4, generator=g) for _ in range(3))
    out, weights = scaled_dot_product_attention(q, k, v, causal_mask(5))
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)
    assert torch.all(weights.triu(diagonal=1) == 0)


def test_padding_mask_is_true_exactly_at_the_first_lengths_positions():
    lengths = torch.tensor([3, 1, 5, 0])
    mask = padding_mask(lengths)
    assert mask.dtype == torch.bool and mask.shape == (4, 5)
    for b, length in enumerate(lengths.tolist()):
        assert mask[b].tolist() == [True] * length + [False] * (5 - length)


def test_padding_mask_pads_to_a_longer_max_len_with_false():
    mask = padding_mask(torch.tensor([2, 3]), max_len=6)
    assert mask.shape == (2, 6)
    assert mask.sum(dim=1).tolist() == [2, 3]
    assert not mask[:, 3:].any()


def test_padding_mask_accepts_a_python_list():
    assert padding_mask([1, 2]).tolist() == [[True, False], [True, True]]


def test_padding_mask_rejects_a_length_longer_than_max_len_and_names_both():
    with pytest.raises(ValueError, match=r"length of 4 .*max_len=3"):
        padding_mask(torch.tensor([2, 4]), max_len=3)


def test_padding_mask_rejects_lengths_that_are_not_one_dimensional():
    with pytest.raises(ValueError, match=_shape((2, 1))):
        padding_mask(torch.tensor([[2], [3]]))


@pytest.mark.parametrize("lengths", [[3, -1], [-2]])
def test_padding_mask_rejects_a_negative_length_and_names_it(lengths):
    with pytest.raises(ValueError, match=rf"lengths must be >= 0.*{lengths[-1]}"):
        padding_mask(lengths)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a second device")
def test_padding_mask_follows_the_lengths_device():
    lengths = torch.tensor([1, 2], device="cuda")
    assert padding_mask(lengths, max_len=2).device.type == "cuda"


# ----------------------------------------------------------------------------- masked softmax


@PROPERTY
@given(rows=st.integers(1, 4), cols=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_masked_softmax_without_mask_equals_torch_softmax(rows, cols, seed):
    scores = torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed)) * 5
    torch.testing.assert_close(masked_softmax(scores), torch.softmax(scores, dim=-1))


def test_masked_softmax_with_an_all_true_mask_equals_torch_softmax():
    scores = torch.randn(2, 3, 4)
    mask = torch.ones(4, dtype=torch.bool)
    torch.testing.assert_close(masked_softmax(scores, mask), torch.softmax(scores, dim=-1))


def test_masked_softmax_equals_softmax_over_the_allowed_keys_only():
    scores = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    mask = torch.tensor([[True, False, True, False]])
    expected = torch.zeros(1, 4)
    expected[0, [0, 2]] = torch.softmax(torch.tensor([1.0, 3.0]), dim=0)
    torch.testing.assert_close(masked_softmax(scores, mask), expected)


# ----------------------------------------------------------------------------- SDPA vs PyTorch

LEADING = [(), (2,), (2, 3)]
MASK_KINDS = ["none", "query-key", "keys-only", "full", "causal"]


def _mask_shape(kind: str, lead: tuple, n_q: int, n_k: int):
    """The broadcastable mask shapes of the course: (L_q, L_k), (B, 1, 1, L_k), (B, 1, L_q, L_k)."""
    if kind == "query-key":
        return (n_q, n_k)
    ones = (1,) * max(len(lead) - 1, 0)  # a size-1 head dim when there is one
    if kind == "keys-only":
        return lead[:1] + ones + (1, n_k)
    if kind == "full":
        return lead[:1] + ones + (n_q, n_k)
    raise AssertionError(kind)


@st.composite
def attention_inputs(draw, dtype=torch.float32):
    lead = draw(st.sampled_from(LEADING))
    kind = draw(st.sampled_from(MASK_KINDS))
    n_q = draw(st.integers(1, 6))
    n_k = n_q if kind == "causal" else draw(st.integers(1, 6))
    d_k, d_v = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    scale = draw(st.one_of(st.none(), st.floats(0.05, 3.0)))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    q = torch.randn(*lead, n_q, d_k, generator=g, dtype=dtype)
    k = torch.randn(*lead, n_k, d_k, generator=g, dtype=dtype)
    v = torch.randn(*lead, n_k, d_v, generator=g, dtype=dtype)
    if kind == "none":
        mask = None
    elif kind == "causal":
        mask = causal_mask(n_q)
    else:
        mask = _random_mask(_mask_shape(kind, lead, n_q, n_k), g)
    if mask is not None and mask.dim() == 2 and lead and lead[0] == n_q > 1:
        mask = mask[None]  # (1, L_q, L_k): as 2-D it could be a padding mask, and is refused
    return q, k, v, mask, scale


@PROPERTY
@given(inputs=attention_inputs())
def test_sdpa_equals_torch_for_random_shapes_masks_and_scales(inputs):
    _assert_matches_torch(*inputs)


@PROPERTY
@given(inputs=attention_inputs(dtype=torch.float64))
def test_sdpa_equals_torch_in_float64(inputs):
    out, weights = _assert_matches_torch(*inputs)
    assert out.dtype == weights.dtype == torch.float64


@pytest.mark.parametrize("lead", LEADING, ids=["no-batch", "B", "B-H"])
@pytest.mark.parametrize("kind", MASK_KINDS)
def test_sdpa_equals_torch_for_every_mask_kind_and_leading_dims(lead, kind):
    g = torch.Generator().manual_seed(7)
    n_q, n_k = (4, 4) if kind == "causal" else (3, 5)  # L_q != L_k where the mask allows it
    q = torch.randn(*lead, n_q, 4, generator=g)
    k = torch.randn(*lead, n_k, 4, generator=g)
    v = torch.randn(*lead, n_k, 6, generator=g)  # d_v != d_k
    if kind == "none":
        mask = None
    elif kind == "causal":
        mask = causal_mask(n_q)
    else:
        mask = _random_mask(_mask_shape(kind, lead, n_q, n_k), g)
    out, _ = _assert_matches_torch(q, k, v, mask)
    assert out.shape == (*lead, n_q, 6)


@pytest.mark.parametrize("scale", [0.1, 1.0, 2.5])
def test_sdpa_custom_scale_multiplies_the_scores_like_torch(scale):
    g = torch.Generator().manual_seed(3)
    q, k, v = (
        torch.randn(2, 3, 8, generator=g),
        torch.randn(2, 4, 8, generator=g),
        torch.randn(2, 4, 2),
    )
    _assert_matches_torch(q, k, v, scale=scale)
    expected = torch.softmax(q @ k.transpose(-2, -1) * scale, dim=-1)
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, scale=scale)[1], expected)


def test_sdpa_default_scale_is_one_over_sqrt_d_k():
    g = torch.Generator().manual_seed(4)
    q, k, v = torch.randn(3, 16, generator=g), torch.randn(5, 16, generator=g), torch.randn(5, 2)
    default = scaled_dot_product_attention(q, k, v)
    explicit = scaled_dot_product_attention(q, k, v, scale=1 / math.sqrt(16))
    torch.testing.assert_close(default[0], explicit[0])
    unscaled = scaled_dot_product_attention(q, k, v, scale=1.0)
    assert not torch.allclose(default[1], unscaled[1])


# ----------------------------------------------------------------------------- SDPA properties


@PROPERTY
@given(inputs=attention_inputs())
def test_sdpa_weights_sum_to_one_over_allowed_keys_and_are_zero_on_masked_keys(inputs):
    q, k, v, mask, scale = inputs
    out, weights = scaled_dot_product_attention(q, k, v, mask, scale=scale)
    allowed = (
        torch.ones_like(weights, dtype=torch.bool) if mask is None else mask.expand_as(weights)
    )
    assert torch.all(weights[~allowed] == 0)
    assert torch.all(weights >= 0)
    rows = allowed.any(dim=-1)
    torch.testing.assert_close(weights.sum(-1)[rows], torch.ones(int(rows.sum())))
    assert torch.all(weights.sum(-1)[~rows] == 0)


@PROPERTY
@given(inputs=attention_inputs())
def test_sdpa_output_is_the_weighted_sum_of_the_values(inputs):
    q, k, v, mask, scale = inputs
    out, weights = scaled_dot_product_attention(q, k, v, mask, scale=scale)
    torch.testing.assert_close(out, weights @ v)
    assert not torch.isnan(out).any()


def test_sdpa_fully_masked_row_gives_zero_weights_zero_output_and_finite_gradients():
    g = torch.Generator().manual_seed(5)
    q = torch.randn(2, 3, 4, generator=g, requires_grad=True)
    k = torch.randn(2, 5, 4, generator=g, requires_grad=True)
    v = torch.randn(2, 5, 3, generator=g, requires_grad=True)
    mask = torch.ones(2, 3, 5, dtype=torch.bool)
    mask[0, 1] = False  # query 1 of batch 0 may see nothing
    mask[1, :, 2:] = False
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    assert torch.all(weights[0, 1] == 0) and torch.all(out[0, 1] == 0)
    out.sum().backward()
    for tensor in (q, k, v):
        assert tensor.grad is not None and torch.isfinite(tensor.grad).all()
    assert torch.all(q.grad[0, 1] == 0)  # no key, no way for the query to matter


def test_sdpa_all_keys_masked_everywhere_still_gives_zeros_not_nan():
    q, k, v = torch.randn(1, 2, 3), torch.randn(1, 4, 3), torch.randn(1, 4, 2)
    out, weights = scaled_dot_product_attention(q, k, v, torch.zeros(4, dtype=torch.bool))
    assert torch.all(out == 0) and torch.all(weights == 0)


def test_sdpa_dropout_changes_the_output_but_returns_the_undropped_weights():
    g = torch.Generator().manual_seed(6)
    q, k, v = (
        torch.randn(4, 6, 8, generator=g),
        torch.randn(4, 7, 8, generator=g),
        torch.randn(4, 7, 5),
    )
    clean_out, clean_weights = scaled_dot_product_attention(q, k, v)
    torch.manual_seed(0)
    out, weights = scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    assert not torch.allclose(out, clean_out)
    torch.testing.assert_close(weights, clean_weights)
    torch.testing.assert_close(weights.sum(-1), torch.ones(4, 6))


def test_sdpa_dropout_is_unbiased_on_average():
    g = torch.Generator().manual_seed(8)
    q, k, v = (
        torch.randn(1, 3, 4, generator=g),
        torch.randn(1, 5, 4, generator=g),
        torch.randn(1, 5, 2),
    )
    clean_out, _ = scaled_dot_product_attention(q, k, v)
    torch.manual_seed(0)
    many = scaled_dot_product_attention(q.expand(4000, -1, -1), k, v, dropout_p=0.3)[0]
    torch.testing.assert_close(many.mean(0), clean_out[0], atol=0.1, rtol=0)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_sdpa_rejects_dropout_outside_zero_one(p):
    q = torch.randn(2, 3)
    with pytest.raises(ValueError, match="dropout_p"):
        scaled_dot_product_attention(q, q, q, dropout_p=p)


def test_sdpa_rejects_mismatched_d_k_and_names_both_shapes():
    q, k, v = torch.randn(2, 3, 4), torch.randn(2, 5, 6), torch.randn(2, 5, 6)
    with pytest.raises(ValueError, match=rf"{_shape(q.shape)}.*{_shape(k.shape)}"):
        scaled_dot_product_attention(q, k, v)


def test_sdpa_rejects_a_different_number_of_keys_and_values_and_names_both_shapes():
    q, k, v = torch.randn(2, 3, 4), torch.randn(2, 5, 4), torch.randn(2, 4, 4)
    with pytest.raises(ValueError, match=rf"{_shape(k.shape)}.*{_shape(v.shape)}"):
        scaled_dot_product_attention(q, k, v)


@pytest.mark.parametrize("mask_shape", [(3, 4), (4,), (3, 3, 5), (2, 2, 3, 5)])
def test_sdpa_rejects_a_mask_that_does_not_broadcast_and_names_both_shapes(mask_shape):
    q, k, v = torch.randn(2, 3, 4), torch.randn(2, 5, 4), torch.randn(2, 5, 4)
    mask = torch.ones(mask_shape, dtype=torch.bool)
    with pytest.raises(ValueError, match=rf"{_shape(mask_shape)}.*{_shape((2, 3, 5))}"):
        scaled_dot_product_attention(q, k, v, mask)


@pytest.mark.parametrize("dtype", [torch.float32, torch.int64, torch.uint8])
def test_sdpa_rejects_a_non_boolean_mask_and_names_its_dtype(dtype):
    q = torch.randn(3, 4)
    with pytest.raises(ValueError, match=rf"boolean.*{re.escape(str(dtype))}"):
        scaled_dot_product_attention(q, q, q, torch.ones(3, 3, dtype=dtype))


@pytest.mark.parametrize("lead", [(3,), (3, 2)], ids=["B", "B-H"])
def test_sdpa_refuses_a_2d_mask_that_could_be_padding_or_per_query(lead):
    # B == L_q: a (B, L_k) padding mask would silently be read as (L_q, L_k), one row per query
    q, k = torch.randn(*lead, 3, 4), torch.randn(*lead, 5, 4)
    mask = torch.ones(3, 5, dtype=torch.bool)
    padding = r"mask\[:, None, None, :\]" if len(lead) == 2 else r"mask\[:, None, :\]"
    with pytest.raises(ValueError, match=rf"ambiguous.*{padding}.*\(1, L_q, L_k\)"):
        scaled_dot_product_attention(q, k, k, mask)


@pytest.mark.parametrize("batch", [1, 2])
def test_sdpa_accepts_a_2d_per_query_mask_when_it_is_not_ambiguous(batch):
    # B != L_q, or B == 1: a 2-D mask can only be (L_q, L_k), as lessons pass a causal mask
    g = torch.Generator().manual_seed(0)
    q = torch.randn(batch, 4, 4, generator=g)
    mask = torch.tensor([[True, False, True, True]] * 4)
    out, weights = _assert_matches_torch(q, q, q, mask)
    assert (weights[..., 1] == 0).all()


def test_sdpa_accepts_the_padding_mask_with_its_query_dim_when_b_equals_l_q():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(3, 3, 4, generator=g), torch.randn(3, 5, 4, generator=g)
    pad = padding_mask([5, 2, 4])  # (B, L_k)
    out, weights = _assert_matches_torch(q, k, k, pad[:, None, :])
    assert (weights[1, :, 2:] == 0).all() and (weights[1, :, :2] > 0).all()


def test_sdpa_hints_at_the_query_dim_for_a_padding_mask_that_does_not_broadcast():
    q, k = torch.randn(2, 3, 4), torch.randn(2, 5, 4)  # B = 2 != L_q = 3
    pad = padding_mask([5, 2])  # (B, L_k): needs [:, None, :]
    with pytest.raises(ValueError, match=r"\(2, 5\).*\(2, 3, 5\).*mask\[:, None, :\]"):
        scaled_dot_product_attention(q, k, k, pad)


@pytest.mark.parametrize("which", ["q", "k", "v"])
def test_sdpa_refuses_nan_in_its_inputs_and_names_which(which):
    inputs = {name: torch.randn(2, 3, 4) for name in "qkv"}
    inputs[which][1, 2, 0] = float("nan")
    with pytest.raises(ValueError, match=rf"{which} contains NaN"):
        scaled_dot_product_attention(inputs["q"], inputs["k"], inputs["v"])


def test_sdpa_nan_check_keeps_gradients_and_compiling_working():
    q = torch.randn(2, 3, 4, requires_grad=True)
    out, _ = scaled_dot_product_attention(q, q, q)
    out.sum().backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()
    # fullgraph=True raises on a graph break, which a data-dependent `if` would cause
    compiled = torch.compile(
        lambda x: scaled_dot_product_attention(x, x, x)[0], backend="eager", fullgraph=True
    )
    other = torch.randn(2, 3, 4)
    torch.testing.assert_close(
        compiled(other), scaled_dot_product_attention(other, other, other)[0]
    )


def test_sdpa_rejects_one_dimensional_inputs():
    with pytest.raises(ValueError, match="at least 2 dims"):
        scaled_dot_product_attention(torch.randn(4), torch.randn(3, 4), torch.randn(3, 4))


# ----------------------------------------------------------------------------- AdditiveAttention

B, L_Q, L_K, D_Q, D_K, D_V, HID = 2, 3, 5, 4, 6, 7, 8


def _qkv(seed=0, single=False, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    query = torch.randn(B, D_Q, generator=g) if single else torch.randn(B, L_Q, D_Q, generator=g)
    keys = torch.randn(B, L_K, D_K, generator=g)
    values = torch.randn(B, L_K, D_V, generator=g)
    return query.to(dtype), keys.to(dtype), values.to(dtype)


def _additive(seed=0) -> AdditiveAttention:
    torch.manual_seed(seed)
    return AdditiveAttention(D_Q, D_K, HID)


def test_additive_score_is_v_tanh_of_wq_q_plus_wk_k_from_its_own_weights():
    attn = _additive()
    query, keys, _ = _qkv()
    W_q, W_k, v = attn.W_q.weight, attn.W_k.weight, attn.v.weight[0]  # (H, D_q), (H, D_k), (H,)
    expected = torch.empty(B, L_Q, L_K)
    for b in range(B):
        for i in range(L_Q):
            for j in range(L_K):
                expected[b, i, j] = v @ torch.tanh(W_q @ query[b, i] + W_k @ keys[b, j])
    torch.testing.assert_close(attn.score(query, keys), expected)


def test_additive_forward_shapes_for_one_query_per_row_and_for_many():
    attn = _additive()
    query, keys, values = _qkv(single=True)
    context, weights = attn(query, keys, values)
    assert context.shape == (B, D_V) and weights.shape == (B, L_K)
    query, keys, values = _qkv()
    context, weights = attn(query, keys, values)
    assert context.shape == (B, L_Q, D_V) and weights.shape == (B, L_Q, L_K)


def test_additive_single_query_equals_the_same_query_in_a_sequence():
    attn = _additive()
    query, keys, values = _qkv()
    many_context, many_weights = attn(query, keys, values)
    for i in range(L_Q):
        context, weights = attn(query[:, i], keys, values)
        torch.testing.assert_close(context, many_context[:, i])
        torch.testing.assert_close(weights, many_weights[:, i])


def test_additive_weights_are_the_softmax_of_the_scores_and_context_is_weights_at_values():
    attn = _additive()
    query, keys, values = _qkv()
    context, weights = attn(query, keys, values)
    torch.testing.assert_close(weights, torch.softmax(attn.score(query, keys), dim=-1))
    torch.testing.assert_close(context, weights @ values)


@pytest.mark.parametrize("single", [True, False], ids=["one-query", "many-queries"])
def test_additive_padding_mask_zeroes_padded_keys(single):
    attn = _additive()
    query, keys, values = _qkv(single=single)
    mask = padding_mask(torch.tensor([5, 2]))  # (B, L_k)
    context, weights = attn(query, keys, values, mask)
    assert torch.all(weights[1, ..., 2:] == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))
    torch.testing.assert_close(
        context, (weights[..., None, :] @ values).squeeze(-2) if single else weights @ values
    )
    # the padded keys and values do not matter at all
    keys2, values2 = keys.clone(), values.clone()
    keys2[1, 2:], values2[1, 2:] = 100.0, -100.0
    torch.testing.assert_close(attn(query, keys2, values2, mask)[0], context)


def test_additive_fully_masked_row_gives_zeros_and_finite_gradients():
    attn = _additive()
    query, keys, values = _qkv()
    query.requires_grad_(True)
    keys.requires_grad_(True)
    values.requires_grad_(True)
    mask = padding_mask(torch.tensor([5, 0]), max_len=L_K)
    context, weights = attn(query, keys, values, mask)
    assert torch.all(weights[1] == 0) and torch.all(context[1] == 0)
    context.sum().backward()
    for tensor in (query, keys, values, attn.W_q.weight, attn.W_k.weight, attn.v.weight):
        assert torch.isfinite(tensor.grad).all()


def test_additive_rejects_keys_of_the_wrong_size_and_names_the_shape():
    attn = _additive()
    query, keys, values = _qkv()
    with pytest.raises(ValueError, match=rf"keys.*\(B, L_k, {D_K}\).*{_shape((B, L_K, 3))}"):
        attn(query, keys[..., :3], values)


def test_additive_rejects_a_query_of_the_wrong_size_and_names_both_shapes():
    attn = _additive()
    query, keys, values = _qkv()
    bad = query[..., :2]
    with pytest.raises(ValueError, match=rf"{_shape(bad.shape)}.*{_shape(keys.shape)}"):
        attn(bad, keys, values)


def test_additive_rejects_a_query_batch_that_differs_from_the_keys():
    attn = _additive()
    query, keys, values = _qkv()
    with pytest.raises(ValueError, match=rf"{_shape((1, L_Q, D_Q))}.*{_shape(keys.shape)}"):
        attn(query[:1], keys, values)


def test_additive_rejects_values_that_do_not_match_the_keys_and_names_the_shapes():
    attn = _additive()
    query, keys, values = _qkv()
    bad = values[:, :4]
    with pytest.raises(ValueError, match=rf"{_shape(bad.shape)}.*{_shape((B, L_Q, L_K))}"):
        attn(query, keys, bad)


def test_additive_rejects_a_mask_that_does_not_fit():
    attn = _additive()
    query, keys, values = _qkv()
    with pytest.raises(ValueError, match=_shape((B, L_K + 1))):
        attn(query, keys, values, torch.ones(B, L_K + 1, dtype=torch.bool))


# ----------------------------------------------------------------------------- LuongAttention


def _luong(score: str, query_dim=D_Q, key_dim=D_Q, seed=0, **kwargs) -> LuongAttention:
    torch.manual_seed(seed)
    return LuongAttention(query_dim, key_dim, score=score, **kwargs)


def test_luong_dot_score_is_q_dot_k():
    query, keys, _ = _qkv()
    keys = keys[..., :D_Q]
    expected = torch.einsum("bqd,bkd->bqk", query, keys)
    torch.testing.assert_close(_luong("dot").score(query, keys), expected)
    for b, i, j in [(0, 0, 0), (1, 2, 4)]:
        torch.testing.assert_close(
            _luong("dot").score(query, keys)[b, i, j], query[b, i] @ keys[b, j]
        )


def test_luong_general_score_is_q_w_k_from_its_own_weights():
    attn = _luong("general", key_dim=D_K)
    query, keys, _ = _qkv()
    W = attn.W.weight  # (D_q, D_k)
    expected = torch.empty(B, L_Q, L_K)
    for b in range(B):
        for i in range(L_Q):
            for j in range(L_K):
                expected[b, i, j] = query[b, i] @ W @ keys[b, j]
    torch.testing.assert_close(attn.score(query, keys), expected)


def test_luong_concat_score_is_v_tanh_w_of_q_and_k_concatenated():
    attn = _luong("concat", key_dim=D_K, hidden_dim=HID)
    query, keys, _ = _qkv()
    W, v = attn.W.weight, attn.v.weight[0]  # (H, D_q + D_k), (H,)
    assert W.shape == (HID, D_Q + D_K)
    expected = torch.empty(B, L_Q, L_K)
    for b in range(B):
        for i in range(L_Q):
            for j in range(L_K):
                expected[b, i, j] = v @ torch.tanh(W @ torch.cat([query[b, i], keys[b, j]]))
    torch.testing.assert_close(attn.score(query, keys), expected)


@pytest.mark.parametrize("score", ["dot", "general", "concat"])
def test_luong_forward_is_masked_softmax_of_its_score_and_weighted_values(score):
    attn = _luong(score, key_dim=D_Q if score == "dot" else D_K)
    query, keys, values = _qkv()
    keys = keys[..., : attn.key_dim]
    mask = padding_mask(torch.tensor([4, 2]), max_len=L_K)
    context, weights = attn(query, keys, values, mask)
    expected = masked_softmax(attn.score(query, keys), mask[:, None, :])
    torch.testing.assert_close(weights, expected)
    torch.testing.assert_close(context, weights @ values)
    assert torch.all(weights[0, :, 4:] == 0) and torch.all(weights[1, :, 2:] == 0)
    single_context, single_weights = attn(query[:, 0], keys, values, mask)
    assert single_context.shape == (B, D_V)
    torch.testing.assert_close(single_weights, weights[:, 0])


def test_luong_dot_refuses_unequal_sizes_and_points_to_general():
    with pytest.raises(ValueError, match=r"query_dim=4.*key_dim=6.*general"):
        LuongAttention(4, 6, score="dot")


def test_luong_rejects_an_unknown_score():
    with pytest.raises(ValueError, match=r"score must be one of .*'cosine'"):
        LuongAttention(4, 4, score="cosine")


def test_luong_dot_has_no_parameters_and_the_others_do():
    assert sum(p.numel() for p in LuongAttention(4, 4, "dot").parameters()) == 0
    assert sum(p.numel() for p in LuongAttention(4, 6, "general").parameters()) == 4 * 6
    assert sum(p.numel() for p in LuongAttention(4, 6, "concat", hidden_dim=5).parameters()) == (
        5 * 10 + 5
    )


def test_luong_fully_masked_row_gives_zeros_and_finite_gradients():
    attn = _luong("general", key_dim=D_K)
    query, keys, values = (t.requires_grad_(True) for t in _qkv())
    context, weights = attn(query, keys, values, torch.zeros(B, L_K, dtype=torch.bool))
    assert torch.all(context == 0) and torch.all(weights == 0)
    context.sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (query, keys, values, attn.W.weight))


# ----------------------------------------------------------------------------- LocalAttention


def _local(mode, window, score="general", seed=0, **kwargs) -> LocalAttention:
    torch.manual_seed(seed)
    return LocalAttention(D_Q, D_K, score=score, window=window, mode=mode, **kwargs)


def _local_inputs(n_q=6, n_k=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(B, n_q, D_Q, generator=g),
        torch.randn(B, n_k, D_K, generator=g),
        torch.randn(B, n_k, D_V, generator=g),
    )


@pytest.mark.parametrize("window", [0, 1, 2])
def test_monotonic_local_weights_vanish_outside_the_window_and_sum_to_one_inside(window):
    attn = _local("monotonic", window)
    query, keys, values = _local_inputs()
    context, weights = attn(query, keys, values)
    t = torch.arange(6)[:, None]
    s = torch.arange(8)[None, :]
    outside = (s - t).abs() > window  # (L_q, L_k)
    assert torch.all(weights[:, outside] == 0)
    assert torch.all(weights[:, ~outside] > 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, 6))
    torch.testing.assert_close(context, weights @ values)
    torch.testing.assert_close(attn.last_centres, t.T.float().expand(B, 6))


@pytest.mark.parametrize("score", ["general", "concat"])
def test_monotonic_local_with_a_window_covering_the_source_equals_global_luong(score):
    query, keys, values = _local_inputs()
    global_attn = LuongAttention(D_Q, D_K, score=score)
    local = _local("monotonic", window=8, score=score, seed=123)
    local.load_state_dict(global_attn.state_dict())
    mask = padding_mask(torch.tensor([8, 5]))
    for m in (None, mask):
        expected = global_attn(query, keys, values, m)
        actual = local(query, keys, values, m)
        torch.testing.assert_close(actual[0], expected[0])
        torch.testing.assert_close(actual[1], expected[1])


def test_monotonic_local_dot_with_a_wide_window_equals_global_dot():
    query, keys, values = _local_inputs()
    keys = keys[..., :D_Q]
    local = LocalAttention(D_Q, D_Q, score="dot", window=100, mode="monotonic")
    expected = LuongAttention(D_Q, D_Q, score="dot")(query, keys, values)
    torch.testing.assert_close(local(query, keys, values)[1], expected[1])


def test_monotonic_local_single_step_queries_use_the_positions_argument():
    attn = _local("monotonic", window=1)
    query, keys, values = _local_inputs()
    _, all_weights = attn(query, keys, values)
    positions = torch.tensor([0, 4])
    context, weights = attn(query[torch.arange(B), positions], keys, values, positions=positions)
    assert context.shape == (B, D_V) and weights.shape == (B, 8)
    torch.testing.assert_close(weights, all_weights[torch.arange(B), positions])
    assert weights[1, :3].sum() == 0 and weights[1, 6:].sum() == 0
    _, at_three = attn(query[:, 3], keys, values, positions=3)  # an int is every row's position
    torch.testing.assert_close(at_three, all_weights[:, 3])


def test_monotonic_local_respects_a_padding_mask():
    attn = _local("monotonic", window=2)
    query, keys, values = _local_inputs()
    mask = padding_mask(torch.tensor([8, 3]))
    _, weights = attn(query, keys, values, mask)
    assert torch.all(weights[1, :, 3:] == 0)
    torch.testing.assert_close(weights[1, :5].sum(-1), torch.ones(5))  # t <= 4 reaches key 2
    assert torch.all(weights[1, 5] == 0)  # t = 5 sees keys 3..7: all padding


@pytest.mark.parametrize("window", [1, 2, 3])
def test_predictive_local_centres_lie_in_the_source_and_weights_stay_in_the_window(window):
    attn = _local("predictive", window)
    query, keys, values = _local_inputs()
    lengths = torch.tensor([8, 3])
    context, weights = attn(query, keys, values, padding_mask(lengths))
    centres = attn.last_centres  # (B, L_q)
    assert centres.shape == (B, 6)
    assert torch.all(centres >= 0) and torch.all(centres <= lengths[:, None])
    centre_index = torch.minimum(centres.round(), (lengths - 1)[:, None].float())
    distance = (torch.arange(8)[None, None, :] - centre_index[:, :, None]).abs()
    assert torch.all(weights[distance > window] == 0)
    assert torch.all(weights[1, :, 3:] == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, 6))
    torch.testing.assert_close(context, weights @ values)


def test_predictive_local_centres_and_weights_follow_the_paper_from_its_own_weights():
    """p_t = S sigmoid(v_p^T tanh(W_p h_t)); scores get -(s - p_t)^2 / (2 sigma^2), sigma = D / 2."""
    window = 2
    attn = _local("predictive", window)
    query, keys, values = _local_inputs()
    lengths = torch.tensor([8, 3])
    mask = padding_mask(lengths)
    _, weights = attn(query, keys, values, mask)
    W_p, v_p = attn.W_p.weight, attn.v_p.weight[0]
    centres = lengths[:, None] * torch.sigmoid(torch.tanh(query @ W_p.T) @ v_p)  # (B, L_q)
    torch.testing.assert_close(attn.last_centres, centres)
    distance = torch.arange(8)[None, None, :] - centres[:, :, None]
    scores = attn.score(query, keys) - distance**2 / (2 * (window / 2) ** 2)
    centre_index = torch.minimum(centres.round(), (lengths - 1)[:, None].float())
    in_window = (torch.arange(8)[None, None, :] - centre_index[:, :, None]).abs() <= window
    allowed = in_window & mask[:, None, :]
    torch.testing.assert_close(weights, masked_softmax(scores, allowed))


@pytest.mark.parametrize(
    "pull, expected", [(0.0, 0.5), (100.0, 1.0), (-100.0, 0.0)], ids=["middle", "end", "start"]
)
def test_predictive_local_centres_scale_with_each_source_length(pull, expected):
    """With tanh(W_p q) = 1 and v_p = pull, p_t = S sigmoid(pull * D): S/2, S or 0."""
    attn = _local("predictive", window=1)
    with torch.no_grad():
        attn.W_p.weight.copy_(100 * torch.eye(D_Q))
        attn.v_p.weight.fill_(pull)
    _, keys, values = _local_inputs()
    query = torch.ones(B, 6, D_Q)
    lengths = torch.tensor([8, 3])
    _, weights = attn(query, keys, values, padding_mask(lengths))
    ends = expected * lengths[:, None].float().expand(B, 6)
    torch.testing.assert_close(attn.last_centres, ends)
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, 6))
    assert torch.all(weights[1, :, 3:] == 0)


def test_predictive_local_gradients_reach_the_position_network():
    attn = _local("predictive", window=2)
    query, keys, values = _local_inputs()
    context, _ = attn(query, keys, values)
    context.pow(2).sum().backward()
    for param in (attn.W_p.weight, attn.v_p.weight, attn.W.weight):
        assert param.grad is not None and torch.isfinite(param.grad).all()
        assert param.grad.abs().sum() > 0


def test_predictive_local_single_query_returns_one_row():
    attn = _local("predictive", window=2)
    query, keys, values = _local_inputs()
    context, weights = attn(query[:, 0], keys, values)
    assert context.shape == (B, D_V) and weights.shape == (B, 8)
    torch.testing.assert_close(weights.sum(-1), torch.ones(B))


def test_predictive_local_with_window_zero_attends_to_exactly_one_key():
    attn = _local("predictive", window=0)
    query, keys, values = _local_inputs()
    _, weights = attn(query, keys, values)
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, 6))
    assert torch.all((weights > 0).sum(-1) == 1), "window 0 keeps only the nearest position"


def test_local_rejects_an_unknown_mode():
    with pytest.raises(ValueError, match=r"mode.*'sliding'"):
        LocalAttention(D_Q, D_K, window=2, mode="sliding")


def test_local_rejects_a_negative_window():
    with pytest.raises(ValueError, match=r"window must be >= 0, got -1"):
        LocalAttention(D_Q, D_K, window=-1, mode="monotonic")


def test_local_rejects_an_unknown_score_and_dot_with_unequal_sizes():
    with pytest.raises(ValueError, match="score must be one of"):
        LocalAttention(D_Q, D_K, score="cosine")
    with pytest.raises(ValueError, match="general"):
        LocalAttention(D_Q, D_K, score="dot")
