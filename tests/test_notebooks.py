"""Notebook policy: what every lesson must satisfy beyond running (nbval checks that)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from notebook_devices import built_off_device
from notebook_flow import trained_off_device

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
IGNORE = "nbval-ignore-output"
KERNEL = "attention-course"


def code_cells(nb):
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def tags(cell) -> list[str]:
    return cell.metadata.get("tags", [])


@pytest.fixture(params=NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def notebook(request):
    return request.param, nbformat.read(request.param, as_version=4)


def test_lessons_are_numbered_in_order_from_00():
    assert NOTEBOOKS, "no notebooks found"
    numbers = [int(re.fullmatch(r"(\d\d)_[a-z0-9_]+\.ipynb", p.name).group(1)) for p in NOTEBOOKS]
    assert numbers == list(range(len(NOTEBOOKS)))


def test_notebook_uses_the_course_kernel(notebook):
    _, nb = notebook
    assert nb.metadata["kernelspec"]["name"] == KERNEL


def test_notebook_imports_course_utils_and_picks_the_device(notebook):
    _, nb = notebook
    source = "\n".join(cell.source for cell in code_cells(nb))
    assert "course_utils" in source
    assert "get_device()" in source


def test_every_model_the_lesson_trains_is_on_the_device(notebook):
    # nbval on a CPU cannot see a missing .to(device): there the device is the CPU anyway.
    _, nb = notebook
    assert trained_off_device(nb) == []


def test_cells_that_use_the_device_make_their_modules_and_random_tensors_on_it(notebook):
    _, nb = notebook
    assert built_off_device(nb) == []


def _lesson(*cells: str):
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])


SET_UP = "import torch\nfrom torch import nn\nfrom course_utils import fit, get_device\n"
SET_UP += "from course_utils.transformer import GPT\ndevice = get_device()"


@pytest.mark.parametrize(
    "cells",
    [
        ("model = GPT(config)", "fit(model, loader)"),
        ("model = GPT(config).to(device)", "model = GPT(config)\nfit(model, loader)"),
        ("def build():\n    return GPT(config)", "fit(build(), loader)"),
        ("models = {'a': GPT(config).to(device), 'b': GPT(config)}",
         "for name, m in models.items():\n    fit(m, loader)"),
        ("def train(m):\n    return fit(m, loader)", "train(GPT(config).to(device))\ntrain(GPT(config))"),
    ],
)  # fmt: skip
def test_a_model_trained_on_the_cpu_is_caught(cells):
    assert len(trained_off_device(_lesson(SET_UP, *cells))) == 1
    moved = [c.replace("GPT(config)", "GPT(config).to(device)") for c in cells]
    assert trained_off_device(_lesson(SET_UP, *moved)) == []


@pytest.mark.parametrize(
    "cell",
    [
        "x = torch.randn(2, 3)\nlayer = nn.Linear(3, 4).to(device)",
        "x = torch.randn(2, 3).to(device)\nlayer = nn.Linear(3, 4)",
        "model = GPT(config).eval()\nx = torch.zeros(2, device=device)",
    ],
)
def test_a_cpu_module_or_random_tensor_in_a_device_cell_is_caught(cell):
    assert len(built_off_device(_lesson(SET_UP, cell))) == 1
    assert built_off_device(_lesson(SET_UP, cell.replace("device", "cpu"))) == [], (
        "a cell that does not use the device is a CPU demo"
    )


def test_notebook_is_stored_run_top_to_bottom_without_errors(notebook):
    _, nb = notebook
    counts = [cell.execution_count for cell in code_cells(nb)]
    assert counts == list(range(1, len(counts) + 1)), "re-run the notebook from a fresh kernel"
    for cell in code_cells(nb):
        for output in cell.outputs:
            assert output.output_type != "error", f"stored error in: {cell.source[:60]!r}"
            assert not (output.output_type == "stream" and output.name == "stderr"), (
                f"stored stderr (a warning?) in: {cell.source[:60]!r}"
            )


def test_widget_and_training_cells_are_tagged_nbval_ignore_output(notebook):
    _, nb = notebook
    volatile = re.compile(r"(_explorer\(|\bquiz\(|\binteract\(|\bfit\(|\bdoctor\(\))")
    for cell in code_cells(nb):
        if volatile.search(cell.source):
            assert IGNORE in tags(cell), f"tag {IGNORE}: {cell.source[:60]!r}"


def test_plot_cells_end_with_plt_show(notebook):
    # A trailing ';' does not silence a cell's value under nbval, so a plot cell would store
    # an extra "Text(...)" or "<Figure ...>" line that differs between runs: end with plt.show().
    _, nb = notebook
    for cell in code_cells(nb):
        if re.search(r"\bplot_\w+\(|\bplt\.|\bax\.", cell.source):
            assert "plt.show()" in cell.source, (
                f"end plot cells with plt.show(): {cell.source[:60]!r}"
            )


def test_lessons_assert_their_claims_and_have_exercises_and_a_quiz(notebook):
    path, nb = notebook
    source = "\n".join(cell.source for cell in code_cells(nb))
    assert re.search(r"^\s*assert ", source, re.MULTILINE), "a lesson asserts its claims"
    assert "check_" in source, "a lesson has at least one exercise with a checker"
    assert "quiz(" in source, "a lesson ends with a quiz"


def test_exercise_stubs_are_not_attempted_and_solutions_are_hidden(notebook):
    _, nb = notebook
    for cell in code_cells(nb):
        if "### BEGIN SOLUTION" in cell.source:
            assert "### END SOLUTION" in cell.source
            assert cell.metadata.get("jupyter", {}).get("source_hidden"), "hide solution cells"
            assert "✅" in str(cell.outputs), "the solution passes its checker"
        elif "raise NotImplementedError" in cell.source and "check_" in cell.source:
            assert "not attempted yet" in str(cell.outputs)


def test_no_downloads_at_run_time(notebook):
    _, nb = notebook
    for cell in code_cells(nb):
        assert not re.search(
            r"https?://|urlretrieve|torch\.hub|load_state_dict_from_url", cell.source
        )
