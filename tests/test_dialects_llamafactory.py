"""LLaMA-Factory files read as LLaMA-Factory means them.

Expectations come from LLaMA-Factory's own definitions (hiyouga/LLaMA-Factory,
``src/llamafactory/hparams/finetuning_args.py``: LoraArguments lora_dropout 0.0, lora_alpha
"default: lora_rank * 2", lora_target "all", RLHFArguments pref_beta 0.1, pref_loss sigmoid;
``data_args.py``: cutoff_len 2048, dataset_dir "data", mix_strategy concat; ``model_args.py``:
quantization_method bnb, double_quantization true, disable_gradient_checkpointing false;
``data/parser.py`` DatasetAttr for dataset_info.json; ``data/loader.py``: ranking data only in
the preference stages). The files are ours, in LLaMA-Factory's layout (tests/interop/llamafactory).
"""

import json

import pytest

from ftkit.config import RunConfig
from ftkit.dialects import read_config
from ftkit.dialects.llamafactory import resolve_dataset_names
from ftkit.errors import ConfigError
from ftkit.paths import REPO_ROOT

LF = REPO_ROOT / "tests" / "interop" / "llamafactory"
EXAMPLES = LF / "examples"
DATA = LF / "data"


def test_lora_sft_reads_with_llamafactory_defaults():
    reading = read_config(EXAMPLES / "train_lora" / "garden_lora_sft.yaml")
    cfg = reading.config
    assert reading.dialect == "llamafactory" and cfg.stage == "sft" and cfg.method == "lora"
    assert cfg.lora_rank == 16 and cfg.lora_alpha == 32  # 2 x lora_rank
    assert cfg.lora_dropout == 0.0 and cfg.lora_target == ["all-linear"]
    assert cfg.gradient_checkpointing  # on unless disable_gradient_checkpointing
    assert cfg.max_seq_length == 1024 and cfg.max_samples == 500
    assert cfg.trainer_extra == {"save_only_model": False}  # a TrainingArguments field, passed on
    assert cfg.template == "qwen" and cfg.train_file is None
    # Sources: the file, LLaMA-Factory's defaults, ftkit's.
    assert reading.sources["lora_rank"] == "file (lora_rank)"
    assert reading.sources["max_seq_length"] == "file (cutoff_len)"
    assert reading.sources["lora_alpha"] == "LLaMA-Factory default"
    assert reading.sources["lora_dropout"] == "LLaMA-Factory default"
    assert reading.sources["packing"] == "ftkit default"
    assert reading.kept == {"do_train": True, "overwrite_cache": True}


def test_dataset_names_resolve_and_mix():
    cfg = read_config(EXAMPLES / "train_lora" / "garden_lora_sft.yaml").config
    assert cfg.dataset_names == ["garden_alpaca", "garden_chat"]
    alpaca, chat = cfg.datasets
    assert alpaca.file == str(DATA / "garden_alpaca.json") and alpaca.formatting == "alpaca"
    assert alpaca.columns is None and alpaca.tags is None  # LLaMA-Factory's defaults apply
    assert chat.formatting == "sharegpt" and chat.columns == {"messages": "conversations", "system": "system"}
    assert cfg.dataset_dir == str(DATA)


def test_resolve_dataset_names_spec_fields():
    pairs, kto, text = resolve_dataset_names("garden_pairs, garden_kto,garden_text", DATA)
    assert pairs.ranking and pairs.columns["chosen"] == "chosen"
    assert kto.kto_tag == "label" and kto.tags["role_tag"] == "role"
    assert kto.tags.get("observation_tag") is None  # given tags leave the others unset, as in DatasetAttr.join
    assert text.columns == {"prompt": "text"} and not text.ranking
    assert text.load_arguments() == {"path": text.file, "format": "alpaca", "columns": {"prompt": "text"},
                                     "tags": None, "ranking": False}


