"""Shared set-up for the course_utils unit tests: a headless plot backend, no leaked figures."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # before pyplot is imported anywhere: tests never open a window

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

# Tiny models gain nothing from intra-op threads, and spinning threads slow a busy 2-core box.
torch.set_num_threads(1)


@pytest.fixture
def shown():
    """``shown(out)``: the PNG (base64) an explorer's ``Output`` shows now. Fails unless it shows
    exactly one figure and the explorer closed the figure it drew (none piles up)."""

    def png(out) -> str:
        assert len(out.outputs) == 1, f"the explorer shows {len(out.outputs)} outputs, not one plot"
        (output,) = out.outputs
        assert output["output_type"] == "display_data" and output["data"]["image/png"]
        assert plt.get_fignums() == [], "the explorer left its figure open"
        return output["data"]["image/png"]

    return png


@pytest.fixture(autouse=True)
def close_figures():
    """Close every figure a test opened, so figures do not pile up across the suite."""
    yield
    plt.close("all")
