"""The package as it installs outside the repository: the wheel holds every subpackage and every
data file the code reads, and works from another working directory, not only from an editable
checkout. Nothing is downloaded: the wheel is built without build isolation, and the throwaway
venv it goes into reuses the pinned packages already installed for the course."""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "course_utils"
# What the build reads: pyproject.toml and the files it names. The wheel is built from a copy of
# them, so the build's build/ and *.egg-info/ never land in the working tree.
BUILD_INPUTS = ("pyproject.toml", "README.md", "LICENSE", "course_utils")
BYTECODE = shutil.ignore_patterns("__pycache__", "*.pyc")
TIMEOUT = 180


def package_files() -> list[str]:
    """Every file of the package in the repo tree, as the wheel names it (course_utils/...)."""
    return sorted(
        path.relative_to(ROOT).as_posix()
        for path in PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    )


def package_modules() -> list[str]:
    """Every module and subpackage in the repo tree: a new subpackage is covered by itself."""
    modules = []
    for name in package_files():
        if name.endswith(".py"):
            parts = name.removesuffix(".py").split("/")
            modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, **kwargs)
    shown = " ".join(command)[:120]
    assert result.returncode == 0, (
        f"{shown} ... failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    )
    return result


@dataclass
class Installed:
    wheel: Path
    python: Path  # the throwaway venv's interpreter
    site_packages: Path  # where the wheel went
    elsewhere: Path  # a working directory outside the repository

    def run(self, *args: str) -> subprocess.CompletedProcess:
        """Run the venv's python in ``elsewhere``, with none of this session's import paths."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env.update(MPLBACKEND="Agg", COURSE_DEVICE="auto")
        return run([str(self.python), *args], cwd=self.elsewhere, env=env)


def dependency_dirs() -> list[str]:
    """The site-packages that hold torch and the other pins (not the repo, not its .pth files)."""
    dirs = [*site.getsitepackages(), site.getusersitepackages()]
    return [d for d in dirs if Path(d).is_dir() and Path(d).resolve() != ROOT]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    source.mkdir()
    for name in BUILD_INPUTS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=BYTECODE)
        else:
            shutil.copy2(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q"]
        + ["-w", str(tmp / "dist"), str(source)])  # fmt: skip
    (wheel,) = (tmp / "dist").glob("course_utils-*.whl")
    # A venv without pip, its own site-packages first, then the course's packages via a .pth
    # line. A .pth line only adds a path, so the course venv's editable-install finder (its own
    # .pth file) is never run: `import course_utils` can only find the wheel's copy.
    run([sys.executable, "-m", "venv", "--without-pip", str(tmp / "venv")])
    python = tmp / "venv" / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site_packages = Path(run([str(python), "-c", purelib]).stdout.strip())
    run([*pip, "install", "--no-deps", "--no-index", "-q", "--target", str(site_packages)]
        + [str(wheel)])  # fmt: skip
    (site_packages / "course_dependencies.pth").write_text("\n".join(dependency_dirs()) + "\n")
    (tmp / "elsewhere").mkdir()
    return Installed(wheel, python, site_packages, tmp / "elsewhere")


def test_the_wheel_holds_every_file_of_the_package(installed):
    with zipfile.ZipFile(installed.wheel) as wheel:
        shipped = set(wheel.namelist())
    missing = [name for name in package_files() if name not in shipped]
    assert missing == [], (
        f"the wheel lacks {len(missing)} of the package's files (subpackages or data), e.g. "
        f"{missing[:5]}: check [tool.setuptools] in pyproject.toml"
    )


IMPORT_EVERYTHING = """
import importlib, importlib.util, json, sys
failed = {}
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
    except Exception as err:
        failed[name] = f"{type(err).__name__}: {err}"
origin = importlib.util.find_spec("course_utils").origin
print(json.dumps({"file": origin, "failed": failed}))
"""


def test_every_module_imports_from_the_installed_wheel_outside_the_repo(installed):
    modules = package_modules()
    assert "course_utils.attention" in modules and "course_utils.widgets" in modules
    result = json.loads(installed.run("-c", IMPORT_EVERYTHING, json.dumps(modules)).stdout)
    location = Path(result["file"]).resolve()
    assert location.is_relative_to(installed.site_packages.resolve()), (
        f"course_utils came from {location}, not from the installed wheel"
    )
    assert result["failed"] == {}, "these modules do not import from the installed wheel"


def test_python_m_course_utils_doctor_runs_from_the_installed_wheel(installed):
    report = installed.run("-m", "course_utils", "doctor").stdout
    assert "torch" in report and "device" in report
    executable = next(line for line in report.splitlines() if line.startswith("executable"))
    assert executable.split()[-1] == str(installed.python), executable


LOAD_EVERY_DATASET = """
import json
from course_utils.data import make_dates, make_sequence_task
from course_utils.pooling import load_product_categories
from course_utils.tasks import (
    load_digits_split, make_arithmetic, make_relation_task, make_reversal_data,
)
examples, categories = load_product_categories()
digits = load_digits_split()
tokens, _ = make_reversal_data(20)
relations = make_relation_task(20)
print(json.dumps({
    "product categories": [len(examples), len(categories)],
    "digits": sum(len(labels) for _, labels in (digits.train, digits.val, digits.test)),
    "reverse": len(make_sequence_task("reverse", 20, seed=0)),
    "dates": len(make_dates(20, seed=0)),
    "reversal tokens": list(tokens.shape),
    "relations": len(relations[0]),
    "arithmetic": len(make_arithmetic(digits=2, n=20)),
}))
"""


def test_every_dataset_the_lessons_use_loads_from_the_installed_wheel(installed):
    sizes = json.loads(installed.run("-c", LOAD_EVERY_DATASET).stdout)
    assert sizes == {
        "product categories": [400, 4],
        "digits": 1797,
        "reverse": 20,
        "dates": 20,
        "reversal tokens": [20, 8],
        "relations": 20,
        "arithmetic": 20,
    }
