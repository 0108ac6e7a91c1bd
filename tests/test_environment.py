"""The set-up files agree with each other: one set of pins, one test command."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"torch": "pytorch"}  # PyPI name -> conda-forge name, where they differ


def pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + project["optional-dependencies"]["dev"]
    pins = {}
    for requirement in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)==([0-9][0-9A-Za-z.]*)", requirement)
        assert match, f"{requirement!r} in pyproject.toml is not an exact pin (name==version)"
        name, version = match.groups()
        pins[CONDA_NAMES.get(name.lower(), name.lower())] = version
    return pins


def environment_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "environment.yml").read_text().splitlines():
        match = re.fullmatch(r"\s*-\s+([A-Za-z0-9_.-]+)=([0-9][0-9A-Za-z.]*)\s*", line)
        if match and match.group(1) != "python":
            pins[match.group(1).lower()] = match.group(2)
    return pins


def test_torch_is_pinned_to_the_course_version():
    assert pyproject_pins()["pytorch"] == "2.13.0"


def test_environment_yml_pins_the_same_packages_and_versions_as_pyproject():
    assert environment_pins() == pyproject_pins()


def test_environment_yml_installs_the_course_package_and_uses_conda_forge():
    text = (ROOT / "environment.yml").read_text()
    assert "conda-forge" in text
    assert re.search(r"^\s*-\s+-e \.\s*$", text, re.MULTILINE)


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme
    commands = [
        line.strip() for line in ci.splitlines() if line.strip() and not line.startswith("#")
    ]
    assert commands[-1] == "make test"


def test_make_test_runs_lint_units_and_strict_nbval_on_every_notebook():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test: .*lint.*unit.*nbval.*student.*browser", makefile, re.MULTILINE)
    assert "$(BIN)/pytest tests --ignore=tests/browser" in makefile  # the browser test runs once
    assert "--nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg" in makefile
    assert re.search(r"^\t\$\(BIN\)/pytest \$\(NBVAL\) notebooks/$", makefile, re.MULTILINE)
    # lax mode (outputs not compared) only for the student copies, never for the lessons
    lax_lines = [line for line in makefile.splitlines() if "--nbval-lax" in line]
    assert lax_lines and all(line.rstrip().endswith(" student/") for line in lax_lines)
    assert "$(STAMP): pyproject.toml" in makefile


def test_readme_links_every_notebook():
    readme = (ROOT / "README.md").read_text()
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert f"notebooks/{notebook.name}" in readme, f"README does not link {notebook.name}"


DOWNLOAD = re.compile(
    r"https?://|urlretrieve|requests\.get|torch\.hub|load_state_dict_from_url|pypi\.org"
)


def code_to_scan() -> dict[str, str]:
    """Every piece of code the course runs: the whole package (subpackages too), the data
    scripts, the set-up files, and the code cells of every notebook."""
    files = [
        *sorted((ROOT / "course_utils").rglob("*.py")),
        *sorted((ROOT / "data").glob("*.py")),
        ROOT / "Makefile",
        ROOT / ".ci" / "run",
    ]
    code = {str(f.relative_to(ROOT)): f.read_text(encoding="utf-8") for f in files}
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
        sources = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
        code[str(notebook.relative_to(ROOT))] = "\n".join(sources)
    return code


def test_the_scan_reads_the_subpackages_and_the_notebooks():
    scanned = code_to_scan()
    assert "course_utils/attention/core.py" in scanned
    assert "course_utils/widgets/vision.py" in scanned
    assert "notebooks/00_welcome.ipynb" in scanned


def test_no_registry_or_download_host_is_named_in_the_code():
    offenders = {
        name: DOWNLOAD.search(text).group()
        for name, text in code_to_scan().items()
        if DOWNLOAD.search(text)
    }
    assert offenders == {}, "nothing may be downloaded at run time (data ships or is generated)"


def test_the_browser_test_uses_the_system_chromium_and_ci_installs_it():
    makefile = (ROOT / "Makefile").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    browser_extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["browser"]
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*", r) for r in browser_extra)
    assert "'.[dev,browser]'" in makefile
    assert "playwright install" not in makefile + ci, "never a downloaded browser"
    assert re.search(r"apt-get install .*\bchromium\b", ci)
    assert "export REQUIRE_BROWSER=1" in ci
    # without Chromium, make browser says so plainly (and fails only when a browser is required)
    assert "SKIPPED, no Chromium" in makefile and 'test "$(REQUIRE_BROWSER)" != 1' in makefile
