"""Lessons 04 and 02 in JupyterLab, in a real headless Chromium, used the way a learner uses them.

JupyterLab runs on loopback with a random port and token, its own config, data, settings,
workspace and runtime directories, and news and update checks off, over a copy of `notebooks/`
and `data/` (JupyterLab saves what it opens). Playwright drives the system's Chromium
(`$CHROMIUM`, else `chromium` on the PATH); it never downloads a browser. For each lesson the
test clears the stored outputs, runs every cell with the course kernel from the menu, then moves
the explorer's controls and checks that what the explorer shows changes.

Screenshots go to `build/browser/` (or `$COURSE_SCREENSHOTS`). Without Chromium the test is
skipped with the reason, or fails when `REQUIRE_BROWSER=1` (CI sets it).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KERNEL_DISPLAY_NAME = "Attention course"
SHOTS = Path(os.environ.get("COURSE_SCREENSHOTS", ROOT / "build" / "browser"))
# As the machine's own probe starts Chromium: no sandbox (root), no GPU, and none of the
# background connections that a closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RUN_ALL_TIMEOUT_MS = 600_000  # lesson 02 trains two models: about a minute on an idle 2-core box
UPDATE_TIMEOUT_MS = 60_000


def find_chromium() -> str | None:
    """``$CHROMIUM`` when it is set (and nothing else then), else Chromium on the PATH."""
    if os.environ.get("CHROMIUM"):
        return shutil.which(os.environ["CHROMIUM"])
    return shutil.which("chromium") or shutil.which("chromium-browser")


CHROMIUM = find_chromium()
if CHROMIUM is None:
    reason = (
        f"no Chromium at $CHROMIUM={os.environ['CHROMIUM']!r}"
        if os.environ.get("CHROMIUM")
        else "no Chromium on the PATH (install Debian's package: apt-get install chromium)"
    )
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason, allow_module_level=True)

from playwright.sync_api import Locator, Page, expect, sync_playwright  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_json(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2))


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on 127.0.0.1 over a copy of the course; yields (base url, token)."""
    home = tmp_path_factory.mktemp("lab")
    course = home / "course"
    for folder in ("notebooks", "data"):
        shutil.copytree(ROOT / folder, course / folder, ignore=shutil.ignore_patterns(".*"))
    settings = home / "settings"
    # No "Would you like to receive official Jupyter news?" toast and no update check.
    write_json(
        settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings",
        {"fetchNews": "false", "checkForUpdates": False},
    )
    # Every cell stays in the page, so the test sees every prompt and output.
    write_json(
        settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings",
        {"windowingMode": "none"},
    )
    env = dict(os.environ)
    env.update(
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),  # the course kernel must come from the venv
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
        IPYTHONDIR=str(home / "ipython"),
    )
    env.pop("MPLBACKEND", None)  # the kernel draws inline, as in a learner's Lab
    port, token = free_port(), secrets.token_hex(16)
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={course}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if os.geteuid() == 0:
        command.append("--allow-root")
    log_path = home / "jupyterlab.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited ({server.returncode}):\n{log_path.read_text()}")
            request = urllib.request.Request(
                f"{base}/api/status", headers={"Authorization": f"token {token}"}
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer in 120 s:\n{log_path.read_text()}")
            time.sleep(0.5)
        yield base, token
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(UPDATE_TIMEOUT_MS)
    page.errors = []  # uncaught exceptions in JupyterLab's page, reported by the test
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    yield page
    context.close()


def shot(target: Page | Locator, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    target.screenshot(path=str(path))
    return path


def menu(page: Page, top: str, item: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{top}$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")).click()


def open_and_run_all(page: Page, lab: tuple[str, str], notebook: str) -> None:
    """Open a lesson, check the course kernel is ready, clear the stored outputs, Run All Cells,
    wait for every cell (or a failure), and check that every cell ran once, with no error."""
    base, token = lab
    page.goto(f"{base}/lab/tree/notebooks/{notebook}?token={token}&reset")
    notebook_panel = page.locator(".jp-NotebookPanel:visible")
    expect(notebook_panel.locator(".jp-Notebook")).to_be_visible()
    expect(notebook_panel.locator(".jp-Toolbar-kernelName")).to_have_text(KERNEL_DISPLAY_NAME)
    expect(notebook_panel.locator(".jp-Notebook-ExecutionIndicator")).to_have_attribute(
        "data-status", "idle", timeout=120_000
    )
    code_cells = notebook_panel.locator(".jp-CodeCell")
    n_cells = code_cells.count()
    assert n_cells > 5, f"{notebook}: only {n_cells} code cells in the page"

    menu(page, "Edit", "Clear Outputs of All Cells")
    expect(notebook_panel.locator(".jp-OutputArea-output")).to_have_count(0)
    menu(page, "Run", "Run All Cells")
    # Done when every prompt shows a number, or as soon as an error is printed.
    page.wait_for_function(
        """() => {
            const panel = [...document.querySelectorAll('.jp-NotebookPanel')]
                .find(p => p.offsetParent !== null);
            const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
            const failed = panel.querySelector(
                '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]');
            return failed || prompts.every(p => /^\\[\\d+\\]:$/.test(p.textContent.trim()));
        }""",
        timeout=RUN_ALL_TIMEOUT_MS,
        polling=1000,
    )
    errors = notebook_panel.locator(
        '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
    )
    if errors.count():
        shot(page, f"{notebook[:2]}_failed")
        pytest.fail(f"{notebook}: a cell wrote to stderr:\n{errors.first.inner_text()[-3000:]}")
    expect(notebook_panel.locator(".jp-Notebook-ExecutionIndicator")).to_have_attribute(
        "data-status", "idle"
    )
    # Collapsed solution cells show no prompt; the counter still proves they ran: one run of
    # each cell, in order, ends at the number of code cells.
    prompts = notebook_panel.locator(".jp-CodeCell .jp-InputArea-prompt").all_inner_texts()
    counts = [int(re.sub(r"\D", "", text)) for text in prompts]
    assert counts == sorted(set(counts)), f"{notebook}: execution counts {counts}"
    assert counts[-1] == n_cells, f"{notebook}: {n_cells} code cells, counts {counts}"


def explorer(page: Page, control_label: str) -> Locator:
    """The explorer (a top-level widget box in an output) that has a control with this label."""
    label = page.locator(".widget-label", has_text=re.compile(f"^{re.escape(control_label)}$"))
    boxes = page.locator(".jp-OutputArea-output > .widget-vbox").filter(has=label)
    expect(boxes).to_have_count(1)
    box = boxes.first
    box.scroll_into_view_if_needed()
    return box


def control(box: Locator, kind: str, label: str) -> Locator:
    wanted = box.page.locator(".widget-label", has_text=re.compile(f"^{re.escape(label)}$"))
    return box.locator(f".widget-{kind}").filter(has=wanted)


def plot_source(box: Locator) -> str:
    """The inline PNG the explorer's output shows now (waits until there is one)."""
    image = box.locator(".widget-output img")
    expect(image).to_have_count(1)
    return image.evaluate("e => e.src")


def press_on_slider(slider: Locator, *keys: str) -> None:
    slider.locator(".noUi-handle").click()
    for key in keys:
        slider.page.keyboard.press(key)


def settle(page: Page, quiet_ms: int = 1500) -> None:
    """Wait until the kernel has been idle for ``quiet_ms``: every widget update it was sent has
    been handled and every change it made has reached the page. (Call it after the page shows
    that the kernel took up the change, so that an idle kernel is not mistaken for a done one.)"""
    page.wait_for_function(
        """(quiet) => {
            const indicator = [...document.querySelectorAll('.jp-Notebook-ExecutionIndicator')]
                .find(e => e.offsetParent !== null);
            const now = performance.now();
            if (!indicator || indicator.dataset.status !== 'idle') {
                window.__courseBusyAt = now;
                return false;
            }
            window.__courseBusyAt ??= now;
            return now - window.__courseBusyAt > quiet;
        }""",
        arg=quiet_ms,
        polling=50,
        timeout=UPDATE_TIMEOUT_MS,
    )


def new_plot(box: Locator, old_source: str) -> str:
    """Once the kernel is done: the explorer shows one plot, not the old one. Returns it."""
    page = box.page
    page.evaluate("() => { window.__courseBusyAt = undefined; }")
    settle(page)
    sources = box.locator(".widget-output img").evaluate_all("els => els.map(e => e.src)")
    if len(sources) != 1 or old_source in sources:
        path = shot(box, "no_new_plot")
        pytest.fail(
            f"the explorer did not show one new plot: {len(sources)} image(s), "
            f"{sources.count(old_source)} of them the old one; see {path}"
        )
    return sources[0]


def check_page_is_clean(page: Page) -> None:
    """No pop-up (news, update check) over the lesson, no uncaught error in JupyterLab's page."""
    expect(page.locator(".Toastify__toast")).to_have_count(0)
    assert page.errors == [], f"uncaught errors in the page: {page.errors}"


def test_lesson_04_scaling_explorer_answers_the_d_k_slider(page, lab):
    open_and_run_all(page, lab, "04_scaled_dot_product.ipynb")
    shot(page, "04_after_run_all")
    box = explorer(page, "d_k")
    d_k = control(box, "hslider", "d_k")
    value = d_k.locator(".widget-readout")
    readout = box.locator(".widget-html").first
    expect(value).to_have_text("64")
    expect(readout).to_contain_text("d_k = 64")
    plot = plot_source(box)
    shot(box, "04_dk_64")

    press_on_slider(d_k, "ArrowRight")
    expect(value).to_have_text("128")
    expect(readout).to_contain_text("d_k = 128")
    plot = new_plot(box, plot)
    shot(box, "04_dk_128")

    # Without the scale the variance grows with d_k: the readout says so.
    box.locator(".widget-toggle-button", has_text="no scaling").click()
    expect(readout).to_contain_text("no scaling")
    variance = float(readout.locator("b").nth(1).inner_text())
    assert 64 < variance < 256, f"unscaled variance at d_k = 128 reads {variance}"
    plot = new_plot(box, plot)
    shot(box, "04_dk_128_unscaled")

    # Both ends of the slider still draw, with no warning in the readout.
    for key, end in (("End", "1024"), ("Home", "4")):
        press_on_slider(d_k, key)
        expect(value).to_have_text(end)
        expect(readout).to_contain_text(f"d_k = {end}")
        expect(readout).not_to_contain_text("⚠")
        plot = new_plot(box, plot)
        shot(box, f"04_dk_{end}_unscaled")

    # The quiz at the end answers each click.
    question = page.locator(".jp-OutputArea-output .widget-vbox .widget-vbox").filter(
        has_text="what does True in a boolean attn_mask mean?"
    )
    feedback = question.locator(".widget-html").last
    question.locator(".widget-button", has_text="Check").click()
    expect(feedback).to_have_text("Pick an option first.")
    for option, verdict in (("The key is blocked", "Not quite."), ("may attend", "Correct.")):
        question.locator(".widget-radio-box label", has_text=option).click()
        question.locator(".widget-button", has_text="Check").click()
        expect(feedback).to_contain_text(verdict)
    shot(question, "04_quiz_answered")
    check_page_is_clean(page)


def test_lesson_02_alignment_explorer_answers_its_controls(page, lab):
    open_and_run_all(page, lab, "02_additive_attention.ipynb")
    shot(page, "02_after_run_all")
    box = explorer(page, "test example")
    example = control(box, "hslider", "test example")
    step = control(box, "hslider", "output step")
    own = control(box, "text", "your input").locator("input")
    view, message = box.locator(".widget-html").nth(0), box.locator(".widget-html").nth(1)
    expect(view).to_contain_text("input")
    before = view.inner_text()
    plot = plot_source(box)
    shot(box, "02_alignment_example_0")

    press_on_slider(example, "ArrowRight")
    expect(example.locator(".widget-readout")).to_have_text("1")
    expect(view).not_to_have_text(before)
    plot = new_plot(box, plot)
    shot(box, "02_alignment_example_1")

    press_on_slider(step, "ArrowRight", "ArrowRight", "ArrowRight")
    expect(step.locator(".widget-readout")).to_have_text("3")
    expect(message).to_contain_text("output step 3")
    plot = new_plot(box, plot)
    shot(box, "02_alignment_example_1_step_3")

    # The learner's own input: the model copies it, and the view shows what came out.
    own.fill("31415926")
    expect(view).to_contain_text("31415926")
    plot = new_plot(box, plot)
    shot(box, "02_alignment_own_input")

    # Input the vocabulary cannot encode: a readable warning, not a traceback.
    own.fill("12a4")
    expect(view).to_contain_text("⚠")
    expect(box.locator(".widget-output img")).to_have_count(0)
    shot(box, "02_alignment_bad_input")
    own.fill("")
    expect(view).to_contain_text("input")
    plot_source(box)
    check_page_is_clean(page)
