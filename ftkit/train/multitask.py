"""Multi-task training: several tasks in one run, mixed by weight, with a loss per task.

Taught in lesson 09 (``notebooks/09_multitask_and_scale.ipynb``). Reading, weighting and
mixing the tasks is data (:mod:`ftkit.data.mixing`); this stage adds what training needs:

*Loss weighting* decides how much each task's tokens count (``task_loss_weighting``):
``none`` is plain SFT (every answer token alike); ``static`` multiplies each token's loss
by its task's weight; ``dynamic`` (seed 004's "adjust task weights through the loss")
starts from the static weights and raises the weight of tasks whose loss has fallen least,
relative to where it started (GradNorm's inverse training rate, without its gradients).

During training ``loss/<task>`` is logged next to ``loss``; evaluation adds
``eval_loss/<task>``; ``run_summary.json`` carries ``per_task_loss`` (task -> loss of the
final model, on the held-out rows when there are any: ``per_task_loss_on``), ``task_counts``
(examples per task in the mixed set), ``task_weights``, ``mix_strategy`` and
``task_loss_weighting``. ``finetune`` picks this stage when :func:`is_multitask` says so.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import TrainerCallback
from transformers.trainer_utils import get_last_checkpoint

from ..data.mixing import TASK_ID_COLUMN, check_task_weights, mixture_probabilities, prepare_tasks
from ..errors import ConfigError
from . import collate, distributed
from .recipe import FtkitTrainer, RunResult, Stage, StageData, data_path, run

# check_task_weights and mixture_probabilities live in ftkit.data.mixing; lesson 09 imports
# them from here.
__all__ = ["is_multitask", "TaskCollator", "TaskWeights", "SaveTaskWeights", "resume_task_weights",
           "token_losses", "MultiTaskTrainer",
           "per_task_loss", "MultiTaskStage", "STAGE", "train_multitask", "check_task_weights",
           "mixture_probabilities"]


def is_multitask(cfg) -> bool:
    """True when a config asks for mixing or task weighting (``finetune`` dispatches on it)."""
    return bool(cfg.task_weights or cfg.mix_strategy != "concat"
                or cfg.task_loss_weighting != "none" or "," in (cfg.train_file or ""))


class TaskCollator:
    """Pad like finetune, and carry each example's ``task_id`` along as a tensor."""

    def __init__(self, tokenizer):
        self.inner = collate.padding_collator(tokenizer)

    def __call__(self, features):
        batch = self.inner(features)
        batch["task_id"] = torch.tensor([f[TASK_ID_COLUMN] for f in features], dtype=torch.long)
        return batch


class TaskWeights:
    """Per-task loss weights: fixed (static), or moved by each task's progress (dynamic)."""

    def __init__(self, tasks, weights: dict, mode: str = "none", momentum: float = 0.8):
        self.tasks, self.mode, self.momentum = list(tasks), mode, momentum
        self.static = torch.tensor([weights[t] for t in self.tasks], dtype=torch.float32)
        self.first = torch.full((len(self.tasks),), float("nan"))
        self.smooth = torch.full((len(self.tasks),), float("nan"))

    def current(self) -> torch.Tensor:
        if self.mode != "dynamic" or torch.isnan(self.smooth).all():
            return self.static.clone()
        # Inverse training rate: a task still near its starting loss gets more weight.
        rate = torch.where(torch.isnan(self.smooth), torch.ones_like(self.smooth), self.smooth / self.first)
        weights = self.static * rate
        active = self.static > 0
        return weights * active.sum() / weights[active].sum().clamp(min=1e-8)

    def update(self, sums: torch.Tensor, counts: torch.Tensor) -> None:
        seen = counts > 0
        mean = torch.where(seen, sums / counts.clamp(min=1), torch.nan)
        self.first = torch.where(torch.isnan(self.first) & seen, mean, self.first)
        blended = self.momentum * self.smooth + (1 - self.momentum) * mean
        self.smooth = torch.where(seen, torch.where(torch.isnan(self.smooth), mean, blended), self.smooth)

    def state_dict(self) -> dict:
        return {"tasks": self.tasks, "first": self.first.tolist(), "smooth": self.smooth.tolist()}

    def load_state_dict(self, state: dict) -> None:
        self.first = torch.tensor(state["first"], dtype=torch.float32)
        self.smooth = torch.tensor(state["smooth"], dtype=torch.float32)


