"""DeepSpeed ZeRO on 2 CPU processes (gloo, DeepSpeed's CPU accelerator): `ftkit train` under
torchrun with seed 001's ds_zero_3.json and ds_zero_2.json and LLaMA-Factory's ds_z3_config.json
(examples/deepspeed/ in LLaMA-Factory); the per-process bytes against ftkit.vram.estimate;
and the checks that stop a DeepSpeed config this machine cannot run, naming file and key."""

import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from ftkit.cli import main
from ftkit.paths import CONFIGS_DIR, REPO_ROOT
from ftkit.train import deepspeed as ds

HAS_DEEPSPEED = importlib.util.find_spec("deepspeed") is not None
needs_deepspeed = pytest.mark.skipif(not HAS_DEEPSPEED, reason=f"DeepSpeed is not installed: {ds.INSTALL}")
# LLaMA-Factory's examples/deepspeed/ds_z3_config.json, in the repository (its own layout and "auto" values)
LLAMAFACTORY_DS = Path(__file__).parent / "interop" / "llamafactory" / "examples" / "deepspeed"
LOSS_TOLERANCE = 1e-3  # relative; float32 sums in another order differ around 1e-6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(run: dict, out: Path, processes: int, accumulation: int, **extra):
    config = out.parent / f"{out.name}.yaml"
    config.write_text(yaml.safe_dump({**run, **extra, "output_dir": str(out),
                                      "gradient_accumulation_steps": accumulation}))
    command = [sys.executable, "-m", "ftkit", "train", str(config)]
    if processes > 1:
        command[1:2] = ["-m", "torch.distributed.run", "--nproc_per_node", str(processes),
                        "--master_port", str(_free_port()), "-m"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    state = json.loads((out / "trainer_state.json").read_text())
    return [row["loss"] for row in state["log_history"] if "loss" in row]


def _same(a, b):
    assert len(a) == len(b) >= 3
    for x, y in zip(a, b):
        assert abs(x - y) <= LOSS_TOLERANCE * abs(y), (a, b)


def _loss_of(model, tokenizer) -> float:
    ids = tokenizer("Who are you? I am Ferret, an assistant.", return_tensors="pt").input_ids
    with torch.no_grad():
        return model(input_ids=ids, labels=ids).loss.item()


@pytest.fixture
def zero_run(tiny_run):
    run = dict(tiny_run, per_device_train_batch_size=1, max_steps=3, lr_scheduler_type="constant",
               max_seq_length=48, report_to=["none"])
    run.pop("output_dir")
    return run


@needs_deepspeed
@pytest.mark.slow
def test_zero3_full_two_processes_equal_one_process_and_save_a_usable_model(zero_run, tmp_path,
                                                                            tiny_model_dir):
    """ZeRO-3 partitions the weights; saving gathers them (stage3_gather_16bit_weights_on_model_save)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = dict(zero_run, method="full")
    zero3 = _train(run, tmp_path / "zero3", 2, 1, deepspeed=str(CONFIGS_DIR / "ds_zero_3.json"))
    alone = _train(run, tmp_path / "alone", 1, 2)
    _same(zero3, alone)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    saved = AutoModelForCausalLM.from_pretrained(tmp_path / "zero3")
    reference = AutoModelForCausalLM.from_pretrained(tmp_path / "alone")
    initial = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    for (name, p), q in zip(saved.named_parameters(), reference.parameters()):
        assert p.shape == q.shape, name  # whole tensors, not one process's shard
    trained, expected, before = (_loss_of(m, tokenizer) for m in (saved, reference, initial))
    assert abs(trained - expected) <= LOSS_TOLERANCE * expected and trained != before


@needs_deepspeed
@pytest.mark.slow
def test_zero2_lora_two_processes_equal_one_process(zero_run, tmp_path, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    zero2 = _train(zero_run, tmp_path / "zero2", 2, 1, deepspeed=str(CONFIGS_DIR / "ds_zero_2.json"))
    alone = _train(zero_run, tmp_path / "alone", 1, 2)
    _same(zero2, alone)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    adapter = PeftModel.from_pretrained(base, tmp_path / "zero2")
    assert sum(p.numel() for n, p in adapter.named_parameters() if "lora_" in n) > 0


@needs_deepspeed
@pytest.mark.slow
def test_llamafactory_z3_config_trains_lora_on_two_processes(zero_run, tmp_path):
    """LLaMA-Factory's own examples/deepspeed/ds_z3_config.json, as its users pass it."""
    losses = _train(zero_run, tmp_path / "lf", 2, 1, deepspeed=str(LLAMAFACTORY_DS / "ds_z3_config.json"))
    assert len(losses) >= 3 and (tmp_path / "lf" / "adapter_config.json").is_file()


@needs_deepspeed
@pytest.mark.slow
def test_zero_bytes_per_process_match_the_estimate(tmp_path):
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    import sharding

    rows = sharding.measure(("zero2", "zero3"), tmp_path)
    for row in rows:
        assert row["error"] <= sharding.TARGET, row
        assert row["loss_error"] <= sharding.LOSS_TOLERANCE, row
    held = {(r["strategy"], r["component"]): r["measured"][0] for r in rows}
    # ZeRO-3 holds half the 16-bit weights that ZeRO-2 holds whole.
    assert held["zero3", "params"] * 2 == held["zero2", "params"]


# --- What stops before training, with the file and the key -------------------------------

def _refusal(tmp_path, capsys, deepspeed_value) -> str:
    status = main(["train", str(CONFIGS_DIR / "lora.yaml"), "--set", f"deepspeed={deepspeed_value}",
                   "--set", f"output_dir={tmp_path / 'out'}"])
    assert status == 2
    return capsys.readouterr().err


def _write(tmp_path, name, data) -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


@needs_deepspeed
def test_missing_deepspeed_file_names_it(tmp_path, capsys):
    err = _refusal(tmp_path, capsys, tmp_path / "nowhere.json")
    assert "nowhere.json" in err and "no such file" in err


@needs_deepspeed
def test_deepspeed_file_that_is_not_json_names_line_and_column(tmp_path, capsys):
    path = _write(tmp_path, "broken.json", '{\n  "zero_optimization": {"stage": 2,}\n}\n')
    err = _refusal(tmp_path, capsys, path)
    assert f"{path}:2:" in err and "not valid JSON" in err


@needs_deepspeed
@pytest.mark.parametrize("data, key", [
    ({"zero_optimization": {"stage": 4}}, "zero_optimization.stage"),
    ({"zero_optimization": {"stage": 3, "offload_param": {"device": "nvme"}}},
     "zero_optimization.offload_param.nvme_path"),
    ({"zero_optimization": {"stage": 2, "offload_param": {"device": "cpu"}}},
     "zero_optimization.offload_param needs stage 3"),
])
def test_deepspeed_config_this_machine_cannot_run_names_file_and_key(tmp_path, capsys, data, key):
    path = _write(tmp_path, "ds.json", data)
    err = _refusal(tmp_path, capsys, path)
    assert str(path) in err and key in err


@needs_deepspeed
@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 is refused only without a GPU")
def test_fp16_in_deepspeed_config_on_a_cpu_names_file_and_key(tmp_path, capsys):
    path = _write(tmp_path, "fp16.json", {"fp16": {"enabled": True}, "zero_optimization": {"stage": 2}})
    err = _refusal(tmp_path, capsys, path)
    assert str(path) in err and "fp16.enabled" in err


def test_missing_deepspeed_package_says_how_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "deepspeed", None)  # as on a machine without it
    err = _refusal(tmp_path, capsys, CONFIGS_DIR / "ds_zero_2.json")
    assert "pip install" in err and "--no-build-isolation" in err and ds.PIN in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="torch's AdamW replaces FusedAdam on CPUs only")