@pytest.mark.parametrize("name, message", [
    ("garden_photos", r"carries images \(columns.images\): ftkit trains text models"),
    ("garden_hub", r"downloaded from hf_hub_url .*download it and give its file_name"),
    ("no_such_set", r"'no_such_set' is not defined in .*dataset_info.json"),
])
def test_unusable_dataset_entries_are_refused(name, message):
    with pytest.raises(ConfigError, match=message):
        resolve_dataset_names(name, DATA)


def test_dpo_and_pretrain_stages():
    dpo = read_config(EXAMPLES / "train_lora" / "garden_lora_dpo.yaml").config
    assert dpo.stage == "dpo" and dpo.dpo_beta == 0.2 and dpo.dpo_loss_type == "sigmoid"
    assert dpo.lora_target == ["q_proj", "v_proj"] and dpo.datasets[0].ranking
    pt = read_config(EXAMPLES / "train_lora" / "garden_lora_pretrain.yaml").config
    assert pt.stage == "pt" and pt.datasets[0].name == "garden_text" and pt.template is None


def test_qlora_on_the_fly_quantization():
    cfg = read_config(EXAMPLES / "train_qlora" / "garden_lora_sft_otfq.yaml").config
    assert cfg.method == "qlora" and cfg.quantization_bit == 4 and cfg.quant_type == "nf4"
    assert cfg.double_quant is False  # double_quantization: false, as written


def test_shell_script_reads_as_the_yaml_does():
    script = read_config(EXAMPLES / "train_lora" / "garden_lora_sft.sh")
    yaml_cfg = read_config(EXAMPLES / "train_lora" / "garden_lora_sft.yaml").config
    cfg = script.config
    assert script.dialect == "llamafactory" and cfg.model_name_or_path == "Qwen/Qwen2.5-0.5B-Instruct"
    assert cfg.lora_rank == 16 and cfg.output_dir == "saves/garden/lora/sft"  # $RANK, ${OUT}
    assert cfg.plot_loss and cfg.bf16 and cfg.trust_remote_code  # bare switches
    assert cfg.datasets == yaml_cfg.datasets and cfg.learning_rate == yaml_cfg.learning_rate
    assert script.kept["launcher"] == "llamafactory-cli train"


def _write(tmp_path, text, name="lf.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("text, line, message", [
    ("stage: kto\nfinetuning_type: lora\n", 1, r"'stage' asks for KTO .*use stage: dpo"),
    ("stage: rm\nfinetuning_type: lora\n", 1, r"reward-model training"),
    ("stage: ppo\nfinetuning_type: lora\n", 1, r"PPO"),
    ("finetuning_type: lora\nuse_badam: true\n", 2, r"'use_badam' asks for BAdam"),
    ("finetuning_type: lora\nuse_galore: true\n", 2, r"GaLore"),
    ("finetuning_type: lora\nloraplus_lr_ratio: 16\n", 2, r"LoRA\+"),
    ("finetuning_type: lora\npissa_init: true\n", 2, r"PiSSA"),
    ("finetuning_type: full\nuse_llama_pro: true\n", 2, r"LLaMA Pro"),
    ("finetuning_type: oft\n", 1, r"OFT"),
    ("finetuning_type: lora\nquantization_bit: 4\nquantization_method: hqq\n", 3, r"hqq quantization"),
    ("finetuning_type: lora\nquantization_bit: 2\n", 2, r"2-bit quantization"),
    ("finetuning_type: lora\npref_loss: orpo\nstage: dpo\n", 2, r"orpo preference loss"),
    ("model_name_or_path: x/Llama-8B-GPTQ\nfinetuning_type: lora\n", 1, r"AWQ/GPTQ"),
    ("finetuning_type: lora\nmix_strategy: interleave_under\n", 2, r"interleave_under mixing"),
    ("finetuning_type: lora\ntrain_on_prompt: true\n", 2, r"assistant's tokens only"),
])
def test_features_ftkit_lacks_are_refused_with_file_and_line(tmp_path, text, line, message):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=rf"lf.yaml:{line}: .*{message}"):
        read_config(path)


