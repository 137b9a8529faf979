"""Every seed config resolves to the values it means; every bad config gets a clear message."""

import json
from pathlib import Path

import pytest
import yaml

from ftkit.config import RunConfig, parse_overrides
from ftkit.dialects import detect, load_config
from ftkit.errors import ConfigError
from ftkit.paths import CONFIGS_DIR, REPO_ROOT

SEEDS = CONFIGS_DIR / "seeds"
# The seed notes' config blocks, extracted once (the notes live outside the repository).
SEED_BLOCKS = json.loads((REPO_ROOT / "tests" / "interop" / "seeds" / "seed_blocks.json").read_text(encoding="utf-8"))


def test_firefly_json_seed_000():
    cfg = load_config(SEEDS / "firefly_qwen1.5-7b-sft-lora.json")
    assert cfg.dialect == "firefly"
    assert cfg.method == "lora" and cfg.quantization_bit is None
    assert cfg.train_file == "data/aspcoder_train.csv"
    assert cfg.template == "qwen"
    assert (cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout) == (64, 16, 0.05)
    assert cfg.learning_rate == 2e-4 and cfg.max_seq_length == 1024
    assert (cfg.per_device_train_batch_size, cfg.gradient_accumulation_steps) == (1, 16)
    assert cfg.lr_scheduler_type == "constant_with_warmup" and cfg.warmup_steps == 100
    assert cfg.optim == "paged_adamw_32bit" and cfg.max_grad_norm == 0.3
    assert cfg.fp16 and cfg.gradient_checkpointing and cfg.report_to == ["tensorboard"]
    assert cfg.save_total_limit == 1 and cfg.save_steps == 100 and cfg.logging_steps == 100


def test_firefly_qlora_means_4bit():
    data = json.loads((SEEDS / "firefly_qwen1.5-7b-sft-lora.json").read_text())
    data["train_mode"] = "qlora"
    cfg = _load_dict(data, "firefly.json")
    assert cfg.method == "qlora" and cfg.quantization_bit == 4


@pytest.mark.parametrize("name, method", [("chatglm3_lora.yaml", "lora"),
                                          ("chatglm3_ptuning_v2.yaml", "prefix"),
                                          ("chatglm3_sft.yaml", "full")])
def test_chatglm3_yaml_seed_001(name, method):
    cfg = load_config(SEEDS / name)
    assert cfg.dialect == "chatglm3" and cfg.method == method
    assert (cfg.train_file, cfg.val_file, cfg.test_file) == ("train.json", "dev.json", "dev.json")
    assert (cfg.max_input_length, cfg.max_output_length, cfg.max_seq_length) == (256, 512, 768)
    assert cfg.max_steps == 3000 and cfg.learning_rate == 5e-5
    assert cfg.eval_strategy == "steps" and cfg.eval_steps == 500  # from evaluation_strategy
    assert cfg.preprocessing_num_workers == 16 and cfg.dataloader_num_workers == 16
    assert cfg.kept["predict_with_generate"] is True
    if method == "lora":
        assert (cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout) == (8, 32, 0.1)
    if method == "prefix":
        assert cfg.num_virtual_tokens == 128
    if method == "full":
        assert cfg.deepspeed == str(CONFIGS_DIR / "ds_zero_3.json")  # found above the config


def test_baichuan2_command_line_seed_002():
    cfg = load_config(SEEDS / "baichuan2_finetune.sh")
    assert cfg.dialect == "baichuan2" and cfg.method == "lora"
    assert cfg.model_name_or_path == "baichuan-inc/Baichuan2-7B-Chat"
    assert cfg.train_file == "data/belle_chat_ramdon_10k.json" and cfg.max_seq_length == 512
    assert cfg.num_train_epochs == 4 and cfg.per_device_train_batch_size == 16
    assert cfg.save_strategy == "epoch" and cfg.lr_scheduler_type == "constant"
    assert (cfg.adam_beta1, cfg.adam_beta2, cfg.adam_epsilon) == (0.9, 0.98, 1e-8)
    assert cfg.weight_decay == 1e-4 and cfg.warmup_ratio == 0.0 and cfg.logging_steps == 1
    assert cfg.gradient_checkpointing and cfg.bf16 and cfg.tf32
    assert cfg.deepspeed == "ds_config.json" and cfg.report_to == ["none"]
    assert "deepspeed" in cfg.kept["launcher"]


