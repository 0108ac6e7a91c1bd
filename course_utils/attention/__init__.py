"""Attention: masks, scaled dot-product attention, the seq2seq scores and multi-head attention.

Conventions for the whole course:
- a mask is boolean and **True means "may attend"** (as in
  ``torch.nn.functional.scaled_dot_product_attention``), broadcastable to the scores;
- a query whose keys are all masked gets zero weights and a zero output, never NaN;
- every attention returns ``(output, weights)`` so that lessons can plot the weights.

``core`` holds the masks and scaled dot-product attention, ``scores`` the attentions of RNN
encoder-decoders (lessons 02-03) and ``multihead`` multi-head attention with its KV cache.
"""

from .core import causal_mask, masked_softmax, padding_mask, scaled_dot_product_attention
from .multihead import KVCache, MultiHeadAttention
from .scores import LUONG_SCORES, AdditiveAttention, LocalAttention, LuongAttention

__all__ = [
    "LUONG_SCORES",
    "AdditiveAttention",
    "KVCache",
    "LocalAttention",
    "LuongAttention",
    "MultiHeadAttention",
    "causal_mask",
    "masked_softmax",
    "padding_mask",
    "scaled_dot_product_attention",
]
