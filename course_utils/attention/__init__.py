"""Attention: masks, scaled dot-product attention, the seq2seq scores and multi-head attention.

Conventions for the whole course:
- a mask is boolean and **True means "may attend"** (as in
  ``torch.nn.functional.scaled_dot_product_attention``), broadcastable to the scores;
- a query whose keys are all masked gets zero weights and a zero output, never NaN;
- every attention returns ``(output, weights)`` so that lessons can plot the weights.

``core`` holds the masks and scaled dot-product attention, ``scores`` the attentions of RNN
encoder-decoders (lessons 02-03), ``multihead`` multi-head attention with its KV cache and
its two backends, and ``record`` the one way to read any model's attention maps
(``with record_attention(model) as maps``).
"""

from .core import causal_mask, masked_softmax, padding_mask, scaled_dot_product_attention
from .multihead import KVCache, MultiHeadAttention, merge_masks
from .record import AttentionMaps, record_attention
from .scores import LUONG_SCORES, AdditiveAttention, LocalAttention, LuongAttention

__all__ = [
    "LUONG_SCORES",
    "AdditiveAttention",
    "AttentionMaps",
    "KVCache",
    "LocalAttention",
    "LuongAttention",
    "MultiHeadAttention",
    "causal_mask",
    "masked_softmax",
    "merge_masks",
    "padding_mask",
    "record_attention",
    "scaled_dot_product_attention",
]
