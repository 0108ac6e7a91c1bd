"""Exercise checkers: run a learner's function on cases with known answers, explain mistakes.

Each ``check_<name>(fn)`` returns a :class:`CheckResult`. A stub that still raises
``NotImplementedError`` is "not attempted yet", never a crash, so a notebook runs top to
bottom. ``show_solution(name)`` prints the reference solution for when a learner is stuck.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .seq2seq import BottleneckDecoder

PASSED, FAILED, NOT_ATTEMPTED = "passed", "failed", "not attempted"
_ICONS = {PASSED: "✅", FAILED: "❌", NOT_ATTEMPTED: "⏳"}
_COLOURS = {PASSED: "#e6f4ea", FAILED: "#fce8e6", NOT_ATTEMPTED: "#fef7e0"}


@dataclass(frozen=True)
class CheckResult:
    """The verdict on one exercise, shown as a coloured line in a notebook."""

    exercise: str
    status: str
    message: str

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def __repr__(self) -> str:
        return f"{_ICONS[self.status]} {self.exercise}: {self.message}"

    def _repr_html_(self) -> str:
        return (
            f'<div style="background:{_COLOURS[self.status]};padding:6px 10px;'
            f'border-radius:4px;color:#202124">{_ICONS[self.status]} <b>{self.exercise}</b>: '
            f"{self.message}</div>"
        )


class _Mistake(Exception):
    """Raised inside a checker to report a specific mistake."""


def _run(exercise: str, fn: Callable, body: Callable[[Callable], str]) -> CheckResult:
    """Call ``body(fn)``; turn NotImplementedError, mistakes and crashes into verdicts."""
    if not callable(fn):
        return CheckResult(exercise, FAILED, f"expected a function, got {type(fn).__name__}")
    try:
        praise = body(fn)
    except NotImplementedError:
        return CheckResult(
            exercise,
            NOT_ATTEMPTED,
            "not attempted yet: replace `raise NotImplementedError` with your code, "
            "then run this cell again.",
        )
    except _Mistake as mistake:
        return CheckResult(exercise, FAILED, str(mistake))
    except Exception as err:  # the learner's code crashed: say where, not a traceback wall
        return CheckResult(exercise, FAILED, f"your function raised {type(err).__name__}: {err}")
    return CheckResult(exercise, PASSED, praise)


def _expect_tensor(value, name: str, shape: tuple[int, ...]) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise _Mistake(f"{name} should be a torch.Tensor, got {type(value).__name__}")
    if tuple(value.shape) != shape:
        raise _Mistake(f"{name} has shape {tuple(value.shape)}, expected {shape}")
    return value


# ----------------------------------------------------------------------------- lesson 00: softmax


def reference_softmax(scores: torch.Tensor) -> torch.Tensor:
    """softmax(x)_i = exp(x_i - max x) / sum_j exp(x_j - max x), over the last dim."""
    shifted = scores - scores.max(dim=-1, keepdim=True).values  # for numerical stability
    exps = shifted.exp()
    return exps / exps.sum(dim=-1, keepdim=True)


def check_softmax(fn: Callable[[torch.Tensor], torch.Tensor]) -> CheckResult:
    """Checks ``fn(scores (..., n)) -> weights (..., n)``: a softmax over the last dim."""

    def body(fn):
        scores = torch.tensor([[1.0, 2.0, 3.0], [0.5, 0.5, -1.0]])
        out = _expect_tensor(fn(scores.clone()), "the result", tuple(scores.shape))
        if (out < 0).any():
            raise _Mistake("some weights are negative: did you forget the exp?")
        if torch.allclose(out.sum(dim=0), torch.ones(3)) and not torch.allclose(
            out.sum(dim=-1), torch.ones(2)
        ):
            raise _Mistake(
                "the weights sum to 1 down each column, not along each row: "
                "normalise over the last dim (dim=-1), where the scores of one query are."
            )
        if not torch.allclose(out.sum(dim=-1), torch.ones(2), atol=1e-5):
            raise _Mistake("the weights of a row do not sum to 1: divide by the sum of the exps")
        if not torch.allclose(out, torch.softmax(scores, dim=-1), atol=1e-5):
            raise _Mistake("the weights sum to 1 but are not exp(x) / sum(exp(x))")
        big = torch.tensor([[1000.0, 1001.0, 1002.0]])
        out_big = fn(big.clone())
        if not torch.isfinite(out_big).all():
            raise _Mistake(
                "large scores give NaN or inf: exp(1000) overflows. Subtract the row's "
                "maximum before the exp; it cancels in the ratio."
            )
        if not torch.allclose(out_big, torch.softmax(big, dim=-1), atol=1e-5):
            raise _Mistake("large scores give wrong weights: subtract the max, then exp")
        return "correct, and stable for large scores."

    return _run("softmax", fn, body)


# ----------------------------------------------------------------------------- lesson 01


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
            raise _Mistake("return a pair: (padded, lengths)")
        padded, lengths = result
        padded = _expect_tensor(padded, "padded", (3, 3))
        lengths = _expect_tensor(lengths, "lengths", (3,))
        if padded.dtype != torch.long or lengths.dtype != torch.long:
            raise _Mistake(
                f"ids and lengths must be integers (torch.long), got {padded.dtype} and "
                f"{lengths.dtype}: nn.Embedding needs long ids"
            )
        if lengths.tolist() != [3, 1, 2]:
            raise _Mistake(
                f"lengths are {lengths.tolist()}, expected [3, 1, 2]: "
                "count each sequence's tokens before padding"
            )
        if padded[1].tolist() == [pad_id, pad_id, 8]:
            raise _Mistake("you padded on the left; the course pads on the right, after the tokens")
        if padded[1].tolist() == [8, 0, 0]:
            raise _Mistake(f"the padding is 0, but this vocabulary's pad id is {pad_id}")
        if padded.tolist() != [[5, 6, 7], [8, pad_id, pad_id], [9, 10, pad_id]]:
            raise _Mistake(
                f"padded is {padded.tolist()}, expected [[5, 6, 7], [8, 3, 3], [9, 10, 3]]"
            )
        return "right-padded with the pad id, lengths counted before padding."

    return _run("pad_batch", fn, body)


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
            raise _Mistake("return a pair: (next_token, new_state)")
        next_token, new_state = result
        if isinstance(next_token, torch.Tensor) and next_token.shape == (batch, vocab):
            raise _Mistake(
                "you returned the logits (B, V); take the most likely id: .argmax(dim=-1)"
            )
        if isinstance(next_token, torch.Tensor) and next_token.shape == (vocab,):
            raise _Mistake(
                "next_token has one entry per vocabulary item: you took the argmax over the "
                "batch (dim=0); take it over the vocabulary, dim=-1"
            )
        next_token = _expect_tensor(next_token, "next_token", (batch,))
        if next_token.dtype != torch.long:
            raise _Mistake(f"next_token must be ids (torch.long), got {next_token.dtype}")
        if not torch.equal(next_token, expected_token):
            raise _Mistake(
                f"next_token is {next_token.tolist()}, expected {expected_token.tolist()}: "
                "greedy decoding takes the argmax of the logits (no sampling)"
            )
        new_state = _expect_tensor(new_state, "new_state", tuple(expected_state.shape))
        if torch.allclose(new_state, state):
            raise _Mistake("new_state is the old state: return the state the decoder gave back")
        if not torch.allclose(new_state, expected_state, atol=1e-6):
            raise _Mistake("new_state differs from the decoder's: return the state from step()")
        return "one greedy step: argmax over the vocabulary, and the decoder's new state."

    return _run("greedy_step", fn, body)


# ----------------------------------------------------------------------------- solutions

SOLUTIONS: dict[str, Callable] = {
    "softmax": reference_softmax,
    "pad_batch": reference_pad_batch,
    "greedy_step": reference_greedy_step,
}


def show_solution(name: str) -> None:
    """Print the reference solution of exercise ``name``."""
    if name not in SOLUTIONS:
        raise ValueError(f"no exercise called {name!r}; there are {sorted(SOLUTIONS)}")
    print(inspect.getsource(SOLUTIONS[name]))
