"""`make lab`, the README's first command: JupyterLab serves the notebooks as root and as an
ordinary user, and the URL it prints (with its token) logs in."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from ftkit.paths import REPO_ROOT

# `-o setup`: the environment is set up already (this test runs inside it; setup's own run is
# what every `make test` starts with), and VENV names it, be it .venv or a conda environment.
MAKE_LAB = ["make", "--no-print-directory", "-o", "setup", "lab", f"VENV={sys.prefix}"]
URL = re.compile(r"JupyterLab: (http://localhost:(\d+)/lab\?token=(\w+))")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def status(port: int, token: str | None) -> int:
    """HTTP status of the server's /api/status, with or without the token."""
    query = f"?token={token}" if token else ""
    try:
        with urllib.request.urlopen(f"http://localhost:{port}/api/status{query}", timeout=2) as reply:
            return reply.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:  # not listening yet
        return 0


def test_make_lab_serves_the_notebooks_and_prints_its_url(tmp_path):
    port = free_port()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_DATA_DIR": str(tmp_path / "data")}
    log = tmp_path / "lab.log"
    with open(log, "w") as out:
        # A process group of its own: make, the shell, JupyterLab and any kernel stop together.
        lab = subprocess.Popen(MAKE_LAB + [f"LAB_PORT={port}", "LAB_BROWSER=no"], cwd=REPO_ROOT,
                               env=env, stdout=out, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        deadline, url = time.monotonic() + 120, None
        while True:
            text = log.read_text()
            url = url or URL.search(text)
            if url and status(port, url[3]) == 200:
                break
            if lab.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"make lab did not serve (exit {lab.poll()}):\n{text[-3000:]}")
            time.sleep(0.5)
        assert int(url[2]) == port
        assert status(port, None) == 403  # the token is what lets one in
        assert "--allow-root" not in text  # the flag is passed quietly, not complained about
    finally:
        os.killpg(lab.pid, signal.SIGTERM)
        try:
            lab.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(lab.pid, signal.SIGKILL)
            lab.wait()


@pytest.mark.parametrize("uid, root_flag", [("0", True), ("1000", False)])
def test_allow_root_is_passed_exactly_for_root(tmp_path, uid, root_flag):
    # `id` answers for another user; `make -n` prints the command it would run.
    (tmp_path / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    (tmp_path / "id").chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    done = subprocess.run(MAKE_LAB + ["-n", "LAB_PORT=9999"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"{sys.prefix}/bin/jupyter lab notebooks/" in done.stdout
    assert "--ServerApp.port=9999" in done.stdout
    assert ("--allow-root" in done.stdout) == root_flag
    assert "--no-browser" not in done.stdout  # a browser opens unless LAB_BROWSER=no
