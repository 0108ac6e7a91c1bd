"""Vocabularies, seeded synthetic tasks, splits and padded batches.

Every dataset of the course is generated here from a seed (or ships in a PyPI package), so no
lesson downloads anything. Tasks are character level: a source and a target string.
"""

from __future__ import annotations

import datetime as _dt
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from functools import partial

import torch
from torch.utils.data import DataLoader

Pair = tuple[str, str]

DIGITS = "0123456789"
LETTERS = "abcdefghijklmnopqrstuvwxyz"


class Vocab:
    """Maps symbols to ids and back; ids 0-3 are ``<pad>``, ``<bos>``, ``<eos>``, ``<unk>``."""

    PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
    SPECIALS = (PAD, BOS, EOS, UNK)

    def __init__(self, symbols: Iterable[str]):
        self.itos: list[str] = list(self.SPECIALS)
        for symbol in symbols:
            if symbol not in self.itos:
                self.itos.append(symbol)
        self.stoi: dict[str, int] = {s: i for i, s in enumerate(self.itos)}
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = range(4)

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> Vocab:
        """A vocabulary of every character in ``texts``, in sorted order (deterministic)."""
        return cls(sorted({ch for text in texts for ch in text}))

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, symbol: str) -> bool:
        return symbol in self.stoi

    def __repr__(self) -> str:
        shown = "".join(s for s in self.itos[4:34] if len(s) == 1)
        return (
            f"Vocab({len(self)} symbols: 4 specials + {shown!r}{'...' if len(self) > 34 else ''})"
        )

    def unknown(self, tokens: Iterable[str]) -> list[str]:
        """The symbols of ``tokens`` that are not in this vocabulary, in order, without repeats."""
        return list(dict.fromkeys(t for t in tokens if t not in self.stoi))

    def encode(
        self,
        tokens: Iterable[str],
        add_bos: bool = False,
        add_eos: bool = False,
        strict: bool = False,
    ) -> list[int]:
        """Ids of ``tokens``; unknown symbols become ``<unk>``, or a ValueError if ``strict``."""
        tokens = list(tokens)
        if strict:
            missing = self.unknown(tokens)
            if missing:
                known = "".join(s for s in self.itos[4:] if len(s) == 1)
                raise ValueError(
                    f"symbols {missing} are not in the vocabulary; this model knows {known!r}"
                )
        ids = [self.stoi.get(t, self.unk_id) for t in tokens]
        return ([self.bos_id] if add_bos else []) + ids + ([self.eos_id] if add_eos else [])

    def decode(self, ids: Iterable[int], strip_special: bool = True) -> list[str]:
        """Symbols of ``ids``. With ``strip_special``: stop at ``<eos>``, drop pad and bos."""
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.itos):
                raise ValueError(f"id {i} is outside the vocabulary (size {len(self.itos)})")
            if strip_special:
                if i == self.eos_id:
                    break
                if i in (self.pad_id, self.bos_id):
                    continue
            out.append(self.itos[i])
        return out

    def to_text(self, ids: Iterable[int]) -> str:
        """``decode`` joined into a string (all course tasks are character level).

        ``<unk>`` shows as one character, "�", so positions still line up with the target.
        """
        return "".join("\ufffd" if s == self.UNK else s for s in self.decode(ids))


# ----------------------------------------------------------------------------- synthetic tasks

_TASK_TARGETS = {
    "copy": lambda s: s,
    "reverse": lambda s: s[::-1],
    "sort": lambda s: "".join(sorted(s)),
}


def task_target(task: str, source: str) -> str:
    """The right answer for ``source`` under ``task`` ("copy", "reverse" or "sort")."""
    if task not in _TASK_TARGETS:
        raise ValueError(f"unknown task {task!r}; choose one of {sorted(_TASK_TARGETS)}")
    return _TASK_TARGETS[task](source)


def make_sequence_task(
    task: str,
    n: int,
    min_len: int = 4,
    max_len: int = 40,
    alphabet: str = LETTERS,
    seed: int = 0,
) -> list[Pair]:
    """``n`` distinct (source, target) pairs for ``task`` in {"copy", "reverse", "sort"}.

    Source lengths are uniform over ``[min_len, max_len]`` so every length is well represented;
    symbols are uniform over ``alphabet``. Sources are unique, so a split never leaks.
    """
    task_target(task, "")  # validates the task name
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got min_len={min_len}, max_len={max_len}")
    if len(set(alphabet)) < 2:
        raise ValueError(f"alphabet needs at least two distinct symbols, got {alphabet!r}")
    possible = sum(len(set(alphabet)) ** k for k in range(min_len, max_len + 1))
    if n > possible // 2:
        raise ValueError(f"cannot draw {n} distinct sequences: only {possible} exist")
    rng = random.Random(seed)
    seen: set[str] = set()
    pairs: list[Pair] = []
    while len(pairs) < n:
        length = rng.randint(min_len, max_len)
        source = "".join(rng.choice(alphabet) for _ in range(length))
        if source not in seen:
            seen.add(source)
            pairs.append((source, task_target(task, source)))
    return pairs


MONTHS = (
    "January February March April May June July August September October November December"
).split()
WEEKDAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()


