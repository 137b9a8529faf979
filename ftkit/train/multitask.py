"""``train_multitask(config)``: several tasks in one run, mixed by weight, with a loss per task.

Taught in lesson 09 (``notebooks/09_multitask_and_scale.ipynb``). Seed 004's multi-task
records carry a ``task`` field; ``task_field`` names it (or, with several files in
``train_file: a.jsonl,b.jsonl``, a file without it is one task named after the file).

*Mixing* decides which examples a batch holds (``mix_strategy``):

* ``concat``      every example once, shuffled: tasks appear in their natural proportions;
* ``interleave``  draw each example's task with probability ``task_weights`` (normalized),
  through ``datasets.interleave_datasets``: a small task is repeated, a big one thinned;
* ``temperature`` probability proportional to ``(weight * size) ** (1 / mix_temperature)``:
  T = 1 keeps natural proportions, a large T flattens them towards uniform.

The mixed set keeps the size of the data, so an epoch means the same number of steps.

*Loss weighting* decides how much each task's tokens count (``task_loss_weighting``):
``none`` is plain SFT (every answer token alike); ``static`` multiplies each token's loss
by its task's weight; ``dynamic`` (seed 004's "adjust task weights through the loss")
starts from the static weights and raises the weight of tasks whose loss has fallen least,
relative to where it started (GradNorm's inverse training rate, without its gradients).

During training ``loss/<task>`` is logged next to ``loss``; evaluation adds
``eval_loss/<task>``; ``run_summary.json`` carries ``per_task_loss`` (task -> loss).
"""

from __future__ import annotations

import difflib
import math
from pathlib import Path

import torch

from ..errors import FtkitError
from . import collate, distributed
from .callbacks import quiet_if_asked, standard_callbacks
from .run import (FtkitTrainer, RunResult, _prepare_output_dir, _training_arguments, data_path,
                  predicted_bytes, resolve_config, save_run)
from .summary import build_summary

# ---------------------------------------------------------------------------- data


def is_multitask(cfg) -> bool:
    """True when a config asks for mixing or task weighting (``finetune`` dispatches on it)."""
    return bool(cfg.task_weights or cfg.mix_strategy != "concat"
                or cfg.task_loss_weighting != "none" or "," in (cfg.train_file or ""))


def _read_tasks(cfg, files: str | None) -> dict:
    """``{task: canonical Dataset}`` from one file with a task column, or several files."""
    from .. import data

    if not files:
        return {}
    names = [name.strip() for name in files.split(",") if name.strip()]
    parts: dict[str, list] = {}
    for name in names:
        dataset = data.load(data_path(name), format=cfg.data_format, encoding=cfg.encoding)
        if "messages" not in dataset.column_names:
            raise FtkitError(f"{name}: multi-task training needs chat/instruction examples; this "
                             f"file holds {', '.join(dataset.column_names)}")
        if cfg.task_field in dataset.column_names:
            for task in sorted(set(dataset[cfg.task_field])):
                rows = dataset.filter(lambda r, t=task: r[cfg.task_field] == t)
                parts.setdefault(str(task), []).append(rows)
        elif len(names) > 1:
            parts.setdefault(Path(name).stem, []).append(dataset)
        else:
            raise FtkitError(
                f"{name}: no '{cfg.task_field}' field tells its tasks apart (fields: "
                f"{', '.join(dataset.column_names)}). Add one per record, e.g. "
                '{"task": "sentiment", "input": "...", "output": "..."}, set task_field to the '
                "field that holds the task, or list one file per task: train_file: a.jsonl,b.jsonl")
    import datasets

    return {task: datasets.concatenate_datasets(chunks) for task, chunks in sorted(parts.items())}


def check_task_weights(weights: dict | None, tasks, where: str = "task_weights") -> dict:
    """Every task's weight (1.0 each when none are given), or an FtkitError that says what is wrong."""
    tasks = list(tasks)
    if weights is None:
        return {task: 1.0 for task in tasks}
    unknown = [name for name in weights if name not in tasks]
    if unknown:
        hints = [f"'{n}' (did you mean '{m[0]}'?)" if (m := difflib.get_close_matches(n, tasks, 1))
                 else f"'{n}'" for n in unknown]
        raise FtkitError(f"{where} names {', '.join(hints)}, not a task in the data; the tasks "
                         f"are: {', '.join(tasks)}")
    missing = [task for task in tasks if task not in weights]
    if missing:
        raise FtkitError(f"{where} gives no weight to {', '.join(missing)}: give every task a "
                         "weight (0 leaves a task out), or remove task_weights for equal weights")
    bad = {name: w for name, w in weights.items()
           if not isinstance(w, (int, float)) or math.isnan(w) or math.isinf(w) or w < 0}
    if bad:
        raise FtkitError(f"{where}: weights must be finite numbers >= 0, got "
                         + ", ".join(f"{n}: {w!r}" for n, w in bad.items()))
    if not any(weights.values()):
        raise FtkitError(f"{where}: every weight is 0, so no task is left to train; give at "
                         "least one task a positive weight")
    return {task: float(weights[task]) for task in tasks}


