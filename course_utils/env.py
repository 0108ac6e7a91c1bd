"""The machine the course runs on: device choice, seeding, float32 precision, and an environment
report."""

from __future__ import annotations

import numbers
import os
import platform
import random
import sys
from importlib import metadata

import numpy as np
import torch

DEVICE_ENV_VAR = "COURSE_DEVICE"
SEED_ENV_VAR = "COURSE_SEED"
_DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
# Every operation with its own float32 precision flag in torch 2.13 (torch.backends.<backend>.<op>).
FLOAT32_OPERATIONS = (
    ("cuda", "matmul"),
    ("cudnn", "conv"),
    ("cudnn", "rnn"),
    ("mkldnn", "matmul"),
    ("mkldnn", "conv"),
    ("mkldnn", "rnn"),
)
_REPORTED_PACKAGES = (
    "torch",
    "numpy",
    "matplotlib",
    "seaborn",
    "ipywidgets",
    "jupyterlab",
    "jupyterlab_widgets",
    "ipykernel",
    "nbval",
    "tqdm",
    "scikit-learn",
)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def _device_choice(prefer) -> str:
    """``prefer``, else ``COURSE_DEVICE``, else ``auto``, checked and lower-cased."""
    allowed = ", ".join(_DEVICE_CHOICES)
    if prefer is not None and not isinstance(prefer, str):
        index = isinstance(prefer, int) and not isinstance(prefer, bool)
        hint = f" For GPU number {prefer}, use torch.device('cuda', {prefer})." if index else ""
        raise ValueError(
            f"get_device(prefer=...) takes the name of a device, one of {allowed}; got "
            f"{prefer!r} ({type(prefer).__name__}).{hint}"
        )
    choice = (prefer if prefer is not None else os.environ.get(DEVICE_ENV_VAR, "auto")).strip()
    if choice.lower() not in _DEVICE_CHOICES:
        asked = f"get_device({prefer!r})" if prefer is not None else f"{DEVICE_ENV_VAR}={choice!r}"
        raise ValueError(
            f"{asked} is not a device this course knows; "
            f"use one of {allowed} (for example {DEVICE_ENV_VAR}=cpu)."
        )
    return choice.lower()


def get_device(prefer: str | None = None) -> torch.device:
    """The device every lesson runs on: CUDA, then Apple MPS, then the CPU.

    ``COURSE_DEVICE=cpu`` (or ``cuda``, ``mps``, ``auto``) in the environment overrides the
    choice; ``prefer`` overrides the environment. Asking for a device this machine lacks is an
    error rather than a silent fallback, so a learner knows what actually ran.
    """
    choice = _device_choice(prefer)
    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"{DEVICE_ENV_VAR}=cuda, but torch sees no CUDA GPU (torch {torch.__version__}). "
            f"Unset {DEVICE_ENV_VAR} to fall back to the CPU."
        )
    if choice == "mps" and not _mps_available():
        raise RuntimeError(
            f"{DEVICE_ENV_VAR}=mps, but Apple's MPS backend is not available here. "
            f"Unset {DEVICE_ENV_VAR} to fall back to the CPU."
        )
    return torch.device(choice)


