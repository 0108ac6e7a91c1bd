"""Lesson 07: a generated corpus of sums, ``"07+45=25"`` style, for a tiny GPT.

Every problem is written with a fixed width: both operands zero-padded to ``digits`` digits and
the answer to ``digits + 1`` digits, so all problems have the same length and a batch needs no
padding. With ``reverse_answer=True`` (the default) the answer is written least significant
digit first: 07 + 45 = 052 becomes ``"07+45=250"``. A left-to-right model then produces the
ones digit first, the way one adds by hand, and each answer digit needs only the carry from the
digit it has just written (Lee et al. 2023, "Teaching Arithmetic to Small Transformers").
The text of one problem is ``prompt + answer`` followed by the vocabulary's ``<eos>`` token.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

from ..data import Vocab
from .tagging import IGNORE_INDEX

__all__ = [
    "ARITHMETIC_SYMBOLS",
    "arithmetic_answer",
    "arithmetic_batch",
    "arithmetic_loader",
    "arithmetic_vocab",
    "carry_free_answer",
    "make_arithmetic",
    "parse_problem",
    "split_problems",
]

ARITHMETIC_SYMBOLS = "0123456789+="

Problem = tuple[str, str]  # (prompt "07+45=", answer "250")


def arithmetic_vocab() -> Vocab:
    """The course's :class:`~course_utils.data.Vocab` over digits, ``+`` and ``=``: 16 symbols
    (``<pad>``, ``<bos>``, ``<eos>``, ``<unk>`` first); ``<eos>`` ends every answer."""
    return Vocab(ARITHMETIC_SYMBOLS)


def _check_digits(digits: int) -> None:
    if isinstance(digits, bool) or not isinstance(digits, int) or not 1 <= digits <= 6:
        raise ValueError(f"digits must be an int from 1 to 6, got {digits!r}")


def arithmetic_answer(a: int, b: int, digits: int, reverse_answer: bool = True) -> str:
    """The answer text for ``a + b``: ``digits + 1`` digits, zero-padded, reversed if asked."""
    _check_digits(digits)
    if not (0 <= a < 10**digits and 0 <= b < 10**digits):
        raise ValueError(f"operands must be in 0..{10**digits - 1}, got {a} and {b}")
    total = f"{a + b:0{digits + 1}d}"
    return total[::-1] if reverse_answer else total


def _prompt(a: int, b: int, digits: int) -> str:
    return f"{a:0{digits}d}+{b:0{digits}d}="


def parse_problem(prompt: str, digits: int | None = None) -> tuple[int, int]:
    """``"07+45="`` -> ``(7, 45)``; a ValueError that says what is wrong otherwise."""
    if not prompt.endswith("=") or prompt.count("+") != 1:
        raise ValueError(f"{prompt!r} is not a problem like '07+45=' (a, '+', b, '=')")
    left, right = prompt[:-1].split("+")
    if not (left.isdigit() and right.isdigit()):
        raise ValueError(f"{prompt!r}: both operands must be written in digits")
    if digits is not None and (len(left) != digits or len(right) != digits):
        raise ValueError(f"{prompt!r}: the model was trained on {digits}-digit operands")
    return int(left), int(right)


def make_arithmetic(
    digits: int = 2, n: int | None = None, reverse_answer: bool = True, seed: int = 0
) -> list[Problem]:
    """``n`` distinct problems ``(prompt, answer)`` in a seeded random order.

    Operands are uniform over ``0 .. 10**digits - 1``; ``n=None`` gives every one of the
    ``10**(2 * digits)`` problems (10,000 for two digits), shuffled.
    """
    _check_digits(digits)
    size = 10**digits
    total = size * size
    n = total if n is None else n
    if not 1 <= n <= total:
        raise ValueError(f"n must be in 1..{total} for {digits}-digit operands, got {n}")
    rng = random.Random(seed)
    codes = rng.sample(range(total), n)  # distinct problems, each code = a * size + b
    return [
        (_prompt(a, b, digits), arithmetic_answer(a, b, digits, reverse_answer))
        for a, b in (divmod(code, size) for code in codes)
    ]


def split_problems(problems: Sequence[Problem], n_test: int) -> tuple[list[Problem], list[Problem]]:
    """``(train, held_out)``: the last ``n_test`` problems are held out, none of them in train.

    ``make_arithmetic`` already shuffled them, so this is a random split; prompts are distinct,
    so no held-out problem is ever seen in training.
    """
    if not 1 <= n_test < len(problems):
        raise ValueError(f"n_test must be in 1..{len(problems) - 1}, got {n_test}")
    prompts = [p for p, _ in problems]
    if len(set(prompts)) != len(prompts):
        raise ValueError("the problems repeat: a split would leak held-out problems into training")
    return list(problems[:-n_test]), list(problems[-n_test:])


def carry_free_answer(prompt: str, reverse_answer: bool = True) -> str:
    """A baseline that adds digit by digit and forgets every carry: ``"07+45="`` -> ``"042"``,
    written ``"240"`` with ``reverse_answer``. Right exactly when the sum has no carry.

    The prompt is read as :func:`parse_problem` reads it; both operands need the same width.
    """
    parse_problem(prompt)  # a ValueError for anything that is not "a+b="
    a, b = prompt[:-1].split("+")
    if len(a) != len(b):
        raise ValueError(
            f"{prompt!r}: both operands need the same number of digits, zero-padded like "
            f"'07+45=', to be added digit by digit"
        )
    digits = [(int(x) + int(y)) % 10 for x, y in zip(a, b)]
    total = "0" + "".join(map(str, digits))  # the carry into the top digit is forgotten too
    return total[::-1] if reverse_answer else total


def arithmetic_batch(
    problems: Sequence[Problem], vocab: Vocab, answer_only: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(inputs, targets)``, each ``(N, T)`` long, for next-token training.

    A problem's tokens are ``prompt + answer + <eos>``; ``inputs`` drops the last token and
    ``targets`` the first (the next token at every position). With ``answer_only`` the targets
    of prompt positions are ``IGNORE_INDEX``: the operands are random, so only the answer (and
    its ``<eos>``) is worth predicting.
    """
    if not problems:
        raise ValueError("no problems to encode")
    rows, prompt_lengths = [], []
    for prompt, answer in problems:
        rows.append(vocab.encode(prompt + answer, add_eos=True, strict=True))
        prompt_lengths.append(len(prompt))
    if len({len(r) for r in rows}) != 1:
        raise ValueError("problems of different lengths: generate them with one `digits`")
    tokens = torch.tensor(rows)  # (N, T + 1)
    inputs, targets = tokens[:, :-1], tokens[:, 1:].clone()  # (N, T) each
    if answer_only:
        for row, length in enumerate(prompt_lengths):
            targets[row, : length - 1] = IGNORE_INDEX  # position length-1 predicts answer[0]
    return inputs, targets


def arithmetic_loader(
    problems: Sequence[Problem],
    vocab: Vocab,
    batch_size: int = 128,
    answer_only: bool = True,
    seed: int = 0,
) -> torch.utils.data.DataLoader:
    """Shuffled ``(inputs, targets)`` batches of :func:`arithmetic_batch`, seeded."""
    inputs, targets = arithmetic_batch(problems, vocab, answer_only)
    dataset = torch.utils.data.TensorDataset(inputs, targets)
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, generator=generator, drop_last=True
    )
