"""Lesson 11 in a real JupyterLab, driven by headless Chromium through Playwright.

JupyterLab starts on 127.0.0.1 with a token, serving a copy of the lesson (so autosave never
touches the committed notebook). Chromium opens it, runs every cell, and the test checks that
the training panel rendered, that clicks and typing reach the kernel (a checkbox changes the
YAML, a bad value is marked at its field, Save writes a group file), then saves a screenshot.

Needs Debian's ``chromium`` and the ``playwright`` client: ``tests/browser_setup.sh`` installs
both (as root) and this test runs it when either is missing. If they cannot be had, the test
fails with the reason; it never skips.
"""

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# FTKIT_BROWSER_NOTEBOOK points the test at another copy of the lesson (e.g. a shortened one).
LESSON = Path(os.environ.get("FTKIT_BROWSER_NOTEBOOK") or REPO / "notebooks" / "11_hyperparameter_lab.ipynb")
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
RUN_ALL_TIMEOUT_S = 900

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def ensure_browser() -> None:
    """Chromium and Playwright, installed by tests/browser_setup.sh when missing; else fail."""
    def ready():
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            return False
        return Path(CHROMIUM).exists()

    if ready():
        return
    setup = subprocess.run(["bash", str(REPO / "tests" / "browser_setup.sh")],
                           env={**os.environ, "PY": sys.executable},
                           capture_output=True, text=True)
    if setup.returncode != 0 or not ready():
        pytest.fail("the browser test needs Debian's chromium and the playwright package; "
                    f"tests/browser_setup.sh failed (exit {setup.returncode}):\n"
                    f"{setup.stdout[-2000:]}\n{setup.stderr[-2000:]}")


def isolated_home(home: Path) -> Path:
    """An FTKIT_HOME of its own (groups, runs) that shares the real one's model cache."""
    real = Path(os.environ.get("FTKIT_HOME") or Path.home() / ".cache" / "ftkit")
    home.mkdir()
    if real.is_dir():
        for entry in real.iterdir():
            if entry.name not in ("groups", "runs"):
                (home / entry.name).symlink_to(entry)
    return home


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def jupyterlab(tmp_path):
    """(base URL, token, FTKIT_HOME) of a JupyterLab serving a copy of lesson 11."""
    if not LESSON.is_file():
        pytest.fail(f"{LESSON} is missing")
    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(LESSON, served / LESSON.name)
    lab_settings(tmp_path / "jupyter-config")
    port, token = free_port(), secrets.token_hex(16)
    home = isolated_home(tmp_path / "ftkit-home")
    env = {**os.environ, "FTKIT_HOME": str(home), "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"), "PYTHONUNBUFFERED": "1"}
    log = open(tmp_path / "jupyterlab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={served}",
         f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}"]
        + (["--allow-root"] if os.geteuid() == 0 else []),  # CI and dev machines run as root
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail("JupyterLab did not start:\n" + (tmp_path / "jupyterlab.log").read_text()[-3000:])
            time.sleep(0.5)
        yield base, token, home
    finally:
        shutdown_kernels(base, token)
        stop_group(server)
        log.close()


def shutdown_kernels(base: str, token: str) -> None:
    """Ask the server to stop its kernels (they run in sessions of their own)."""
    headers = {"Authorization": f"token {token}"}
    try:
        with urllib.request.urlopen(urllib.request.Request(f"{base}/api/kernels", headers=headers),
                                    timeout=5) as reply:
            kernels = json.load(reply)
        for kernel in kernels:
            request = urllib.request.Request(f"{base}/api/kernels/{kernel['id']}", method="DELETE",
                                             headers=headers)
            urllib.request.urlopen(request, timeout=30).close()
    except OSError:
        pass  # the server is gone already; its kernels went with its shutdown


def stop_group(server: subprocess.Popen) -> None:
    """Stop the server and the kernels it started (its own process group), then reap it."""
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
    server.wait()