def test_baichuan2_without_lora_is_full(tmp_path):
    path = tmp_path / "ft.sh"
    path.write_text("python fine-tune.py --learning_rate 1e-5 --use_lora False --bf16\n")
    cfg = load_config(path)
    assert cfg.method == "full" and cfg.bf16 and cfg.learning_rate == 1e-5


def test_parameter_group_seed_003():
    cfg = load_config(SEEDS / "parameter_group_sft.yaml")
    assert cfg.dialect == "group"
    assert cfg.lr_scheduler_type == "cosine" and cfg.optim == "adamw_torch" and not cfg.fp16
    assert (cfg.lora_alpha, cfg.lora_rank, cfg.lora_dropout) == (32, 4, 0.1)
    assert cfg.method == "lora" and cfg.quantization_bit is None  # Int4/8 left empty, as in the seed
    assert cfg.learning_rate == 0.001 and cfg.num_train_epochs == 10
    assert cfg.max_seq_length == 512 and cfg.per_device_train_batch_size == 32
    assert cfg.warmup_ratio == 0.1 and cfg.weight_decay == 0.0001
    assert cfg.gradient_accumulation_steps == 1 and cfg.kept["TrainerType"] == "Standard"


def test_parameter_group_int4_is_qlora(tmp_path):
    cfg = load_config(_write(tmp_path, "LearningRate: 0.001\nInt4/8: Int4\n"))
    assert cfg.method == "qlora" and cfg.quantization_bit == 4


def test_llamafactory_yaml_seed_004():
    """LLaMA-Factory's own defaults where the file is silent (hparams/finetuning_args.py:
    lora_dropout 0.0, lora_alpha = 2 x lora_rank); dataset names through dataset_info.json."""
    cfg = load_config(SEEDS / "llamafactory_qwen2.5-7b_lora_sft.yaml")
    assert cfg.dialect == "llamafactory"
    assert cfg.method == "qlora" and cfg.quantization_bit == 4  # lora + quantization_bit
    assert cfg.lora_target == ["all-linear"] and cfg.template == "qwen"
    assert (cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout) == (8, 16, 0.0)
    assert cfg.train_file is None and cfg.dataset_names == ["identity"]
    assert [d.name for d in cfg.datasets] == ["identity"]
    assert cfg.datasets[0].file == str((REPO_ROOT / "data" / "identity.jsonl").resolve())
    assert cfg.max_seq_length == 1024 and cfg.max_samples == 1000
    assert cfg.learning_rate == 1e-4 and cfg.num_train_epochs == 3
    assert cfg.lr_scheduler_type == "cosine" and cfg.warmup_ratio == 0.1 and cfg.bf16
    assert cfg.val_size == 0.1 and cfg.eval_strategy == "steps" and cfg.eval_steps == 500
    assert cfg.plot_loss and cfg.overwrite_output_dir and cfg.ddp_timeout == 180000000
    assert cfg.gradient_checkpointing  # LLaMA-Factory turns it on unless disable_gradient_checkpointing
    assert cfg.kept == {"do_train": True, "overwrite_cache": True}


def test_bundled_seed_configs_match_the_seed_texts():
    """configs/seeds/ holds the seeds' configs verbatim (compared as data with the notes' blocks)."""
    for name, block in SEED_BLOCKS["chatglm3"].items():
        assert yaml.safe_load((SEEDS / f"chatglm3_{name}").read_text()) == block, name
    for name, block in SEED_BLOCKS["deepspeed"].items():
        assert json.loads((CONFIGS_DIR / name).read_text()) == block, name
    ours = json.loads((SEEDS / "firefly_qwen1.5-7b-sft-lora.json").read_text())
    assert ours == SEED_BLOCKS["firefly"]


def test_own_yaml_round_trip(tmp_path):
    cfg = RunConfig(method="prefix", num_virtual_tokens=16, learning_rate=1e-3)
    path = tmp_path / "run.yaml"
    cfg.to_yaml(path)
    again = load_config(path)
    assert again == cfg and detect(yaml.safe_load(path.read_text())) == "ftkit"