def _check_seed(seed, name: str = "seed") -> int:
    """``seed`` as an int: any whole number (int, numpy integer) >= 0; not a bool or a float."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        hint = f" (use {int(seed)})" if isinstance(seed, float) and seed.is_integer() else ""
        raise ValueError(
            f"{name} must be a non-negative int, got {seed!r} ({type(seed).__name__}){hint}"
        )
    if seed < 0:
        raise ValueError(f"{name} must be a non-negative int, got {seed!r}")
    return int(seed)


def set_float32_precision() -> None:
    """Full float32 (IEEE) in every matmul and convolution: no TF32 on Ampere and later GPUs.

    torch lets cuDNN convolutions (and, if asked, matmuls) run in TF32, with a 10-bit mantissa,
    which breaks the lessons' "equal to 1e-5" checks on a GPU. This uses torch's current API
    (``torch.backends.fp32_precision``); torch then refuses to read the legacy
    ``torch.backends.cudnn.allow_tf32``: read ``torch.backends.cudnn.conv.fp32_precision``.
    """
    torch.backends.fp32_precision = "ieee"
    # The generic flag does not override an operation's own flag (a notebook that set
    # cudnn.conv to "tf32", say), so set every operation too.
    for backend, operation in FLOAT32_OPERATIONS:
        getattr(getattr(torch.backends, backend), operation).fp32_precision = "ieee"


def float32_precision() -> str:
    """How float32 matmuls and convolutions run now, in words (for ``doctor``)."""
    matmul = torch.backends.cuda.matmul.fp32_precision
    conv = torch.backends.cudnn.conv.fp32_precision
    verdict = "TF32 on" if "tf32" in (matmul, conv) else "TF32 off"
    return f"matmul {matmul}, conv {conv} ({verdict})"


def seed_everything(seed: int = 0) -> int:
    """Seed Python, NumPy and torch (all devices), make cuDNN deterministic and float32 exact.

    Every lesson calls it, so it is also where float32 precision is set
    (:func:`set_float32_precision`). Returns the seed so a cell can print what it used.
    """
    seed = _check_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # seeds CPU, CUDA and MPS generators
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    set_float32_precision()
    return seed


def course_seed(default: int = 0) -> int:
    """The seed a lesson uses: ``COURSE_SEED`` from the environment, else ``default``.

    ``COURSE_SEED=3 make test`` reruns every lesson with another seed.
    """
    default = _check_seed(default, "course_seed(default)")
    value = os.environ.get(SEED_ENV_VAR, "").strip()
    if not value:
        return default
    try:
        seed = int(value)
    except ValueError:
        raise ValueError(
            f"{SEED_ENV_VAR}={value!r} is not a whole number: set it to a seed such as "
            f"{SEED_ENV_VAR}=0, or unset it"
        ) from None
    if seed < 0:
        raise ValueError(f"{SEED_ENV_VAR}={value!r} is negative: a seed is a whole number >= 0")
    return seed


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _widgets_status() -> str:
    """Whether ipywidgets will render: needs the package, the lab extension and a live kernel."""
    if _version("ipywidgets") == "not installed":
        return "no: ipywidgets is not installed (run `make lab`)"
    if _version("jupyterlab_widgets") == "not installed":
        return "no: jupyterlab_widgets (the JupyterLab extension) is missing"
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with ipykernel
        return "no: IPython is not installed"
    shell = get_ipython()
    if shell is None or not hasattr(shell, "kernel"):
        return "not here: widgets draw inside a Jupyter kernel (JupyterLab), not a plain terminal"
    return "yes"


def doctor(print_report: bool = True) -> dict[str, str]:
    """Report versions, the device, float32 precision, CPU threads and whether widgets render.

    Returns the report as a dict; prints it as aligned lines unless ``print_report=False``.
    """
    report: dict[str, str] = {
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
    }
    for package in _REPORTED_PACKAGES:
        report[package] = _version(package)
    try:
        device = get_device()
        report["device"] = str(device)
    except (ValueError, RuntimeError) as err:
        report["device"] = f"error: {err}"
    if torch.cuda.is_available():
        report["gpu"] = torch.cuda.get_device_name(0)
    else:
        report["gpu"] = "none (CPU run)"
    report["float32 precision"] = float32_precision()
    report["cpu threads"] = str(torch.get_num_threads())
    report[DEVICE_ENV_VAR] = os.environ.get(DEVICE_ENV_VAR, "(unset: auto)")
    report[SEED_ENV_VAR] = os.environ.get(SEED_ENV_VAR, "(unset: 0)")
    report["widgets render"] = _widgets_status()
    report["executable"] = sys.executable
    if print_report:
        width = max(len(key) for key in report)
        for key, value in report.items():
            print(f"{key:<{width}}  {value}")
    return report