def lab_settings(config_dir: Path) -> None:
    """Render every cell (no windowing, so the test sees them all) and ask nothing about news."""
    settings = config_dir / "lab" / "user-settings" / "@jupyterlab"
    for plugin, values in {"notebook-extension/tracker": {"windowingMode": "none"},
                           "apputils-extension/notification": {"fetchNews": "false"}}.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def kernel_states(base: str, token: str) -> list[str]:
    request = urllib.request.Request(f"{base}/api/kernels", headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        return [kernel["execution_state"] for kernel in json.load(reply)]


def run_all_cells(page, base: str, token: str) -> None:
    """Run All, then wait until the kernel has been busy and stays idle for 10 s."""
    page.get_by_role("menuitem", name="Run", exact=True).click()  # the menu bar's Run menu
    page.locator('.lm-Menu-item[data-command="runmenu:run-all"]').click()
    deadline, seen_busy, idle_polls = time.monotonic() + RUN_ALL_TIMEOUT_S, False, 0
    while time.monotonic() < deadline:
        page.wait_for_timeout(2000)
        states = kernel_states(base, token)
        seen_busy = seen_busy or "busy" in states
        idle_polls = idle_polls + 1 if seen_busy and states == ["idle"] else 0
        if idle_polls >= 5:
            return
    pytest.fail(f"lesson 11 did not finish within {RUN_ALL_TIMEOUT_S} s in the browser")


def test_lesson_11_runs_in_jupyterlab_and_the_panel_answers_clicks(jupyterlab, tmp_path):
    ensure_browser()
    from playwright.sync_api import expect, sync_playwright

    base, token, home = jupyterlab
    expect.set_options(timeout=30_000)  # a busy 2-core machine answers slowly
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1000})
        page = browser.new_page()
        try:
            page.goto(f"{base}/lab/tree/{LESSON.name}?token={token}")
            expect(page.locator(".jp-Notebook")).to_be_visible(timeout=60_000)
            page.wait_for_timeout(3000)  # let the kernel start before Run All
            run_all_cells(page, base, token)

            errors = page.locator('[data-mime-type="application/vnd.jupyter.error"]')
            if errors.count():
                pytest.fail("a cell raised in the browser:\n" + "\n".join(errors.all_inner_texts())[-3000:])

            panel = page.locator(".ftkit-training-panel").first
            expect(panel).to_be_visible(timeout=30_000)
            panel.scroll_into_view_if_needed()
            yaml_view = panel.locator(".ftkit-config-yaml")
            expect(yaml_view).to_contain_text("learning_rate")

            # A click on FP16 reaches the kernel, which re-validates and re-renders the YAML.
            expect(yaml_view).to_contain_text("fp16: false")
            fp16 = panel.locator(".ftkit-field-fp16 input[type=checkbox]")
            fp16.click()
            expect(fp16).to_be_checked()
            expect(yaml_view).to_contain_text("fp16: true")
            fp16.click()
            expect(yaml_view).to_contain_text("fp16: false")

            # A bad value typed into Epochs is marked at the field, and Train is disabled.
            epochs = panel.locator(".ftkit-field-num_train_epochs input")
            epochs.fill("0")
            epochs.press("Enter")
            expect(panel.locator(".ftkit-field-num_train_epochs.ftkit-invalid")).to_be_attached()
            expect(panel).to_contain_text("greater than 0")
            expect(panel.locator(".ftkit-train-button")).to_be_disabled()
            epochs.fill("1")
            epochs.press("Enter")
            expect(panel.locator(".ftkit-train-button")).to_be_enabled()

            # Save group: the click writes a group file through the kernel.
            name = f"browser-{secrets.token_hex(3)}"
            group_box = panel.locator(".ftkit-group-name input")
            group_box.fill(name)
            group_box.press("Enter")
            panel.locator(".ftkit-save-group").click()
            expect(panel).to_contain_text(re.compile(rf"saved \S+/{name}"))
            saved = list(home.glob(f"groups/*/{name}.yaml"))
            assert len(saved) == 1, f"Save group wrote no {name}.yaml under {home / 'groups'}"
            saved[0].unlink()

            panel.scroll_into_view_if_needed()
            shot = tmp_path / "lesson11_panel.png"
            panel.screenshot(path=str(shot))
        except BaseException:
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=False)
            print(f"screenshot of the failure: {tmp_path / 'failure.png'}")
            raise
        finally:
            browser.close()
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / ".gitignore").write_text("*\n")  # screenshots stay out of git
    kept = ARTIFACTS / shot.name
    shutil.copy(shot, kept)
    assert shot.stat().st_size > 10_000, "the screenshot is suspiciously small"
    print(f"screenshot: {shot}\nscreenshot copy: {kept}")
