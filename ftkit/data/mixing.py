"""Several tasks in one training set: read them, check their weights, mix them (lesson 09).

Seed 004's multi-task records carry a ``task`` field; ``task_field`` names it (or, with
several files in ``train_file: a.jsonl,b.jsonl``, a file without it is one task named after
the file).

*Mixing* decides which examples a batch holds (``mix_strategy``):

* ``concat``      every example once, shuffled: tasks appear in their natural proportions;
* ``interleave``  draw each example's task with probability ``task_weights`` (normalized),
  through ``datasets.interleave_datasets``: a small task is repeated, a big one thinned;
* ``temperature`` probability proportional to ``(weight * size) ** (1 / mix_temperature)``:
  T = 1 keeps natural proportions, a large T flattens them towards uniform.

The mixed set keeps the size of the data, so an epoch means the same number of steps.
Each task is tokenized by :func:`ftkit.data.tokenize_sft`, which reports per task what it
truncated and dropped: a task that loses examples to ``max_seq_length`` says so.
"""

from __future__ import annotations

import difflib
import math
from pathlib import Path

import datasets

from .loading import load
from .report import DataError
from .tokenize import tokenize_sft

TASK_ID_COLUMN = "task_id"


def read_tasks(files: str | None, task_field: str = "task", data_format: str = "auto",
               encoding: str = "utf-8", locate=None, verbose: bool = True) -> dict:
    """``{task: canonical Dataset}`` from one file with a task column, or several files
    (``"a.jsonl,b.jsonl"``). ``locate`` maps a name as written to the path to read."""
    if not files:
        return {}
    names = [name.strip() for name in files.split(",") if name.strip()]
    parts: dict[str, list] = {}
    for name in names:
        dataset = load(locate(name) if locate else name, format=data_format, encoding=encoding,
                       verbose=verbose)
        if "messages" not in dataset.column_names:
            raise DataError(f"{name}: multi-task training needs chat/instruction examples; this "
                            f"file holds {', '.join(dataset.column_names)}")
        if task_field in dataset.column_names:
            for task in sorted(set(dataset[task_field])):
                rows = dataset.filter(lambda r, t=task: r[task_field] == t)
                parts.setdefault(str(task), []).append(rows)
        elif len(names) > 1:
            parts.setdefault(Path(name).stem, []).append(dataset)
        else:
            raise DataError(
                f"{name}: no '{task_field}' field tells its tasks apart (fields: "
                f"{', '.join(dataset.column_names)}). Add one per record, e.g. "
                '{"task": "sentiment", "input": "...", "output": "..."}, set task_field to the '
                "field that holds the task, or list one file per task: train_file: a.jsonl,b.jsonl")
    return {task: datasets.concatenate_datasets(chunks) for task, chunks in sorted(parts.items())}


