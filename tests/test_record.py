"""record_attention: one way to read any model's attention, off by default."""

from __future__ import annotations

import pytest
import torch

from course_utils.attention import (
    MultiHeadAttention,
    causal_mask,
    record_attention,
    scaled_dot_product_attention,
)
from course_utils.attention.record import map_name
from course_utils.transformer import GPT, GPTConfig, Transformer


def _transformer():
    torch.manual_seed(0)
    return Transformer(11, 13, d_model=16, num_heads=4, max_len=12).eval()


def test_names_say_layer_and_kind():
    assert map_name("decoder.1.cross_attn") == "decoder.1.cross"
    assert map_name("blocks.0.self_attn") == "blocks.0.self"
    assert map_name("decoder.attention") == "decoder.attention"
    assert map_name("") == "attention"


def test_a_transformer_reports_every_layer_by_name_and_kind():
    model = _transformer()
    src, lengths = torch.randint(3, 11, (2, 6)), torch.tensor([6, 3])
    tgt_in = torch.randint(3, 13, (2, 5))
    with record_attention(model) as maps:
        model(src, lengths, tgt_in)
    assert maps.names == [
        "encoder.0.self",
        "encoder.1.self",
        "decoder.0.self",
        "decoder.0.cross",
        "decoder.1.self",
        "decoder.1.cross",
    ]
    assert maps["encoder.1.self"].shape == (2, 4, 6, 6)
    assert [m.shape for m in maps.layers("cross")] == [(2, 4, 5, 6)] * 2
    assert torch.all(maps["decoder.0.cross"][1, :, :, 3:] == 0)  # padding of the 2nd source
    assert torch.all(maps["decoder.1.self"].triu(1) == 0)  # causal


def test_recorded_maps_are_the_weights_the_explicit_attention_computes():
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4).eval()
    x = torch.randn(2, 5, 16)
    _, expected = mha(x, x, x, attn_mask=causal_mask(5), need_weights=True)
    with record_attention(mha) as maps:
        out, returned = mha(x, x, x, attn_mask=causal_mask(5), need_weights=False)
    torch.testing.assert_close(maps["attention"], expected)
    q, k, v = (mha.split_heads(w(x)) for w in (mha.W_q, mha.W_k, mha.W_v))
    _, by_hand = scaled_dot_product_attention(q, k, v, causal_mask(5))
    torch.testing.assert_close(maps["attention"], by_hand)


def test_nothing_is_kept_outside_the_block_and_the_fast_path_returns_no_weights():
    model = _transformer()
    src, lengths, tgt_in = torch.randint(3, 11, (1, 4)), torch.tensor([4]), torch.ones(1, 3).long()
    with record_attention(model) as maps:
        model(src, lengths, tgt_in)
    model(src, lengths, tgt_in)  # outside the block: not recorded
    assert all(len(calls) == 1 for calls in maps.calls.values())
    attention = model.decoder[0].cross_attn
    assert attention.recorders == 0 and not attention._forward_hooks
    assert not any(hasattr(model, name) for name in ("cross_attention", "attention_weights"))
    memory = torch.randn(1, 4, 16)
    assert attention(memory, memory, memory, need_weights=False)[1] is None


def test_cached_generation_steps_join_into_the_whole_causal_map():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=9, block_size=16, d_model=16, num_heads=2)).eval()
    idx = torch.randint(0, 9, (2, 7))
    with record_attention(model) as whole:
        model(idx)
    caches = model.new_caches()
    with record_attention(model) as stepwise:
        model(idx[:, :3], caches)
        for t in range(3, 7):
            model(idx[:, t : t + 1], caches)
    assert len(stepwise.calls["blocks.1.self"]) == 5
    for name in whole:
        torch.testing.assert_close(stepwise[name], whole[name], atol=1e-6, rtol=0)


def test_record_blocks_nest_and_the_decoder_attention_of_greedy_decoding_is_recorded():
    model = _transformer()
    src, lengths = torch.randint(3, 11, (2, 6)), torch.tensor([6, 4])
    with record_attention(model) as outer:
        decoded = model.greedy_decode(src, lengths, bos_id=1, eos_id=2, max_len=5)
    steps = decoded.tokens.shape[1]
    assert decoded.attention.shape == (2, steps, 6)  # greedy_decode records inside
    torch.testing.assert_close(decoded.attention, outer["decoder.1.cross"].mean(dim=1))
    assert model.decoder[1].cross_attn.recorders == 0


def test_errors_name_what_exists():
    model = _transformer()
    with record_attention(model) as maps:
        pass
    with pytest.raises(KeyError, match="recorded nothing"):
        maps["encoder.0.self"]
    with pytest.raises(KeyError, match="this model's are"):
        maps["encoder.9.self"]
    with pytest.raises(KeyError, match=r"its kinds are \['cross', 'self'\]"):
        maps.layers("pool")
    with pytest.raises(ValueError, match="no attention module"):
        with record_attention(torch.nn.Linear(2, 2)):
            pass
