"""Baichuan2's ``fine-tune/fine-tune.py`` flags, read as that script means them (seed 002).

``fine-tune.py`` parses transformers' ``TrainingArguments`` plus ``model_name_or_path``
(default ``baichuan-inc/Baichuan2-7B-Base``), ``data_path``, ``model_max_length`` (512) and
``use_lora`` (False). With ``--use_lora True`` it hard-codes
``LoraConfig(target_modules=["W_pack"], r=1, lora_alpha=32, lora_dropout=0.1)``; without it,
every weight trains.
"""

from __future__ import annotations

from .common import Draft, pass_through, training_argument_tool_defaults, truthy

TOOL = "Baichuan2"
KEYS = {"data_path": "train_file", "model_max_length": "max_seq_length"}
DEFAULTS = {"model_name_or_path": "baichuan-inc/Baichuan2-7B-Base", "max_seq_length": 512,
            "method": "full"}
LORA = {"lora_rank": 1, "lora_alpha": 32, "lora_dropout": 0.1, "lora_target": ["W_pack"]}


def read(flags: dict) -> Draft:
    flags, draft = dict(flags), Draft(TOOL)
    draft.defaults.update(training_argument_tool_defaults())
    draft.defaults.update(DEFAULTS)
    if "use_lora" in flags:
        use_lora = truthy(flags.pop("use_lora"))
        draft.set("method", "lora" if use_lora else "full", "use_lora")
        if use_lora:
            draft.defaults.update(LORA)  # fine-tune.py's LoraConfig, not settable by flags
    draft.keep(flags, ["cache_dir"])
    draft.take(flags, KEYS)
    pass_through(flags, draft)
    return draft