TASK_WEIGHTS_FILE = "task_weights.json"


class SaveTaskWeights(TrainerCallback):
    """Write the dynamic weights' running state into each checkpoint, so a resumed run goes
    on weighting the tasks as the uninterrupted one does (Trainer saves only its own state)."""

    def __init__(self, weights: TaskWeights):
        self.weights = weights

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if state.is_world_process_zero and folder.is_dir():
            (folder / TASK_WEIGHTS_FILE).write_text(json.dumps(self.weights.state_dict()))


def resume_task_weights(weights: TaskWeights, cfg) -> None:
    """Load the weights' state from the checkpoint a resumed run starts from (when it has one)."""
    checkpoint = cfg.resume_from_checkpoint
    if checkpoint is True:
        checkpoint = get_last_checkpoint(cfg.output_dir) if Path(cfg.output_dir).is_dir() else None
    path = Path(checkpoint) / TASK_WEIGHTS_FILE if checkpoint else None
    if path is not None and path.exists():
        weights.load_state_dict(json.loads(path.read_text()))


def token_losses(logits, labels):
    """``(loss per token, mask)`` of next-token prediction: position i predicts token i + 1."""
    shifted = labels[:, 1:]
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].float().transpose(1, 2), shifted,
                                             ignore_index=-100, reduction="none")
    return loss, shifted != -100


class MultiTaskTrainer(FtkitTrainer):
    """``FtkitTrainer`` that tracks the loss of each task and can weight the tasks' tokens."""

    def __init__(self, *args, tasks=(), weights=None, weighting: str = "none", **kwargs):
        super().__init__(*args, **kwargs)
        self.tasks, self.weighting = list(tasks), weighting
        self.task_weights = TaskWeights(self.tasks, weights or {t: 1.0 for t in self.tasks}, weighting)
        self._sums = {m: torch.zeros(len(self.tasks), dtype=torch.float64) for m in ("train", "eval")}
        self._counts = {m: torch.zeros(len(self.tasks), dtype=torch.float64) for m in ("train", "eval")}
        if weighting != "none":
            self.loss_is_scaled_for_ga = False  # our loss is a per-batch mean: Trainer divides by GA

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        task_id = inputs.pop("task_id")
        loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
        per_token, mask = token_losses(outputs.logits, inputs["labels"])
        mode = "train" if model.training else "eval"
        sums = torch.zeros(len(self.tasks), device=per_token.device).index_add_(
            0, task_id.to(per_token.device), (per_token * mask).sum(1).detach())
        counts = torch.zeros(len(self.tasks), device=per_token.device).index_add_(
            0, task_id.to(per_token.device), mask.sum(1).float())
        self._sums[mode] += sums.double().cpu()
        self._counts[mode] += counts.double().cpu()
        if model.training and self.weighting != "none":
            self.task_weights.update(sums.float().cpu(), counts.float().cpu())
            token_weight = self.task_weights.current().to(per_token.device)[task_id][:, None] * mask
            loss = (per_token * token_weight).sum() / token_weight.sum().clamp(min=1e-8)
        return (loss, outputs) if return_outputs else loss

    def _task_means(self, mode: str, prefix: str) -> dict:
        sums = distributed.all_reduce_sum(self._sums[mode].clone())
        counts = distributed.all_reduce_sum(self._counts[mode].clone())
        self._sums[mode].zero_()
        self._counts[mode].zero_()
        return {f"{prefix}/{task}": float(s / c) for task, s, c in zip(self.tasks, sums, counts) if c > 0}

    def log(self, logs: dict, start_time=None) -> None:
        if "loss" in logs:
            logs.update(self._task_means("train", "loss"))
            if self.weighting == "dynamic":
                logs.update({f"task_weight/{t}": float(w)
                             for t, w in zip(self.tasks, self.task_weights.current())})
        super().log(logs, start_time)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval"):
        self._sums["eval"].zero_()
        self._counts["eval"].zero_()
        metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        per_task = self._task_means("eval", f"{metric_key_prefix}_loss")
        if per_task:
            self.log(dict(per_task))
            metrics.update(per_task)
        return metrics