def mixture_probabilities(sizes: dict, weights: dict, strategy: str, temperature: float = 1.0) -> dict:
    """The share of the mixed set each task gets, under ``strategy``."""
    if strategy == "concat":
        raw = {t: n if weights[t] > 0 else 0 for t, n in sizes.items()}
    elif strategy == "interleave":
        raw = dict(weights)
    elif strategy == "temperature":
        raw = {t: (weights[t] * n) ** (1.0 / temperature) for t, n in sizes.items()}
    else:
        raise FtkitError(f"mix_strategy {strategy!r}: choose concat, interleave or temperature")
    total = sum(raw.values())
    return {t: v / total for t, v in raw.items()}


def mix(parts: dict, weights: dict, strategy: str = "concat", temperature: float = 1.0,
        seed: int = 42):
    """One shuffled dataset from ``{task: Dataset}`` as ``strategy`` says (see the module doc)."""
    import datasets

    kept = {t: d for t, d in parts.items() if weights[t] > 0 and len(d)}
    total = sum(len(d) for d in kept.values())
    if strategy == "concat" or len(kept) == 1:
        return datasets.concatenate_datasets(list(kept.values())).shuffle(seed=seed)
    probs = mixture_probabilities({t: len(d) for t, d in kept.items()},
                                  {t: weights[t] for t in kept}, strategy, temperature)
    # Sample with replacement until every task has been seen once, then keep the data's size.
    mixed = datasets.interleave_datasets([d.shuffle(seed=seed) for d in kept.values()],
                                         probabilities=list(probs.values()), seed=seed,
                                         stopping_strategy="all_exhausted")
    return mixed.select(range(min(total, len(mixed))))


def _tokenize_tasks(cfg, tokenizer, parts: dict, task_ids: dict):
    from .. import data

    tokenized = {}
    for task, dataset in parts.items():
        ids = data.tokenize_sft(dataset.select_columns(["messages"]), tokenizer, cfg.max_seq_length,
                                template=cfg.template, max_input_length=cfg.max_input_length,
                                max_output_length=cfg.max_output_length, verbose=False)
        ids = ids.add_column("task_id", [task_ids[task]] * len(ids))
        tokenized[task] = ids.add_column("length", [len(x) for x in ids["input_ids"]])
    return tokenized


def prepare_tasks(cfg, tokenizer):
    """``(mixed train set, eval set or None, task names, weights, train counts per task)``."""
    train_parts = _read_tasks(cfg, cfg.train_file)
    if not train_parts:
        raise FtkitError("train_file is not set: name a multi-task file, e.g. data/multitask.jsonl")
    tasks = list(train_parts)
    weights = check_task_weights(cfg.task_weights, tasks)
    if cfg.task_weights and cfg.mix_strategy == "concat" and cfg.task_loss_weighting == "none" \
            and len(set(weights.values()) - {0.0}) > 1:
        raise FtkitError("task_weights are set but do nothing with mix_strategy: concat and "
                         "task_loss_weighting: none; sample by them (mix_strategy: interleave or "
                         "temperature) or weight the loss (task_loss_weighting: static or dynamic)")
    eval_parts = _read_tasks(cfg, cfg.val_file)
    if not eval_parts and cfg.val_size:
        eval_parts = {}
        for task, dataset in train_parts.items():
            if len(dataset) < 2:
                continue
            split = dataset.train_test_split(test_size=cfg.val_size, seed=cfg.seed)
            train_parts[task], eval_parts[task] = split["train"], split["test"]
    if cfg.max_samples:  # per task: a cap that keeps the mixture's shape
        train_parts = {t: d.select(range(min(cfg.max_samples, len(d)))) for t, d in train_parts.items()}
    task_ids = {task: i for i, task in enumerate(tasks)}
    train_tok = _tokenize_tasks(cfg, tokenizer, train_parts, task_ids)
    mixed = mix(train_tok, weights, cfg.mix_strategy, cfg.mix_temperature, cfg.seed)
    import datasets

    eval_set = None
    unknown = [t for t in eval_parts if t not in task_ids]
    if unknown:
        raise FtkitError(f"val_file has task(s) {', '.join(unknown)} that the training data lacks "
                         f"(tasks: {', '.join(tasks)})")
    if eval_parts:
        eval_set = datasets.concatenate_datasets(list(_tokenize_tasks(cfg, tokenizer, eval_parts,
                                                                      task_ids).values()))
    counts = {t: 0 for t in tasks}
    for i in mixed["task_id"]:
        counts[tasks[i]] += 1
    return mixed, eval_set, tasks, weights, counts


