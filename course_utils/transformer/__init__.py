"""Transformers built from the course's own attention: positional encodings, the encoder layer,
an encoder-only tagger (lessons 05-06), a decoder-only GPT with a KV cache (lesson 07) and the
encoder-decoder Transformer (lesson 08).

Every layer can be loaded from PyTorch's matching layer with ``from_torch`` and then gives the
same output.
"""

from .gpt import GPT, GPTConfig, sample_next
from .layers import DecoderLayer, EncoderLayer, FeedForward
from .model import Transformer, warmup_schedule
from .positions import POSITION_KINDS, PositionalEncoding, sinusoidal_positional_encoding
from .tagger import TransformerTagger

__all__ = [
    "GPT",
    "POSITION_KINDS",
    "DecoderLayer",
    "EncoderLayer",
    "FeedForward",
    "GPTConfig",
    "PositionalEncoding",
    "Transformer",
    "TransformerTagger",
    "sample_next",
    "sinusoidal_positional_encoding",
    "warmup_schedule",
]
