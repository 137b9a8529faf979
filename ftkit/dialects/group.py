"""A parameter group as seed 003's web console names its fields (LearningRate, LoRA_R ...).

The console's form has no defaults of its own beyond what it shows, so ftkit's apply.
"""

from __future__ import annotations

from ..errors import ConfigError
from .common import Draft, pass_through

TOOL = "parameter group"
KEYS = {
    "Scheduler": "lr_scheduler_type", "Optimizer": "optim", "FP16": "fp16",
    "LoRA_Alpha": "lora_alpha", "LoRA_R": "lora_rank", "LoRA_Dropout": "lora_dropout",
    "LearningRate": "learning_rate", "Epochs": "num_train_epochs", "BlockSize": "max_seq_length",
    "BatchSize": "per_device_train_batch_size", "WarmupRatio": "warmup_ratio",
    "WeightDecay": "weight_decay", "GradAccSteps": "gradient_accumulation_steps",
}
BITS = {"int4": 4, "int8": 8, "4": 4, "8": 8, "none": None, "": None}
BITS_KEYS = ("Int4/8", "Int4_8", "Int")
# The form's "fine-tuning type" (微调类型, default SFT) is the training stage.
STAGE_KEYS = ("type", "FineTuningType")
STAGES = {"sft": "sft", "dpo": "dpo", "pt": "pt", "pretrain": "pt", "multitask": "multitask"}


def read(data: dict) -> Draft:
    data, draft = dict(data.get("parameters", data)), Draft(TOOL)
    draft.take(data, KEYS)
    bits_key = next((k for k in BITS_KEYS if k in data), None)
    if bits_key:
        value = data.pop(bits_key)
        choice = str(value).strip().lower() if value is not None else "none"
        if choice not in BITS:
            raise ConfigError(f"field '{bits_key}': must be Int4, Int8 or empty (got {value!r})")
        if BITS[choice]:
            draft.set("quantization_bit", BITS[choice], bits_key)
            draft.set("method", "qlora", bits_key)
    for key in STAGE_KEYS:
        if key in data:
            value = data.pop(key)
            stage = STAGES.get(str(value).strip().lower())
            if stage is None:
                raise ConfigError(f"field '{key}': the fine-tuning type must be one of "
                                  f"SFT, DPO, PT or multitask (got {value!r})")
            draft.set("stage", stage, key)
    trainer = data.pop("TrainerType", None)
    if trainer is not None and str(trainer).lower() != "standard":
        raise ConfigError(f"field 'TrainerType': only Standard is supported (got {trainer!r})")
    draft.keep(data, ["name", "namespace"])
    if trainer is not None:
        draft.kept["TrainerType"] = trainer
    pass_through(data, draft)
    return draft
