"""The machine the course runs on: device choice, seeding, and an environment report."""

from __future__ import annotations

import os
import platform
import random
import sys
from importlib import metadata

import numpy as np
import torch

DEVICE_ENV_VAR = "COURSE_DEVICE"
_DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
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


def get_device(prefer: str | None = None) -> torch.device:
    """The device every lesson runs on: CUDA, then Apple MPS, then the CPU.

    ``COURSE_DEVICE=cpu`` (or ``cuda``, ``mps``, ``auto``) in the environment overrides the
    choice; ``prefer`` overrides the environment. Asking for a device this machine lacks is an
    error rather than a silent fallback, so a learner knows what actually ran.
    """
    choice = prefer if prefer is not None else os.environ.get(DEVICE_ENV_VAR, "auto")
    choice = choice.strip().lower()
    if choice not in _DEVICE_CHOICES:
        raise ValueError(
            f"{DEVICE_ENV_VAR}={choice!r} is not a device this course knows; "
            f"use one of {', '.join(_DEVICE_CHOICES)} (for example {DEVICE_ENV_VAR}=cpu)."
        )
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


def seed_everything(seed: int = 0) -> int:
    """Seed Python, NumPy and torch (all devices) and make cuDNN deterministic.

    Returns the seed so a cell can print what it used.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # seeds CPU, CUDA and MPS generators
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
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
    """Report versions, the device, CPU threads and whether widgets will render.

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
    report["cpu threads"] = str(torch.get_num_threads())
    report[DEVICE_ENV_VAR] = os.environ.get(DEVICE_ENV_VAR, "(unset: auto)")
    report["widgets render"] = _widgets_status()
    report["executable"] = sys.executable
    if print_report:
        width = max(len(key) for key in report)
        for key, value in report.items():
            print(f"{key:<{width}}  {value}")
    return report
