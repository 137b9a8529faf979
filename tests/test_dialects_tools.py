"""Firefly, ChatGLM3 and Baichuan2 files read as their own scripts mean them; DeepSpeed files
named as such; hints that help.

Sources: Firefly (yangjianxin1/Firefly) ``component/argument.py`` CustomizedArguments:
train_mode default "qlora", task_type sft|pretrain|dpo, lora_rank 64, lora_alpha 16,
lora_dropout 0.05, beta 0.1; ``train.py`` load_model: qlora = 4-bit NF4, double quantization.
ChatGLM3 (THUDM/ChatGLM3) ``finetune_demo/finetune_hf.py``: peft config from ``peft_config``
(peft's LoraConfig defaults r 8, lora_alpha 8, lora_dropout 0.0; target ``query_key_value``
from peft's TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING["chatglm"]); the older
``finetune_demo/scripts/finetune_pt.sh`` flags. Baichuan2 (baichuan-inc/Baichuan2)
``fine-tune/fine-tune.py``: LoraConfig(target_modules=["W_pack"], r=1, lora_alpha=32,
lora_dropout=0.1) under ``--use_lora True``, model_max_length 512.
"""

import json

import pytest

from ftkit.config import hint, map_lora_targets
from ftkit.dialects import load_config, read_config
from ftkit.errors import ConfigError
from ftkit.paths import CONFIGS_DIR, REPO_ROOT

INTEROP = REPO_ROOT / "tests" / "interop"
FIREFLY = INTEROP / "firefly" / "train_args"


def test_firefly_train_mode_defaults_to_qlora():
    reading = read_config(FIREFLY / "sft" / "qlora" / "garden-sft-qlora.json")
    cfg = reading.config
    assert reading.dialect == "firefly" and cfg.method == "qlora" and cfg.quantization_bit == 4
    assert reading.sources["method"] == "Firefly default"
    assert cfg.quant_type == "nf4" and cfg.double_quant
    assert cfg.train_file == "./data/garden.jsonl" and cfg.template == "qwen"
    assert (cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout) == (64, 16, 0.05)


def test_firefly_dpo_and_pretrain():
    dpo = read_config(FIREFLY / "dpo" / "garden-dpo-lora.json")
    assert dpo.config.stage == "dpo" and dpo.config.method == "lora" and dpo.config.dpo_beta == 0.1
    assert dpo.sources["dpo_beta"] == "file (beta)" and dpo.config.max_prompt_length == 128
    assert dpo.kept == {"use_unsloth": False}
    pt = read_config(FIREFLY / "pretrain" / "garden-pretrain-full.json")
    assert pt.config.stage == "pt" and pt.config.method == "full" and pt.config.quantization_bit is None
    assert pt.config.trainer_extra == {"logging_first_step": True}
    assert pt.kept == {"tokenize_num_workers": 4}


def test_firefly_silent_keys_take_transformers_defaults(tmp_path):
    path = tmp_path / "f.json"
    path.write_text(json.dumps({"train_mode": "lora", "train_file": "x.jsonl", "template_name": "qwen",
                                "max_seq_length": 256}))
    reading = read_config(path)
    assert reading.config.learning_rate == 5e-5 and reading.config.num_train_epochs == 3
    assert reading.config.per_device_train_batch_size == 8  # TrainingArguments' defaults
    assert reading.sources["learning_rate"] == "Firefly default"


def test_chatglm3_lora_targets_query_key_value():
    reading = read_config(INTEROP / "chatglm3" / "configs" / "lora.yaml")
    cfg = reading.config
    assert cfg.method == "lora" and cfg.lora_rank == 4
    assert cfg.lora_target == ["query_key_value"] and cfg.lora_alpha == 8 and cfg.lora_dropout == 0.0
    assert reading.sources["lora_target"] == "ChatGLM3 default"
    assert cfg.max_seq_length == 128 + 256 and cfg.eval_strategy == "steps"


def test_chatglm3_scripts():
    hf = read_config(INTEROP / "chatglm3" / "scripts" / "finetune_lora.sh")
    assert hf.dialect == "chatglm3" and hf.config.model_name_or_path == "THUDM/chatglm3-6b"
    assert hf.config.train_file == "data/train.json" and hf.config.lora_rank == 4
    old = read_config(INTEROP / "chatglm3" / "scripts" / "finetune_pt.sh")
    cfg = old.config
    assert cfg.method == "prefix" and cfg.num_virtual_tokens == 64 and cfg.learning_rate == 2e-2
    assert (cfg.max_input_length, cfg.max_output_length) == (512, 128)
    assert cfg.output_dir == "output/garden_pt-64-2e-2" and cfg.gradient_accumulation_steps == 16
    assert "torchrun" in old.kept["launcher"]


def test_baichuan2_lora_is_its_hard_coded_config():
    reading = read_config(INTEROP / "baichuan2" / "fine-tune-lora.sh")
    cfg = reading.config
    assert reading.dialect == "baichuan2" and cfg.method == "lora"
    assert (cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_target) == (1, 32, 0.1, ["W_pack"])
    assert cfg.max_seq_length == 256 and cfg.train_file == "data/garden_chat.json"
    assert reading.kept["launcher"] == "deepspeed --hostfile= fine-tune.py"


