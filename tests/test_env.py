"""env: the device every lesson runs on, reproducible seeds, and the environment report."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from course_utils import env
from course_utils.env import DEVICE_ENV_VAR, doctor, get_device, seed_everything

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


@pytest.mark.parametrize("seed", [-1, 1.5, "0"])
def test_seed_everything_rejects_negative_or_non_int_seeds(seed):
    with pytest.raises(ValueError, match="non-negative int"):
        seed_everything(seed)


def test_seed_everything_accepts_seeds_beyond_numpys_32_bit_range():
    seed_everything(2**40)
    first = _draw()
    seed_everything(2**40)
    assert _draw() == first


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
