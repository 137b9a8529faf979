"""LLaMA-Factory's v1 YAML layout (``examples/v1/``): ``model``, ``peft_config``, ``quant_config``,
``train_dataset`` (a YAML of datasets), ``micro_batch_size``, ``global_batch_size``.

Sources: LLaMA-Factory ``src/llamafactory/v1/config/`` (``model_args.py``: model,
trust_remote_code false; ``training_args.py``: micro_batch_size 1, global_batch_size 1,
learning_rate 1e-4, bf16 false) and ``examples/v1/*.yaml`` / ``data/v1_*_demo.yaml`` (a dataset
entry has file_name, dataset_dir, converter alpaca|sharegpt|pair, num_samples; ``path`` names
a hub dataset). The layout is young; keys it adds that ftkit does not know are refused by
name, so nothing is dropped in silence.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ..config import DatasetSpec
from ..errors import ConfigError
from .common import Draft, Refused, pass_through, refuse

TOOL = "LLaMA-Factory v1"
MARKERS = {"model_class", "peft_config", "quant_config", "dist_config", "kernel_config",
           "train_dataset", "micro_batch_size", "global_batch_size", "sample_backend"}
DEFAULTS = {"per_device_train_batch_size": 1, "learning_rate": 1e-4, "bf16": False,
            "max_seq_length": 2048, "trust_remote_code": False}
KEPT = ["model_class", "kernel_config", "sample_backend", "max_new_tokens"]
CONVERTERS = {"alpaca": "alpaca", "sharegpt": "sharegpt", "pair": "sharegpt"}


def looks_like(data: dict) -> bool:
    return "model" in data and bool(set(data) & MARKERS)


def read(data: dict, path: Path | None = None) -> Draft:
    data, draft = dict(data), Draft(TOOL)
    draft.defaults.update(DEFAULTS)
    draft.take(data, {"model": "model_name_or_path", "cutoff_len": "max_seq_length",
                      "micro_batch_size": "per_device_train_batch_size"})
    if "global_batch_size" in data:  # one GPU: the rest is accumulation
        total, micro = data.pop("global_batch_size"), draft.values.get("per_device_train_batch_size", 1)
        try:
            draft.set("gradient_accumulation_steps", max(1, int(total) // int(micro)), "global_batch_size")
        except (TypeError, ValueError):
            raise ConfigError(f"global_batch_size must be a whole number (got {total!r})") from None
    peft = data.pop("peft_config", None)
    if peft is None:
        draft.defaults["method"] = "full"
    else:
        peft = dict(peft)
        name = str(peft.pop("name", "lora")).lower()
        if name not in ("lora", "freeze"):
            refuse("peft_config", f"the {name} method", "use name: lora")
        draft.set("method", name, "peft_config")
        draft.take(peft, {"r": "lora_rank", "lora_alpha": "lora_alpha", "lora_dropout": "lora_dropout",
                          "target_modules": "lora_target"})
        pass_through(peft, draft)
    quant = data.pop("quant_config", None)
    if quant is not None:
        quant = dict(quant)
        if str(quant.get("name", "bnb")).lower() not in ("bnb", "auto"):
            refuse("quant_config", f"{quant['name']} quantization", "use name: bnb")
        draft.set("quantization_bit", quant.get("quantization_bit", 4), "quantization_bit")
        if draft.values.get("method") == "lora":
            draft.set("method", "qlora", "peft_config")
    dist = data.pop("dist_config", None)
    if dist:
        draft.kept["dist_config"] = dist
        draft.notes.append("dist_config (FSDP2 / DeepSpeed of v1): kept, not used; ftkit runs one process unless launched with torchrun")
    if "train_dataset" in data:
        _datasets(data.pop("train_dataset"), draft, path)
    draft.keep(data, KEPT)
    pass_through(data, draft)
    return draft


def _datasets(value, draft: Draft, config_path: Path | None) -> None:
    """``train_dataset: data/v1_sft_demo.yaml`` -> DatasetSpecs (relative paths from the folder
    LLaMA-Factory runs in: the config's folder or one above it)."""
    roots = list(Path(config_path).resolve().parents) if config_path else []
    roots.append(Path.cwd())
    listing = next((root / value for root in roots if (root / value).is_file()), None)
    if listing is None:
        draft.kept["train_dataset"] = value
        draft.notes.append(f"train_dataset {value} not found here: datasets not resolved")
        return
    entries = yaml.safe_load(listing.read_text(encoding="utf-8")) or {}
    specs, stage = [], "sft"
    for name, entry in entries.items():
        if "path" in entry and "file_name" not in entry:
            raise Refused("train_dataset", f"dataset {name!r} in {listing} comes from the hub "
                          f"({entry['path']}); ftkit reads local files only: download it and give file_name")
        converter = str(entry.get("converter", "alpaca"))
        if converter not in CONVERTERS:
            raise Refused("train_dataset", f"dataset {name!r} in {listing}: converter {converter!r} is not "
                          f"one ftkit reads ({', '.join(CONVERTERS)})")
        stage = "dpo" if converter == "pair" else stage
        folder = entry.get("dataset_dir", "")
        file = next((root / folder / entry["file_name"] for root in [listing.parent, *roots]
                     if (root / folder / entry["file_name"]).exists()), listing.parent / folder / entry["file_name"])
        specs.append(DatasetSpec(name=name, file=str(Path(file).resolve()), formatting=CONVERTERS[converter],
                                 ranking=converter == "pair", num_samples=entry.get("num_samples")))
    draft.set("dataset_names", [spec.name for spec in specs], "train_dataset")
    draft.set("datasets", [spec.model_dump() for spec in specs], "train_dataset")
    if stage == "dpo":
        draft.set("stage", "dpo", "train_dataset")
