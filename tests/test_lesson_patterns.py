"""Lessons hold no pattern that broke them on a GPU or on another model.

Each pattern below once made a lesson crash on CUDA or assume SmolLM2: a device fixed to
the CPU, tokenized inputs left where the tokenizer put them, the default model's sizes or its
ChatML tokens written as literals, or its name outside the parameters cell (where a learner
changes it). The sizes are read from the default model's own config, so the test follows it.
"""

import json
import re
from pathlib import Path

import pytest

from ftkit.paths import REPO_ROOT

LESSONS = sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]*_*.ipynb"))
DEFAULT_MODEL = "smollm2-135m-instruct"


def default_model_sizes() -> set[int]:
    from ftkit.vram.params import count_model_parameters, load_model_config

    config = load_model_config(DEFAULT_MODEL)
    sizes = {count_model_parameters(DEFAULT_MODEL)}
    sizes |= {config[key] for key in ("vocab_size", "hidden_size", "intermediate_size")}
    return {size for size in sizes if size >= 256}  # small numbers are everywhere for other reasons


def number_pattern(value: int) -> str:
    """``49152`` also written ``49_152``, not inside a longer number."""
    digits = str(value)
    grouped = f"{int(digits):_}"
    return rf"(?<![\w.])(?:{digits}|{grouped})(?![\w])"


def rules() -> dict[str, re.Pattern]:
    sizes = "|".join(number_pattern(v) for v in sorted(default_model_sizes()))
    return {
        "a device fixed to one kind (follow model.device or the parameters cell's DEVICE)":
            re.compile(r"""^\s*[A-Za-z_]*device[A-Za-z_]*\s*=\s*["'](?:cpu|cuda)(?::\d+)?["']\s*(?:#.*)?$""",
                       re.IGNORECASE),
        "a size of the default model written as a literal (read it from the config)":
            re.compile(sizes),
        "ChatML tokens written out (apply the tokenizer's chat template instead)":
            re.compile(r"<\|im_(?:start|end)\|>"),
    }


TENSORS = re.compile(r"""return_tensors\s*=\s*["']pt["']""")


def code_cells(notebook: Path):
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    for index, cell in enumerate(cells):
        if cell["cell_type"] == "code":
            yield index, "".join(cell["source"])


def findings(notebook: Path) -> list[str]:
    found = []
    patterns = rules()
    for index, source in code_cells(notebook):
        if TENSORS.search(source) and ".to(" not in source:
            found.append(f"cell {index}: tokenized inputs never moved to the model's device "
                         "(.to(model.device))")
        parameters = re.search(r"^MODEL\s*=", source, re.MULTILINE) is not None
        for line in source.splitlines():
            for why, pattern in patterns.items():
                if pattern.search(line):
                    found.append(f"cell {index}: {why}: {line.strip()}")
            if DEFAULT_MODEL in line and not parameters:
                found.append(f"cell {index}: the default model named outside the parameters cell "
                             f"(use MODEL): {line.strip()}")
    return found


@pytest.mark.parametrize("notebook", LESSONS, ids=lambda p: p.name)
def test_lesson_has_no_pattern_that_broke_portability(notebook):
    assert findings(notebook) == []


@pytest.mark.parametrize("line", [
    'DEVICE = "cpu"',
    'device="cuda"',
    'ids = tokenizer("Who are you?", return_tensors="pt")',
    "assert result.params.total - 134_515_008 == result.params.trainable",
    "logits.shape[-1] == 49152",
    'prompt = "<|im_start|>user\\nhi<|im_end|>"',
    'model = models.load_model("smollm2-135m-instruct")',
])
def test_each_rule_catches_what_it_names(tmp_path, line):
    lesson = tmp_path / "99_bad.ipynb"
    lesson.write_text(json.dumps({"cells": [
        {"cell_type": "code", "source": ['MODEL = "smollm2-135m-instruct"\n']},
        {"cell_type": "code", "source": [line]}]}))
    assert len(findings(lesson)) == 1


def test_portable_lines_pass(tmp_path):
    lesson = tmp_path / "99_good.ipynb"
    lesson.write_text(json.dumps({"cells": [{"cell_type": "code", "source": [
        'ids = tokenizer("Hi", return_tensors="pt").to(model.device)\n',
        "DEVICE = models.pick_device()\n",
        "total = count_model_parameters(MODEL)\n"]}]}))
    assert findings(lesson) == []


# --- the checks themselves: making a lesson portable must not remove any -----------------

ASSERT_FLOOR = REPO_ROOT / "tests" / "lesson_asserts.json"


def count_checks(notebook: Path) -> dict[str, int]:
    """``{"all": n, "outcomes": m}``: assert statements and ``assert_*`` calls in the code
    cells, and how many of them sit under ``if OUTCOMES:`` (skipped by make test-portable)."""
    import ast

    counts = {"all": 0, "outcomes": 0}
    for _, source in code_cells(notebook):
        code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
        tree = ast.parse(code)
        outcome_nodes = {id(node) for branch in ast.walk(tree)
                         if isinstance(branch, ast.If) and isinstance(branch.test, ast.Name)
                         and branch.test.id == "OUTCOMES"
                         for node in ast.walk(branch)}
        for node in ast.walk(tree):
            call = isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")).startswith("assert_")
            if isinstance(node, ast.Assert) or call:
                counts["all"] += 1
                counts["outcomes"] += id(node) in outcome_nodes
    return counts


@pytest.mark.parametrize("notebook", LESSONS, ids=lambda p: p.name)
def test_no_lesson_loses_checks(notebook):
    """Under the default model every check runs; their number per lesson does not fall below
    the recorded floor (raise the floor in tests/lesson_asserts.json when checks are added)."""
    floor = json.loads(ASSERT_FLOOR.read_text())[notebook.name]
    counts = count_checks(notebook)
    assert counts["all"] >= floor, (counts, floor)
    assert counts["outcomes"] < counts["all"] / 2 or counts["all"] < 4, counts  # mostly mechanisms


def test_checks_are_counted(tmp_path):
    lesson = tmp_path / "99_x.ipynb"
    lesson.write_text(json.dumps({"cells": [{"cell_type": "code", "source": [
        "%matplotlib inline\n", "assert 1\n", "torch.testing.assert_close(a, b)\n",
        "if OUTCOMES:\n", "    assert 'Paris' in answer\n"]}]}))
    assert count_checks(lesson) == {"all": 3, "outcomes": 1}
