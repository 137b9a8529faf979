"""LLaMA-Factory YAML (and ``llamafactory-cli train`` flags), read as LLaMA-Factory means it.

The defaults applied where a file is silent are LLaMA-Factory's own, from its argument
dataclasses (``src/llamafactory/hparams/finetuning_args.py``, ``model_args.py``,
``data_args.py``) on top of transformers' ``TrainingArguments``: ``lora_dropout`` 0.0,
``lora_alpha`` = 2 x ``lora_rank``, ``lora_target`` all, ``cutoff_len`` 2048, gradient
checkpointing on unless ``disable_gradient_checkpointing`` (``model/model_utils/checkpointing.py``).

``dataset:`` names resolve through ``dataset_info.json`` in ``dataset_dir`` into
:class:`~ftkit.config.DatasetSpec` objects (:func:`resolve_dataset_names`); several names mix
into one training set, as LLaMA-Factory does (``mix_strategy: concat``).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..config import DatasetSpec, comma_list
from ..errors import ConfigError
from .common import Draft, Refused, pass_through, refuse, training_argument_tool_defaults, truthy

TOOL = "LLaMA-Factory"

# Keys of LLaMA-Factory whose meaning ftkit has under another name.
KEYS = {"cutoff_len": "max_seq_length", "pref_beta": "dpo_beta", "pref_loss": "dpo_loss_type",
        "quantization_type": "quant_type", "double_quantization": "double_quant",
        "num_layer_trainable": "freeze_trainable_layers",  # before v0.8
        "name_module_trainable": "freeze_trainable_modules",  # before v0.8
        "dpo_beta": "dpo_beta", "dpo_loss": "dpo_loss_type"}  # before v0.6

# Keys that change speed, logging, caching or files, never what is learned: kept, not used.
KEPT = [
    "do_train", "do_eval", "do_predict", "overwrite_cache", "preprocessing_batch_size",
    "tokenized_path", "buffer_size", "data_shared_file_system", "eval_num_beams",
    "ignore_pad_token_for_loss", "enable_thinking", "tool_format", "eval_on_each_dataset",
    "media_dir", "image_dir", "cache_dir", "use_fast_tokenizer", "split_special_tokens",
    "model_revision", "low_cpu_mem_usage", "flash_attn", "use_unsloth", "use_unsloth_gc",
    "enable_liger_kernel", "use_reentrant_gc", "upcast_layernorm", "upcast_lmhead_output",
    "infer_backend", "offload_folder", "use_kv_cache", "infer_dtype", "hf_hub_token",
    "ms_hub_token", "om_hub_token", "print_param_status", "quantization_device_map",
    "resize_vocab", "compute_accuracy", "disable_shuffling", "include_effective_tokens_per_second",
    "create_new_adapter", "pure_bf16", "freeze_vision_tower", "freeze_multi_modal_projector",
    "freeze_language_model", "use_swanlab", "swanlab_project", "swanlab_workspace",
    "swanlab_run_name", "swanlab_mode", "swanlab_api_key", "swanlab_logdir",
    "moe_aux_loss_coef", "image_max_pixels", "image_min_pixels", "video_max_pixels",
    "video_min_pixels", "video_fps", "video_maxlen", "audio_sampling_rate", "export_dir",
    "export_size", "export_device", "export_quantization_bit", "export_legacy_format",
    "ppo_buffer_size", "ppo_epochs", "ppo_score_norm", "ppo_target", "ppo_whiten_rewards",
    "kto_chosen_weight", "kto_rejected_weight", "simpo_gamma", "reward_model_type",
    "pissa_iter", "pissa_convert", "loraplus_lr_embedding", "badam_mode", "badam_start_block",
    "badam_switch_mode", "badam_switch_interval", "badam_update_ratio", "badam_mask_mode",
    "badam_verbose", "galore_target", "galore_rank", "galore_update_interval", "galore_scale",
    "galore_proj_type", "galore_layerwise", "apollo_target", "apollo_rank",
    "apollo_update_interval", "apollo_scale", "apollo_proj", "apollo_proj_type",
    "apollo_scale_type", "apollo_layerwise", "apollo_scale_front", "interleave_probs",
]

# (key, feature, what to use instead): refused when the key turns the feature on.
FEATURES = [
    ("use_badam", "BAdam (block-wise Adam)", "use finetuning_type: freeze or lora, or optim: adamw_8bit for less optimizer memory"),
    ("use_galore", "GaLore (low-rank gradient projection)", "use finetuning_type: lora, or optim: adamw_8bit / paged_adamw_8bit"),
    ("use_apollo", "APOLLO", "use finetuning_type: lora, or optim: adamw_8bit"),
    ("use_adam_mini", "Adam-mini", "use optim: adamw_8bit for a smaller optimizer state"),
    ("use_muon", "the Muon optimizer", "use optim: adamw_torch"),
    ("use_llama_pro", "LLaMA Pro (block expansion)", "use finetuning_type: freeze (trains the last layers) or lora"),
    ("loraplus_lr_ratio", "LoRA+ (a larger learning rate for LoRA's B matrices)", "remove it for plain LoRA"),
    ("pissa_init", "PiSSA adapter initialisation", "remove it for LoRA's standard initialisation"),
    ("additional_target", "extra fully trained modules beside LoRA", "remove it, or use finetuning_type: full/freeze"),
    ("freeze_extra_modules", "extra trainable modules in freeze tuning", "use freeze_trainable_modules"),
    ("ref_model", "a separate reference model", "remove it: ftkit's DPO uses the frozen base as reference"),
    ("ref_model_adapters", "adapters on the reference model", "remove it"),
    ("reward_model", "a reward model (PPO)", "use stage: dpo with preference pairs"),
    ("pref_ftx", "an SFT loss added to DPO", "remove it (0.0 is plain DPO)"),
    ("pref_bco_weight", "BCO loss mixing", "remove it (0.0 is plain DPO)"),
    ("dpo_label_smoothing", "label-smoothed (robust) DPO", "remove it (0.0 is plain DPO)"),
    ("ld_alpha", "LD-DPO length weighting", "remove it"),
    ("train_on_prompt", "learning the prompt tokens too", "ftkit learns the assistant's tokens only; use stage: pt to learn every token of plain text"),
    ("mask_history", "learning the last turn only", "ftkit learns every assistant turn; keep one turn per record instead"),
    ("streaming", "streamed datasets", "use a local file (ftkit reads it whole)"),
    ("train_from_scratch", "training from random weights", "start from a pretrained model"),
    ("mixture_of_depths", "mixture-of-depths conversion", "remove it"),
    ("rope_scaling", "RoPE scaling (longer context)", "remove it, or use a model trained for the length you need"),
    ("shift_attn", "shift short attention (LongLoRA)", "remove it"),
    ("adapter_name_or_path", "continuing from an existing adapter", "merge it first (ftkit merge --adapter DIR -o OUT) and train the merged model"),
    ("add_tokens", "adding tokens to the vocabulary", "remove it"),
    ("add_special_tokens", "adding special tokens", "remove it"),
    ("default_system", "a system prompt added to every example", "write the system message into the data"),
    ("neat_packing", "contamination-free packing", "use packing: true (ftkit's packing already keeps examples apart)"),
    ("use_dft_loss", "the DFT loss", "remove it"),
]
STAGES = {"sft": "sft", "pt": "pt", "dpo": "dpo"}
STAGE_REFUSALS = {
    "kto": ("KTO (unpaired preference) training", "for paired data use stage: dpo; for desirable examples only, stage: sft"),
    "rm": ("reward-model training", "use stage: dpo, which needs no reward model"),
    "ppo": ("PPO (RLHF with a reward model)", "use stage: dpo with preference pairs"),
}
PREF_LOSSES = {"sigmoid", "hinge", "ipo"}  # TRL's DPOTrainer loss_type has these

# LLaMA-Factory's own defaults, where they differ from transformers.TrainingArguments'.
DEFAULTS = {"method": "lora", "stage": "sft", "lora_rank": 8, "lora_dropout": 0.0,
            "lora_target": "all", "max_seq_length": 2048, "gradient_checkpointing": True,
            "dpo_beta": 0.1, "dpo_loss_type": "sigmoid", "freeze_trainable_layers": 2,
            "quant_type": "nf4", "double_quant": True, "val_size": 0.0, "plot_loss": False,
            "template": None}


def read(data: dict) -> Draft:
    data, draft = dict(data), Draft(TOOL)
    draft.defaults.update(training_argument_tool_defaults())
    draft.defaults.update(DEFAULTS)
    for key, feature, instead in FEATURES:
        if key in data and data[key] not in (None, False, 0, 0.0, "", "none", "None"):
            refuse(key, feature, instead)
        if key in data:  # switched off: nothing to do, but never dropped in silence
            draft.kept[key] = data.pop(key)
    written = "stage" in data
    stage = str(data.pop("stage", "sft")).lower()
    if stage in STAGE_REFUSALS:
        refuse("stage", STAGE_REFUSALS[stage][0], STAGE_REFUSALS[stage][1])
    if stage not in STAGES:
        raise ConfigError(f"stage {stage!r} is not a LLaMA-Factory stage ftkit knows: pt, sft, dpo")
    if written:
        draft.set("stage", STAGES[stage], "stage")
    _method(data, draft)
    _quantization(data, draft)
    _lora(data, draft)
    _data(data, draft)
    if truthy(data.pop("disable_gradient_checkpointing", False)):
        draft.set("gradient_checkpointing", False, "disable_gradient_checkpointing")
    loss = data.get("pref_loss", data.get("dpo_loss"))
    if loss is not None and str(loss) not in PREF_LOSSES:
        refuse("pref_loss", f"the {loss} preference loss", f"use one of {', '.join(sorted(PREF_LOSSES))}")
    draft.take(data, KEYS)
    model = str(data.get("model_name_or_path", ""))
    if model.lower().endswith(("-awq", "-gptq", "_awq", "_gptq")):
        refuse("model_name_or_path", f"training on an AWQ/GPTQ-quantized checkpoint ({model})",
               "use the unquantized model with quantization_bit: 4 (QLoRA on bitsandbytes)")
    draft.keep(data, KEPT)
    pass_through(data, draft)
    return draft


def _method(data: dict, draft: Draft) -> None:
    written = "finetuning_type" in data
    kind = str(data.pop("finetuning_type", "lora")).lower()
    if kind == "oft":
        refuse("finetuning_type", "OFT (orthogonal fine-tuning)", "use finetuning_type: lora")
    if kind not in ("lora", "freeze", "full"):
        raise ConfigError(f"finetuning_type must be lora, freeze or full (got {kind!r})")
    if written:
        draft.set("method", kind, "finetuning_type")
    modules = data.get("freeze_trainable_modules")
    if modules is not None and str(modules).lower() == "all":
        data.pop("freeze_trainable_modules")  # every module of the trainable layers: ftkit's None
    layers = data.get("freeze_trainable_layers")
    if isinstance(layers, int) and layers < 0:
        refuse("freeze_trainable_layers", "training the first layers (a negative count)",
               "use a positive count: the last N layers train")


def _quantization(data: dict, draft: Draft) -> None:
    bits = data.pop("quantization_bit", None)
    how = str(data.pop("quantization_method", "bnb")).lower()
    if bits is None:
        return
    if how != "bnb":
        refuse("quantization_method", f"{how} quantization", "use quantization_method: bnb (bitsandbytes)")
    if bits not in (4, 8):
        refuse("quantization_bit", f"{bits}-bit quantization", "use 4 or 8 (bitsandbytes)")
    draft.set("quantization_bit", bits, "quantization_bit")
    if draft.values.get("method", "lora") == "lora":
        draft.set("method", "qlora", "finetuning_type")  # LLaMA-Factory's QLoRA: LoRA + quantization_bit


def _lora(data: dict, draft: Draft) -> None:
    draft.take(data, {"lora_rank": "lora_rank", "lora_alpha": "lora_alpha",
                      "lora_dropout": "lora_dropout", "lora_target": "lora_target",
                      "use_rslora": "use_rslora", "use_dora": "use_dora"})
    rank = draft.values.get("lora_rank", DEFAULTS["lora_rank"])
    if "lora_alpha" not in draft.values or draft.values["lora_alpha"] is None:
        draft.values.pop("lora_alpha", None)
        try:
            draft.defaults["lora_alpha"] = 2 * int(rank)  # LoraArguments: "default: lora_rank * 2"
        except (TypeError, ValueError):
            pass  # validation names the bad lora_rank


def _data(data: dict, draft: Draft) -> None:
    for key, field in (("dataset", "dataset_names"), ("eval_dataset", "eval_dataset_names")):
        if key in data:
            value = data.pop(key)
            names = comma_list(value) if isinstance(value, str) else list(value or [])
            if field == "dataset_names":
                draft.set("dataset_names", names, key)
            else:
                draft.kept["eval_dataset"] = names
    if "dataset_dir" in data:
        draft.set("dataset_dir", data.pop("dataset_dir"), "dataset_dir")
    strategy = str(data.pop("mix_strategy", "concat"))
    if strategy != "concat":
        refuse("mix_strategy", f"{strategy} mixing of datasets", "use mix_strategy: concat (the datasets are joined)")
    if "packing" in data:
        draft.set("packing", bool(data.pop("packing")), "packing")
    if "template" in data:
        _template(data.pop("template"), draft)


# Templates of model families: an instruct model's own chat template is the same format.
# The names ftkit's data layer renders (its TEMPLATES and their aliases).
GENERIC_TEMPLATES = {"alpaca", "vicuna", "chatml", "llama3", "qwen", "qwen2", "yi"}


def _template(name, draft: Draft) -> None:
    if name is None or str(name).lower() in GENERIC_TEMPLATES:
        draft.set("template", name, "template")
        return
    draft.kept["template"] = name
    draft.notes.append(f"template {name}: LLaMA-Factory's format for that model family; ftkit renders "
                       "with the model's own chat template (set template: chatml, alpaca, vicuna or "
                       "llama3 to force one)")


# --- dataset_info.json ------------------------------------------------------------------------

HUB_KEYS = ("hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name")
MODALITIES = {"images": "images", "videos": "video", "audios": "audio"}


def find_dataset_dir(dataset_dir: str | None, config_path=None) -> Path | None:
    """The folder holding ``dataset_info.json``: ``dataset_dir`` (default ``data``) as given,
    else relative to the config's folder or one of its parents (LLaMA-Factory runs from its
    repository root, where ``examples/`` and ``data/`` sit side by side)."""
    folder = Path(dataset_dir or "data").expanduser()
    candidates = [folder]
    if not folder.is_absolute() and config_path is not None:
        candidates += [parent / folder for parent in Path(config_path).resolve().parents]
    return next((c.resolve() for c in candidates if (c / "dataset_info.json").is_file()), None)


def resolve_dataset_names(names, dataset_dir) -> list[DatasetSpec]:
    """The :class:`DatasetSpec` of each name in ``dataset_dir/dataset_info.json``.

    ``columns`` / ``tags`` stay as the entry writes them (None: LLaMA-Factory's defaults, see
    :class:`~ftkit.config.DatasetSpec`). Hub-only entries and multimodal sets are refused.
    """
    names = comma_list(names) if isinstance(names, str) else list(names)
    info_path = Path(dataset_dir) / "dataset_info.json"
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{info_path}: no such file (dataset names resolve through it)") from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"{info_path}:{error.lineno}: broken JSON: {error.msg}") from None
    return [_spec(name, info, Path(dataset_dir), info_path) for name in names]


def _spec(name: str, info: dict, folder: Path, info_path: Path) -> DatasetSpec:
    if name not in info:
        close = [n for n in info if n.startswith(name[:4])][:5]
        raise Refused("dataset", f"dataset {name!r} is not defined in {info_path}"
                       + (f" (defined there: {', '.join(close)}, ...)" if close else ""))
    entry = info[name]
    if "file_name" not in entry:
        hub = next((k for k in HUB_KEYS if k in entry), "a hub")
        raise Refused("dataset", f"dataset {name!r} is downloaded from {hub} ({entry.get(hub, '')}), "
                       "and this kit reads local files only: download it and give its file_name in "
                       f"{info_path.name}")
    columns = dict(entry.get("columns") or {})
    for column, modality in MODALITIES.items():
        if columns.get(column):
            raise Refused("dataset", f"dataset {name!r} carries {modality} (columns.{column}): ftkit "
                           "trains text models, and would train the text without them; use a text-only dataset")
    formatting = entry.get("formatting", "alpaca")
    if formatting not in ("alpaca", "sharegpt"):
        raise Refused("dataset", f"dataset {name!r} has formatting {formatting!r}: ftkit reads alpaca and sharegpt")
    tags = entry.get("tags")
    path = folder / entry["file_name"]
    return DatasetSpec(name=name, file=str(path.resolve()), formatting=formatting,
                       columns=dict(columns) if "columns" in entry else None,
                       tags=dict(tags) if tags is not None else None,
                       ranking=bool(entry.get("ranking", False)), kto_tag=columns.get("kto_tag"),
                       split=entry.get("split", "train"), num_samples=entry.get("num_samples"))


def check_stage(stage: str, specs: list[DatasetSpec]) -> None:
    """LLaMA-Factory's rule (``data/loader.py``): preference data for dpo, none elsewhere."""
    for spec in specs:
        if stage == "dpo" and not spec.ranking:
            raise Refused("dataset", f"stage dpo needs preference data, but dataset {spec.name!r} "
                           "is not marked ranking: true in dataset_info.json")
        if stage != "dpo" and spec.ranking:
            raise Refused("dataset", f"dataset {spec.name!r} holds preference pairs (ranking: true): "
                           f"train it with stage: dpo, not stage: {stage}")
