"""DPO (stage dpo): preference data checks, a real TRL run with the adapter as reference
(the margin widens, on the default model), the files finetune writes, and the command-line
dispatch (on the tiny random model)."""

import json
import math
import sys

import pytest

from ftkit.data import DataError
from ftkit.errors import FtkitError
from ftkit.paths import CONFIGS_DIR, DATA_DIR
from ftkit.train.dpo import train_dpo

FAST = dict(method="lora", max_steps=1, per_device_train_batch_size=2, max_seq_length=64,
            save_strategy="no", report_to=["none"], disable_tqdm=True, verbose=False)


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return str(path)


def test_sft_data_is_refused_with_a_clear_message(tmp_path):
    with pytest.raises(FtkitError, match="preference pairs .*prompt, chosen, rejected"):
        train_dpo(train_file=str(DATA_DIR / "identity.jsonl"), output_dir=str(tmp_path), **FAST)


def test_pairs_without_rejected_answer_are_refused(tmp_path):
    bad = _write(tmp_path / "bad.jsonl", [{"prompt": "Hi", "chosen": "Hello!"}] * 3)
    with pytest.raises(DataError) as error:
        train_dpo(train_file=bad, output_dir=str(tmp_path / "out"), **FAST)
    assert "rejected" in str(error.value) + json.dumps(error.value.errors)


def test_identical_answers_are_refused(tmp_path):
    same = _write(tmp_path / "same.jsonl", [{"prompt": "Hi", "chosen": "Hey", "rejected": "Hey"}] * 2)
    with pytest.raises(DataError) as error:
        train_dpo(train_file=same, output_dir=str(tmp_path / "out"), **FAST)
    assert "same as 'chosen'" in json.dumps(error.value.errors)


def test_deepspeed_without_the_package_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "deepspeed", None)  # as on a machine without it
    with pytest.raises(FtkitError, match=r"deepspeed package is not installed.*pip install"):
        train_dpo(train_file=str(DATA_DIR / "preference.jsonl"), output_dir=str(tmp_path),
                  deepspeed=str(CONFIGS_DIR / "ds_zero_2.json"), **FAST)


@pytest.mark.slow
def test_dpo_run_widens_the_margin_and_writes_finetune_files(tmp_path):
    pairs = [json.loads(line) for line in (DATA_DIR / "preference.jsonl").read_text().splitlines()][:4]
    held = _write(tmp_path / "pairs.jsonl", pairs)
    result = train_dpo(train_file=held, val_file=held, output_dir=str(tmp_path / "run"),
                       **{**FAST, "max_steps": 4, "learning_rate": 1e-3, "lora_dropout": 0.0,
                          "max_prompt_length": 24, "max_completion_length": 24})
    trainer = result.trainer
    # The reference is the base model with the adapter off: no second model in memory.
    assert trainer.ref_model is None and hasattr(result.model, "disable_adapter")
    assert result.params.total < 1.05 * 134_515_008
    assert max(len(ids) for ids in trainer.train_dataset["prompt_ids"]) <= 24
    assert max(len(ids) for ids in trainer.train_dataset["chosen_ids"]) <= 24
    out = result.output_dir
    for name in ("adapter_model.safetensors", "run_config.yaml", "run_summary.json",
                 "trainer_state.json", "training_loss.png", "dpo_rewards.png", "tokenizer.json"):
        assert (out / name).exists(), name
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["stage"] == "dpo" and summary["world_size"] == 1 and summary["steps"] == 4
    assert math.isclose(summary["first_loss"], math.log(2), rel_tol=1e-3)  # policy == reference
    memory = summary["memory"]
    assert memory["predicted_bytes"] > memory["measured_bytes"] > 0  # activations are predicted only
    before, after = summary["eval_before"], summary["eval_after"]
    assert before["reward_margin"] == 0.0
    assert after["logp_margin"] > before["logp_margin"]  # chosen gained on rejected
    assert after["reward_margin"] > 0 and after["loss"] < math.log(2)


# The command line reaches the DPO stage through finetune's dispatch on stage dpo.
def test_ftkit_train_runs_the_dpo_config(tmp_path, tiny_model_dir):
    from ftkit.cli import main

    out = tmp_path / "cli"
    status = main(["train", str(CONFIGS_DIR / "dpo.yaml"), "--set", "max_steps=1",
                   "--set", "max_samples=6", "--set", "val_size=0", "--set", f"output_dir={out}",
                   "--set", f"model_name_or_path={tiny_model_dir}", "--set", "plot_loss=false"])
    assert status == 0
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["stage"] == "dpo" and summary["steps"] == 1
    assert summary["eval_before"] is None and summary["final_eval"] is None  # no held-out pairs


def test_alias_and_finetune_are_one_recipe(tmp_path, tiny_run):
    from ftkit.train import finetune

    fields = dict(tiny_run, train_file=str(DATA_DIR / "preference.jsonl"), max_steps=1,
                  verbose=False)
    alias = train_dpo(**dict(fields, output_dir=str(tmp_path / "alias")))
    direct = finetune(**dict(fields, stage="dpo", output_dir=str(tmp_path / "direct")))
    assert alias.summary["stage"] == direct.summary["stage"] == "dpo"
    assert alias.summary["curves"] == direct.summary["curves"]
