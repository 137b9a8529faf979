"""The training recipe: which stage trains a config, the order of a stage's hooks, a new stage
in a few lines, continued pre-training's data, and the layering of ftkit/train (no private
names crossing modules, no imports of ftkit hidden inside functions)."""

import ast
from pathlib import Path

import pytest

from ftkit.config import RunConfig
from ftkit.errors import ConfigError, FtkitError
from ftkit.paths import DATA_DIR
from ftkit.train import dpo, finetune, multitask, pt, sft, stage_for, stages
from ftkit.train.recipe import run

PACKAGE = Path(__file__).resolve().parent.parent / "ftkit"


@pytest.mark.parametrize("fields, stage", [
    ({}, sft.STAGE),
    ({"stage": "pt"}, pt.STAGE),
    ({"stage": "dpo"}, dpo.STAGE),
    ({"task_weights": {"a": 1.0}, "mix_strategy": "interleave"}, multitask.STAGE),
    ({"train_file": "a.jsonl,b.jsonl"}, multitask.STAGE),
])
def test_the_config_picks_the_stage(fields, stage):
    assert stage_for(RunConfig(**fields)) is stage
    assert set(stages()) == {"sft", "pt", "dpo"}


def test_mixing_tasks_in_a_dpo_run_is_refused_before_anything_loads(tmp_path):
    with pytest.raises(ConfigError, match="multi-task training is supervised"):
        finetune(stage="dpo", mix_strategy="interleave", train_file="data/preference.jsonl",
                 output_dir=str(tmp_path / "never"))
    assert not (tmp_path / "never").exists()


class RecordingStage(sft.SupervisedStage):
    """SFT, noting each hook the recipe calls: a new stage overrides only what differs."""

    name = "recording"

    def __init__(self):
        self.calls = []

    def __getattribute__(self, name):
        hooks = ("check", "arguments", "data", "method", "trainer", "before_training",
                 "extras", "memory_overrides", "plots", "report")
        if name in hooks:
            object.__getattribute__(self, "calls").append(name)
        return object.__getattribute__(self, name)

    def extras(self, cfg, trainer, data, final_eval, before):
        return {"recorded_train_rows": len(data.train)}


def test_the_recipe_calls_a_stages_hooks_in_order(tiny_run):
    stage = RecordingStage()
    result = run(stage, None, **tiny_run, verbose=True)
    assert stage.calls == ["check", "arguments", "data", "method", "trainer", "before_training",
                           "memory_overrides", "extras", "plots", "report"]
    assert result.summary["recorded_train_rows"] == 8 and result.summary["steps"] == 3


def test_continued_pretraining_learns_every_token_and_refuses_chat_data(tiny_run):
    from ftkit import models

    tokenizer = models.load_tokenizer(tiny_run["model_name_or_path"])
    cfg = RunConfig(**dict(tiny_run, stage="pt", train_file=str(DATA_DIR / "pretrain_text.jsonl"),
                           val_size=0.2))
    train, evaluation = pt.prepare_texts(cfg, tokenizer)
    assert len(train) + len(evaluation) == 8
    for row in train:
        assert row["labels"] == row["input_ids"] and row["input_ids"][-1] == tokenizer.eos_token_id
    with pytest.raises(FtkitError, match="stage pt trains on plain text.*stage: sft"):
        pt.prepare_texts(cfg.model_copy(update={"train_file": str(DATA_DIR / "identity.jsonl")}),
                         tokenizer)


def _train_modules():
    """The recipe, its stages and helpers (the scale-out modules beside them are checked by
    the import contracts)."""
    train = ["__init__", "recipe", "sft", "pt", "dpo", "multitask", "callbacks", "collate",
             "summary", "oom"]
    return [PACKAGE / "train" / f"{name}.py" for name in train] + [
        PACKAGE / "methods.py", PACKAGE / "infer.py", PACKAGE / "data" / "mixing.py"]


# The one deliberate exception: the DPO stage imports TRL, seconds that an SFT run should not pay,
# so ftkit.train.stages() imports it on demand (test_an_sft_run_does_not_import_trl checks why).
LAZY_IMPORTS = {("__init__.py", "stages")}


def test_no_private_name_crosses_modules_and_no_ftkit_import_hides_in_a_function():
    problems = []
    for path in _train_modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level > 0:
                private = [a.name for a in node.names if a.name.startswith("_")]
                if private:
                    problems.append(f"{path.name}:{node.lineno} imports private {private}")
        for function in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
            for node in ast.walk(function):
                if (path.name, function.name) in LAZY_IMPORTS:
                    continue
                if isinstance(node, ast.ImportFrom) and (node.level > 0 or (node.module or "").startswith("ftkit")):
                    problems.append(f"{path.name}:{node.lineno} imports ftkit inside {function.name}()")
    assert not problems, "\n".join(problems)


def test_data_named_through_a_dataset_registry_is_read_and_joined(tiny_run):
    # LLaMA-Factory's `dataset: a,b` resolves (ftkit.dialects) to DatasetSpec entries; every
    # stage reads them through the recipe, joined into one training set.
    from ftkit import models
    from ftkit.config import DatasetSpec

    spec = DatasetSpec(name="instructions", file=str(DATA_DIR / "instruction.json"))
    cfg = RunConfig(**dict(tiny_run, train_file=None, max_samples=None, max_seq_length=256,
                           datasets=[spec, spec.model_copy(update={"name": "again"})],
                           eval_datasets=[spec]))
    tokenizer = models.load_tokenizer(tiny_run["model_name_or_path"])
    train, evaluation = sft.prepare_datasets(cfg, tokenizer, verbose=False)
    assert len(train) == 2 * len(evaluation) == 120  # 60 records, twice; the eval set once
    assert train["input_ids"][:60] == train["input_ids"][60:]


def test_fields_read_but_not_used_are_said(tiny_run, capsys):
    """ChatGLM3's test_file and num_proc reach the config; a run says it does not use them."""
    finetune(None, **dict(tiny_run, max_steps=1, test_file="dev.json", preprocessing_num_workers=4))
    out = capsys.readouterr().out
    assert "test_file is read but not used" in out and "preprocessing_num_workers is read but not used" in out


def test_an_sft_run_does_not_import_trl():
    """TRL takes seconds to import; ftkit.train loads it only for a DPO run."""
    import subprocess
    import sys

    code = "import sys, ftkit.train; from ftkit.config import RunConfig; ftkit.train.stage_for(RunConfig()); print('trl' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr[-2000:]
