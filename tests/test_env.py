"""env: the device every lesson runs on, reproducible seeds, and the environment report."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from course_utils import env
from course_utils.env import (
    DEVICE_ENV_VAR,
    SEED_ENV_VAR,
    course_seed,
    doctor,
    get_device,
    seed_everything,
)

HAS_CUDA = torch.cuda.is_available()
HAS_MPS = env._mps_available()


@pytest.fixture
def no_device_override(monkeypatch):
    monkeypatch.delenv(DEVICE_ENV_VAR, raising=False)


# ----------------------------------------------------------------------------- get_device


@pytest.mark.skipif(HAS_CUDA or HAS_MPS, reason="this machine has an accelerator")
def test_get_device_defaults_to_cpu_without_an_accelerator(no_device_override):
    assert get_device() == torch.device("cpu")


def test_course_device_cpu_forces_the_cpu(monkeypatch):
    monkeypatch.setenv(DEVICE_ENV_VAR, "cpu")
    assert get_device() == torch.device("cpu")


@pytest.mark.parametrize("value", ["CPU", "  cpu  ", "Cpu\n"])
def test_course_device_is_case_and_whitespace_insensitive(monkeypatch, value):
    monkeypatch.setenv(DEVICE_ENV_VAR, value)
    assert get_device() == torch.device("cpu")


def test_prefer_argument_overrides_the_environment(monkeypatch):
    monkeypatch.setenv(DEVICE_ENV_VAR, "not-a-device")
    assert get_device(prefer="cpu") == torch.device("cpu")


@pytest.mark.parametrize("value", ["gpu", "tpu", "", "cuda:0"])
def test_unknown_course_device_names_the_allowed_values(monkeypatch, value):
    monkeypatch.setenv(DEVICE_ENV_VAR, value)
    with pytest.raises(ValueError, match="auto, cpu, cuda, mps") as info:
        get_device()
    assert DEVICE_ENV_VAR in str(info.value)


@pytest.mark.parametrize("prefer", [0, 1.5, True, torch.device("cpu")])
def test_get_device_given_a_non_string_names_the_allowed_strings(prefer):
    with pytest.raises(ValueError, match="one of auto, cpu, cuda, mps") as info:
        get_device(prefer)
    assert repr(prefer) in str(info.value)


def test_get_device_given_a_gpu_number_says_how_to_pick_that_gpu():
    with pytest.raises(ValueError, match=r"torch\.device\('cuda', 1\)"):
        get_device(1)


def test_an_unknown_prefer_names_the_argument_not_the_environment(monkeypatch):
    monkeypatch.setenv(DEVICE_ENV_VAR, "cpu")
    with pytest.raises(ValueError, match=r"get_device\('gpu'\) is not a device"):
        get_device("gpu")


@pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA")
def test_course_device_cuda_without_cuda_is_an_error_not_a_fallback(monkeypatch):
    monkeypatch.setenv(DEVICE_ENV_VAR, "cuda")
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        get_device()


@pytest.mark.skipif(HAS_MPS, reason="this machine has Apple MPS")
def test_course_device_mps_without_mps_is_an_error(monkeypatch):
    monkeypatch.setenv(DEVICE_ENV_VAR, "mps")
    with pytest.raises(RuntimeError, match="MPS"):
        get_device()


# The machine's accelerators, faked, so that every branch of the choice runs on any machine.


@pytest.fixture
def machine(monkeypatch, no_device_override):
    """``machine(cuda=..., mps=...)`` makes torch report those accelerators as present."""

    def fake(cuda: bool, mps: bool) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)

    return fake


@pytest.mark.parametrize(
    "cuda, mps, expected",
    [(True, True, "cuda"), (True, False, "cuda"), (False, True, "mps"), (False, False, "cpu")],
)
def test_auto_prefers_cuda_then_mps_then_the_cpu(machine, monkeypatch, cuda, mps, expected):
    machine(cuda=cuda, mps=mps)
    assert get_device() == torch.device(expected)
    monkeypatch.setenv(DEVICE_ENV_VAR, "auto")
    assert get_device() == torch.device(expected)


@pytest.mark.parametrize("name", ["cuda", "mps"])
def test_course_device_picks_an_accelerator_that_is_present(machine, monkeypatch, name):
    machine(cuda=True, mps=True)
    monkeypatch.setenv(DEVICE_ENV_VAR, name)
    assert get_device() == torch.device(name)
    assert get_device(prefer="cpu") == torch.device("cpu"), "the CPU is always there"


def test_asking_for_a_missing_accelerator_raises_even_when_the_other_one_is_there(
    machine, monkeypatch
):
    machine(cuda=False, mps=True)
    monkeypatch.setenv(DEVICE_ENV_VAR, "cuda")
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        get_device()
    machine(cuda=True, mps=False)
    with pytest.raises(RuntimeError, match="MPS"):
        get_device(prefer="mps")


# ----------------------------------------------------------------------------- seed_everything


def _draw():
    return torch.randn(5).tolist(), random.random(), np.random.rand(3).tolist()


def test_seed_everything_makes_torch_random_and_numpy_reproducible():
    seed_everything(123)
    first = _draw()
    seed_everything(123)
    assert _draw() == first


def test_different_seeds_give_different_draws():
    seed_everything(1)
    first = _draw()
    seed_everything(2)
    second = _draw()
    assert all(a != b for a, b in zip(first, second))


def test_seed_everything_returns_the_seed_it_used():
    assert seed_everything(7) == 7


@pytest.mark.parametrize(
    "seed", [-1, np.int64(-1), 1.5, 3.0, np.float64(2.0), True, False, "0", None, np.bool_(True)]
)
def test_seed_everything_rejects_negative_or_non_int_seeds(seed):
    with pytest.raises(ValueError, match="non-negative int") as info:
        seed_everything(seed)
    assert repr(seed) in str(info.value)


def test_a_whole_float_seed_is_refused_with_the_int_to_use():
    with pytest.raises(ValueError, match=r"\(float\) \(use 3\)"):
        seed_everything(3.0)


@pytest.mark.parametrize("seed", [np.int64(3), np.int32(3), np.uint8(3)])
def test_seed_everything_accepts_numpy_integers_as_the_same_seed(seed):
    used = seed_everything(seed)
    assert used == 3 and type(used) is int
    first = _draw()
    seed_everything(3)
    assert _draw() == first


def test_seed_everything_accepts_seeds_beyond_numpys_32_bit_range():
    seed_everything(2**40)
    first = _draw()
    seed_everything(2**40)
    assert _draw() == first


# ----------------------------------------------------------------------------- float32 precision

# Every float32 operation with its own precision flag in torch 2.13.
OPERATIONS = [
    torch.backends.cuda.matmul,
    torch.backends.cudnn.conv,
    torch.backends.cudnn.rnn,
    torch.backends.mkldnn.matmul,
    torch.backends.mkldnn.conv,
    torch.backends.mkldnn.rnn,
]


@pytest.fixture(params=["generic flag unset", "generic flag already ieee"])
def tf32_on(request):
    """TF32 allowed in every operation (what a GPU may do), restored afterwards. Twice: on a
    fresh torch, and after an earlier seed_everything (a notebook that turned TF32 back on)."""
    before = [torch.backends.fp32_precision] + [op.fp32_precision for op in OPERATIONS]
    torch.backends.fp32_precision = "ieee" if request.param.endswith("ieee") else "none"
    for op in OPERATIONS:
        op.fp32_precision = "tf32"
    yield
    torch.backends.fp32_precision = before[0]  # the generic flag first: it resets the rest
    for op, value in zip(OPERATIONS, before[1:]):
        op.fp32_precision = value


def test_seed_everything_turns_tf32_off_for_matmuls_and_convolutions(tf32_on):
    assert "TF32 on" in doctor(print_report=False)["float32 precision"]
    seed_everything(0)
    assert [op.fp32_precision for op in OPERATIONS] == ["ieee"] * len(OPERATIONS)
    assert torch.backends.fp32_precision == "ieee"
    assert torch.get_float32_matmul_precision() == "highest"
    report = doctor(print_report=False)["float32 precision"]
    assert report == "matmul ieee, conv ieee (TF32 off)"


def test_seed_everything_uses_no_deprecated_torch_api(tf32_on):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a DeprecationWarning or FutureWarning would raise
        seed_everything(0)


# ----------------------------------------------------------------------------- course_seed


@pytest.fixture
def no_seed_override(monkeypatch):
    monkeypatch.delenv(SEED_ENV_VAR, raising=False)


def test_course_seed_is_the_default_unless_course_seed_is_set(monkeypatch, no_seed_override):
    assert course_seed() == 0
    assert course_seed(default=5) == 5
    monkeypatch.setenv(SEED_ENV_VAR, " 7 ")
    assert course_seed() == 7 and course_seed(default=5) == 7
    monkeypatch.setenv(SEED_ENV_VAR, "")
    assert course_seed(default=5) == 5, "an empty COURSE_SEED counts as unset"


@pytest.mark.parametrize("value, words", [("abc", "not a whole number"), ("1.5", "not a whole"),
                                          ("-2", "negative")])  # fmt: skip
def test_a_bad_course_seed_names_the_variable(monkeypatch, value, words):
    monkeypatch.setenv(SEED_ENV_VAR, value)
    with pytest.raises(ValueError, match=words) as info:
        course_seed()
    assert f"{SEED_ENV_VAR}={value!r}" in str(info.value)


@pytest.mark.parametrize("default", [-1, 1.5, True])
def test_course_seed_checks_its_default(no_seed_override, default):
    with pytest.raises(ValueError, match="non-negative int"):
        course_seed(default)


def test_course_seed_is_exported_and_reported(monkeypatch):
    import course_utils

    assert course_utils.course_seed is course_seed and "course_seed" in course_utils.__all__
    monkeypatch.setenv(SEED_ENV_VAR, "4")
    assert doctor(print_report=False)[SEED_ENV_VAR] == "4"


# ----------------------------------------------------------------------------- doctor


def test_doctor_returns_the_report_without_printing(capsys, no_device_override):
    report = doctor(print_report=False)
    assert capsys.readouterr().out == ""
    for key in ("torch", "device", "widgets render", "cpu threads"):
        assert key in report, key
    assert report["torch"] == torch.__version__
    assert report["device"] == str(get_device())
    assert report["cpu threads"] == str(torch.get_num_threads())


def test_doctor_says_widgets_do_not_render_outside_a_kernel():
    assert doctor(print_report=False)["widgets render"].startswith("not here")


def test_doctor_reports_a_bad_course_device_instead_of_crashing(monkeypatch):
    monkeypatch.setenv(DEVICE_ENV_VAR, "gpu")
    report = doctor(print_report=False)
    assert report["device"].startswith("error:")
    assert report[DEVICE_ENV_VAR] == "gpu"


def test_doctor_prints_one_aligned_line_per_entry(capsys):
    report = doctor()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(report)
    for (key, value), line in zip(report.items(), lines):
        assert line.startswith(key)
        assert line.endswith(value)
    value_columns = {
        line.index(value, len(key)) for (key, value), line in zip(report.items(), lines)
    }
    assert len(value_columns) == 1, "values should start in one column"


# ----------------------------------------------------------------------------- command line


def _run_module(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "course_utils", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, DEVICE_ENV_VAR: "cpu"},
    )


def test_python_m_course_utils_doctor_prints_the_report():
    result = _run_module("doctor")
    assert result.returncode == 0, result.stderr
    assert "device" in result.stdout
    assert "torch" in result.stdout


def test_python_m_course_utils_rejects_an_unknown_command_with_usage():
    result = _run_module("bogus")
    assert result.returncode == 2
    assert "usage" in result.stderr
