"""Lesson 05: a task that needs positions, reversal as per-position tagging.

Every sequence has the same length L; the label of position i is the token at position
L - 1 - i. A self-attention model without positions is permutation-equivariant: the output
at position i can only depend on the token at i and on the *bag* of all tokens, never on
where they stand. :func:`bag_ceiling` is the best accuracy any such model can reach.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import torch

from ..data import Vocab

__all__ = [
    "ORDER_ALPHABET",
    "bag_ceiling",
    "make_reversal_data",
    "order_vocab",
    "reverse_tokens",
]

ORDER_ALPHABET = "abcdefghijklmnop"  # 16 symbols: a bag of 8 rarely repeats one


def order_vocab(alphabet: str = ORDER_ALPHABET) -> Vocab:
    """The course :class:`~course_utils.data.Vocab` over ``alphabet`` (id 0 is padding)."""
    if not alphabet or len(set(alphabet)) != len(alphabet):
        raise ValueError(f"the alphabet must be non-empty without repeats, got {alphabet!r}")
    return Vocab(alphabet)


def reverse_tokens(tokens: torch.Tensor) -> torch.Tensor:
    """Labels for reversal: ``targets[..., i] = tokens[..., L - 1 - i]`` for ``(..., L)``."""
    return tokens.flip(-1)


def make_reversal_data(
    n: int, length: int = 8, vocab: Vocab | None = None, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random sequences of ``length`` symbols (uniform, with repeats) and their labels.

    Returns ``tokens (n, length)`` and ``targets (n, length)`` as vocabulary ids (no padding);
    the same seed gives the same data.
    """
    if n < 1 or length < 1:
        raise ValueError(f"n and length must be >= 1, got n={n}, length={length}")
    vocab = vocab or order_vocab()
    n_symbols = len(vocab) - len(Vocab.SPECIALS)
    if n_symbols < 1:
        raise ValueError("the vocabulary has no symbols besides the specials")
    generator = torch.Generator().manual_seed(seed)
    offset = len(Vocab.SPECIALS)  # symbol ids start after <pad>, <bos>, <eos>, <unk>
    tokens = torch.randint(n_symbols, (n, length), generator=generator) + offset
    return tokens, reverse_tokens(tokens)


def bag_ceiling(tokens: torch.Tensor | Sequence[Sequence[int]]) -> float:
    """The best expected reversal accuracy without positions, on ``tokens (N, L)``.

    Without positions, position i sees its own token and the bag of all tokens; its partner
    L - 1 - i is, as far as it can tell, any of the other L - 1 positions. The best guess is
    the most common token among the others, right with probability (its count) / (L - 1).
    For an odd L a position may be the middle one, its own partner: the guess is then the
    most common token of the whole bag, right with probability (its count) / L.
    """
    rows = tokens.tolist() if isinstance(tokens, torch.Tensor) else [list(r) for r in tokens]
    if not rows or not rows[0]:
        raise ValueError("need at least one non-empty sequence")
    total, count = 0.0, 0
    for row in rows:
        length = len(row)
        bag = Counter(row)
        for token in row:
            count += 1
            if length % 2 == 1:
                total += max(bag.values()) / length
                continue
            bag[token] -= 1  # the others
            total += max(bag.values()) / (length - 1)
            bag[token] += 1
    return total / count
