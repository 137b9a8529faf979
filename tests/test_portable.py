"""Every lesson runs on a model of another family (``make test-portable``).

Each lesson is executed with its parameters cell's ``MODEL`` set to a tiny random-initialised
model (:mod:`ftkit.tiny`): a Qwen2-style one (biased q/k/v, untied head) and a GPT-2-style one
(fused ``Conv1D`` attention), both with a Llama-3 style chat template. ``OUTCOMES = False`` skips
the checks of what the default model learns, which a random model cannot pass; every other
assert (hand = library, shapes, counts from the config) runs. A lesson that assumed SmolLM2's
sizes, module names or ChatML fails here.
"""

import json
import os
import re
from pathlib import Path

import pytest

from ftkit import tiny
from ftkit.paths import REPO_ROOT

NOTEBOOKS = REPO_ROOT / "notebooks"
LESSONS = sorted(NOTEBOOKS.glob("[0-9][0-9]*_*.ipynb"))
CELL_TIMEOUT = 900

pytestmark = pytest.mark.portable


def parameters_cell(cells) -> int:
    for index, cell in enumerate(cells):
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            return index
    raise AssertionError("the lesson has no cell tagged 'parameters'")


def execute(lesson: Path, overrides: dict, allow_errors: bool = False):
    """The lesson executed with ``overrides`` appended to its parameters cell."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(lesson, as_version=4)
    cell = notebook.cells[parameters_cell(notebook.cells)]
    cell.source += "\n# make test-portable\n" + "".join(f"{k} = {v!r}\n" for k, v in overrides.items())
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name="python3",
                            allow_errors=allow_errors,
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    return notebook


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def errors(notebook) -> list[str]:
    """``cell N: line: Error: message`` for each failed cell (the line is the failing one)."""
    found = []
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                arrows = [ANSI.sub("", line) for line in output.get("traceback", [])]
                arrows = [line.split("\n")[0] for text in arrows for line in text.split("---> ")[1:]]
                where = arrows[0].strip() if arrows else ""
                found.append(f"cell {index}: {where}: {output['ename']}: {output['evalue'][:300]}")
    return found


@pytest.fixture(scope="session", params=sorted(tiny.FAMILIES))
def foreign_model(request, tmp_path_factory):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return tiny.build(request.param, tmp_path_factory.mktemp(f"tiny-{request.param}"))


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_lesson_runs_on_another_family(lesson, foreign_model):
    notebook = execute(lesson, {"MODEL": str(foreign_model), "OUTCOMES": False}, allow_errors=True)
    assert errors(notebook) == []


if __name__ == "__main__":  # python tests/test_portable.py MODEL_DIR LESSON...: errors of each
    import sys

    for name in sys.argv[2:]:
        result = execute(Path(name), {"MODEL": sys.argv[1], "OUTCOMES": False}, allow_errors=True)
        saved = Path("/tmp/portable") / Path(sys.argv[1]).name / Path(name).name
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(result, ensure_ascii=False, indent=1))
        print(json.dumps({"lesson": name, "errors": errors(result)}, ensure_ascii=False), flush=True)
