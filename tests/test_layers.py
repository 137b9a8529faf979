"""The module map holds: import-linter's contracts (pyproject.toml) and ruff pass, and a
deliberate violation inside a function body breaks the contracts, so they can fail."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ftkit.paths import REPO_ROOT

BIN = Path(sys.executable).parent


def lint_imports(root: Path):
    """``lint-imports`` on the ftkit package under ``root``, with ``root``'s pyproject.toml."""
    env = {**os.environ, "PYTHONPATH": str(root)}  # that copy of ftkit, not the installed one
    return subprocess.run([str(BIN / "lint-imports"), "--no-cache"], cwd=root, env=env,
                          capture_output=True, text=True)


def test_import_contracts_hold():
    done = lint_imports(REPO_ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_ruff_finds_nothing():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "ftkit", "tests",
                           "benchmarks"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("module, line, contract", [
    # a model loader that starts a run: core -> train
    ("models.py", "from .train import finetune", "core (config, data"),
    # a figure that opens a panel: plots -> widgets, and widgets -> plots closes a cycle
    ("plots/vram.py", "from ..widgets import vram_panel", "no import cycles"),
])
def test_a_function_level_violation_breaks_a_contract(tmp_path, module, line, contract):
    shutil.copytree(REPO_ROOT / "ftkit", tmp_path / "ftkit",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path)
    assert lint_imports(tmp_path).returncode == 0  # the copy passes before the edit
    with open(tmp_path / "ftkit" / module, "a") as handle:
        handle.write(f"\n\ndef _violation():\n    {line}  # inside a function: still an import\n")
    done = lint_imports(tmp_path)
    assert done.returncode != 0
    broken = done.stdout[done.stdout.index("Broken contracts"):]
    assert contract in broken, done.stdout
