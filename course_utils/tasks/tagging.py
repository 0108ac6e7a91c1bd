"""Per-position tagging, shared by the lessons that train ``TransformerTagger``: a seeded
loader of ``(tokens, labels)`` batches, the loss for ``training.fit`` and the accuracy.

Labels are ``(N, T)`` class ids, one per position; a position labelled ``IGNORE_INDEX`` has no
answer and is left out of the loss and the accuracy.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from ..training import evaluating

__all__ = ["IGNORE_INDEX", "tagging_accuracy", "tagging_loader", "tagging_loss"]

IGNORE_INDEX = -100  # F.cross_entropy's default ignore_index: positions without a loss


def tagging_loader(
    tokens: torch.Tensor, labels: torch.Tensor, batch_size: int = 64, seed: int = 0
) -> DataLoader:
    """Shuffled ``(tokens (B, T), labels (B, T))`` batches in a seeded order."""
    if tokens.shape != labels.shape:
        raise ValueError(
            f"tokens {tuple(tokens.shape)} and labels {tuple(labels.shape)} must match"
        )
    generator = torch.Generator().manual_seed(seed)
    dataset = TensorDataset(tokens, labels)
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=generator)


def tagging_loss(model: torch.nn.Module, batch) -> torch.Tensor:
    """Cross-entropy of ``model(tokens) (B, T, C)`` over the labelled positions."""
    tokens, labels = batch
    logits = model(tokens)  # (B, T, C)
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX)


@torch.no_grad()
def tagging_accuracy(
    model: torch.nn.Module, tokens: torch.Tensor, labels: torch.Tensor, batch_size: int = 1024
) -> float:
    """Share of labelled positions whose argmax class is right, over ``(N, T)`` tensors."""
    device = next(model.parameters()).device
    hits = total = 0
    with evaluating(model):
        for start in range(0, len(tokens), batch_size):
            chunk = tokens[start : start + batch_size].to(device)
            target = labels[start : start + batch_size].to(device)
            predicted = model(chunk).argmax(dim=-1)  # (b, T)
            scored = target != IGNORE_INDEX
            hits += int((predicted[scored] == target[scored]).sum())
            total += int(scored.sum())
    if total == 0:
        raise ValueError("no labelled positions to score (every label is IGNORE_INDEX)")
    return hits / total
