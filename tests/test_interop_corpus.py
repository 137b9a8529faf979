"""Real files from other tools (a folder named by ``FTKIT_INTEROP_DIR``), read as their tools mean them.

``.ci/run`` sets ``FTKIT_INTEROP_DIR`` to ``../shared/interop`` when that folder exists; without
the variable these tests report that the corpus was not given. The folder's README names the
origins (LLaMA-Factory examples and data, ChatGLM3 finetune_demo configs, Baichuan2 README
command lines). Every file gives a reading or a clear refusal (exit 2, the file named), never
a traceback; the known files are checked value by value against what the source tool means:

- LLaMA-Factory ``src/llamafactory/hparams/finetuning_args.py`` (LoraArguments: lora_dropout 0.0,
  lora_alpha = lora_rank * 2, lora_target all; RLHFArguments: pref_beta 0.1, pref_loss sigmoid;
  stage pt/sft/rm/ppo/dpo/kto), ``data_args.py`` (cutoff_len 2048, dataset_dir data),
  ``model_args.py`` (quantization_method bnb, quantization_type nf4, double_quantization true),
  ``model/model_utils/checkpointing.py`` (gradient checkpointing unless disabled),
  ``data/parser.py`` (dataset_info.json entries).
- ChatGLM3 ``finetune_demo/finetune_hf.py`` (peft config from ``peft_config``; peft's LoRA
  target for ChatGLM is ``query_key_value``).
- Baichuan2 ``fine-tune/fine-tune.py`` (``--use_lora True``: LoraConfig r=1, lora_alpha=32,
  lora_dropout=0.1, target_modules ["W_pack"]; model_max_length 512).
"""

import json
import os
from pathlib import Path

import pytest

from ftkit.cli import main
from ftkit.dialects import read_config
from ftkit.errors import ConfigError, FtkitError

CORPUS = os.environ.get("FTKIT_INTEROP_DIR")
pytestmark = pytest.mark.skipif(
    not CORPUS, reason="FTKIT_INTEROP_DIR not given: the corpus of real files from other tools "
                       "was not checked (.ci/run sets it to ../shared/interop when that folder exists)")
ROOT = Path(CORPUS or ".")

CONFIG_SUFFIXES = (".yaml", ".yml", ".sh")
DATA_DIR = "llamafactory/data"

# Expected readings, value by value, from the tools' own definitions (see the module docstring).
LF_SFT = dict(stage="sft", method="lora", lora_rank=8, lora_alpha=16, lora_dropout=0.0,
              lora_target=["all-linear"], max_seq_length=2048, max_samples=1000,
              learning_rate=1e-4, num_train_epochs=3.0, per_device_train_batch_size=1,
              gradient_accumulation_steps=8, lr_scheduler_type="cosine", warmup_ratio=0.1,
              bf16=True, gradient_checkpointing=True, quantization_bit=None,
              dataset_names=["identity", "alpaca_en_demo"], trainer_extra={"save_only_model": False})
