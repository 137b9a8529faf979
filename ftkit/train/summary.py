"""``run_summary.json``: the facts of a finished run, in one small file.

Taught in lesson 03. Keys every stage writes: ``method``, ``stage``, ``steps``,
``first_loss``, ``last_loss``, ``train_loss`` (mean over the run), ``eval_loss`` (of the
final model, when there is evaluation data), ``tokens_per_second`` (real tokens: padding
does not count), ``train_seconds``, ``world_size``, parameter counts, ``memory`` =
``{predicted_bytes, measured_bytes, measured_parts}`` from ``ftkit.vram``, and the
evaluation (see :func:`evaluation_summary`): ``curves`` (``train`` and ``eval`` as
``[step, loss]`` pairs), ``final_eval`` (the final evaluation's metrics), ``best_step``,
``best_metric``, ``metric_for_best_model``, ``stopped_early``. Stages add their own keys.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..eval.run_doctor import diagnose

SUMMARY_FILE = "run_summary.json"


def logged(history: list[dict], key: str, among: str | None = None) -> list:
    """Every value of ``key`` in a Trainer ``log_history``, in order (only in rows that also
    hold ``among``, e.g. the training rows of a metric TRL logs at train and eval time)."""
    return [row[key] for row in history if key in row and (among is None or among in row)]


def first_logged(history: list[dict], key: str, among: str | None = None):
    values = logged(history, key, among)
    return values[0] if values else None


def last_logged(history: list[dict], key: str, among: str | None = None):
    values = logged(history, key, among)
    return values[-1] if values else None


def curves(history: list[dict]) -> dict[str, list[list]]:
    """``{"train": [[step, loss], ...], "eval": [[step, eval_loss], ...]}`` of a run."""
    return {"train": [[row["step"], row["loss"]] for row in history if "loss" in row],
            "eval": [[row["step"], row["eval_loss"]] for row in history if "eval_loss" in row]}


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
        "first_loss": first_logged(history, "loss"),
        "last_loss": last_logged(history, "loss"),
        "train_loss": train_metrics.get("train_loss"),
        "eval_loss": last_logged(history, "eval_loss"),
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


def evaluation_summary(trainer, final_eval: dict | None, stopped_early: bool) -> dict:
    """The evaluation part of the summary: curves, the final evaluation, the best checkpoint.

    ``best_step`` / ``best_metric`` are Trainer's own record (set when
    ``metric_for_best_model`` is, or ``load_best_model_at_end`` sets it to the loss).
    """
    state, args = trainer.state, trainer.args
    best = Path(state.best_model_checkpoint).name if state.best_model_checkpoint else None
    return {"curves": curves(state.log_history),
            "final_eval": final_eval,
            "metric_for_best_model": args.metric_for_best_model,
            "best_metric": state.best_metric,
            "best_step": state.best_global_step,
            "best_checkpoint": best,
            "loaded_best_model": bool(args.load_best_model_at_end and best),
            "stopped_early": stopped_early,
            # the run doctor: NaN, spikes, plateau, divergence, grad norms, overfitting
            "doctor": [f.to_dict() for f in diagnose(state.log_history)]}


def write_summary(summary: dict, output_dir) -> Path:
    path = Path(output_dir) / SUMMARY_FILE
    path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return path


def read_summary(output_dir) -> dict:
    return json.loads((Path(output_dir) / SUMMARY_FILE).read_text(encoding="utf-8"))
