"""Smoke tests of the benchmarks' plumbing (benchmarks/throughput.py, matmul_ceiling.py,
course_runtime.py): the JSON they print and the token counts they compare. No timing asserts."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _module(name: str):
    sys.path.insert(0, str(BENCHMARKS))  # throughput imports matmul_ceiling by name
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lora_flops_formula():
    ceiling = _module("matmul_ceiling")
    n, adapter = 134_515_008, 2_442_240
    assert ceiling.lora_flops_per_token(n, adapter) == 4 * n + 6 * adapter
    assert ceiling.lora_flops_per_token(n, adapter, checkpointing=True) == 6 * n + 6 * adapter
    assert ceiling.full_flops_per_token(n) == 6 * n


def test_ceiling_reports_both_dtypes():
    result = _module("matmul_ceiling").ceiling(tokens=8, repeats=1)
    for key in ("fp32_gflops", "bf16_gflops", "fp32_peak_gflops", "bf16_peak_gflops"):
        assert result[key] > 0
    assert len(result["fp32_by_shape"]) == 5


def test_course_runtime_table():
    runtime = _module("course_runtime")
    rows = [{"notebook": "notebooks/00_welcome.ipynb", "seconds": 61.0, "passed": True},
            {"notebook": "notebooks/04_lora.ipynb", "seconds": 203.0, "passed": False}]
    table = runtime.markdown_table(rows)
    assert "| notebooks/00_welcome.ipynb | 1.0 | pass |" in table
    assert "| notebooks/04_lora.ipynb | 3.4 | FAIL |" in table
    assert "4.4" in table.splitlines()[-1]  # the total, in minutes


@pytest.mark.slow
@pytest.mark.benchmark  # trains three pipelines: run by `make bench`, not `make test`
def test_three_pipelines_train_on_the_same_real_tokens():
    throughput = _module("throughput")
    lines = []
    # 8 examples, batch 4: one epoch is two steps; 128 tokens cut none of them.
    result = throughput.benchmark(8, max_seq_length=128, log=lines.append)
    json.dumps(result)  # --json prints exactly this object
    for key in ("ratio_vs_naive", "ratio_vs_trl", "pipelines", "settings", "machine", "date"):
        assert key in result, key
    runs = result["pipelines"]
    assert set(runs) == {"naive", "trl", "ftkit"}
    for run in runs.values():
        for key in ("real_tokens", "tokens_per_second", "peak_rss_mb", "last_loss", "answer_loss", "steps"):
            assert run[key] is not None, (run["name"], key)
        assert run["steps"] == 2
    # Padding is not counted: every pipeline saw exactly the tokens of the 8 conversations.
    tokenizer = throughput.models.load_tokenizer(None)
    expected = sum(len(ids) for ids in throughput.Tokenized(
        throughput.load_examples(8), tokenizer, 128).dataset["input_ids"])
    assert {run["real_tokens"] for run in runs.values()} == {expected}
    assert result["ratio_vs_naive"] == pytest.approx(
        runs["ftkit"]["tokens_per_second"] / runs["naive"]["tokens_per_second"], rel=1e-2)