# ---------------------------------------------------------------------------- training


class TaskCollator:
    """Pad like finetune, and carry each example's ``task_id`` along as a tensor."""

    def __init__(self, tokenizer):
        self.inner = collate.padding_collator(tokenizer)

    def __call__(self, features):
        batch = self.inner(features)
        batch["task_id"] = torch.tensor([f["task_id"] for f in features], dtype=torch.long)
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


def train_multitask(config=None, *, model=None, tokenizer=None, callbacks=(), verbose: bool = True,
                    **overrides) -> RunResult:
    """Train several tasks at once as ``config`` says; the same files as ``finetune`` plus
    ``per_task_loss``, ``task_counts`` (examples per task in the mixed set) and the mixture
    settings in ``run_summary.json``. Arguments as :func:`ftkit.train.finetune`."""
    from transformers import set_seed

    from .. import models
    from ..methods import apply_method, load_base_model

    cfg = resolve_config(config, overrides)
    if cfg.stage != "sft":
        raise FtkitError(f"multi-task training is supervised (stage sft), not stage {cfg.stage}")
    if cfg.packing:
        print("ftkit: packing is off for multi-task runs: each row must belong to one task.")
    distributed.require_deepspeed(cfg)
    # DDP over gloo between CPU processes needs use_cpu, or each process trains alone.
    args_cfg = cfg.model_copy(update={"use_cpu": True}) \
        if distributed.cpu_processes_need_flag(cfg.use_cpu) else cfg
    args = _training_arguments(args_cfg, packing=False)
    args.prediction_loss_only = True  # evaluation needs losses, never the full logits tensors
    out = _prepare_output_dir(cfg)
    tokenizer = tokenizer or models.load_tokenizer(cfg.model_name_or_path, cfg.trust_remote_code)
    train_set, eval_set, tasks, weights, counts = prepare_tasks(cfg, tokenizer)
    if verbose:
        print(f"multi-task mixture ({cfg.mix_strategy}): "
              + ", ".join(f"{t} {counts[t]}" for t in tasks)
              + f"; loss weighting {cfg.task_loss_weighting}")
    set_seed(cfg.seed)
    model = model if model is not None else load_base_model(cfg)
    model, params = apply_method(model, cfg, tokenizer, verbose=verbose)
    meter, extra = standard_callbacks()
    trainer = MultiTaskTrainer(
        model=model, args=args, data_collator=TaskCollator(tokenizer), train_dataset=train_set,
        eval_dataset=eval_set, processing_class=tokenizer, callbacks=extra + list(callbacks),
        tasks=tasks, weights=weights, weighting=cfg.task_loss_weighting)
    quiet_if_asked(trainer)
    output = trainer.train(resume_from_checkpoint=cfg.resume_from_checkpoint)
    # Per-task loss of the final model: on the held-out examples, else on the training ones.
    final = per_task_loss(trainer, eval_set if eval_set is not None else train_set)
    trainer.save_model(str(out))
    memory = {"predicted_bytes": predicted_bytes(cfg, model), "measured_bytes": meter.measured_bytes(trainer.activation_bytes),
              "measured_parts": {**meter.parts, "activations": trainer.activation_bytes}}
    summary = build_summary(cfg, trainer, output.metrics, params, trainer.real_tokens, memory, False)
    summary.update(per_task_loss=final, per_task_loss_on="eval" if eval_set is not None else "train",
                   task_counts=counts, task_weights=weights, mix_strategy=cfg.mix_strategy,
                   task_loss_weighting=cfg.task_loss_weighting)
    save_run(cfg, trainer, tokenizer, out, summary)
    if verbose and distributed.is_main_process():
        print(f"ftkit: {summary['steps']} steps, loss {summary['first_loss']} -> {summary['last_loss']}; "
              "per task: " + ", ".join(f"{t} {v:.3f}" for t, v in final.items()) + f"; saved to {out}")
    return RunResult(cfg, out, summary, model, tokenizer, trainer, params)