def _date_formats(d: _dt.date) -> list[str]:
    """Human ways of writing ``d``. English names come from tables, not the locale."""
    month, mon, day = MONTHS[d.month - 1], MONTHS[d.month - 1][:3], d.day
    weekday = WEEKDAYS[d.weekday()]
    return [
        f"{day} {month} {d.year}",
        f"{day:02d} {month} {d.year}",
        f"{month} {day}, {d.year}",
        f"{mon} {day} {d.year}",
        f"{day} {mon} {d.year}",
        f"{mon.upper()} {day:02d}, {d.year}",
        f"{weekday}, {day} {month} {d.year}",
        f"{weekday[:3]} {mon} {day} {d.year}",
        f"{day:02d}.{d.month:02d}.{d.year}",  # European order with dots
        f"{d.month}/{day}/{d.year}",  # US order with slashes
        f"{d.year}/{d.month:02d}/{day:02d}",
        f"{day} {month.lower()} {d.year}",
        f"the {day} of {month}, {d.year}",
    ]


DATE_FORMAT_COUNT = len(_date_formats(_dt.date(2000, 1, 1)))


def make_dates(n: int, seed: int = 0, start_year: int = 1950, end_year: int = 2049) -> list[Pair]:
    """``n`` distinct (human date, ISO ``YYYY-MM-DD``) pairs, formats drawn uniformly.

    Slashes mean month/day/year (or year/month/day when the year comes first) and dots
    day.month.year, so every source has exactly one answer.
    """
    if start_year > end_year:
        raise ValueError(f"start_year {start_year} is after end_year {end_year}")
    first = _dt.date(start_year, 1, 1).toordinal()
    last = _dt.date(end_year, 12, 31).toordinal()
    if n > (last - first + 1) * DATE_FORMAT_COUNT // 2:
        raise ValueError(f"cannot draw {n} distinct dates between {start_year} and {end_year}")
    rng = random.Random(seed)
    seen: set[str] = set()
    pairs: list[Pair] = []
    while len(pairs) < n:
        date = _dt.date.fromordinal(rng.randint(first, last))
        source = rng.choice(_date_formats(date))
        if source not in seen:
            seen.add(source)
            pairs.append((source, date.isoformat()))
    return pairs


def split_dataset(
    items: Sequence, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0
) -> tuple[list, list, list]:
    """Deterministic shuffled train/val/test split of ``items`` by ``fractions``."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1: {fractions}")
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    # round the cumulative boundaries, so a zero fraction always gets an empty part
    end_train = round(fractions[0] * len(items))
    end_val = max(end_train, round((fractions[0] + fractions[1]) * len(items)))
    if fractions[2] == 0:
        end_val = len(items)
    pick = lambda idx: [items[i] for i in idx]
    return pick(order[:end_train]), pick(order[end_train:end_val]), pick(order[end_val:])


# ----------------------------------------------------------------------------- batching


def pad_sequences(
    seqs: Sequence[Sequence[int]], pad_id: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id lists into a ``(B, T_max)`` long tensor; also return lengths ``(B,)``."""
    if len(seqs) == 0:
        raise ValueError("cannot pad an empty list of sequences")
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    out = torch.full((len(seqs), int(lengths.max())), pad_id, dtype=torch.long)
    for row, seq in enumerate(seqs):
        out[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
    return out, lengths


def lengths_to_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """Boolean ``(B, max_len)`` mask, True at real tokens (the course's "may attend")."""
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


@dataclass
class Batch:
    """A padded batch of pairs. Masks are True at real tokens.

    ``tgt_in`` is ``<bos> y1 .. yn`` and ``tgt_out`` is ``y1 .. yn <eos>`` (teacher forcing).
    """

    src: torch.Tensor  # (B, S)
    src_lengths: torch.Tensor  # (B,)
    src_mask: torch.Tensor  # (B, S) bool
    tgt_in: torch.Tensor  # (B, T)
    tgt_out: torch.Tensor  # (B, T)
    tgt_mask: torch.Tensor  # (B, T) bool

    def to(self, device: torch.device | str) -> Batch:
        return Batch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def __len__(self) -> int:
        return self.src.shape[0]


def collate_pairs(pairs: Sequence[Pair], src_vocab: Vocab, tgt_vocab: Vocab) -> Batch:
    """Encode and pad a list of (source, target) pairs into a :class:`Batch`."""
    src, src_lengths = pad_sequences([src_vocab.encode(s) for s, _ in pairs], src_vocab.pad_id)
    tgt_in, tgt_lengths = pad_sequences(
        [tgt_vocab.encode(t, add_bos=True) for _, t in pairs], tgt_vocab.pad_id
    )
    tgt_out, _ = pad_sequences(
        [tgt_vocab.encode(t, add_eos=True) for _, t in pairs], tgt_vocab.pad_id
    )
    return Batch(
        src=src,
        src_lengths=src_lengths,
        src_mask=lengths_to_mask(src_lengths, src.shape[1]),
        tgt_in=tgt_in,
        tgt_out=tgt_out,
        tgt_mask=lengths_to_mask(tgt_lengths, tgt_in.shape[1]),
    )


def make_loader(
    pairs: Sequence[Pair],
    src_vocab: Vocab,
    tgt_vocab: Vocab,
    batch_size: int = 64,
    shuffle: bool = True,
    seed: int = 0,
) -> DataLoader:
    """A DataLoader of :class:`Batch` es; shuffling is seeded, so every run sees the same order."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        list(pairs),
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        collate_fn=partial(collate_pairs, src_vocab=src_vocab, tgt_vocab=tgt_vocab),
    )
