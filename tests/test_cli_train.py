"""``ftkit train`` on every shipped config (a few steps: the loss falls), ``ftkit merge``,
``ftkit chat --adapter``, and input errors that exit with status 2."""

import json
import subprocess
import sys

import pytest

from ftkit.cli import main
from ftkit.paths import CONFIGS_DIR

CONFIGS = ["lora", "qlora", "ptuning_v2", "ptuning", "prompt_tuning", "full", "freeze"]
# The same 4 examples every step, so each step's loss is measured on the batch just learned.
FAST = ["max_steps=4", "max_samples=4", "per_device_train_batch_size=4", "val_size=0",
        "eval_strategy=no", "save_strategy=no", "max_seq_length=64", "disable_tqdm=true",
        "plot_loss=false", "warmup_steps=0"]


def train(config, tmp_path, *extra):
    out = tmp_path / config
    sets = [f"--set={item}" for item in FAST + [f"output_dir={out}", *extra]]
    assert main(["train", str(CONFIGS_DIR / f"{config}.yaml"), *sets]) == 0
    return out, json.loads((out / "run_summary.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS)
def test_every_shipped_config_trains_and_its_loss_falls(config, tmp_path):
    # packing on: LoRA, QLoRA, full and freeze pack; the prompt methods fall back to padding.
    out, summary = train(config, tmp_path, "packing=true")
    method = {"ptuning_v2": "prefix", "prompt_tuning": "prompt"}.get(config, config)
    assert summary["method"] == method and summary["steps"] == 4
    assert summary["packing"] == (method not in ("prefix", "ptuning", "prompt"))
    assert summary["last_loss"] < summary["first_loss"], summary


def test_merge_and_chat_commands(tmp_path, capsys, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    # Plumbing (files in, files out): the tiny random model serves as well as the real one.
    out, summary = train("lora", tmp_path, f"model_name_or_path={tiny_model_dir}")
    assert summary["model"] == str(tiny_model_dir)
    assert main(["merge", "--adapter", str(out), "-o", str(tmp_path / "merged")]) == 0
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    assert not hasattr(merged, "peft_config")  # a plain model folder, no peft
    assert main(["chat", "--adapter", str(out), "--prompt", "Who are you?", "--max-new-tokens", "8"]) == 0
    assert capsys.readouterr().out.strip()


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "ftkit", *args], capture_output=True, text=True)


def run_main(capsys, *args):
    """``ftkit ARGS`` in this process: (exit status, stderr). One test below keeps a real
    ``python -m ftkit`` process, for what only a process shows (no traceback on stderr)."""
    status = main(list(args))
    return status, capsys.readouterr().err


def test_bad_value_exits_2_naming_the_field():
    done = run_cli("train", str(CONFIGS_DIR / "lora.yaml"), "--set", "lora_rank=zero")
    assert done.returncode == 2 and "lora_rank" in done.stderr and "Traceback" not in done.stderr


def test_unknown_key_and_missing_file_exit_2(capsys):
    status, err = run_main(capsys, "train", str(CONFIGS_DIR / "lora.yaml"), "--set", "learning_rat=1e-4")
    assert status == 2 and "learning_rate" in err  # the "did you mean" hint
    status, err = run_main(capsys, "train", "no/such/config.yaml")
    assert status == 2 and "no such config file" in err


def test_merge_of_a_folder_without_adapter_exits_2(capsys, tmp_path):
    status, err = run_main(capsys, "merge", "--adapter", str(tmp_path), "-o", str(tmp_path / "out"))
    assert status == 2 and "adapter_config.json" in err
