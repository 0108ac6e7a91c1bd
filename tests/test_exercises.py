"""exercises: each checker accepts the reference solution and explains typical mistakes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from checks import assert_rejected
from torch.utils._pytree import tree_leaves

from course_utils.exercises import (
    _LESSONS,
    FAILED,
    NOT_ATTEMPTED,
    PASSED,
    SOLUTIONS,
    CheckResult,
    check_greedy_step,
    check_pad_batch,
    check_softmax,
    lesson07,
    reference_greedy_step,
    reference_pad_batch,
    reference_softmax,
    show_solution,
)
from course_utils.exercises._core import CHECKER_FAILED, expect_tensor, run_check

# every exercise of every lesson: SOLUTIONS["x"] is checked by the lesson's check_x
CHECKERS = {
    name: getattr(module, f"check_{name}")
    for module in _LESSONS.values()
    for name in module.SOLUTIONS
}


def _stub(*args, **kwargs):
    raise NotImplementedError


# ----------------------------------------------------------------------------- common behaviour


def test_every_lesson_from_01_has_at_least_two_exercises():
    counts = {number: len(module.SOLUTIONS) for number, module in _LESSONS.items()}
    assert all(count >= 2 for number, count in counts.items() if number != "00"), counts


@pytest.mark.parametrize("name", sorted(CHECKERS))
def test_checker_leaves_the_learners_random_state_alone(name):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    CHECKERS[name](SOLUTIONS[name])
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("name", sorted(CHECKERS))
def test_checker_accepts_the_reference_solution(name):
    result = CHECKERS[name](SOLUTIONS[name])
    assert result.status == PASSED, result.message
    assert result.passed
    assert result.exercise == name


def _map_tensors(value, convert):
    """``value`` with every tensor in it (also inside tuples and lists) replaced by convert(t)."""
    if isinstance(value, torch.Tensor):
        return convert(value)
    if isinstance(value, (tuple, list)):
        return type(value)(_map_tensors(v, convert) for v in value)
    return value


def _returning(solution, convert):
    """The reference solution, its outputs converted as a learner's might be."""

    def learner(*args, **kwargs):
        return _map_tensors(solution(*args, **kwargs), convert)

    return learner