def check_task_weights(weights: dict | None, tasks, where: str = "task_weights") -> dict:
    """Every task's weight (1.0 each when none are given), or a DataError that says what is wrong."""
    tasks = list(tasks)
    if weights is None:
        return {task: 1.0 for task in tasks}
    unknown = [name for name in weights if name not in tasks]
    if unknown:
        hints = [f"'{n}' (did you mean '{m[0]}'?)" if (m := difflib.get_close_matches(n, tasks, 1))
                 else f"'{n}'" for n in unknown]
        raise DataError(f"{where} names {', '.join(hints)}, not a task in the data; the tasks "
                        f"are: {', '.join(tasks)}")
    missing = [task for task in tasks if task not in weights]
    if missing:
        raise DataError(f"{where} gives no weight to {', '.join(missing)}: give every task a "
                        "weight (0 leaves a task out), or remove task_weights for equal weights")
    bad = {name: w for name, w in weights.items()
           if not isinstance(w, (int, float)) or math.isnan(w) or math.isinf(w) or w < 0}
    if bad:
        raise DataError(f"{where}: weights must be finite numbers >= 0, got "
                        + ", ".join(f"{n}: {w!r}" for n, w in bad.items()))
    if not any(weights.values()):
        raise DataError(f"{where}: every weight is 0, so no task is left to train; give at "
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
        raise DataError(f"mix_strategy {strategy!r}: choose concat, interleave or temperature")
    total = sum(raw.values())
    return {t: v / total for t, v in raw.items()}


def mix(parts: dict, weights: dict, strategy: str = "concat", temperature: float = 1.0,
        seed: int = 42):
    """One shuffled dataset from ``{task: Dataset}`` as ``strategy`` says (see the module doc)."""
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


def tokenize_tasks(cfg, tokenizer, parts: dict, task_ids: dict, verbose: bool = True) -> dict:
    """``{task: tokenized Dataset}`` with ``task_id`` and ``length`` columns; each task's
    truncated and dropped examples are reported under its name."""
    tokenized = {}
    for task, dataset in parts.items():
        if verbose:
            print(f"task {task}: ", end="")
        try:
            ids = tokenize_sft(dataset.select_columns(["messages"]), tokenizer, cfg.max_seq_length,
                               template=cfg.template, max_input_length=cfg.max_input_length,
                               max_output_length=cfg.max_output_length, verbose=verbose)
        except DataError as error:
            raise DataError(f"task {task}: {error}") from None
        ids = ids.add_column(TASK_ID_COLUMN, [task_ids[task]] * len(ids))
        tokenized[task] = ids.add_column("length", [len(x) for x in ids["input_ids"]])
    return tokenized


def prepare_tasks(cfg, tokenizer, locate=None, verbose: bool = True):
    """``(mixed train set, eval set or None, task names, weights, train counts per task)``
    of a config's multi-task data (``locate`` as in :func:`read_tasks`)."""
    def read(files):
        return read_tasks(files, cfg.task_field, cfg.data_format, cfg.encoding, locate, verbose)

    train_parts = read(cfg.train_file)
    if not train_parts:
        raise DataError("train_file is not set: name a multi-task file, e.g. data/multitask.jsonl")
    tasks = list(train_parts)
    weights = check_task_weights(cfg.task_weights, tasks)
    if cfg.task_weights and cfg.mix_strategy == "concat" and cfg.task_loss_weighting == "none" \
            and len(set(weights.values()) - {0.0}) > 1:
        raise DataError("task_weights are set but do nothing with mix_strategy: concat and "
                        "task_loss_weighting: none; sample by them (mix_strategy: interleave or "
                        "temperature) or weight the loss (task_loss_weighting: static or dynamic)")
    eval_parts = read(cfg.val_file)
    if not eval_parts and cfg.val_size:
        for task, dataset in train_parts.items():
            if len(dataset) < 2:
                continue
            split = dataset.train_test_split(test_size=cfg.val_size, seed=cfg.seed)
            train_parts[task], eval_parts[task] = split["train"], split["test"]
    unknown = [t for t in eval_parts if t not in train_parts]
    if unknown:
        raise DataError(f"val_file has task(s) {', '.join(unknown)} that the training data lacks "
                        f"(tasks: {', '.join(tasks)})")
    if cfg.max_samples:  # per task: a cap that keeps the mixture's shape
        train_parts = {t: d.select(range(min(cfg.max_samples, len(d)))) for t, d in train_parts.items()}
    task_ids = {task: i for i, task in enumerate(tasks)}
    mixed = mix(tokenize_tasks(cfg, tokenizer, train_parts, task_ids, verbose), weights,
                cfg.mix_strategy, cfg.mix_temperature, cfg.seed)
    eval_set = None
    if eval_parts:
        eval_set = datasets.concatenate_datasets(
            list(tokenize_tasks(cfg, tokenizer, eval_parts, task_ids, verbose).values()))
    counts = {t: 0 for t in tasks}
    for i in mixed[TASK_ID_COLUMN]:
        counts[tasks[i]] += 1
    return mixed, eval_set, tasks, weights, counts