def test_features_switched_off_are_read_and_listed_as_kept(tmp_path):
    path = _write(tmp_path, "finetuning_type: lora\nuse_badam: false\npissa_init: false\nflash_attn: auto\n")
    reading = read_config(path)
    assert reading.config.method == "lora"
    assert reading.kept == {"use_badam": False, "pissa_init": False, "flash_attn": "auto"}


def test_stage_and_data_must_agree(tmp_path):
    info = json.dumps({"pairs": {"file_name": "p.json", "ranking": True}, "chat": {"file_name": "c.json"}})
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "dataset_info.json").write_text(info)
    with pytest.raises(ConfigError, match=r"lf.yaml:2: .*'pairs' holds preference pairs .*stage: dpo"):
        read_config(_write(tmp_path, "stage: sft\ndataset: pairs\n"))
    with pytest.raises(ConfigError, match=r"stage dpo needs preference data, but dataset 'chat'"):
        read_config(_write(tmp_path, "stage: dpo\ndataset: chat\n"))


def test_unresolved_names_are_a_note_not_a_file(tmp_path):
    reading = read_config(_write(tmp_path, "stage: sft\ndataset: identity,alpaca_en_demo\n"))
    cfg = reading.config
    assert cfg.train_file is None and cfg.datasets == [] and cfg.dataset_names == ["identity", "alpaca_en_demo"]
    assert any("not resolved" in note for note in reading.notes)


def test_disable_gradient_checkpointing_and_explicit_alpha(tmp_path):
    cfg = read_config(_write(tmp_path, "finetuning_type: lora\nlora_rank: 4\nlora_alpha: 4\n"
                                       "disable_gradient_checkpointing: true\n")).config
    assert cfg.lora_alpha == 4 and not cfg.gradient_checkpointing


def test_older_layout_keys(tmp_path):
    """Older LLaMA-Factory examples: evaluation_strategy (transformers 4), q_proj,v_proj targets."""
    cfg = read_config(_write(tmp_path, "stage: sft\nfinetuning_type: lora\nlora_target: q_proj,v_proj\n"
                                       "val_size: 0.1\nevaluation_strategy: steps\neval_steps: 50\n"
                                       "logging_dir: logs\n")).config
    assert cfg.eval_strategy == "steps" and cfg.lora_target == ["q_proj", "v_proj"]
    assert cfg.kept == {"logging_dir": "logs"}


def test_every_training_argument_passes(tmp_path):
    cfg = read_config(_write(tmp_path, "finetuning_type: lora\nneftune_noise_alpha: 5\n"
                                       "torch_empty_cache_steps: 10\nlabel_smoothing_factor: 0.1\n")).config
    assert cfg.trainer_extra == {"neftune_noise_alpha": 5, "torch_empty_cache_steps": 10,
                                 "label_smoothing_factor": 0.1}
    assert cfg.training_arguments()["neftune_noise_alpha"] == 5
    with pytest.raises(Exception, match="not transformers.TrainingArguments fields"):
        RunConfig(trainer_extra={"no_such_argument": 1})


def test_v1_layout():
    """LLaMA-Factory v1 (src/llamafactory/v1/config/, examples/v1/, data/v1_sft_demo.yaml)."""
    reading = read_config(EXAMPLES / "v1" / "garden_lora_sft.yaml")
    cfg = reading.config
    assert reading.dialect == "llamafactory_v1" and cfg.model_name_or_path == "Qwen/Qwen2.5-0.5B-Instruct"
    assert cfg.method == "qlora" and cfg.quantization_bit == 4
    assert (cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout) == (8, 16, 0.05)
    assert cfg.per_device_train_batch_size == 2 and cfg.gradient_accumulation_steps == 4  # 8 / 2
    assert cfg.max_seq_length == 512 and cfg.max_steps == 10
    alpaca, chat = cfg.datasets
    assert alpaca.file == str(DATA / "garden_alpaca.json") and alpaca.formatting == "alpaca"
    assert chat.formatting == "sharegpt" and chat.num_samples == 2
    assert "dist_config" in reading.kept
