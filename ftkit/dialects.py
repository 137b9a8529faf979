"""Readers for the config dialects of the seeds, each into ftkit's canonical keys.

Taught in lesson 00. A reader returns ``(raw, origin)``: ``raw`` holds canonical keys
(validated afterwards by :func:`ftkit.config.validate`), ``origin`` maps a canonical key back
to the key the user wrote, so an error names what the user can find in their file. Keys a
dialect has that ftkit does not act on go to ``raw["kept"]``: kept and reported, never
dropped silently. Keys nobody knows pass through, so a typo gets a "did you mean".

Dialects:
  ``ftkit``        ftkit's own YAML/JSON (canonical keys)
  ``firefly``      Firefly JSON (seed 000): train_mode, train_file_path + train_file_name ...
  ``chatglm3``     ChatGLM3 finetune_demo YAML (seed 001): data_config, training_args, peft_config
  ``baichuan2``    a Baichuan2-style command line saved in .sh/.txt (seed 002): --flag value
  ``group``        a parameter group as seed 003's form names its fields (LearningRate, LoRA_R ...)
  ``llamafactory`` LLaMA-Factory YAML (seed 004): stage, finetuning_type, cutoff_len ...
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any, Callable

import yaml

from .config import FIELDS, parse_mapping, read_text
from .errors import ConfigError

Reader = Callable[[Any], tuple[dict, dict]]


def _move(source: dict, raw: dict, origin: dict, mapping: dict[str, str]) -> None:
    """Move ``source[key]`` to ``raw[mapping[key]]`` for each key present, recording the origin."""
    for key, canonical in mapping.items():
        if key in source:
            raw[canonical] = source.pop(key)
            origin[canonical] = key


def _keep(source: dict, raw: dict, keys) -> None:
    for key in keys:
        if key in source:
            raw.setdefault("kept", {})[key] = source.pop(key)


# --- Firefly (seed 000) --------------------------------------------------------------------

FIREFLY_MODES = {"lora": ("lora", None), "qlora": ("qlora", 4), "full": ("full", None)}


def read_firefly(data: dict) -> tuple[dict, dict]:
    data, raw, origin = dict(data), {}, {}
    mode = str(data.pop("train_mode", "lora")).lower()
    if mode not in FIREFLY_MODES:
        raise ConfigError(f"train_mode must be one of {sorted(FIREFLY_MODES)} (got {mode!r})")
    raw["method"], bits = FIREFLY_MODES[mode]
    origin["method"] = "train_mode"
    if bits:  # Firefly's qlora is always 4-bit NF4 with double quantization
        raw["quantization_bit"] = bits
    folder, name = data.pop("train_file_path", None), data.pop("train_file_name", None)
    if name:
        raw["train_file"] = os.path.join(folder, name) if folder else name
        origin["train_file"] = "train_file_name"
    elif folder:
        raw["train_file"] = folder
        origin["train_file"] = "train_file_path"
    _move(data, raw, origin, {"template_name": "template"})
    raw.update(data)  # the rest already uses TrainingArguments names
    return raw, origin


# --- ChatGLM3 finetune_demo (seed 001) -----------------------------------------------------

CHATGLM3_PEFT = {"LORA": "lora", "PREFIX_TUNING": "prefix", "P_TUNING": "ptuning",
                 "PROMPT_TUNING": "prompt"}


def read_chatglm3(data: dict) -> tuple[dict, dict]:
    data, raw, origin = dict(data), {}, {}
    data_config = dict(data.pop("data_config", None) or {})
    _move(data_config, raw, origin, {"train_file": "train_file", "val_file": "val_file",
                                     "test_file": "test_file", "num_proc": "preprocessing_num_workers"})
    _keep(data_config, raw, list(data_config))
    _move(data, raw, origin, {"max_input_length": "max_input_length",
                              "max_output_length": "max_output_length"})
    if "max_input_length" in raw and "max_output_length" in raw:
        try:
            raw["max_seq_length"] = int(raw["max_input_length"]) + int(raw["max_output_length"])
        except (TypeError, ValueError):
            pass  # validation names the bad field
    args = dict(data.pop("training_args", None) or {})
    _move(args, raw, origin, {"evaluation_strategy": "eval_strategy"})  # renamed in transformers
    _keep(args, raw, ["predict_with_generate", "generation_config"])
    raw.update(args)
    peft = data.pop("peft_config", None)
    if peft is None:  # the seed: full fine-tuning has no peft_config at all
        raw["method"] = "full"
    else:
        peft = dict(peft)
        kind = str(peft.pop("peft_type", "")).upper()
        if kind not in CHATGLM3_PEFT:
            raise ConfigError(f"peft_config.peft_type must be one of {sorted(CHATGLM3_PEFT)} (got {kind!r})")
        raw["method"] = CHATGLM3_PEFT[kind]
        origin["method"] = "peft_type"
        _move(peft, raw, origin, {"r": "lora_rank", "lora_alpha": "lora_alpha",
                                  "lora_dropout": "lora_dropout", "target_modules": "lora_target",
                                  "num_virtual_tokens": "num_virtual_tokens",
                                  "prefix_projection": "prefix_projection"})
        _keep(peft, raw, ["task_type"])
        raw.update(peft)
    raw.update(data)
    return raw, origin


# --- Baichuan2 command line (seed 002) -----------------------------------------------------

BAICHUAN2_KEYS = {"data_path": "train_file", "model_max_length": "max_seq_length"}


def parse_flags(text: str) -> tuple[dict, list[str]]:
    """``--flag value`` pairs of a shell command line (after the script), and what came before."""
    joined = text.replace("\\\n", " ")
    tokens = shlex.split(joined, comments=True)
    start = next((i + 1 for i, tok in enumerate(tokens) if tok.endswith(".py")), 0)
    flags, launcher = {}, tokens[:start]
    i = start
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("--"):
            raise ConfigError(f"expected a --flag, found {token!r}")
        name, eq, value = token[2:].partition("=")
        if not eq:
            if i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
                value, i = tokens[i + 1], i + 1
            else:
                value = "True"  # a bare switch
        flags[name.replace("-", "_")] = yaml.safe_load(value) if value != "" else ""
        i += 1
    return flags, launcher


def read_baichuan2(text: str) -> tuple[dict, dict]:
    flags, launcher = parse_flags(text)
    raw, origin = {}, {}
    use_lora = flags.pop("use_lora", False)
    raw["method"] = "lora" if str(use_lora).lower() == "true" else "full"
    origin["method"] = "use_lora"
    _move(flags, raw, origin, BAICHUAN2_KEYS)
    if launcher:
        raw.setdefault("kept", {})["launcher"] = " ".join(launcher)
    raw.update(flags)
    return raw, origin


# --- Parameter group (seed 003) ------------------------------------------------------------

GROUP_KEYS = {
    "Scheduler": "lr_scheduler_type", "Optimizer": "optim", "FP16": "fp16",
    "LoRA_Alpha": "lora_alpha", "LoRA_R": "lora_rank", "LoRA_Dropout": "lora_dropout",
    "LearningRate": "learning_rate", "Epochs": "num_train_epochs", "BlockSize": "max_seq_length",
    "BatchSize": "per_device_train_batch_size", "WarmupRatio": "warmup_ratio",
    "WeightDecay": "weight_decay", "GradAccSteps": "gradient_accumulation_steps",
}
GROUP_BITS = {"int4": 4, "int8": 8, "4": 4, "8": 8, "none": None, "": None}


def read_group(data: dict) -> tuple[dict, dict]:
    data, raw, origin = dict(data.get("parameters", data)), {}, {}
    _move(data, raw, origin, GROUP_KEYS)
    bits_key = next((k for k in ("Int4/8", "Int4_8", "Int") if k in data), None)
    if bits_key:
        value = data.pop(bits_key)
        choice = str(value).strip().lower() if value is not None else "none"
        if choice not in GROUP_BITS:
            raise ConfigError(f"field '{bits_key}': must be Int4, Int8 or empty (got {value!r})")
        if GROUP_BITS[choice]:
            raw["quantization_bit"], raw["method"] = GROUP_BITS[choice], "qlora"
            origin["quantization_bit"] = bits_key
    trainer = data.pop("TrainerType", None)
    if trainer is not None and str(trainer).lower() != "standard":
        raise ConfigError(f"field 'TrainerType': only Standard is supported (got {trainer!r})")
    _keep(data, raw, ["name", "namespace", "type", "FineTuningType"])
    if trainer is not None:
        raw.setdefault("kept", {})["TrainerType"] = trainer
    raw.update(data)
    return raw, origin


# --- LLaMA-Factory (seed 004) --------------------------------------------------------------

LLAMAFACTORY_KEYS = {"cutoff_len": "max_seq_length", "dataset": "train_file",
                     "eval_dataset": "val_file", "pref_beta": "dpo_beta",
                     "pref_loss": "dpo_loss_type", "finetuning_type": "method"}
LLAMAFACTORY_KEPT = ["do_train", "do_eval", "overwrite_cache", "dataset_dir", "flash_attn",
                     "ddp_find_unused_parameters", "resize_vocab", "upcast_layernorm"]


def read_llamafactory(data: dict) -> tuple[dict, dict]:
    data, raw, origin = dict(data), {}, {}
    stage = str(data.pop("stage", "sft")).lower()
    if stage not in ("sft", "dpo"):
        raise ConfigError(f"stage {stage!r} is not supported: ftkit trains stage sft or dpo")
    raw["stage"] = stage
    _move(data, raw, origin, LLAMAFACTORY_KEYS)
    method = str(raw.get("method", "lora")).lower()
    if method == "lora" and data.get("quantization_bit") is not None:
        method = "qlora"  # LLaMA-Factory's QLoRA is LoRA plus quantization_bit
    raw["method"] = method
    _keep(data, raw, LLAMAFACTORY_KEPT)
    raw.update(data)
    return raw, origin


# --- Detection -----------------------------------------------------------------------------

MAPPING_READERS: dict[str, Reader] = {
    "firefly": read_firefly, "chatglm3": read_chatglm3, "group": read_group,
    "llamafactory": read_llamafactory, "ftkit": lambda data: (dict(data), {}),
}
DIALECTS = tuple(MAPPING_READERS) + ("baichuan2",)
MARKERS = {
    "firefly": {"train_mode", "train_file_path", "train_file_name", "template_name"},
    "chatglm3": {"data_config", "training_args", "peft_config"},
    "group": set(GROUP_KEYS) | {"Int4/8", "TrainerType"},
    "llamafactory": {"stage", "finetuning_type", "cutoff_len", "dataset"},
}


def detect(data: dict) -> str:
    """The dialect whose marker keys a mapping has (``ftkit`` when none)."""
    keys = set(data.get("parameters", {}) if isinstance(data.get("parameters"), dict) else data)
    if keys <= set(FIELDS):
        return "ftkit"  # only canonical keys (a file ftkit wrote, or a hand-written one)
    for name, markers in MARKERS.items():
        if keys & markers:
            return name
    return "ftkit"


def read_dialect(path, dialect: str | None = None) -> tuple[dict, dict, str, str]:
    """``(raw, origin, text, dialect)`` for a config file; the dialect is detected if not given."""
    if dialect is not None and dialect not in DIALECTS:
        raise ConfigError(f"--dialect must be one of {', '.join(DIALECTS)} (got {dialect!r})")
    text = read_text(path)
    if dialect == "baichuan2" or (dialect is None and Path(path).suffix in (".sh", ".txt")):
        try:
            raw, origin = read_baichuan2(text)
        except ValueError as error:  # shlex: unbalanced quotes
            raise ConfigError(f"{path}: cannot parse the command line: {error}") from None
        return raw, origin, text, "baichuan2"
    data = parse_mapping(path, text)
    found = dialect or detect(data)
    try:
        raw, origin = MAPPING_READERS[found](data)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    return raw, origin, text, found


def mapping_table(path, dialect: str | None = None) -> list[tuple[str, str, Any]]:
    """Rows ``(key as written, canonical key, resolved value)``: how a file was read."""
    from .config import load_config

    raw, origin, _, _ = read_dialect(path, dialect)
    config = load_config(path, dialect)
    return [(origin.get(key, key), key, getattr(config, key))
            for key in raw if key not in ("kept", "dialect")]