def test_fused_targets_map_to_the_model_being_trained():
    llama = ["model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj",
             "model.layers.0.self_attn.v_proj", "model.layers.0.mlp.down_proj"]
    targets, notes = map_lora_targets(["W_pack"], llama)
    assert targets == ["q_proj", "k_proj", "v_proj"] and "W_pack" in notes[0]
    targets, notes = map_lora_targets(["query_key_value", "down_proj"], llama)
    assert targets == ["q_proj", "k_proj", "v_proj", "down_proj"]
    baichuan = ["model.layers.0.self_attn.W_pack", "model.layers.0.mlp.down_proj"]
    assert map_lora_targets(["W_pack"], baichuan) == (["W_pack"], [])  # used as named


@pytest.mark.parametrize("path", [CONFIGS_DIR / "ds_zero_2.json", CONFIGS_DIR / "ds_zero_3.json"])
def test_a_deepspeed_file_is_named_as_one(path):
    with pytest.raises(ConfigError, match=r"this is a DeepSpeed config.*put it under `deepspeed:`"):
        load_config(path)


@pytest.mark.parametrize("key, good, bad", [
    ("learnig_rate", "did you mean learning_rate", None),
    ("use_badam", "ftkit config --keys", "use_dora"),
    ("batch_size", "per_device_train_batch_size", "val_size"),
    ("task_type", "task_field", "did you mean"),
])
def test_hints_name_only_close_keys(key, good, bad):
    text = hint(key)
    assert good in text
    if bad:
        assert bad not in text


def test_script_errors_name_file_and_line(tmp_path):
    path = tmp_path / "run.sh"
    path.write_text("#!/bin/bash\nset -x\nllamafactory-cli train \\\n  --model_name_or_path $MODEL \\\n  --stage sft\n")
    with pytest.raises(ConfigError, match=r"run.sh:3: \$MODEL is not set in the script"):
        load_config(path)
    path.write_text("echo hello\ncd somewhere\n")
    with pytest.raises(ConfigError, match=r"run.sh: no training command found"):
        load_config(path)
    path.write_text("python train.py --learning_rate 'unbalanced\n")
    with pytest.raises(ConfigError, match=r"run.sh:1: cannot parse"):
        load_config(path)


def test_script_forms(tmp_path):
    path = tmp_path / "run.sh"
    path.write_text('export LR=1e-4\nCUDA_VISIBLE_DEVICES=0 python src/train.py --stage sft '
                    '--finetuning_type lora --learning_rate ${LR} --cutoff_len ${LEN:-256} > log.txt\n')
    cfg = load_config(path)
    assert cfg.dialect == "llamafactory" and cfg.learning_rate == 1e-4 and cfg.max_seq_length == 256
    path = tmp_path / "firefly.sh"
    path.write_text("deepspeed --num_gpus=1 train.py --train_args_file "
                    f"{FIREFLY / 'sft' / 'qlora' / 'garden-sft-qlora.json'}\n")
    assert load_config(path).method == "qlora"


def test_config_command_shows_each_values_source(capsys):
    from ftkit.cli import main

    path = INTEROP / "llamafactory" / "examples" / "train_lora" / "garden_lora_sft.yaml"
    assert main(["config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "read as LLaMA-Factory" in out
    rows = {line.split()[0]: line for line in out.splitlines() if not line.startswith("#")}
    assert rows["lora_dropout"].endswith("LLaMA-Factory default")
    assert rows["max_seq_length"].endswith("file (cutoff_len)")
    assert "packing" not in rows and "# kept, not used: do_train=true" in out
    assert main(["config", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["config"]["lora_alpha"] == 32 and data["sources"]["lora_alpha"] == "LLaMA-Factory default"
    assert data["sources"]["lora_rank"] == "file (lora_rank)" and data["kept_not_used"]["do_train"] is True
    assert main(["config", "--keys"]) == 0
    keys = capsys.readouterr().out
    assert "lora_rank\n" in keys and "neftune_noise_alpha  (TrainingArguments" in keys


def test_refusals_exit_2_through_the_command(tmp_path, capsys):
    from ftkit.cli import main

    path = tmp_path / "lf.yaml"
    path.write_text("stage: sft\nfinetuning_type: lora\nuse_galore: true\n")
    assert main(["config", str(path)]) == 2
    assert f"{path}:3: 'use_galore' asks for GaLore" in capsys.readouterr().err
    assert main(["train", str(CONFIGS_DIR / "ds_zero_3.json")]) == 2
    assert "this is a DeepSpeed config" in capsys.readouterr().err


def test_dora_and_rslora_pass_to_the_config(tmp_path):
    path = tmp_path / "lf.yaml"
    path.write_text("finetuning_type: lora\nuse_dora: true\nuse_rslora: true\n")
    cfg = load_config(path)
    assert cfg.use_dora and cfg.use_rslora
