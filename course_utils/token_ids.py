"""The check every model runs on its token ids before looking them up in an embedding.

An id outside the embedding is an ``IndexError`` on the CPU, but on a GPU it is a device-side
assert that leaves the CUDA context broken (every later call fails too, until a restart); a
float id is an obscure dtype error from deep inside ``nn.Embedding``. Checking first turns
both into an error that says what is wrong.
"""

from __future__ import annotations

import torch

ID_DTYPES = (torch.long, torch.int)  # the index dtypes nn.Embedding accepts


def check_token_ids(ids: torch.Tensor, vocab_size: int, name: str = "token ids") -> None:
    """A ValueError unless ``ids`` is an integer tensor with every id in ``[0, vocab_size)``."""
    if not isinstance(ids, torch.Tensor):
        raise ValueError(f"{name} must be a tensor of integer ids, got {type(ids).__name__}")
    if ids.dtype not in ID_DTYPES:
        raise ValueError(
            f"{name} must be integer token ids (torch.long), got {ids.dtype}: an embedding "
            "looks ids up by index; build them with dtype=torch.long or convert with .long()"
        )
    if ids.numel() == 0:
        return
    low, high = torch.stack(torch.aminmax(ids)).tolist()  # one device sync for both
    if low < 0 or high >= vocab_size:
        raise ValueError(
            f"{name} must be in [0, {vocab_size}) (the vocabulary size), got ids from {low} to "
            f"{high}: were they encoded with another vocabulary?"
        )
