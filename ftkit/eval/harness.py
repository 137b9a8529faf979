"""Multiple-choice questions scored by EleutherAI's lm-evaluation-harness, from a local file.

Taught in lesson 13. lm-eval scores a ``multiple_choice`` task without generating anything: for
each choice it asks the model for log P(choice | question), the sum over the choice's tokens.
``acc`` counts the questions whose highest-scoring choice is the right one; ``acc_norm`` first
divides each score by the choice's length in characters, so a long choice is not punished for
its extra tokens. These are the numbers leaderboards report for ARC, HellaSwag or MMLU.

ftkit writes a task config for a JSONL file of ``{"question", "choices", "answer"}`` records and
runs it on a model already in memory (a peft model too), so a before/after regression check
needs no download and no second copy of the weights.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from ..errors import FtkitError
from ..paths import DATA_DIR

GENERAL_MC = DATA_DIR / "general_mc.jsonl"
TASK = "ftkit_multiple_choice"
PROMPT = "Question: {question}\nAnswer:"  # lm-eval's own ARC / SciQ layout


def task_config(data_file: str | Path) -> dict:
    """The lm-eval task definition (what a task's YAML file holds) for a local JSONL file."""
    path = Path(data_file).resolve()
    if not path.exists():
        raise FtkitError(f"{path} does not exist: pass a JSONL file of "
                         '{"question": ..., "choices": [...], "answer": INDEX} records')
    return {
        "task": TASK,
        "dataset_path": "json",  # datasets' JSON builder: a local file, nothing downloaded
        "dataset_kwargs": {"data_files": {"test": str(path)}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": PROMPT.replace("{question}", "{{question}}"),
        "doc_to_choice": "{{choices}}",
        "doc_to_target": "answer",
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                        {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True}],
    }


def multiple_choice(model, tokenizer, data_file: str | Path = GENERAL_MC, batch_size: int = 8) -> dict:
    """``acc``, ``acc_norm`` and, per question, the log-likelihood of every choice (``scores``),
    as lm-eval's ``simple_evaluate`` computes them."""
    import lm_eval
    import yaml
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    config = task_config(data_file)
    logging.getLogger("lm_eval").setLevel(logging.ERROR)  # "model passed in memory" notices
    with tempfile.TemporaryDirectory(prefix="ftkit-lm-eval-") as folder:
        (Path(folder) / f"{TASK}.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
        harness_model = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
        # Only this folder's task: indexing lm-eval's ~14,000 bundled task files takes seconds.
        tasks = TaskManager(include_path=folder, include_defaults=False)
        # No seeds: nothing here is sampled, and the caller's random state stays as it was.
        results = lm_eval.simple_evaluate(model=harness_model, tasks=[TASK], task_manager=tasks,
                                          log_samples=True, random_seed=None, numpy_random_seed=None,
                                          torch_random_seed=None)
    metrics = results["results"][TASK]
    samples = sorted(results["samples"][TASK], key=lambda s: s["doc_id"])
    return {"acc": metrics["acc,none"], "acc_norm": metrics["acc_norm,none"],
            "scores": [[float(r[0]) for r in s["filtered_resps"]] for s in samples]}