def test_adam_block_uses_torch_adamw_on_cpu_processes_and_keeps_the_file_values():
    resolved = ds.resolve(str(CONFIGS_DIR / "ds_zero_3.json"), cuda=False)
    assert resolved["optimizer"]["params"]["torch_adam"] is True
    assert resolved["optimizer"]["params"]["lr"] == "auto"  # Trainer fills it from the run config
    inline = ds.resolve({"zero_optimization": {"stage": 2}}, cuda=False)
    assert inline == {"zero_optimization": {"stage": 2}}
    assert ds.stage(str(CONFIGS_DIR / "ds_zero_3.json")) == 3


@needs_deepspeed
def test_auto_values_are_filled_from_the_run_config(tiny_run):
    """Trainer fills the "auto" values from the run's TrainingArguments (the bucket sizes of
    ZeRO-3 follow later, from the model's hidden size)."""
    from transformers import TrainingArguments
    from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig

    resolved = ds.resolve(str(CONFIGS_DIR / "ds_zero_3.json"), cuda=False)
    args = TrainingArguments(output_dir=tiny_run["output_dir"], use_cpu=True, deepspeed=resolved,
                             learning_rate=3e-4, per_device_train_batch_size=2,
                             gradient_accumulation_steps=4, adam_beta2=0.95, report_to=[])
    filled = HfTrainerDeepSpeedConfig(resolved)
    filled.trainer_config_process(args)
    config = filled.config
    assert config["train_micro_batch_size_per_gpu"] == 2
    assert config["optimizer"]["params"]["lr"] == 3e-4
    assert config["optimizer"]["params"]["betas"] == [0.9, 0.95]
    assert config["bf16"]["enabled"] is False
    zero2 = HfTrainerDeepSpeedConfig(ds.resolve(str(CONFIGS_DIR / "ds_zero_2.json"), cuda=False))
    zero2.trainer_config_process(args)
    assert zero2.config["gradient_accumulation_steps"] == 4 and zero2.config["train_batch_size"] == 8
    assert zero2.config["gradient_clipping"] == 1.0 and "auto" not in json.dumps(zero2.config)
