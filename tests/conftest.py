"""Shared set-up for the course_utils unit tests: a headless plot backend, no leaked figures."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # before pyplot is imported anywhere: tests never open a window

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

# Tiny models gain nothing from intra-op threads, and spinning threads slow a busy 2-core box.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def close_figures():
    """Close every figure a test opened, so figures do not pile up across the suite."""
    yield
    plt.close("all")
