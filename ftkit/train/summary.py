"""``run_summary.json``: the facts of a finished run, in one small file.

Taught in lesson 03. Keys: ``method``, ``steps``, ``first_loss``, ``last_loss``,
``train_loss`` (mean over the run), ``eval_loss`` (when evaluated), ``tokens_per_second``
(real tokens: padding does not count), ``train_seconds``, ``world_size``, parameter
counts, and ``memory`` = ``{predicted_bytes, measured_bytes}`` from ``ftkit.vram``.
"""

from __future__ import annotations

import json
from pathlib import Path

SUMMARY_FILE = "run_summary.json"


def _last(history, key):
    values = [row[key] for row in history if key in row]
    return values[-1] if values else None


def _first(history, key):
    values = [row[key] for row in history if key in row]
    return values[0] if values else None


def build_summary(cfg, trainer, train_metrics: dict, params, real_tokens: int,
                  memory: dict, packing: bool) -> dict:
    history = trainer.state.log_history
    seconds = float(train_metrics.get("train_runtime", 0.0))
    return {
        "method": cfg.method,
        "stage": cfg.stage,
        "model": cfg.model_name_or_path,
        "steps": trainer.state.global_step,
        "epochs": round(float(trainer.state.epoch or 0.0), 4),
        "first_loss": _first(history, "loss"),
        "last_loss": _last(history, "loss"),
        "train_loss": train_metrics.get("train_loss"),
        "eval_loss": _last(history, "eval_loss"),
        "tokens": real_tokens,
        "tokens_per_second": real_tokens / seconds if seconds else None,
        "train_seconds": seconds,
        "world_size": trainer.args.world_size,
        "trainable_params": params.trainable,
        "total_params": params.total,
        "packing": packing,
        "precision": "bf16" if cfg.bf16 else "fp16" if cfg.fp16 else "fp32",
        "memory": memory,
        "output_dir": str(trainer.args.output_dir),
    }


def write_summary(summary: dict, output_dir) -> Path:
    path = Path(output_dir) / SUMMARY_FILE
    path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return path


def read_summary(output_dir) -> dict:
    return json.loads((Path(output_dir) / SUMMARY_FILE).read_text(encoding="utf-8"))