class _OnAnotherDevice(torch.Tensor):
    """A CPU tensor that acts as if it lived on a GPU: it reports cuda:0, and mixing it with an
    ordinary tensor (not a 0-dim one) raises, as PyTorch does across devices; only .to(device)
    or .cpu() brings it back. Lessons compute on ``device``, the checkers on the CPU."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func == torch.Tensor.device.__get__:
            return torch.device("cuda", 0)
        to_device = kwargs.get("device") is not None or any(
            isinstance(a, (str, torch.device, torch.Tensor)) for a in args[1:]
        )
        if func is torch.Tensor.cpu or (func is torch.Tensor.to and to_device):
            with torch._C.DisableTorchFunctionSubclass():
                return func(*args, **kwargs).as_subclass(torch.Tensor)
        leaves = tree_leaves((args, kwargs))
        if any(isinstance(t, cls) for t in leaves) and any(
            type(t) is torch.Tensor and t.dim() > 0 for t in leaves
        ):
            raise RuntimeError(
                "Expected all tensors to be on the same device, but found at least two "
                "devices, cuda:0 and cpu!"
            )
        return super().__torch_function__(func, types, args, kwargs)


def _elsewhere(t: torch.Tensor) -> torch.Tensor:
    return t.as_subclass(_OnAnotherDevice)


def test_the_other_device_stand_in_fails_like_a_gpu_tensor_until_it_is_moved():
    t = torch.ones(3)
    assert _elsewhere(t).device.type == "cuda"
    with pytest.raises(RuntimeError, match="same device"):
        torch.allclose(_elsewhere(t), t)
    with pytest.raises(RuntimeError, match="same device"):
        _elsewhere(t).double() - t  # other ops keep it on its device
    moved = _elsewhere(t).to(t.device)
    assert type(moved) is torch.Tensor and torch.equal(moved, t)


def test_expect_tensor_brings_an_answer_to_the_checkers_device_and_float_dtype():
    answer = torch.tensor([0.25, 0.5], dtype=torch.float64)
    same = expect_tensor(_elsewhere(answer), "the answer", (2,))
    assert type(same) is torch.Tensor and same.dtype == torch.float32
    assert torch.equal(same, torch.tensor([0.25, 0.5]))
    assert expect_tensor(torch.tensor([1, 2]), "numbers", (2,)).dtype == torch.float32
    ids = expect_tensor(torch.tensor([1, 2], dtype=torch.int32), "ids", (2,), keep_dtype=True)
    assert ids.dtype == torch.int32  # where the dtype is part of the exercise
    assert expect_tensor(torch.tensor([True]), "mask", (1,), keep_dtype=True).dtype == torch.bool


@pytest.mark.parametrize("name", sorted(CHECKERS))
def test_checker_accepts_the_reference_solution_computed_in_float64(name):
    double = _returning(SOLUTIONS[name], lambda t: t.double() if t.is_floating_point() else t)
    result = CHECKERS[name](double)
    assert result.status == PASSED, result.message


@pytest.mark.parametrize("name", sorted(CHECKERS))
def test_checker_accepts_the_reference_solution_with_int32_ids(name):
    integer = lambda t: t.int() if t.dtype == torch.long else t  # noqa: E731
    result = CHECKERS[name](_returning(SOLUTIONS[name], integer))
    assert result.status == PASSED, result.message


@pytest.mark.parametrize("name", sorted(CHECKERS))
def test_checker_accepts_the_reference_solution_with_its_output_on_another_device(name):
    result = CHECKERS[name](_returning(SOLUTIONS[name], _elsewhere))
    assert result.status == PASSED, result.message


@pytest.mark.parametrize("name", sorted(CHECKERS))
def test_a_stub_is_not_attempted_rather_than_a_crash(name):
    result = CHECKERS[name](_stub)
    assert result.status == NOT_ATTEMPTED
    assert not result.passed
    assert "not attempted yet" in result.message


@pytest.mark.parametrize("name", sorted(CHECKERS))
def test_a_crashing_function_is_reported_with_its_error(name):
    def crashes(*args, **kwargs):
        return 1 / 0

    result = CHECKERS[name](crashes)
    assert_rejected(result, "raised ZeroDivisionError")


def test_an_error_in_the_checker_itself_is_not_blamed_on_the_learner():
    def body(fn):
        fn(1.0)  # the learner's part runs fine
        return {}["a key the checker forgot"]  # then the checker's own code fails

    result = run_check("x", lambda value: value, body)
    assert result.status == CHECKER_FAILED and not result.passed
    assert "the checker itself failed" in result.message and "please report" in result.message
    assert "KeyError" in result.message and "your function" not in result.message


def test_a_checker_that_fails_in_its_own_reference_is_not_blamed_on_the_learner(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("Double did not match Float")

    monkeypatch.setattr(lesson07, "reference_top_k_filter", broken)
    result = lesson07.check_top_k_filter(SOLUTIONS["top_k_filter"])
    assert result.status == CHECKER_FAILED, result
    assert "checker itself failed (RuntimeError: Double did not match Float" in result.message


WRONG_KINDS = {  # answers of the wrong kind: the checker must explain, not crash itself
    "None": lambda out: None,
    "a number": lambda out: 3,
    "a string": lambda out: "abc",
    "a 0-dim tensor": lambda out: torch.tensor(1.0),
    "a pair of None": lambda out: (None, None),
    "a triple": lambda out: (torch.zeros(2),) * 3,
    "integers": lambda out: _map_tensors(out, lambda t: t.round().long()),
    "float16": lambda out: _map_tensors(out, lambda t: t.half() if t.is_floating_point() else t),
    "NumPy arrays": lambda out: _map_tensors(out, lambda t: t.numpy()),
}


@pytest.mark.parametrize("kind", sorted(WRONG_KINDS))
@pytest.mark.parametrize("name", sorted(CHECKERS))
def test_no_checker_fails_in_its_own_code_on_an_answer_of_the_wrong_kind(name, kind):
    convert = WRONG_KINDS[kind]
    solution = SOLUTIONS[name]
    result = CHECKERS[name](lambda *args, **kwargs: convert(solution(*args, **kwargs)))
    assert result.status != CHECKER_FAILED, result.message


def test_only_the_learners_not_implemented_error_means_not_attempted():
    def body(fn):
        fn()
        raise NotImplementedError("a case the checker has not written yet")

    assert run_check("x", lambda: None, body).status == CHECKER_FAILED
    assert run_check("x", _stub, lambda fn: fn()).status == NOT_ATTEMPTED


def test_an_error_the_checker_catches_and_reraises_stays_the_learners():
    def body(fn):
        try:
            return fn()
        except RuntimeError:  # as lessons 02 and 07 do, to explain shape errors
            raise

    def crashes():
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    assert_rejected(run_check("x", crashes, body), "your function raised RuntimeError: mat1")


def test_a_learners_device_mismatch_gets_a_hint_to_use_the_inputs_device():
    def on_a_fixed_device(scores):
        raise RuntimeError("Expected all tensors to be on the same device, cuda:0 and cpu!")

    assert_rejected(check_softmax(on_a_fixed_device), "device=scores.device")


@pytest.mark.parametrize("name", sorted(CHECKERS))
def test_a_non_callable_fails_with_a_clear_message(name):
    result = CHECKERS[name](42)
    assert_rejected(result, "expected a function, got int")


@pytest.mark.parametrize("number", sorted(_LESSONS))
def test_each_lesson_has_one_solution_per_checker(number):
    module = _LESSONS[number]
    checkers = {
        name.removeprefix("check_") for name in module.__dict__ if name.startswith("check_")
    }
    assert checkers, f"lesson {number} has no exercise checker"
    assert set(module.SOLUTIONS) == checkers


def test_all_solutions_are_collected_from_every_lesson():
    collected = {name for module in _LESSONS.values() for name in module.SOLUTIONS}
    assert set(SOLUTIONS) == collected and set(CHECKERS) <= collected


# ----------------------------------------------------------------------------- softmax


def _softmax_wrong_dim(x):
    return torch.softmax(x, dim=0)


def _softmax_no_max_subtraction(x):
    return x.exp() / x.exp().sum(dim=-1, keepdim=True)


def _softmax_not_normalised(x):
    return (x - x.max(dim=-1, keepdim=True).values).exp()


def _softmax_without_exp(x):
    return x / x.sum(dim=-1, keepdim=True)


def _log_softmax(x):
    return torch.log_softmax(x, dim=-1)


def _normalised_but_not_exp(x):
    shifted = x - x.min(dim=-1, keepdim=True).values
    return shifted / shifted.sum(dim=-1, keepdim=True)


def _softmax_clamped(x):
    return torch.softmax(x.clamp(max=100.0), dim=-1)


@pytest.mark.parametrize(
    ("wrong", "word"),
    [
        (_softmax_wrong_dim, "dim=-1"),
        (_softmax_no_max_subtraction, "overflows"),
        (_softmax_not_normalised, "do not sum to 1"),
        (_softmax_without_exp, "forget the exp"),
        (_log_softmax, "forget the exp"),
        (_normalised_but_not_exp, "not exp(x) / sum(exp(x))"),
        (_softmax_clamped, "large scores give wrong weights"),
        (lambda x: torch.softmax(x, -1).numpy(), "should be a torch.Tensor"),
        (lambda x: torch.softmax(x, -1)[0], "shape"),
    ],
    ids=lambda v: getattr(v, "__name__", None),
)
def test_check_softmax_rejects_typical_mistakes(wrong, word):
    assert_rejected(check_softmax(wrong), word)


def test_check_softmax_accepts_torch_softmax():
    assert check_softmax(lambda x: torch.softmax(x, dim=-1)).passed


def test_reference_softmax_matches_torch_and_is_stable():
    scores = torch.tensor([[1.0, 2.0, 3.0], [1000.0, 1001.0, -1000.0]])
    torch.testing.assert_close(reference_softmax(scores), torch.softmax(scores, dim=-1))


# ----------------------------------------------------------------------------- pad_batch


def _pad_left(seqs, pad_id):
    width = max(len(s) for s in seqs)
    padded = torch.tensor([[pad_id] * (width - len(s)) + s for s in seqs])
    return padded, torch.tensor([len(s) for s in seqs])


def _pad_with_zero(seqs, pad_id):
    return reference_pad_batch(seqs, 0)


def _lengths_after_padding(seqs, pad_id):
    padded, _ = reference_pad_batch(seqs, pad_id)
    return padded, torch.tensor([padded.shape[1]] * len(seqs))


def _float_padding(seqs, pad_id):
    padded, lengths = reference_pad_batch(seqs, pad_id)
    return padded.float(), lengths


def _scrambled(seqs, pad_id):
    padded, lengths = reference_pad_batch([s[::-1] for s in seqs], pad_id)
    return padded, lengths


@pytest.mark.parametrize(
    ("wrong", "word"),
    [
        (_pad_left, "left"),
        (_pad_with_zero, "the padding is 0"),
        (_lengths_after_padding, "before padding"),
        (_float_padding, "torch.long"),
        (_scrambled, "expected [[5, 6, 7], [8, 3, 3], [9, 10, 3]]"),
        (lambda seqs, pad_id: list(reference_pad_batch(seqs, pad_id)), "return a pair"),
        (lambda seqs, pad_id: reference_pad_batch(seqs, pad_id)[0], "return a pair"),
    ],
    ids=lambda v: getattr(v, "__name__", None),
)
def test_check_pad_batch_rejects_typical_mistakes(wrong, word):
    assert_rejected(check_pad_batch(wrong), word)


def test_check_pad_batch_rejects_a_transposed_batch():
    def transposed(seqs, pad_id):
        padded, lengths = reference_pad_batch(seqs, pad_id)
        return padded.T, lengths

    # (3, 3) stays (3, 3) when transposed: the content check must catch it
    assert_rejected(check_pad_batch(transposed), "expected")


# ----------------------------------------------------------------------------- greedy_step


def _return_logits(decoder, token, state):
    logits, state, _ = decoder.step(token, state)
    return logits, state


def _argmax_over_batch(decoder, token, state):
    logits, state, _ = decoder.step(token, state)
    return logits.argmax(dim=0), state


def _return_old_state(decoder, token, state):
    logits, _, _ = decoder.step(token, state)
    return logits.argmax(dim=-1), state


def _sample(decoder, token, state):
    logits, state, _ = decoder.step(token, state)
    return torch.multinomial(torch.softmax(logits, dim=-1), 1)[:, 0], state


def _argmin(decoder, token, state):
    logits, state, _ = decoder.step(token, state)
    return logits.argmin(dim=-1), state


def _float_token(decoder, token, state):
    next_token, state = reference_greedy_step(decoder, token, state)
    return next_token.float(), state


def _shifted_state(decoder, token, state):
    next_token, state = reference_greedy_step(decoder, token, state)
    return next_token, state + 0.5


@pytest.mark.parametrize(
    ("wrong", "word"),
    [
        (_return_logits, "you returned the logits"),
        (_argmax_over_batch, "dim=0"),
        (_return_old_state, "old state"),
        (_sample, "no sampling"),
        (_argmin, "no sampling"),
        (_float_token, "torch.long"),
        (_shifted_state, "differs from the decoder's"),
        (lambda decoder, token, state: reference_greedy_step(decoder, token, state)[0], "pair"),
    ],
    ids=lambda v: getattr(v, "__name__", None),
)
def test_check_greedy_step_rejects_typical_mistakes(wrong, word):
    assert_rejected(check_greedy_step(wrong), word)


# ----------------------------------------------------------------------------- solutions, results


@pytest.mark.parametrize("name", sorted(SOLUTIONS))
def test_show_solution_prints_the_reference_source(name, capsys):
    show_solution(name)
    out = capsys.readouterr().out
    assert f"def {SOLUTIONS[name].__name__}(" in out
    assert "return" in out


def test_show_solution_rejects_an_unknown_exercise():
    with pytest.raises(ValueError, match="no exercise called 'attention'"):
        show_solution("attention")


@pytest.mark.parametrize(
    ("status", "icon"),
    [(PASSED, "✅"), (FAILED, "❌"), (NOT_ATTEMPTED, "⏳"), (CHECKER_FAILED, "⚠️")],
)
def test_check_result_repr_and_html_show_icon_exercise_and_message(status, icon):
    result = CheckResult("softmax", status, "a message for the learner")
    for shown in (repr(result), result._repr_html_()):
        assert icon in shown
        assert "softmax" in shown
        assert "a message for the learner" in shown
    assert result._repr_html_().startswith("<div")
    assert result.passed == (status == PASSED)


def test_check_results_of_different_statuses_have_different_colours():
    colours = {
        CheckResult("x", status, "m")._repr_html_().split(";")[0]
        for status in (PASSED, FAILED, NOT_ATTEMPTED, CHECKER_FAILED)
    }
    assert len(colours) == 4


def test_reference_pad_batch_right_pads():
    padded, lengths = reference_pad_batch([[5, 6], [7]], pad_id=9)
    assert padded.tolist() == [[5, 6], [7, 9]]
    assert lengths.tolist() == [2, 1]
    assert np.issubdtype(padded.numpy().dtype, np.integer)
