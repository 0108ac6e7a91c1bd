"""Lesson 01 exercises: padding a batch, one greedy decoding step."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..seq2seq import BottleneckDecoder
from ..token_ids import ID_DTYPES
from ._core import CheckResult, Mistake, Question, expect_tensor, run_check


def reference_pad_batch(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id lists to ``(B, T_max)`` with ``pad_id``; lengths ``(B,)`` before padding."""
    lengths = torch.tensor([len(s) for s in seqs])
    padded = torch.full((len(seqs), int(lengths.max())), pad_id, dtype=torch.long)
    for i, seq in enumerate(seqs):
        padded[i, : len(seq)] = torch.tensor(seq)
    return padded, lengths


def check_pad_batch(fn: Callable) -> CheckResult:
    """Checks ``fn(seqs, pad_id) -> (padded (B, T_max) long, lengths (B,) long)``."""

    def body(fn):
        seqs, pad_id = [[5, 6, 7], [8], [9, 10]], 3
        result = fn([list(s) for s in seqs], pad_id)
        if not isinstance(result, tuple) or len(result) != 2:
            raise Mistake("return a pair: (padded, lengths)")
        padded, lengths = result
        padded = expect_tensor(padded, "padded", (3, 3), keep_dtype=True)
        lengths = expect_tensor(lengths, "lengths", (3,), keep_dtype=True)
        if padded.dtype not in ID_DTYPES or lengths.dtype not in ID_DTYPES:
            raise Mistake(
                f"ids and lengths must be integers (torch.long), got {padded.dtype} and "
                f"{lengths.dtype}: nn.Embedding looks ids up by index"
            )
        if lengths.tolist() != [3, 1, 2]:
            raise Mistake(
                f"lengths are {lengths.tolist()}, expected [3, 1, 2]: "
                "count each sequence's tokens before padding"
            )
        if padded[1].tolist() == [pad_id, pad_id, 8]:
            raise Mistake("you padded on the left; the course pads on the right, after the tokens")
        if padded[1].tolist() == [8, 0, 0]:
            raise Mistake(f"the padding is 0, but this vocabulary's pad id is {pad_id}")
        if padded.tolist() != [[5, 6, 7], [8, pad_id, pad_id], [9, 10, pad_id]]:
            raise Mistake(
                f"padded is {padded.tolist()}, expected [[5, 6, 7], [8, 3, 3], [9, 10, 3]]"
            )
        return "right-padded with the pad id, lengths counted before padding."

    return run_check("pad_batch", fn, body)


def reference_greedy_step(decoder, token: torch.Tensor, state):
    """One greedy step: logits (B, V) from the decoder, the most likely id per row, new state."""
    logits, state, _ = decoder.step(token, state)  # logits: (B, V)
    return logits.argmax(dim=-1), state  # (B,), state


def check_greedy_step(fn: Callable) -> CheckResult:
    """Checks ``fn(decoder, token (B,), state) -> (next_token (B,) long, new_state)``."""

    def body(fn):
        with torch.random.fork_rng():  # leave the learner's random state alone
            torch.manual_seed(0)
            decoder = BottleneckDecoder(vocab_size=7, embed_dim=4, hidden_dim=8).eval()
            state = torch.randn(1, 5, 8)
        batch, vocab = 5, 7  # batch != vocab, so a wrong axis shows up in the shape
        token = torch.tensor([1, 2, 3, 4, 5])
        with torch.no_grad():
            expected_token, expected_state = reference_greedy_step(decoder, token, state.clone())
            result = fn(decoder, token.clone(), state.clone())
        if not isinstance(result, tuple) or len(result) != 2:
            raise Mistake("return a pair: (next_token, new_state)")
        next_token, new_state = result
        if isinstance(next_token, torch.Tensor) and next_token.shape == (batch, vocab):
            raise Mistake(
                "you returned the logits (B, V); take the most likely id: .argmax(dim=-1)"
            )
        if isinstance(next_token, torch.Tensor) and next_token.shape == (vocab,):
            raise Mistake(
                "next_token has one entry per vocabulary item: you took the argmax over the "
                "batch (dim=0); take it over the vocabulary, dim=-1"
            )
        next_token = expect_tensor(next_token, "next_token", (batch,), keep_dtype=True)
        if next_token.dtype not in ID_DTYPES:
            raise Mistake(f"next_token must be ids (torch.long), got {next_token.dtype}")
        if not torch.equal(next_token, expected_token):
            raise Mistake(
                f"next_token is {next_token.tolist()}, expected {expected_token.tolist()}: "
                "greedy decoding takes the argmax of the logits (no sampling)"
            )
        new_state = expect_tensor(new_state, "new_state", tuple(expected_state.shape))
        if torch.allclose(new_state, state):
            raise Mistake("new_state is the old state: return the state the decoder gave back")
        if not torch.allclose(new_state, expected_state, atol=1e-6):
            raise Mistake("new_state differs from the decoder's: return the state from step()")
        return "one greedy step: argmax over the vocabulary, and the decoder's new state."

    return run_check("greedy_step", fn, body)


SOLUTIONS = {"pad_batch": reference_pad_batch, "greedy_step": reference_greedy_step}

QUIZ = [
    Question(
        "In the bottleneck model, what does the decoder know about the source sentence?",
        (
            "Every encoder state, one per source token",
            "Only the encoder's final hidden state",
            "The source tokens themselves",
        ),
        1,
        "Everything passes through one fixed-size vector, the context vector.",
    ),
    Question(
        "Why does accuracy fall as the input gets longer?",
        (
            "Long inputs have rarer symbols",
            "The model saw no long inputs in training",
            "A fixed-size vector must hold more and more information",
            "Greedy decoding stops too early",
        ),
        2,
        "The training data has every length from 4 to 40 equally often; what grows is how "
        "much the one context vector has to remember.",
    ),
    Question(
        "Which change lets the decoder look at every encoder state directly?",
        ("A bigger hidden size", "Attention", "A second GRU layer", "Reversing the input"),
        1,
        "A bigger state or a reversed input (Sutskever et al.'s trick) only delay the "
        "problem; attention (lesson 02) gives each output step its own view of the input.",
    ),
]
