"""FSDP2 (torch's fully_shard) on 2 CPU processes over gloo: each process holds half of every
parameter, its gradient and its AdamW state, as ftkit.vram.estimate(..., gpus=2, zero=3) says
for float32; and the losses equal one process with gradient accumulation 2. The run is
benchmarks/sharding.py's worker (the same code the benchmark and lesson 09 report)."""

import sys

import pytest

from ftkit.paths import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import sharding  # noqa: E402  (benchmarks/sharding.py)


@pytest.mark.slow
def test_fully_shard_halves_every_component_and_keeps_the_losses(tmp_path):
    rows = sharding.measure(("fsdp2",), tmp_path)
    total = sum(p.numel() for p in sharding.tiny_model().parameters())
    held = {row["component"]: row["measured"] for row in rows}
    assert held["params"] == [total * 4 // 2] * 2  # float32, half each
    assert held["gradients"] == [total * 4 // 2] * 2
    assert held["optimizer"] == [total * 8 // 2] * 2  # exp_avg + exp_avg_sq of the local shard
    for row in rows:
        assert row["error"] <= sharding.TARGET, row
        assert row["loss_error"] <= sharding.LOSS_TOLERANCE, row
