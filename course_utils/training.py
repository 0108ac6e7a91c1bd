"""One training loop for every lesson, and the metrics lessons report.

``fit`` trains for a budget of steps or epochs (never wall-clock time, so results reproduce),
with AdamW, gradient clipping and a ``tqdm`` progress bar, and returns a :class:`History`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from .data import Pair, Vocab, collate_pairs

LossFn = Callable[[nn.Module, object], torch.Tensor]

_EMPTY_LOADER = (
    "the loader is empty: it yields no batch, so there is nothing to train on (fewer examples "
    "than batch_size with drop_last=True?)"
)


@dataclass
class History:
    """What ``fit`` saw: loss and learning rate per step, and any evaluations."""

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)  # {"step": s, **metrics}
    seconds: float = 0.0

    @property
    def steps(self) -> int:
        return len(self.step)

    def smoothed_loss(self, window: int = 50) -> list[float]:
        """Running mean of the loss over the last ``window`` steps."""
        out, total = [], 0.0
        for i, value in enumerate(self.loss):
            total += value
            if i >= window:
                total -= self.loss[i - window]
            out.append(total / min(i + 1, window))
        return out


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode (no dropout) inside the block, and the model's own mode again after it, even
    after an error: ``with evaluating(model): model(x)``."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def to_device(batch, device):
    """Move a batch (anything with ``.to``, or a tuple/list/dict of tensors) to ``device``."""
    if hasattr(batch, "to"):
        return batch.to(device)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def seq2seq_loss(model: nn.Module, batch) -> torch.Tensor:
    """Teacher-forced cross-entropy over target tokens, padding ignored."""
    logits = model(batch.src, batch.src_lengths, batch.tgt_in)  # (B, T, V)
    return F.cross_entropy(logits.flatten(0, 1), batch.tgt_out.flatten(), ignore_index=0)


def classification_loss(model: nn.Module, batch) -> torch.Tensor:
    """Cross-entropy for ``(inputs, labels)`` batches."""
    inputs, labels = batch
    return F.cross_entropy(model(inputs), labels)


def fit(
    model: nn.Module,
    loader: Iterable,
    loss_fn: LossFn = seq2seq_loss,
    *,
    steps: int | None = None,
    epochs: int | None = None,
    lr: float = 1e-3,
    weight_decay: float = 0.01,
    clip_norm: float | None = 1.0,
    scheduler: Callable[[torch.optim.Optimizer], object] | None = None,
    eval_fn: Callable[[nn.Module], dict] | None = None,
    eval_every: int | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
    desc: str = "training",
) -> History:
    """Train ``model`` with AdamW on ``loss_fn(model, batch)`` for ``steps`` or ``epochs``.

    ``scheduler(optimizer)`` may build an LR scheduler, stepped once per step. ``eval_fn(model)``
    runs every ``eval_every`` steps and at the end; its metrics go into ``History.evals``.
    """
    if (steps is None) == (epochs is None):
        raise ValueError("give exactly one budget: steps=... or epochs=...")
    budget = steps if steps is not None else epochs
    if budget < 1:
        raise ValueError(f"the budget must be at least 1, got {budget}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    lr_scheduler = scheduler(optimizer) if scheduler is not None else None
    total = steps if steps is not None else epochs * len(loader)
    if total == 0:  # epochs of an empty loader: zero steps would pass for a finished run
        raise ValueError(_EMPTY_LOADER)
    history = History()
    start = time.perf_counter()

    def run_eval(step: int) -> None:
        model.eval()
        with torch.no_grad():
            history.evals.append({"step": step, **eval_fn(model)})
        model.train()

    model.train()
    bar = tqdm(total=total, desc=desc, disable=not progress, leave=False)
    step = 0
    while step < total:
        batches_this_pass = 0
        for batch in loader:
            batches_this_pass += 1
            batch = to_device(batch, device)
            loss = loss_fn(model, batch)
            if not torch.isfinite(loss):
                bar.close()
                raise FloatingPointError(
                    f"the loss became {loss.item()} at step {step}: try a lower learning rate "
                    f"(lr={lr}) or check the inputs for NaN"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip_norm is not None:
                nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
            used_lr = optimizer.param_groups[0]["lr"]
            optimizer.step()
            if lr_scheduler is not None:
                lr_scheduler.step()
            step += 1
            history.step.append(step)
            history.loss.append(loss.item())
            history.lr.append(used_lr)
            bar.update(1)
            if step % 25 == 0:
                bar.set_postfix(loss=f"{history.smoothed_loss(25)[-1]:.3f}")
            if eval_fn is not None and eval_every and step % eval_every == 0 and step < total:
                run_eval(step)
            if step >= total:
                break
        if batches_this_pass == 0:
            bar.close()
            raise ValueError(_EMPTY_LOADER)
    bar.close()
    if eval_fn is not None:
        run_eval(step)
    model.eval()
    history.seconds = time.perf_counter() - start
    return history


# ----------------------------------------------------------------------------- seq2seq metrics


@torch.no_grad()
def predict(
    model: nn.Module,
    sources: Sequence[str],
    src_vocab: Vocab,
    tgt_vocab: Vocab,
    batch_size: int = 256,
    max_len: int | None = None,
) -> list[str]:
    """Greedy outputs of a seq2seq model for many sources, as strings.

    ``max_len`` defaults to each source's length + 10 tokens (as in ``translate``).
    """
    device = next(model.parameters()).device
    outputs: list[str] = []
    with evaluating(model):
        for start in range(0, len(sources), batch_size):
            chunk = [(s, "") for s in sources[start : start + batch_size]]
            batch = collate_pairs(chunk, src_vocab, tgt_vocab).to(device)
            limit = max_len if max_len is not None else int(batch.src_lengths.max()) + 10
            decoded = model.greedy_decode(
                batch.src, batch.src_lengths, tgt_vocab.bos_id, tgt_vocab.eos_id, limit
            )
            for row, length in zip(decoded.tokens.tolist(), batch.src_lengths.tolist()):
                own_limit = max_len if max_len is not None else length + 10
                outputs.append(tgt_vocab.to_text(row[:own_limit]))
    return outputs


def exact_match(predictions: Sequence[Sequence], targets: Sequence[Sequence]) -> float:
    """Fraction of predictions equal to their target, token for token and in length."""
    _check_same_length(predictions, targets)
    return sum(list(p) == list(t) for p, t in zip(predictions, targets)) / len(targets)


def token_accuracy(predictions: Sequence[Sequence], targets: Sequence[Sequence]) -> float:
    """Fraction of target positions where the prediction has the right token.

    A prediction that stops early scores 0 on the missing positions; extra tokens past the
    target's end are not counted here (exact match catches them).
    """
    _check_same_length(predictions, targets)
    total = sum(len(t) for t in targets)
    if total == 0:
        raise ValueError("targets are all empty: token accuracy is undefined")
    hits = sum(sum(a == b for a, b in zip(p, t)) for p, t in zip(predictions, targets))
    return hits / total


def _check_same_length(predictions: Sequence, targets: Sequence) -> None:
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} predictions for {len(targets)} targets")
    if len(targets) == 0:
        raise ValueError("no targets to score")


def evaluate(
    model: nn.Module, pairs: Sequence[Pair], src_vocab: Vocab, tgt_vocab: Vocab, **predict_kwargs
) -> dict[str, float]:
    """Exact match and token accuracy of greedy decoding on ``pairs``."""
    predictions = predict(model, [s for s, _ in pairs], src_vocab, tgt_vocab, **predict_kwargs)
    targets = [t for _, t in pairs]
    return {
        "exact_match": exact_match(predictions, targets),
        "token_accuracy": token_accuracy(predictions, targets),
        "n": len(pairs),
    }


@dataclass
class BucketScore:
    """Scores for sources whose length falls in ``[low, high]``."""

    low: int
    high: int
    n: int
    exact_match: float
    token_accuracy: float

    @property
    def label(self) -> str:
        return f"{self.low}-{self.high}"


def length_buckets(min_len: int, max_len: int, width: int) -> list[tuple[int, int]]:
    """Consecutive ``(low, high)`` length ranges of ``width`` covering ``[min_len, max_len]``."""
    if width < 1 or min_len > max_len:
        raise ValueError(f"bad bucket spec: min_len={min_len}, max_len={max_len}, width={width}")
    return [(lo, min(lo + width - 1, max_len)) for lo in range(min_len, max_len + 1, width)]


def accuracy_by_length(
    predictions: Sequence[str], pairs: Sequence[Pair], buckets: Sequence[tuple[int, int]]
) -> list[BucketScore]:
    """Exact match and token accuracy per source-length bucket (empty buckets are skipped)."""
    _check_same_length(predictions, pairs)
    scores = []
    for low, high in buckets:
        idx = [i for i, (s, _) in enumerate(pairs) if low <= len(s) <= high]
        if not idx:
            continue
        preds = [predictions[i] for i in idx]
        targets = [pairs[i][1] for i in idx]
        scores.append(
            BucketScore(
                low, high, len(idx), exact_match(preds, targets), token_accuracy(preds, targets)
            )
        )
    return scores


def format_buckets(scores: Sequence[BucketScore], digits: int = 2) -> str:
    """A small aligned text table of :class:`BucketScore` rows (rounded for stable output)."""
    lines = [f"{'length':>8} {'n':>5} {'token acc':>10} {'exact match':>12}"]
    for s in scores:
        lines.append(
            f"{s.label:>8} {s.n:>5} {s.token_accuracy:>10.{digits}f} {s.exact_match:>12.{digits}f}"
        )
    return "\n".join(lines)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
