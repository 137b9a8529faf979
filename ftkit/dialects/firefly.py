"""Firefly's ``train_args/*.json``, read as Firefly's ``train.py`` means it (seed 000).

Defaults from Firefly's ``component/argument.py`` (``CustomizedArguments``): ``train_mode``
qlora (4-bit NF4 with double quantization, ``train.py`` ``load_model``), ``task_type`` sft,
``lora_rank`` 64, ``lora_alpha`` 16, ``lora_dropout`` 0.05, ``beta`` 0.1,
``max_prompt_length`` 512; LoRA on every linear layer (``find_all_linear_names``); the rest
is transformers' ``TrainingArguments``.
"""

from __future__ import annotations

import os

from ..errors import ConfigError
from .common import Draft, pass_through, training_argument_tool_defaults

TOOL = "Firefly"
MODES = {"lora": ("lora", None), "qlora": ("qlora", 4), "full": ("full", None),
         "dora": ("lora", None)}
TASKS = {"sft": "sft", "pretrain": "pt", "dpo": "dpo"}
DEFAULTS = {"method": "qlora", "quantization_bit": 4, "stage": "sft", "lora_rank": 64,
            "lora_alpha": 16, "lora_dropout": 0.05, "dpo_beta": 0.1, "lora_target": "all-linear",
            "quant_type": "nf4", "double_quant": True}
KEPT = ["tokenize_num_workers", "use_unsloth", "do_prediction"]


def read(data: dict) -> Draft:
    data, draft = dict(data), Draft(TOOL)
    draft.defaults.update(training_argument_tool_defaults())
    draft.defaults.update(DEFAULTS)
    if "train_mode" in data:
        mode = str(data.pop("train_mode")).lower()
        if mode not in MODES:
            raise ConfigError(f"train_mode must be one of {sorted(MODES)} (got {mode!r})")
        method, bits = MODES[mode]
        draft.set("method", method, "train_mode")
        if bits:
            draft.set("quantization_bit", bits, "train_mode")
        else:
            draft.defaults.pop("quantization_bit")
        if mode == "dora":
            draft.set("use_dora", True, "train_mode")
    if "task_type" in data:
        task = str(data.pop("task_type")).lower()
        if task not in TASKS:
            raise ConfigError(f"task_type must be one of {sorted(TASKS)} (got {task!r})")
        draft.set("stage", TASKS[task], "task_type")
    if draft.values.get("stage", "sft") == "dpo":
        draft.defaults["max_prompt_length"] = 512
    folder, name = data.pop("train_file_path", None), data.pop("train_file_name", None)
    if name:
        draft.set("train_file", os.path.join(folder, name) if folder else name, "train_file_name")
    elif folder:
        draft.set("train_file", folder, "train_file_path")
    draft.take(data, {"template_name": "template", "beta": "dpo_beta", "eval_file": "val_file",
                      "train_file": "train_file"})
    if draft.values.get("val_file") == "":
        del draft.values["val_file"]  # Firefly's default eval_file is "", none
    draft.keep(data, KEPT)
    pass_through(data, draft)
    return draft