EXPECTED = {
    "llamafactory/examples/train_lora/qwen3_lora_sft.yaml": LF_SFT,
    "llamafactory/examples/train_lora/qwen3_lora_sft.sh": LF_SFT,
    "llamafactory/examples/train_lora/qwen3_lora_sft_ds3.yaml": dict(LF_SFT, gradient_accumulation_steps=2),
    "llamafactory/examples/train_full/qwen3_full_sft.yaml": dict(
        LF_SFT, method="full", learning_rate=1e-5, gradient_accumulation_steps=2),
    "llamafactory/examples/train_lora/qwen3_lora_dpo.yaml": dict(
        LF_SFT, stage="dpo", dpo_beta=0.1, dpo_loss_type="sigmoid", learning_rate=5e-6,
        dataset_names=["dpo_en_demo"]),
    "llamafactory/examples/train_lora/qwen3_lora_pretrain.yaml": dict(
        LF_SFT, stage="pt", dataset_names=["c4_demo"], template=None),
    "llamafactory/examples/train_qlora/qwen3_lora_sft_otfq.yaml": dict(
        LF_SFT, method="qlora", quantization_bit=4, quant_type="nf4", double_quant=True),
    "chatglm3/configs/lora.yaml": dict(
        method="lora", lora_rank=8, lora_alpha=32, lora_dropout=0.1, lora_target=["query_key_value"],
        max_input_length=256, max_output_length=512, max_seq_length=768, max_steps=3000,
        learning_rate=5e-5, eval_strategy="steps", eval_steps=500, train_file="train.json"),
    "chatglm3/configs/ptuning_v2.yaml": dict(method="prefix", num_virtual_tokens=128, max_steps=3000),
    "chatglm3/configs/sft.yaml": dict(method="full", learning_rate=5e-5),
    "baichuan2/readme_finetune.sh": dict(
        method="full", model_name_or_path="baichuan-inc/Baichuan2-7B-Base", max_seq_length=512,
        train_file="data/belle_chat_ramdon_10k.json", learning_rate=2e-5, num_train_epochs=4,
        per_device_train_batch_size=16, adam_beta2=0.98, weight_decay=1e-4, bf16=True, tf32=True,
        gradient_checkpointing=True, save_strategy="epoch", lr_scheduler_type="constant"),
    "baichuan2/readme_finetune_lora.sh": dict(
        method="lora", lora_rank=1, lora_alpha=32, lora_dropout=0.1, lora_target=["W_pack"],
        max_seq_length=512, learning_rate=2e-5),
}
# Refusals: (line, words the message must hold).
REFUSED = {
    "llamafactory/examples/train_lora/qwen3_lora_kto.yaml": (6, "KTO"),
    "llamafactory/examples/train_lora/qwen3_lora_reward.yaml": (6, "reward-model training"),
    "llamafactory/examples/train_qlora/llama3_lora_sft_awq.yaml": (2, "AWQ/GPTQ"),
    "llamafactory/examples/train_qlora/llama3_lora_sft_gptq.yaml": (2, "AWQ/GPTQ"),
}


def _files(suffixes):
    return sorted(p for p in ROOT.rglob("*") if p.is_file() and p.suffix in suffixes)


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _configs():
    return [p for p in _files(CONFIG_SUFFIXES) if p.name != "README.md"] if CORPUS else []


def _deepspeed_files():
    if not CORPUS:
        return []
    return [p for p in _files((".json",)) if "zero_optimization" in p.read_text(encoding="utf-8")]


def test_corpus_folder_exists():
    assert ROOT.is_dir(), f"FTKIT_INTEROP_DIR={CORPUS} is not a folder"
    assert _configs(), f"no config files under {ROOT}"


@pytest.mark.parametrize("path", _configs(), ids=_rel if CORPUS else None)
def test_every_config_reads_or_is_refused_clearly(path, capsys):
    """Through the command, as a user runs it: exit 0 with a table, or exit 2 naming the file."""
    code = main(["config", str(path)])
    out, err = capsys.readouterr()
    rel = _rel(path)
    if rel in REFUSED:
        line, words = REFUSED[rel]
        assert code == 2 and f"{path}:{line}: " in err and words in err, err
    else:
        assert code == 0, err
        assert "read as" in out


def _all_files():
    return sorted(p for p in ROOT.rglob("*") if p.is_file()) if CORPUS else []


@pytest.mark.parametrize("path", _all_files(), ids=_rel if CORPUS else None)
def test_no_file_gives_a_traceback(path, capsys):
    """Any file of the corpus given where a config is expected: a reading, or exit 2 naming it."""
    code = main(["config", str(path)])
    err = capsys.readouterr().err
    assert code in (0, 2)
    if code == 2:
        assert err.startswith(f"ftkit config: error: {path}"), err


