"""How the explorers show things: a figure in their ``ipywidgets.Output`` (set as its
``outputs``), nothing (``clear``), or a warning line (``warning_html``).

The explorers do not draw with ``with out: clear_output(wait=True); plt.show()``. That routes
the figure through the kernel's output capture (the widget collects the messages sent while it
handles one request), and in JupyterLab with ipykernel 7 it lost figures when slider events came
in quickly: the explorer's text moved on while its plot stayed behind, and later changes did not
bring it back (tests/browser saw it in lesson 02). ``clear_output(wait=True)`` with nothing after
it never clears either, so an error message sat beside the last good plot. Setting the trait is
plain widget state: the latest value wins in the browser, in a saved notebook and in the tests.
"""

from __future__ import annotations

import base64
import html
import io

import ipywidgets as widgets
import matplotlib.pyplot as plt
from matplotlib.figure import Figure


def figure_output(fig: Figure) -> dict:
    """``fig`` as one Jupyter ``display_data`` output: a PNG as the inline backend draws it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    return {
        "output_type": "display_data",
        "data": {
            "image/png": base64.b64encode(buffer.getvalue()).decode("ascii"),
            "text/plain": repr(fig),
        },
        "metadata": {},
    }


def show_figure(out: widgets.Output, fig: Figure | None = None) -> None:
    """Replace what ``out`` shows with ``fig`` (default: the current figure), then close it."""
    fig = plt.gcf() if fig is None else fig
    try:
        out.outputs = (figure_output(fig),)
    finally:
        plt.close(fig)


def clear(out: widgets.Output) -> None:
    """Show nothing in ``out`` (the explorer's text says why)."""
    out.outputs = ()


def warning_html(message: object) -> str:
    """The explorers' one way to say why nothing is drawn: a red line, HTML-escaped."""
    return f'<p style="color:#a50e0e">⚠️ {html.escape(str(message))}</p>'