def test_overrides_apply_and_are_typed():
    cfg = load_config(SEEDS / "chatglm3_lora.yaml", overrides=["learning_rate=1e-4", "lora_rank=16"])
    assert cfg.learning_rate == 1e-4 and cfg.lora_rank == 16
    assert parse_overrides(["report_to=[tensorboard]"]) == {"report_to": ["tensorboard"]}


def test_training_arguments_are_accepted_by_transformers(tmp_path):
    from transformers import TrainingArguments

    cfg = load_config(SEEDS / "llamafactory_qwen2.5-7b_lora_sft.yaml",
                      overrides={"output_dir": str(tmp_path), "bf16": False})
    args = TrainingArguments(**cfg.training_arguments())
    assert args.learning_rate == 1e-4 and args.warmup_steps == 0.1
    assert args.eval_strategy == "steps" and args.lr_scheduler_type == "cosine"


# --- error paths: exit 2 with a message naming the file, line or field, and what is allowed --

def _write(tmp_path, text, name="bad.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _load_dict(data, name, tmp_path=None):
    import tempfile

    folder = Path(tmp_path or tempfile.mkdtemp())
    return load_config(_write(folder, json.dumps(data), name))


@pytest.mark.parametrize("text, expected", [
    ("learnig_rate: 1e-4\n", r"bad.yaml:1: unknown key 'learnig_rate' \(did you mean learning_rate\?\)"),
    ("lora_rank: -3\n", r"bad.yaml:1: field 'lora_rank'.*greater than or equal to 1"),
    ("method: lorra\n", r"field 'method': must be one of 'full', 'freeze', 'lora'"),
    ("learning_rate: fast\n", r"field 'learning_rate'.*got 'fast'"),
    ("per_device_train_batch_size: -1\n", r"per_device_train_batch_size"),
    ("fp16: true\nbf16: true\n", r"fp16 and bf16 are both on"),
    ("method: qlora\n", r"qlora needs quantization_bit: 4 .* or 8"),
    ("method: qlora\nquantization_bit: 3\n", r"quantization_bit.*must be one of 4 or 8"),
    ("method: lora\nquantization_bit: 4\n", r"set method: qlora"),
    ("max_input_length: 128\n", r"max_input_length and max_output_length go together"),
    ("eval_strategy: steps\n", r"needs validation data"),
    ("warmup_steps: 10\nwarmup_ratio: 0.1\n", r"keep one"),
    ("stage: dpo\nmethod: prompt\n", r"stage dpo trains with"),
    ("optim: adamm\n", r"field 'optim': must be one of"),
    ("method: [lora\n", r"bad.yaml:2: broken YAML"),
    ("- just\n- a list\n", r"expected a mapping"),
])
def test_bad_configs_get_clear_messages(tmp_path, text, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config(_write(tmp_path, text))


def test_bad_dialect_values(tmp_path):
    with pytest.raises(ConfigError, match="train_mode must be one of"):
        load_config(_write(tmp_path, '{"train_mode": "lorra"}', "f.json"))
    with pytest.raises(ConfigError, match="peft_type must be one of"):
        load_config(_write(tmp_path, "peft_config:\n  peft_type: ADAPTER\n"))
    with pytest.raises(ConfigError, match="Int4, Int8"):
        load_config(_write(tmp_path, "LearningRate: 0.1\nInt4/8: Int3\n"))
    with pytest.raises(ConfigError, match=r"bad.yaml:1: 'stage' asks for PPO"):
        load_config(_write(tmp_path, "stage: ppo\nfinetuning_type: lora\n"))
    with pytest.raises(ConfigError, match=r"f.json:2: broken JSON"):
        load_config(_write(tmp_path, '{"a": 1,\n}', "f.json"))
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(SEEDS / "chatglm3_lora.yaml", overrides=["learning_rate"])


def test_dialect_typo_names_the_users_key(tmp_path):
    path = _write(tmp_path, "LearningRate: -1\nLoRA_R: 8\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:1: field 'LearningRate'"):
        load_config(path)


def test_bare_yaml_no_is_the_strategy_no(tmp_path):
    cfg = load_config(_write(tmp_path, "save_strategy: no\neval_strategy: no\n", "ok.yaml"))
    assert (cfg.save_strategy, cfg.eval_strategy) == ("no", "no")
