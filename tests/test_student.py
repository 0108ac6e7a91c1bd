"""course_utils.student: student copies keep every exercise as a stub, lose the solutions,
hidden tests, outputs and widget state, and still run (the checkers say "not attempted yet")."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from course_utils.student import (
    BEGIN_SOLUTION,
    main,
    student_notebook,
    student_source,
    write_student_copies,
)

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_a_solution_region_keeps_signatures_and_loses_bodies():
    source = (
        "import torch\n\n### BEGIN SOLUTION\n"
        "def softmax(x, dim=-1):  # along the keys\n    e = x.exp()\n    return e / e.sum(dim)\n\n\n"
        "def helper(\n    a,\n    b,\n):\n    return a + b\n### END SOLUTION\n\n\ncheck_softmax(softmax)"
    )
    stubbed = student_source(source)
    assert "e.exp()" not in stubbed and "a + b" not in stubbed and BEGIN_SOLUTION not in stubbed
    assert (
        "def softmax(x, dim=-1):  # along the keys\n    # your code here\n    raise NotImplementedError"
        in stubbed
    )
    assert (
        "def helper(\n    a,\n    b,\n):\n    # your code here\n    raise NotImplementedError"
        in stubbed
    )
    assert stubbed.startswith("import torch") and stubbed.endswith("check_softmax(softmax)")


def test_a_region_without_functions_becomes_a_comment_and_hidden_tests_go():
    source = "x = 1\n### BEGIN SOLUTION\ny = x + 1\n### END SOLUTION\n### BEGIN HIDDEN TESTS\nassert y == 2\n### END HIDDEN TESTS\nprint(x)"
    assert student_source(source) == "x = 1\n# your code here\n\nprint(x)"
    with pytest.raises(ValueError, match="without a matching"):
        student_source("### BEGIN SOLUTION\ny = 1\n")


def _toy_notebook():
    nb = nbformat.v4.new_notebook()
    stub = nbformat.v4.new_code_cell("def f(x):\n    raise NotImplementedError\n\n\ncheck_f(f)")
    solution = nbformat.v4.new_code_cell(
        "### BEGIN SOLUTION\ndef f(x):\n    return 2 * x\n### END SOLUTION\n\n\ncheck_f(f)"
    )
    solution.metadata["jupyter"] = {"source_hidden": True}
    visible = nbformat.v4.new_code_cell(
        "### BEGIN SOLUTION\ndef g():\n    return 3\n### END SOLUTION"
    )
    visible.metadata["jupyter"] = {"source_hidden": True}  # collapsed, but no stub above it
    for cell in (stub, solution, visible):
        cell.outputs = [nbformat.v4.new_output("stream", text="old output\n")]
        cell.execution_count = 1
    nb.cells = [nbformat.v4.new_markdown_cell("# toy"), stub, solution, visible]
    nb.metadata["widgets"] = {"state": {"abc": {}}}
    return nb


def test_student_notebook_drops_repeated_stubs_and_clears_everything():
    copy = student_notebook(_toy_notebook())
    sources = [cell.source for cell in copy.cells]
    assert len(sources) == 3 and "return 2 * x" not in "".join(sources)  # hidden solution dropped
    assert sources[2] == "def g():\n    # your code here\n    raise NotImplementedError"  # stubbed
    assert not copy.cells[2].metadata["jupyter"].get("source_hidden"), (
        "a stub must not be collapsed"
    )
    assert all(
        not c.outputs and c.execution_count is None for c in copy.cells if c.cell_type == "code"
    )
    assert "widgets" not in copy.metadata
    assert _toy_notebook().cells[2].outputs, "the original is left untouched"


def test_student_copies_of_every_lesson(tmp_path):
    written = write_student_copies(ROOT / "notebooks", tmp_path)
    assert [p.name for p in written] == [p.name for p in LESSONS]
    for lesson, copy_path in zip(LESSONS, written):
        original, copy = nbformat.read(lesson, 4), nbformat.read(copy_path, 4)
        text = "\n".join(cell.source for cell in copy.cells)
        assert BEGIN_SOLUTION not in text and "widgets" not in copy.metadata
        assert all(not c.outputs for c in copy.cells if c.cell_type == "code")
        solutions = [c for c in original.cells if BEGIN_SOLUTION in c.source]
        checks = set(re.findall(r"^(check_\w+)\(", "\n".join(c.source for c in solutions), re.M))
        assert checks and all(f"\n{check}(" in "\n" + text for check in checks), lesson.name
        assert len(copy.cells) == len(original.cells) - len(solutions), lesson.name


@pytest.mark.parametrize("name", ["00_welcome.ipynb", "04_scaled_dot_product.ipynb"])
def test_a_student_copy_runs_and_its_checkers_say_not_attempted(tmp_path, name):
    write_student_copies(ROOT / "notebooks", tmp_path)
    nb = nbformat.read(tmp_path / name, 4)
    NotebookClient(nb, kernel_name="attention-course", timeout=300,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()  # fmt: skip
    check_cells = [
        c for c in nb.cells if c.cell_type == "code" and "raise NotImplementedError" in c.source
    ]
    assert len(check_cells) >= 1
    for cell in check_cells:
        shown = "".join(
            str(o.get("data", {}).get("text/plain", "")) + o.get("text", "") for o in cell.outputs
        )
        assert "not attempted yet" in shown, cell.source[:80]


def test_the_command_line(tmp_path, capsys):
    assert main(["student"]) == 2
    assert main(["student", str(ROOT / "notebooks"), str(tmp_path / "out")]) == 0
    assert "wrote" in capsys.readouterr().out and len(
        list((tmp_path / "out").glob("*.ipynb"))
    ) == len(LESSONS)
    with pytest.raises(ValueError, match="must differ"):
        write_student_copies(ROOT / "notebooks", ROOT / "notebooks")
    with pytest.raises(ValueError, match="no notebooks"):
        write_student_copies(tmp_path / "empty", tmp_path / "x")
