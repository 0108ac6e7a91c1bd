"""transformer: positional encodings, the encoder layer (equal to PyTorch's), the tagger and the
GPT with its KV cache (cached generation equals uncached, no future leakage)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from course_utils.attention import KVCache, MultiHeadAttention, causal_mask, record_attention
from course_utils.transformer import (
    GPT,
    DecoderLayer,
    EncoderLayer,
    GPTConfig,
    PositionalEncoding,
    TransformerTagger,
    sample_next,
    sinusoidal_positional_encoding,
)

# ----------------------------------------------------------------------------- positions


@pytest.mark.parametrize("d_model", [1, 2, 7, 16])
def test_sinusoidal_encoding_follows_the_papers_formula(d_model):
    pe = sinusoidal_positional_encoding(30, d_model)
    assert pe.shape == (30, d_model) and pe.dtype == torch.float32
    for p in (0, 1, 7, 29):
        for j in range(d_model):
            angle = p / 10000 ** ((j - j % 2) / d_model)
            expected = math.sin(angle) if j % 2 == 0 else math.cos(angle)
            assert pe[p, j].item() == pytest.approx(expected, abs=1e-6)


def test_sinusoidal_encoding_is_a_rotation_per_frequency_pair():
    """PE[p + k] is PE[p] rotated in each (sin, cos) plane by an angle that depends on k only."""
    pe = sinusoidal_positional_encoding(50, 8).double()
    pairs = pe.view(50, 4, 2)  # (positions, frequencies, (sin, cos))
    norms = pairs.norm(dim=-1)
    torch.testing.assert_close(norms, torch.ones_like(norms))
    k = 5
    dots = (pairs[:-k] * pairs[k:]).sum(-1)  # cos(k·ω) for every p
    torch.testing.assert_close(dots, dots[:1].expand_as(dots))


def test_sinusoidal_encoding_rejects_empty_sizes():
    with pytest.raises(ValueError, match="max_len=0"):
        sinusoidal_positional_encoding(0, 8)


def test_positional_encoding_kinds_and_offset():
    x = torch.zeros(2, 4, 8)
    sinus = PositionalEncoding(8, 10, "sinusoidal")
    torch.testing.assert_close(sinus(x, offset=3)[0], sinusoidal_positional_encoding(10, 8)[3:7])
    learned = PositionalEncoding(8, 10, "learned")
    torch.testing.assert_close(learned(x)[1], learned.embedding.weight[:4])
    assert learned.weight().requires_grad
    none = PositionalEncoding(8, 10, "none")
    assert none.weight() is None and torch.equal(none(x + 1), x + 1)


def test_positional_encoding_errors_name_the_problem():
    with pytest.raises(ValueError, match="kind must be one of"):
        PositionalEncoding(8, 10, "rotary")
    encoding = PositionalEncoding(8, 10)
    with pytest.raises(ValueError, match="do not fit in max_len=10"):
        encoding(torch.zeros(1, 8, 8), offset=3)
    with pytest.raises(ValueError, match=r"\(1, 4, 6\)"):
        encoding(torch.zeros(1, 4, 6))


# ----------------------------------------------------------------------------- encoder layer


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_layer_equals_pytorch_with_the_same_weights(norm_first, activation):
    torch.manual_seed(0)
    theirs = nn.TransformerEncoderLayer(
        16, 4, 32, dropout=0.0, activation=activation, batch_first=True, norm_first=norm_first
    ).eval()
    ours = EncoderLayer.from_torch(theirs).eval()
    assert ours.norm_first == norm_first
    x = torch.randn(3, 6, 16)
    with record_attention(ours) as maps:
        out = ours(x)
    torch.testing.assert_close(out, theirs(x), atol=1e-5, rtol=1e-5)
    assert maps["self"].shape == (3, 4, 6, 6)
    # masks: PyTorch's boolean masks mean True = blocked, ours True = may attend
    lengths = torch.tensor([6, 4, 1])
    pad = torch.arange(6)[None, :] < lengths[:, None]  # (B, T)
    causal = causal_mask(6)
    expected = theirs(x, src_mask=~causal, src_key_padding_mask=~pad)
    out = ours(x, src_mask=causal, src_key_padding_mask=pad)
    torch.testing.assert_close(out[pad], expected[pad], atol=1e-5, rtol=1e-5)


def test_encoder_layer_from_torch_rejects_an_unknown_activation():
    theirs = nn.TransformerEncoderLayer(8, 2, 16, activation=torch.tanh, batch_first=True)
    with pytest.raises(ValueError, match="unsupported activation"):
        EncoderLayer.from_torch(theirs)


def test_encoder_layer_norm_order_matters():
    torch.manual_seed(0)
    post = EncoderLayer(8, 2, norm_first=False).eval()
    pre = EncoderLayer(8, 2, norm_first=True).eval()
    pre.load_state_dict(post.state_dict())
    x = torch.randn(2, 5, 8)
    assert not torch.allclose(post(x), pre(x), atol=1e-3)
    # post-norm ends with a LayerNorm: every position has mean 0 and variance 1
    out = post(x)
    torch.testing.assert_close(out.mean(-1), torch.zeros(2, 5), atol=1e-5, rtol=0)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_decoder_layer_equals_pytorch_with_the_same_weights(norm_first, activation):
    torch.manual_seed(0)
    theirs = nn.TransformerDecoderLayer(
        16, 4, 32, dropout=0.0, activation=activation, batch_first=True, norm_first=norm_first
    ).eval()
    ours = DecoderLayer.from_torch(theirs).eval()
    x, memory = torch.randn(3, 5, 16), torch.randn(3, 7, 16)
    with record_attention(ours) as maps:
        out = ours(x, memory)
    torch.testing.assert_close(out, theirs(x, memory), atol=1e-5, rtol=1e-5)
    assert maps["self"].shape == (3, 4, 5, 5) and maps["cross"].shape == (3, 4, 5, 7)
    causal = causal_mask(5)
    source = torch.arange(7)[None, :] < torch.tensor([7, 4, 1])[:, None]  # (B, S)
    expected = theirs(x, memory, tgt_mask=~causal, memory_key_padding_mask=~source)
    with record_attention(ours) as maps:
        out = ours(x, memory, tgt_mask=causal, memory_key_padding_mask=source)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert torch.all(maps["cross"][2, :, :, 1:] == 0)  # the third source has one real token


def test_decoder_layer_names_mismatched_memory():
    layer = DecoderLayer(8, 2)
    with pytest.raises(ValueError, match=r"x \(2, 3, 8\), memory \(2, 4, 6\)"):
        layer(torch.zeros(2, 3, 8), torch.zeros(2, 4, 6))


def test_decoder_layer_with_a_cache_equals_the_full_causal_pass():
    torch.manual_seed(0)
    layer = DecoderLayer(16, 4, norm_first=True).eval()
    x, memory = torch.randn(2, 6, 16), torch.randn(2, 4, 16)
    full = layer(x, memory, tgt_mask=causal_mask(6))
    cache = KVCache()
    steps = [layer(x[:, t : t + 1], memory, cache=cache) for t in range(6)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- tagger


def _tagger(positions, seed=0):
    torch.manual_seed(seed)
    return TransformerTagger(12, d_model=16, num_heads=2, num_layers=2, max_len=10,
                             positions=positions).eval()  # fmt: skip


def test_self_attention_without_positions_is_permutation_equivariant():
    model = _tagger("none")
    tokens = torch.randint(1, 12, (3, 8))
    perm = torch.randperm(8)
    torch.testing.assert_close(model(tokens[:, perm]), model(tokens)[:, perm], atol=1e-5, rtol=0)


@pytest.mark.parametrize("positions", ["sinusoidal", "learned"])
def test_positions_break_permutation_equivariance(positions):
    model = _tagger(positions)
    tokens = torch.arange(1, 9)[None]  # distinct tokens
    perm = torch.tensor([1, 0, 2, 3, 4, 5, 6, 7])
    assert not torch.allclose(model(tokens[:, perm]), model(tokens)[:, perm], atol=1e-4)


def test_tagger_ignores_padding_and_keeps_its_maps():
    model = _tagger("sinusoidal")
    short = torch.tensor([[3, 4, 5]])
    padded = torch.tensor([[3, 4, 5, 0, 0]])
    expected = model(short)
    torch.testing.assert_close(model(padded)[:, :3], expected, atol=1e-5, rtol=0)
    with record_attention(model) as maps:
        model(padded)
    assert maps.names == ["layers.0.self", "layers.1.self"]
    weights = maps["layers.0.self"]
    assert weights.shape == (1, 2, 5, 5)
    assert torch.all(weights[..., 3:] == 0)  # no query attends to a padding key


def test_tagger_errors_name_the_input():
    model = _tagger("none")
    with pytest.raises(ValueError, match=r"\(5,\)"):
        model(torch.ones(5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 12\)"):
        model(torch.tensor([[1, 12]]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bool, torch.uint8])
def test_tagger_and_gpt_refuse_ids_that_are_not_integers_and_name_the_dtype(dtype):
    ids = torch.ones(1, 4, dtype=dtype)
    with pytest.raises(ValueError, match=rf"tokens must be integer.*torch.long.*{dtype}"):
        _tagger("none")(ids)
    with pytest.raises(ValueError, match=rf"idx must be integer.*torch.long.*{dtype}"):
        _gpt()(ids)


# ----------------------------------------------------------------------------- KV cache


def test_multihead_attention_with_a_cache_equals_attending_over_everything():
    torch.manual_seed(0)
    attention = MultiHeadAttention(16, 4).eval()
    x = torch.randn(2, 7, 16)
    full, _ = attention(x, x, x, attn_mask=causal_mask(7))
    cache = KVCache()
    first, _ = attention(x[:, :4], x[:, :4], x[:, :4], attn_mask=causal_mask(4), cache=cache)
    steps = [first]
    for t in range(4, 7):
        out, weights = attention(x[:, t : t + 1], x[:, t : t + 1], x[:, t : t + 1], cache=cache)
        assert weights.shape == (2, 4, 1, t + 1)
        steps.append(out)
    assert len(cache) == 7
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


def test_kv_cache_rejects_keys_of_another_shape():
    cache = KVCache()
    cache.append(torch.zeros(2, 4, 3, 8), torch.zeros(2, 4, 3, 8))
    with pytest.raises(ValueError, match=r"\(2, 2, 1, 8\).*\(2, 4, 3, 8\)"):
        cache.append(torch.zeros(2, 2, 1, 8), torch.zeros(2, 2, 1, 8))


def test_causal_mask_with_an_offset_is_the_bottom_rows_of_the_full_mask():
    full = causal_mask(7)
    assert torch.equal(causal_mask(7, offset=0), full)
    assert torch.equal(causal_mask(3, offset=4), full[4:])
    assert torch.equal(causal_mask(1, offset=6), torch.ones(1, 7, dtype=torch.bool))
    with pytest.raises(ValueError, match="offset .* must be >= 0, got -1"):
        causal_mask(3, offset=-1)


# ----------------------------------------------------------------------------- GPT


def _gpt(block_size=24, seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=13, block_size=block_size, d_model=32, num_heads=4,
                         num_layers=2)).eval()  # fmt: skip


def test_gpt_has_no_future_leakage():
    """The logits at t do not depend on the tokens after t: their gradient is exactly zero."""
    model = _gpt()
    x = torch.randn(1, 10, 32, requires_grad=True)
    model.token_embedding = _Fixed(x)  # feed continuous inputs so gradients exist
    logits = model(torch.zeros(1, 10, dtype=torch.long))
    for t in (0, 4, 9):
        (grad,) = torch.autograd.grad(logits[0, t].sum(), x, retain_graph=True)
        per_position = grad[0].abs().sum(-1)  # (T,)
        assert torch.all(per_position[t + 1 :] == 0), (t, per_position)
        assert torch.all(per_position[: t + 1] > 0), (t, per_position)


class _Fixed(nn.Module):
    """Stands in for the token embedding and returns a given tensor (for gradient tests)."""

    def __init__(self, x):
        super().__init__()
        self.x = x

    def forward(self, idx):
        return self.x[:, : idx.shape[1]]


def test_gpt_forward_with_caches_equals_the_full_forward():
    model = _gpt()
    idx = torch.randint(0, 13, (2, 9))
    full = model(idx)
    caches = model.new_caches()
    with record_attention(model) as maps:
        parts = [model(idx[:, :5], caches)]
        parts += [model(idx[:, t : t + 1], caches) for t in range(5, 9)]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-5)
    assert maps.calls["blocks.0.self"][-1].shape == (2, 4, 1, 9)
    with record_attention(model) as uncached:
        model(idx)
    # the cached steps, joined, are the whole causal map
    torch.testing.assert_close(maps["blocks.0.self"], uncached["blocks.0.self"], atol=1e-6, rtol=0)


@pytest.mark.parametrize("new_tokens", [5, 40])  # 40 runs past block_size: the context slides
def test_cached_generation_equals_uncached(new_tokens):
    model = _gpt(block_size=24)
    prompt = torch.randint(0, 13, (3, 4))
    cached = model.generate(prompt, new_tokens, temperature=0, use_cache=True)
    uncached = model.generate(prompt, new_tokens, temperature=0, use_cache=False)
    assert cached.shape == (3, 4 + new_tokens)
    assert torch.equal(cached[:, :4], prompt)
    assert torch.equal(cached, uncached)


def test_sampled_generation_is_reproducible_and_cache_independent():
    model = _gpt()
    prompt = torch.randint(0, 13, (2, 3))

    def sample(use_cache, seed=1):
        generator = torch.Generator().manual_seed(seed)
        return model.generate(prompt, 12, temperature=1.5, top_k=5, use_cache=use_cache,
                              generator=generator)  # fmt: skip

    assert torch.equal(sample(True), sample(True))
    assert torch.equal(sample(True), sample(False))
    assert not torch.equal(sample(True, seed=1), sample(True, seed=2))


def test_top_k_of_one_is_greedy():
    model = _gpt()
    prompt = torch.randint(0, 13, (2, 3))
    greedy = model.generate(prompt, 8, temperature=0)
    assert torch.equal(model.generate(prompt, 8, temperature=2.0, top_k=1), greedy)


def test_sample_next_keeps_only_the_top_k_tokens():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0, -1.0]]).expand(2000, 5)
    generator = torch.Generator().manual_seed(0)
    picks = sample_next(logits, temperature=1.0, top_k=2, generator=generator)
    assert set(picks.flatten().tolist()) == {1, 3}
    share = (picks == 1).float().mean().item()  # softmax([3, 2]) = (0.73, 0.27)
    assert share == pytest.approx(math.e / (math.e + 1), abs=0.05)
    cold = sample_next(logits, temperature=0.05, generator=generator)
    assert torch.all(cold == 1)  # a low temperature concentrates on the argmax
    assert torch.equal(sample_next(logits, temperature=0), torch.ones(2000, 1, dtype=torch.long))


def test_generate_stops_at_the_stop_token_and_restores_training_mode():
    model = _gpt()
    model.train()
    prompt = torch.randint(0, 13, (1, 3))
    greedy = model.generate(prompt, 10, temperature=0)
    stop = int(greedy[0, 4])  # the second generated token
    stopped = model.generate(prompt, 10, temperature=0, stop_token=stop)
    first = (greedy[0, 3:] == stop).nonzero()[0].item()
    assert stopped.shape[1] == 3 + first + 1 and int(stopped[0, -1]) == stop
    assert model.training


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(temperature=-1.0), "temperature must be >= 0"),
        (dict(top_k=0), r"top_k must be in 1\.\.13"),
        (dict(top_k=14), r"top_k must be in 1\.\.13"),
    ],
)
def test_generate_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _gpt().generate(torch.zeros(1, 2, dtype=torch.long), 3, **kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(temperature=-1.0), "temperature must be >= 0"),  # it sampled the inverted logits
        (dict(top_k=0), r"top_k must be in 1\.\.5 \(the vocabulary size\), got 0"),
        (dict(top_k=6), r"top_k must be in 1\.\.5 \(the vocabulary size\), got 6"),
        (dict(temperature=0, top_k=6), r"top_k must be in 1\.\.5"),
    ],
)
def test_sample_next_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sample_next(torch.randn(2, 5), **kwargs)


def test_generate_refuses_a_negative_number_of_new_tokens_and_zero_returns_the_prompt():
    model, prompt = _gpt(), torch.randint(0, 13, (2, 3))
    with pytest.raises(ValueError, match="max_new_tokens must be >= 0, got -3"):
        model.generate(prompt, max_new_tokens=-3)
    assert torch.equal(model.generate(prompt, max_new_tokens=0), prompt)


def test_gpt_errors_name_the_input():
    model = _gpt(block_size=8)
    with pytest.raises(ValueError, match=r"\(4,\)"):
        model(torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 13\)"):
        model(torch.tensor([[0, 13]]))
    with pytest.raises(ValueError, match="do not fit in max_len=8"):
        model(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match="one cache per layer"):
        model(torch.zeros(1, 2, dtype=torch.long), caches=[KVCache()])
    with pytest.raises(ValueError, match="T >= 1"):
        model.generate(torch.zeros(1, 0, dtype=torch.long), 3)


def test_gpt_is_causal_when_the_batch_size_equals_the_length():
    """A (T, T) mask with B == T looks like a (B, L_k) padding mask; the GPT must not mix them."""
    model = _gpt()
    idx = torch.randint(0, 13, (5, 5))
    rows = torch.cat([model(idx[b : b + 1]) for b in range(5)])
    torch.testing.assert_close(model(idx), rows, atol=1e-5, rtol=1e-5)
