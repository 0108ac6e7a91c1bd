"""scikit-learn's handwritten digits (8×8, 1,797 images, shipped inside the package: no
download), as float tensors in [0, 1] with a seeded, stratified train/validation/test split."""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["DigitsSplit", "load_digits_split"]


@dataclass
class DigitsSplit:
    """Images ``(N, 1, 8, 8)`` in [0, 1] and labels ``(N,)`` for each part of the split."""

    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]


def load_digits_split(fractions=(0.7, 0.1, 0.2), seed: int = 0) -> DigitsSplit:
    """Split the digits into train/val/test with every class in the same proportion in each."""
    from sklearn.datasets import load_digits  # imported here: only lesson 09 needs it
    from sklearn.model_selection import train_test_split

    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"fractions must be three positive numbers summing to 1, got {fractions}")
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0  # (N, 1, 8, 8)
    labels = torch.tensor(digits.target, dtype=torch.long)
    index = torch.arange(len(labels)).numpy()
    rest, test = train_test_split(
        index, test_size=fractions[2], stratify=digits.target, random_state=seed
    )
    val_share = fractions[1] / (fractions[0] + fractions[1])
    train, val = train_test_split(
        rest, test_size=val_share, stratify=digits.target[rest], random_state=seed
    )
    part = lambda ids: (images[torch.as_tensor(ids)], labels[torch.as_tensor(ids)])
    return DigitsSplit(part(train), part(val), part(test))
