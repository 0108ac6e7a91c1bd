"""Lesson 06: a tagging task whose every output needs two different relations at once.

Each position ``i`` must output the difference ``x[i - before] - x[i + after]`` of the token
``before`` places to its left and the token ``after`` places to its right. The difference is
*asymmetric* (swap the two tokens and the sign flips), so a single attention head, whose output
is one weighted average of value vectors, cannot simply average the two tokens: it must keep
them apart. Two heads can each fetch one. Positions without both neighbours get the label
``IGNORE_INDEX`` and are left out of the loss and the accuracy.

Tokens are ``value + 1`` for values ``0 .. num_values - 1``; id 0 is reserved for padding.
Labels are ``difference + num_values - 1``, classes ``0 .. 2 * num_values - 2``.
"""

from __future__ import annotations

import torch

from .tagging import IGNORE_INDEX

__all__ = [
    "RELATION_PAD",
    "decode_difference",
    "make_relation_task",
    "relation_num_classes",
    "relation_queries",
    "relation_targets",
    "relation_tokens_text",
]

RELATION_PAD = 0  # token id 0 is padding; values are stored as value + 1


def _check_offsets(length: int, before: int, after: int) -> None:
    for name, value in (("before", before), ("after", after)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1 (a distance in tokens), got {value!r}")
    if isinstance(length, bool) or not isinstance(length, int) or length < before + after + 1:
        raise ValueError(
            f"length={length!r} leaves no position with a token {before} before and {after} "
            f"after it: use length >= {before + after + 1}"
        )


def relation_num_classes(num_values: int) -> int:
    """How many labels: the differences ``-(V - 1) .. V - 1``, that is ``2 V - 1``."""
    return 2 * num_values - 1


def relation_queries(length: int, before: int = 1, after: int = 2) -> torch.Tensor:
    """The positions ``i`` that have both ``i - before`` and ``i + after``: ``(n_queries,)``."""
    _check_offsets(length, before, after)
    return torch.arange(before, length - after)


def relation_targets(
    values: torch.Tensor, num_values: int, before: int = 1, after: int = 2
) -> torch.Tensor:
    """Labels ``(N, T)`` for ``values (N, T)`` in ``0 .. V - 1``: the class of
    ``values[:, i - before] - values[:, i + after]``, ``IGNORE_INDEX`` at the edges."""
    if values.dim() != 2:
        raise ValueError(f"values must be (N, T), got {tuple(values.shape)}")
    queries = relation_queries(values.shape[1], before, after)
    labels = torch.full_like(values, IGNORE_INDEX)
    difference = values[:, queries - before] - values[:, queries + after]  # (N, n_queries)
    labels[:, queries] = difference + num_values - 1
    return labels


def make_relation_task(
    n: int,
    length: int = 12,
    num_values: int = 10,
    before: int = 1,
    after: int = 2,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random sequences: ``tokens (n, length)`` (ids ``1 .. V``, no padding) and
    ``labels (n, length)`` (see :func:`relation_targets`). The same seed gives the same data."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    if isinstance(num_values, bool) or not isinstance(num_values, int) or num_values < 2:
        raise ValueError(f"num_values must be an int >= 2, got {num_values!r}")
    _check_offsets(length, before, after)
    generator = torch.Generator().manual_seed(seed)
    values = torch.randint(0, num_values, (n, length), generator=generator)  # (n, T)
    return values + 1, relation_targets(values, num_values, before, after)


def decode_difference(labels: torch.Tensor, num_values: int) -> torch.Tensor:
    """Labels (or predicted classes) back to differences ``x[i - before] - x[i + after]``."""
    return labels - (num_values - 1)


def relation_tokens_text(tokens) -> list[str]:
    """Token ids to the digits they stand for (``·`` for padding), for axis labels."""
    ids = tokens.tolist() if isinstance(tokens, torch.Tensor) else list(tokens)
    return ["·" if t == RELATION_PAD else str(t - 1) for t in ids]
