"""More than one process: `ftkit train` under torchrun (DDP over gloo on a CPU) gives the
loss trajectory of one process with twice the gradient accumulation; DeepSpeed configs
pass through and fail clearly where DeepSpeed is not installed; Trainer's fsdp is refused on a
CPU, where it would not shard (tests/test_fsdp.py shards with fully_shard instead)."""

import json
import os
import socket
import subprocess
import sys

import pytest
import yaml

from ftkit.cli import main
from ftkit.config import RunConfig
from ftkit.paths import CONFIGS_DIR, DATA_DIR, REPO_ROOT
from ftkit.train import distributed

# Tiny on purpose: two processes share 2 CPU cores in CI. Dropout off, so both runs are
# deterministic functions of the same examples.
TINY = dict(stage="sft", method="lora", train_file=str(DATA_DIR / "identity.jsonl"),
            max_samples=8, max_seq_length=48, lora_rank=4, lora_dropout=0.0,
            per_device_train_batch_size=1, max_steps=3, learning_rate=1e-3,
            lr_scheduler_type="constant", logging_steps=1, save_strategy="no",
            report_to=["none"], disable_tqdm=True, plot_loss=False, overwrite_output_dir=True,
            # Trainer sets up DDP between CPU processes only with use_cpu (see
            # ftkit.train.distributed.cpu_processes_need_flag); train_dpo / train_multitask set
            # it themselves, finetune will once it calls that function too.
            use_cpu=True)
# Relative difference allowed between the two trajectories: float32 sums taken in another
# order (all-reduce vs accumulation) differ around 1e-6; Adam keeps that small over 3 steps.
TOLERANCE = 1e-3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(config, out, processes: int, accumulation: int):
    command = [sys.executable, "-m", "ftkit", "train", str(config),
               "--set", f"output_dir={out}", "--set", f"gradient_accumulation_steps={accumulation}"]
    if processes > 1:
        command[1:2] = ["-m", "torch.distributed.run", "--nproc_per_node", str(processes),
                        "--master_port", str(_free_port()), "-m"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    state = json.loads((out / "trainer_state.json").read_text())
    summary = json.loads((out / "run_summary.json").read_text())
    return [row["loss"] for row in state["log_history"] if "loss" in row], summary


@pytest.mark.slow
def test_two_processes_equal_one_process_with_double_accumulation(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    two, summary_two = _train(config, tmp_path / "ddp", processes=2, accumulation=1)
    one, summary_one = _train(config, tmp_path / "ga", processes=1, accumulation=2)
    assert summary_two["world_size"] == 2 and summary_one["world_size"] == 1
    assert len(one) == len(two) >= TINY["max_steps"]
    assert one[-1] < one[0]  # it learned something, so the comparison means something
    for a, b in zip(one, two):
        assert abs(a - b) <= TOLERANCE * abs(a), (one, two)


def test_world_size_and_rank_default_to_one_process(monkeypatch):
    for name in ("WORLD_SIZE", "RANK"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.world_size() == 1 and distributed.rank() == 0 and distributed.is_main_process()
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    assert distributed.world_size() == 4 and not distributed.is_main_process()


def test_deepspeed_key_passes_through_to_training_arguments():
    path = str(CONFIGS_DIR / "ds_zero_3.json")
    assert RunConfig(deepspeed=path).training_arguments()["deepspeed"] == path
    zero2 = json.loads((CONFIGS_DIR / "ds_zero_2.json").read_text())
    assert RunConfig(deepspeed=zero2).training_arguments()["deepspeed"]["zero_optimization"]["stage"] == 2


def test_deepspeed_config_without_deepspeed_exits_2(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "deepspeed", None)  # as on a machine without DeepSpeed
    status = main(["train", str(CONFIGS_DIR / "lora.yaml"), "--set",
                   f"deepspeed={CONFIGS_DIR / 'ds_zero_2.json'}", "--set", f"output_dir={tmp_path}"])
    assert status == 2
    err = capsys.readouterr().err
    assert "pip install" in err and "--no-build-isolation" in err and "deepspeed==" in err


def test_trainer_fsdp_on_a_cpu_is_refused_rather_than_run_as_ddp(capsys, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("Trainer's fsdp shards on GPUs; the refusal is for CPU processes")
    status = main(["train", str(CONFIGS_DIR / "lora.yaml"), "--set", "fsdp=full_shard auto_wrap",
                   "--set", f"output_dir={tmp_path}"])
    assert status == 2
    assert "fully_shard" in capsys.readouterr().err


def test_unknown_fsdp_option_is_a_config_error(capsys, tmp_path):
    status = main(["train", str(CONFIGS_DIR / "lora.yaml"), "--set", "fsdp=full_shard sideways",
                   "--set", f"output_dir={tmp_path}"])
    assert status == 2
    assert "sideways" in capsys.readouterr().err
