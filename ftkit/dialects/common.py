"""What every dialect reader shares: the draft it fills, refusals, and TrainingArguments.

A reader turns one tool's file into a :class:`Draft`: canonical values taken from the file
(with the key the user wrote), the tool's own defaults for what the file leaves out, keys
kept but not acted on, and notes. A feature ftkit does not have is refused with
:func:`refuse`, naming the key (the loader adds file and line) and what to use instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..config import FIELDS, OPTIMIZER_ALIASES, training_argument_defaults
from ..errors import ConfigError


class Refused(ConfigError):
    """A key whose value asks for something ftkit does not do; ``key`` locates the line."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def refuse(key: str, feature: str, instead: str):
    raise Refused(key, f"'{key}' asks for {feature}, which ftkit does not have; {instead}")


@dataclass
class Draft:
    """One file's reading before validation."""

    tool: str  # the source tool, as a person names it ("LLaMA-Factory")
    values: dict[str, Any] = field(default_factory=dict)  # canonical key -> value from the file
    origin: dict[str, str] = field(default_factory=dict)  # canonical key -> key as written
    defaults: dict[str, Any] = field(default_factory=dict)  # canonical key -> the tool's default
    kept: dict[str, Any] = field(default_factory=dict)  # read, not acted on
    notes: list[str] = field(default_factory=list)

    def take(self, source: dict, mapping: dict[str, str]) -> None:
        """Move ``source[key]`` to ``values[mapping[key]]`` for each key present."""
        for key, canonical in mapping.items():
            if key in source:
                self.values[canonical] = source.pop(key)
                self.origin[canonical] = key

    def keep(self, source: dict, keys) -> None:
        for key in keys:
            if key in source:
                self.kept[key] = source.pop(key)

    def set(self, canonical: str, value, written: str) -> None:
        self.values[canonical] = value
        self.origin[canonical] = written


# transformers 4 names a file from an older tool version may carry.
RENAMED_TRAINING_ARGUMENTS = {"evaluation_strategy": "eval_strategy", "no_cuda": "use_cpu"}
# transformers 4 fields removed in 5 that change nothing about what is learned.
REMOVED_TRAINING_ARGUMENTS = {
    "logging_dir", "save_safetensors", "fp16_opt_level", "half_precision_backend",
    "include_tokens_per_second", "push_to_hub_model_id", "push_to_hub_organization",
    "push_to_hub_token", "tpu_num_cores", "jit_mode_eval", "use_ipex", "torchdynamo",
    "ray_scope", "dispatch_batches", "split_batches", "include_inputs_for_metrics",
    "use_mps_device", "fsdp_min_num_params", "fsdp_transformer_layer_cls_to_wrap",
    "mp_parameters", "past_index",
}
# TrainingArguments fields ftkit sets itself for its data pipeline: a tool's default for
# them is not the tool's meaning but its pipeline's need.
PIPELINE_FIELDS = {"remove_unused_columns", "output_dir", "label_names", "report_to",
                   "disable_tqdm", "logging_first_step", "train_sampling_strategy"}


def pass_through(source: dict, draft: Draft) -> None:
    """The rest of a file: canonical keys as they are, other TrainingArguments fields into
    ``trainer_extra``, transformers-4 names renamed or kept. Unknown keys stay in ``values``
    so that validation names them with a hint."""
    training = training_argument_defaults()
    extra = dict(draft.values.get("trainer_extra") or {})
    for key in list(source):
        value = source.pop(key)
        if key == "trainer_extra" and isinstance(value, dict):
            extra.update(value)
        elif key in RENAMED_TRAINING_ARGUMENTS:
            draft.set(RENAMED_TRAINING_ARGUMENTS[key], value, key)
        elif key in FIELDS:
            draft.values[key] = value
        elif key in training:
            extra[key] = value
        elif key in REMOVED_TRAINING_ARGUMENTS:
            draft.kept[key] = value
            draft.notes.append(f"{key}: a transformers 4 argument that transformers 5 removed; kept, not used")
        else:
            draft.values[key] = value  # validation: "unknown key", with a hint
    if extra:
        draft.values["trainer_extra"] = extra


def training_argument_tool_defaults() -> dict[str, Any]:
    """Defaults of transformers.TrainingArguments for the fields ftkit names: what a tool
    built on TrainingArguments (LLaMA-Factory, Firefly, ChatGLM3, Baichuan2) means when
    its file is silent."""
    out = {}
    for key, value in training_argument_defaults().items():
        if key in FIELDS and key not in PIPELINE_FIELDS and value is not None:
            out[key] = OPTIMIZER_ALIASES.get(value, value) if key == "optim" else value
    return {key: value for key, value in out.items() if isinstance(value, (int, float, str, bool))}


def truthy(value) -> bool:
    """A flag's value as a tool would read it ("True", "false", 1, ...)."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "y", "on")
    return bool(value)
