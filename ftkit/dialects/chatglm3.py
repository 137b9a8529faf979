"""ChatGLM3 ``finetune_demo/configs/*.yaml``, read as its ``finetune_hf.py`` means it (seed 001).

``finetune_hf.py`` builds ``Seq2SeqTrainingArguments`` from ``training_args`` and a peft config
from ``peft_config`` (``peft.get_peft_config``); with no ``target_modules`` peft targets
ChatGLM's ``query_key_value`` (``TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING``), and
peft's ``LoraConfig`` defaults apply (r 8, lora_alpha 8, lora_dropout 0.0). No ``peft_config``
means full fine-tuning.
"""

from __future__ import annotations

from ..errors import ConfigError
from .common import Draft, pass_through, training_argument_tool_defaults

TOOL = "ChatGLM3"
PEFT_TYPES = {"LORA": "lora", "PREFIX_TUNING": "prefix", "P_TUNING": "ptuning",
              "PROMPT_TUNING": "prompt"}
# peft's own LoraConfig / PromptLearningConfig defaults, what get_peft_config fills in.
PEFT_DEFAULTS = {"lora_rank": 8, "lora_alpha": 8, "lora_dropout": 0.0,
                 "lora_target": ["query_key_value"], "prefix_projection": False}
# Seq2SeqTrainingArguments fields about generation during evaluation: kept, not used.
SEQ2SEQ = ["predict_with_generate", "generation_config", "generation_max_length",
           "generation_num_beams", "sortish_sampler"]


def read(data: dict) -> Draft:
    data, draft = dict(data), Draft(TOOL)
    draft.defaults.update(training_argument_tool_defaults())
    data_config = dict(data.pop("data_config", None) or {})
    draft.take(data_config, {"train_file": "train_file", "val_file": "val_file",
                             "test_file": "test_file", "num_proc": "preprocessing_num_workers"})
    draft.keep(data_config, list(data_config))
    draft.take(data, {"max_input_length": "max_input_length", "max_output_length": "max_output_length"})
    if "max_input_length" in draft.values and "max_output_length" in draft.values:
        try:  # finetune_hf.py truncates prompt and answer separately; the row holds both
            draft.defaults["max_seq_length"] = (int(draft.values["max_input_length"])
                                                + int(draft.values["max_output_length"]))
        except (TypeError, ValueError):
            pass  # validation names the bad field
    args = dict(data.pop("training_args", None) or {})
    draft.keep(args, SEQ2SEQ)
    peft = data.pop("peft_config", None)
    if peft is None:
        draft.defaults["method"] = "full"  # finetune_hf.py: no peft_config, every weight trains
    else:
        peft = dict(peft)
        kind = str(peft.pop("peft_type", "")).upper()
        if kind not in PEFT_TYPES:
            raise ConfigError(f"peft_config.peft_type must be one of {sorted(PEFT_TYPES)} (got {kind!r})")
        draft.set("method", PEFT_TYPES[kind], "peft_type")
        if kind == "LORA":
            draft.defaults.update(PEFT_DEFAULTS)
        draft.take(peft, {"r": "lora_rank", "lora_alpha": "lora_alpha",
                          "lora_dropout": "lora_dropout", "target_modules": "lora_target",
                          "num_virtual_tokens": "num_virtual_tokens",
                          "prefix_projection": "prefix_projection",
                          "use_rslora": "use_rslora", "use_dora": "use_dora"})
        draft.keep(peft, ["task_type", "inference_mode"])
        pass_through(peft, draft)
    pass_through(args, draft)
    pass_through(data, draft)
    return draft


# Flags of the older ChatGLM3 scripts (finetune_demo/scripts/finetune_pt.sh, finetune_ds.sh,
# finetune.py): P-Tuning v2 by --pre_seq_len, LoRA by --lora_rank, else full.
FLAG_KEYS = {"max_source_length": "max_input_length", "max_target_length": "max_output_length",
             "pre_seq_len": "num_virtual_tokens", "lora_rank": "lora_rank"}


def read_flags(flags: dict) -> Draft:
    flags, draft = dict(flags), Draft(TOOL)
    draft.defaults.update(training_argument_tool_defaults())
    draft.defaults["method"] = "full"
    if "pre_seq_len" in flags:
        draft.set("method", "prefix", "pre_seq_len")
    elif "lora_rank" in flags:
        draft.set("method", "lora", "lora_rank")
        draft.defaults.update(PEFT_DEFAULTS)
    draft.take(flags, FLAG_KEYS)
    if "max_input_length" in draft.values and "max_output_length" in draft.values:
        try:
            draft.defaults["max_seq_length"] = (int(draft.values["max_input_length"])
                                                + int(draft.values["max_output_length"]))
        except (TypeError, ValueError):
            pass
    draft.keep(flags, ["train_format", "quantization_bit_inference", "ptuning_checkpoint"])
    pass_through(flags, draft)
    return draft
