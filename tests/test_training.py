"""training: the one fit loop, and the metrics the lessons report."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from course_utils.data import Vocab, collate_pairs, make_loader, make_sequence_task
from course_utils.seq2seq import build_bottleneck_model
from course_utils.training import (
    BucketScore,
    History,
    accuracy_by_length,
    classification_loss,
    count_parameters,
    evaluate,
    exact_match,
    fit,
    format_buckets,
    length_buckets,
    predict,
    seq2seq_loss,
    token_accuracy,
)

FAST = settings(max_examples=30, deadline=None)


def _regression_loader(n_batches: int = 3, batch_size: int = 4):
    torch.manual_seed(0)
    x = torch.randn(n_batches * batch_size, 3)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]])
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=False)


class CountingLoss:
    """MSE for ``(x, y)`` batches that counts its calls and records the model's mode."""

    def __init__(self):
        self.calls, self.modes = 0, []

    def __call__(self, model, batch):
        self.calls += 1
        self.modes.append(model.training)
        x, y = batch
        return F.mse_loss(model(x), y)


def _linear(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Linear(3, 1)


# ----------------------------------------------------------------------------- fit budgets


@pytest.mark.parametrize("steps", [1, 2, 7])
def test_fit_with_steps_runs_exactly_that_many_steps(steps):
    loss_fn = CountingLoss()
    history = fit(_linear(), _regression_loader(), loss_fn, steps=steps, progress=False)
    assert loss_fn.calls == steps
    assert history.steps == steps
    assert history.step == list(range(1, steps + 1))
    assert len(history.loss) == len(history.lr) == steps


def test_fit_with_epochs_runs_epochs_times_len_loader_steps():
    loss_fn = CountingLoss()
    loader = _regression_loader(n_batches=3)
    history = fit(_linear(), loader, loss_fn, epochs=2, progress=False)
    assert loss_fn.calls == history.steps == 2 * len(loader)


def test_fit_trains_in_train_mode_and_leaves_the_model_in_eval_mode():
    loss_fn = CountingLoss()
    model = _linear().eval()
    fit(model, _regression_loader(), loss_fn, steps=3, progress=False)
    assert loss_fn.modes == [True, True, True]
    assert model.training is False


def test_fit_updates_the_parameters_and_records_time():
    model = _linear()
    before = [p.detach().clone() for p in model.parameters()]
    history = fit(model, _regression_loader(), CountingLoss(), steps=3, progress=False)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert history.seconds > 0


@pytest.mark.parametrize(
    ("budget", "message"),
    [({}, "exactly one budget"), ({"steps": 3, "epochs": 1}, "exactly one budget")],
)
def test_fit_needs_exactly_one_budget(budget, message):
    with pytest.raises(ValueError, match=message):
        fit(_linear(), _regression_loader(), CountingLoss(), progress=False, **budget)


@pytest.mark.parametrize("budget", [{"steps": 0}, {"epochs": 0}, {"steps": -2}])
def test_fit_rejects_a_budget_below_one(budget):
    with pytest.raises(ValueError, match="at least 1"):
        fit(_linear(), _regression_loader(), CountingLoss(), progress=False, **budget)


class _EmptyLoader:
    """Yields no batches; refuses to be iterated forever, so a hang becomes a failure."""

    def __init__(self):
        self.passes = 0

    def __len__(self):
        return 0

    def __iter__(self):
        self.passes += 1
        if self.passes > 100:
            raise RuntimeError("fit kept looping over an empty loader")
        return iter([])


def test_fit_rejects_an_empty_loader():
    with pytest.raises(ValueError, match="empty"):
        fit(_linear(), _EmptyLoader(), CountingLoss(), steps=3, progress=False)


@pytest.mark.parametrize("budget", [dict(steps=3), dict(epochs=1)])
def test_fit_rejects_an_empty_loader_for_either_budget(budget):
    # 3 examples, batch_size 4, drop_last: a real loader with no batch at all
    x = torch.randn(3, 3)
    loader = DataLoader(TensorDataset(x, x[:, :1]), batch_size=4, drop_last=True)
    for empty in (_EmptyLoader(), loader):
        with pytest.raises(ValueError, match="the loader is empty.*drop_last"):
            fit(_linear(), empty, CountingLoss(), progress=False, **budget)


def test_fit_stops_with_a_clear_error_when_the_loss_is_nan():
    nan_loss = lambda model, batch: model(batch[0]).sum() * float("nan")
    with pytest.raises(FloatingPointError, match=r"lower learning rate \(lr=0\.5\)"):
        fit(_linear(), _regression_loader(), nan_loss, steps=3, lr=0.5, progress=False)


# ----------------------------------------------------------------------------- fit options


def test_fit_clips_gradients_to_clip_norm(monkeypatch):
    seen = []
    original = torch.nn.utils.clip_grad_norm_

    def spy(parameters, max_norm, *args, **kwargs):
        seen.append(max_norm)
        return original(parameters, max_norm, *args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    fit(_linear(), _regression_loader(), CountingLoss(), steps=4, clip_norm=0.25, progress=False)
    assert seen == [0.25] * 4
    seen.clear()
    fit(_linear(), _regression_loader(), CountingLoss(), steps=4, clip_norm=None, progress=False)
    assert seen == []


def _halving(optimizer):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5**step)


def test_fit_steps_the_scheduler_once_per_step():
    history = fit(
        _linear(),
        _regression_loader(),
        CountingLoss(),
        steps=5,
        lr=0.1,
        scheduler=_halving,
        progress=False,
    )
    ratios = [b / a for a, b in zip(history.lr, history.lr[1:])]
    assert ratios == pytest.approx([0.5] * 4)
    assert max(history.lr) <= 0.1


def test_fit_without_scheduler_keeps_the_learning_rate():
    history = fit(_linear(), _regression_loader(), CountingLoss(), steps=4, lr=0.03, progress=False)
    assert history.lr == [0.03] * 4


def test_history_lr_is_the_rate_each_step_used():
    history = fit(
        _linear(),
        _regression_loader(),
        CountingLoss(),
        steps=3,
        lr=0.1,
        scheduler=_halving,
        progress=False,
    )
    assert history.lr == pytest.approx([0.1, 0.05, 0.025])


def test_fit_calls_eval_fn_every_eval_every_steps_and_at_the_end():
    modes = []

    def eval_fn(model):
        modes.append(model.training)
        return {"calls": len(modes)}

    loss_fn = CountingLoss()
    history = fit(
        _linear(),
        _regression_loader(),
        loss_fn,
        steps=10,
        eval_fn=eval_fn,
        eval_every=4,
        progress=False,
    )
    assert [e["step"] for e in history.evals] == [4, 8, 10]
    assert [e["calls"] for e in history.evals] == [1, 2, 3]
    assert modes == [False, False, False], "eval_fn should see the model in eval mode"
    assert all(loss_fn.modes), "training resumes in train mode after an evaluation"


def test_fit_does_not_evaluate_the_last_step_twice():
    history = fit(
        _linear(),
        _regression_loader(),
        CountingLoss(),
        steps=8,
        eval_fn=lambda m: {},
        eval_every=4,
        progress=False,
    )
    assert [e["step"] for e in history.evals] == [4, 8]


def test_fit_without_eval_every_evaluates_once_at_the_end():
    history = fit(
        _linear(),
        _regression_loader(),
        CountingLoss(),
        steps=6,
        eval_fn=lambda m: {"x": 1.0},
        progress=False,
    )
    assert history.evals == [{"step": 6, "x": 1.0}]


def test_fit_handles_tuple_batches_with_classification_loss():
    torch.manual_seed(0)
    x = torch.randn(32, 4)
    y = (x[:, 0] > 0).long()
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    model = nn.Linear(4, 2)
    history = fit(model, loader, classification_loss, epochs=10, lr=0.05, progress=False)
    assert history.steps == 40
    assert sum(history.loss[-4:]) < sum(history.loss[:4])


def test_fit_learns_a_tiny_copy_task():
    pairs = make_sequence_task("copy", 6, min_len=2, max_len=3, alphabet="ab", seed=0)
    vocab = Vocab("ab")
    loader = make_loader(pairs, vocab, vocab, batch_size=6, seed=0)
    torch.manual_seed(0)
    model = build_bottleneck_model(len(vocab), len(vocab), embed_dim=8, hidden_dim=32)
    history = fit(model, loader, steps=150, lr=1e-2, progress=False)
    first, last = sum(history.loss[:10]) / 10, sum(history.loss[-10:]) / 10
    assert last < 0.3 * first, (first, last)
    assert evaluate(model, pairs, vocab, vocab)["exact_match"] == 1.0


# ----------------------------------------------------------------------------- seq2seq loss


def test_seq2seq_loss_is_cross_entropy_over_real_target_tokens_only():
    vocab = Vocab("abc")
    batch = collate_pairs([("ab", "ba"), ("abc", "c")], vocab, vocab)
    torch.manual_seed(0)
    model = build_bottleneck_model(len(vocab), len(vocab), embed_dim=4, hidden_dim=8)
    loss = seq2seq_loss(model, batch)
    logits = model(batch.src, batch.src_lengths, batch.tgt_in)
    real = batch.tgt_mask
    expected = F.cross_entropy(logits[real], batch.tgt_out[real])
    torch.testing.assert_close(loss, expected)


# ----------------------------------------------------------------------------- metrics


def test_exact_match_counts_whole_sequences():
    assert exact_match(["ab", "ba", "abc"], ["ab", "ab", "ab"]) == pytest.approx(1 / 3)
    assert exact_match([[1, 2]], [(1, 2)]) == 1.0


def test_token_accuracy_counts_missing_positions_as_wrong():
    assert token_accuracy(["ab"], ["abcd"]) == 0.5


def test_extra_tokens_do_not_change_token_accuracy_but_fail_exact_match():
    assert token_accuracy(["abcdx"], ["abcd"]) == 1.0
    assert exact_match(["abcdx"], ["abcd"]) == 0.0


def test_token_accuracy_pools_positions_over_all_targets():
    # hits: 1 of 2 in the first, 2 of 3 in the second
    assert token_accuracy(["ax", "xyq"], ["ab", "xyz"]) == pytest.approx(3 / 5)


@pytest.mark.parametrize("metric", [exact_match, token_accuracy])
def test_metrics_reject_a_length_mismatch_and_empty_input(metric):
    with pytest.raises(ValueError, match="2 predictions for 1 targets"):
        metric(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="no targets"):
        metric([], [])


def test_token_accuracy_is_undefined_for_empty_targets():
    with pytest.raises(ValueError, match="undefined"):
        token_accuracy(["", ""], ["", ""])


def test_accuracy_by_length_groups_by_source_length_and_skips_empty_buckets():
    pairs = [("a", "x"), ("ab", "xy"), ("ba", "yx"), ("abcde", "xyzzy")]
    predictions = ["x", "xy", "yy", "xyz"]
    scores = accuracy_by_length(predictions, pairs, [(1, 2), (3, 4), (5, 6)])
    assert [(s.low, s.high, s.n) for s in scores] == [(1, 2, 3), (5, 6, 1)]
    assert scores[0].exact_match == pytest.approx(2 / 3)
    assert scores[0].token_accuracy == pytest.approx(4 / 5)
    assert scores[1].exact_match == 0.0
    assert scores[1].token_accuracy == pytest.approx(3 / 5)
    assert scores[0].label == "1-2"


def test_accuracy_by_length_rejects_a_length_mismatch():
    with pytest.raises(ValueError, match="1 predictions for 2 targets"):
        accuracy_by_length(["x"], [("a", "x"), ("b", "y")], [(1, 1)])


@given(st.integers(1, 30), st.integers(0, 30), st.integers(1, 12))
@FAST
def test_length_buckets_cover_the_range_without_gaps_or_overlap(min_len, extra, width):
    max_len = min_len + extra
    buckets = length_buckets(min_len, max_len, width)
    covered = [n for low, high in buckets for n in range(low, high + 1)]
    assert covered == list(range(min_len, max_len + 1))
    assert all(1 <= high - low + 1 <= width for low, high in buckets)
    assert len(buckets) == math.ceil((max_len - min_len + 1) / width)


@pytest.mark.parametrize(("min_len", "max_len", "width"), [(5, 4, 2), (1, 10, 0)])
def test_length_buckets_reject_a_bad_spec(min_len, max_len, width):
    with pytest.raises(ValueError, match="bad bucket spec"):
        length_buckets(min_len, max_len, width)


def test_format_buckets_has_a_header_and_one_rounded_row_per_bucket():
    scores = [BucketScore(1, 5, 12, 0.5, 0.8333), BucketScore(6, 10, 7, 0.0, 0.25)]
    lines = format_buckets(scores).splitlines()
    assert len(lines) == 3
    assert lines[0].split() == ["length", "n", "token", "acc", "exact", "match"]
    assert lines[1].split() == ["1-5", "12", "0.83", "0.50"]
    assert lines[2].split() == ["6-10", "7", "0.25", "0.00"]
    assert len({len(line) for line in lines}) == 1, "columns should be aligned"


def test_count_parameters_matches_a_hand_count():
    assert count_parameters(nn.Linear(3, 4)) == 3 * 4 + 4


def test_count_parameters_skips_frozen_parameters():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    model[0].requires_grad_(False)
    assert count_parameters(model) == 4 * 2 + 2


def test_smoothed_loss_is_a_running_mean_over_the_window():
    history = History(step=[1, 2, 3, 4], loss=[1.0, 2.0, 3.0, 6.0])
    assert history.smoothed_loss(2) == pytest.approx([1.0, 1.5, 2.5, 4.5])
    assert history.smoothed_loss(10) == pytest.approx([1.0, 1.5, 2.0, 3.0])
    assert history.steps == 4


# ----------------------------------------------------------------------------- predict, evaluate


@pytest.fixture
def tiny_setup():
    vocab = Vocab("abcd")
    pairs = make_sequence_task("reverse", 12, min_len=1, max_len=5, alphabet="abcd", seed=0)
    torch.manual_seed(0)
    model = build_bottleneck_model(len(vocab), len(vocab), embed_dim=8, hidden_dim=16)
    return model, vocab, pairs


def test_predict_returns_one_string_per_source_independent_of_batching(tiny_setup):
    model, vocab, pairs = tiny_setup
    sources = [s for s, _ in pairs]
    # A fixed max_len: the default limit is per batch (its longest source + 10).
    outputs = predict(model, sources, vocab, vocab, max_len=8)
    assert len(outputs) == len(sources)
    assert all(isinstance(o, str) for o in outputs)
    assert predict(model, sources, vocab, vocab, batch_size=5, max_len=8) == outputs
    assert [predict(model, [s], vocab, vocab, max_len=8)[0] for s in sources] == outputs


def test_predict_respects_max_len_and_restores_the_mode(tiny_setup):
    model, vocab, pairs = tiny_setup
    with torch.no_grad():  # always predict "c", never <eos>
        model.decoder.out.weight.zero_()
        model.decoder.out.bias.zero_()
        model.decoder.out.bias[vocab.stoi["c"]] = 100.0
    model.train()
    assert predict(model, [s for s, _ in pairs], vocab, vocab, max_len=3) == ["ccc"] * len(pairs)
    assert model.training is True
    default = predict(model, [s for s, _ in pairs], vocab, vocab)
    assert default == ["c" * (len(s) + 10) for s, _ in pairs], "default limit: own length + 10"


def test_evaluate_returns_scores_in_unit_interval(tiny_setup):
    model, vocab, pairs = tiny_setup
    scores = evaluate(model, pairs, vocab, vocab)
    assert scores["n"] == len(pairs)
    assert 0.0 <= scores["exact_match"] <= 1.0
    assert 0.0 <= scores["token_accuracy"] <= 1.0


def test_evaluate_agrees_with_the_metrics_on_predictions(tiny_setup):
    model, vocab, pairs = tiny_setup
    predictions = predict(model, [s for s, _ in pairs], vocab, vocab)
    targets = [t for _, t in pairs]
    scores = evaluate(model, pairs, vocab, vocab)
    assert scores["exact_match"] == exact_match(predictions, targets)
    assert scores["token_accuracy"] == token_accuracy(predictions, targets)


def test_evaluate_scores_a_perfect_model_as_one():
    class Oracle(nn.Module):
        """Pretends to be a seq2seq model that copies its source."""

        def __init__(self):
            super().__init__()
            self.dummy = nn.Parameter(torch.zeros(1))

        def greedy_decode(self, src, src_lengths, bos_id, eos_id, max_len):
            eos = torch.full((src.shape[0], 1), eos_id)
            return type("Decoded", (), {"tokens": torch.cat([src, eos], dim=1)})

    vocab = Vocab("abcd")
    pairs = make_sequence_task("copy", 8, min_len=1, max_len=4, alphabet="abcd", seed=1)
    scores = evaluate(Oracle(), pairs, vocab, vocab)
    assert scores["exact_match"] == 1.0 and scores["token_accuracy"] == 1.0