def per_task_loss(result_or_trainer, dataset=None) -> dict:
    """``{task: mean token loss}`` of the trained model on ``dataset`` (default: the eval set)."""
    trainer = getattr(result_or_trainer, "trainer", result_or_trainer)
    metrics = trainer.evaluate(eval_dataset=dataset, metric_key_prefix="task")
    return {key.split("/", 1)[1]: value for key, value in metrics.items()
            if key.startswith("task_loss/")}


class MultiTaskStage(Stage):
    name = "multitask"

    def check(self, cfg):
        if cfg.stage != "sft":
            raise ConfigError(f"multi-task training is supervised (stage sft), not stage {cfg.stage}: "
                              "remove task_weights / mix_strategy / task_loss_weighting, or set stage: sft")
        if cfg.packing:
            print("ftkit: packing is off for multi-task runs: each row must belong to one task.")

    def arguments(self, cfg, args):
        args["prediction_loss_only"] = True  # evaluation needs losses, never the full logits tensors
        return super().arguments(cfg, args)

    def data(self, cfg, tokenizer, verbose):
        train, evaluation, tasks, weights, counts = prepare_tasks(cfg, tokenizer, data_path, verbose)
        if verbose:
            print(f"multi-task mixture ({cfg.mix_strategy}): "
                  + ", ".join(f"{t} {counts[t]}" for t in tasks)
                  + f"; loss weighting {cfg.task_loss_weighting}")
        return StageData(train, evaluation, info={"tasks": tasks, "weights": weights, "counts": counts})

    def trainer(self, cfg, model, args, stage_data, tokenizer, callbacks, **kwargs):
        info = stage_data.info
        trainer = MultiTaskTrainer(
            model=model, args=args, data_collator=TaskCollator(tokenizer),
            train_dataset=stage_data.train, eval_dataset=stage_data.eval, processing_class=tokenizer,
            callbacks=callbacks, tasks=info["tasks"], weights=info["weights"],
            weighting=cfg.task_loss_weighting, **kwargs)
        if cfg.task_loss_weighting == "dynamic":
            trainer.add_callback(SaveTaskWeights(trainer.task_weights))
            if cfg.resume_from_checkpoint:
                resume_task_weights(trainer.task_weights, cfg)
        return trainer

    def extras(self, cfg, trainer, stage_data, final_eval, before):
        # Per-task loss of the final model: on the held-out examples (already in the final
        # evaluation), else on the training ones.
        if final_eval is not None:
            final = {key.split("/", 1)[1]: value for key, value in final_eval.items()
                     if key.startswith("eval_loss/")}
        else:
            final = per_task_loss(trainer, stage_data.train)
        return {"per_task_loss": final, "per_task_loss_on": "eval" if final_eval is not None else "train",
                "task_counts": stage_data.info["counts"], "task_weights": stage_data.info["weights"],
                "mix_strategy": cfg.mix_strategy, "task_loss_weighting": cfg.task_loss_weighting}

    def report(self, summary):
        return "; per task: " + ", ".join(f"{t} {v:.3f}" for t, v in summary["per_task_loss"].items())


STAGE = MultiTaskStage()


def train_multitask(config=None, **kwargs) -> RunResult:
    """``finetune`` of a multi-task config (the name lesson 09 knows)."""
    return run(STAGE, config, **kwargs)