@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_known_configs_value_by_value(rel):
    path = ROOT / rel
    if not path.is_file():
        pytest.fail(f"{rel} is missing from the corpus at {ROOT}")
    cfg = read_config(path).config
    for key, value in EXPECTED[rel].items():
        assert getattr(cfg, key) == value, f"{rel}: {key} = {getattr(cfg, key)!r}, expected {value!r}"


def test_llamafactory_dataset_names_resolve_to_the_corpus_files():
    cfg = read_config(ROOT / "llamafactory/examples/train_lora/qwen3_lora_sft.yaml").config
    assert [Path(spec.file) for spec in cfg.datasets] == [
        (ROOT / DATA_DIR / "identity.json").resolve(), (ROOT / DATA_DIR / "alpaca_en_demo.json").resolve()]
    dpo = read_config(ROOT / "llamafactory/examples/train_lora/qwen3_lora_dpo.yaml").config
    assert dpo.datasets[0].ranking and dpo.datasets[0].formatting == "sharegpt"
    full = read_config(ROOT / "llamafactory/examples/train_full/qwen3_full_sft.yaml").config
    assert Path(full.deepspeed) == (ROOT / "llamafactory/examples/deepspeed/ds_z3_config.json").resolve()


@pytest.mark.parametrize("path", _deepspeed_files(), ids=_rel if CORPUS else None)
def test_deepspeed_files_are_named_as_such(path):
    with pytest.raises(ConfigError, match="this is a DeepSpeed config"):
        read_config(path)


def _dataset_entries():
    if not CORPUS or not (ROOT / DATA_DIR / "dataset_info.json").is_file():
        return []
    info = json.loads((ROOT / DATA_DIR / "dataset_info.json").read_text(encoding="utf-8"))
    return [name for name, entry in info.items()
            if "file_name" in entry and (ROOT / DATA_DIR / entry["file_name"]).is_file()]


def _record_count(path: Path) -> int:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return sum(1 for line in text.splitlines() if line.strip())
    return len(json.loads(text))


@pytest.mark.parametrize("name", _dataset_entries())
def test_every_local_dataset_loads_in_its_format_with_every_record(name):
    from ftkit import data
    from ftkit.dialects.llamafactory import resolve_dataset_names

    try:
        spec, = resolve_dataset_names(name, ROOT / DATA_DIR)
    except ConfigError as error:  # refused: it must say why, naming the modality
        assert name == "mllm_demo" and "images" in str(error)
        return
    dataset = data.load(**spec.load_arguments(), verbose=False)
    assert len(dataset) == _record_count(Path(spec.file))
    expected_shape = ({"prompt", "chosen", "rejected"} if spec.ranking
                      else {"text"} if spec.columns == {"prompt": "text"}
                      else {"prompt", "completion", "label"} if spec.kto_tag else {"messages"})
    assert expected_shape <= set(dataset.column_names), dataset.column_names


def test_kto_labels_are_never_trained_as_targets():
    """kto_en_demo's ``label: false`` answers must not be learned by SFT in silence."""
    from ftkit import data, models
    from ftkit.dialects.llamafactory import resolve_dataset_names

    spec, = resolve_dataset_names("kto_en_demo", ROOT / DATA_DIR)
    dataset = data.load(**spec.load_arguments(), verbose=False)
    assert set(dataset["label"]) == {True, False}
    with pytest.raises(FtkitError, match="label false"):
        data.tokenize_sft(dataset, models.load_tokenizer(), 256)


def _training_configs():
    return [p for p in _configs() if _rel(p) not in REFUSED]


@pytest.mark.slow
@pytest.mark.parametrize("path", _training_configs(), ids=_rel if CORPUS else None)
def test_every_training_config_rehearses_on_the_default_model(path, tmp_path):
    from ftkit.rehearse import rehearse

    r = rehearse(path, steps=2, samples=4, seq_len=64, workdir=tmp_path, verbose=False)
    assert r.result.summary["steps"] == 2
    assert r.config.stage == r.reading.config.stage and r.config.method == r.reading.config.method
