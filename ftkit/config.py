"""One validated config for a run, whatever dialect it was written in.

Taught in lesson 00. Canonical names follow Hugging Face ``TrainingArguments`` where one
exists (``learning_rate``, ``per_device_train_batch_size`` ...) and otherwise the names
LLaMA-Factory and the seeds use (``method``, ``lora_rank``, ``quantization_bit`` ...).
Other tools' files (LLaMA-Factory, Firefly, ChatGLM3, Baichuan2, a parameter group, shell
scripts) are read by :mod:`ftkit.dialects` into this one object; this module knows no files.
It also holds the one vocabulary the rest of ftkit uses: method names, optimizer names and
the spelling of LoRA targets.

Every mistake becomes a :class:`~ftkit.errors.ConfigError` that names the file, the line
or field, and what is allowed: ``ftkit`` prints it and exits with status 2.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Optional, Union, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError

Method = Literal["full", "freeze", "lora", "qlora", "prefix", "ptuning", "prompt"]
METHODS = get_args(Method)
PROMPT_METHODS = ("prefix", "ptuning", "prompt")  # prepend virtual tokens: no packing
PEFT_METHODS = ("lora", "qlora") + PROMPT_METHODS  # save an adapter, not a whole model
Stage = Literal["sft", "pt", "dpo"]
STAGES = get_args(Stage)
Scheduler = Literal[
    "linear", "cosine", "cosine_with_restarts", "polynomial", "constant",
    "constant_with_warmup", "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr",
    "cosine_warmup_with_min_lr", "warmup_stable_decay",
]
# The optimizers TrainingArguments accepts that make sense here; the 8-bit and paged ones
# come from bitsandbytes. `adamw_hf` (seed 000/003) was removed from transformers 5 and is
# read as its equivalent, adamw_torch.
Optimizer = Literal[
    "adamw_torch", "adamw_torch_fused", "adamw_8bit", "adamw_bnb_8bit", "paged_adamw_8bit",
    "paged_adamw_32bit", "adafactor", "sgd", "adagrad", "rmsprop", "lion_8bit", "lion_32bit",
    "paged_lion_8bit", "paged_lion_32bit", "adamw_torch_8bit", "adamw_torch_4bit",
]
OPTIMIZERS = get_args(Optimizer)
Strategy = Literal["no", "steps", "epoch"]
OPTIMIZER_ALIASES = {"adamw_hf": "adamw_torch", "adamw": "adamw_torch", "adam": "adamw_torch",
                     "default_optim": "adamw_torch"}

# LoRA targets: one spelling. "all-linear" (peft's) stands for every linear layer of the
# decoder; "all" (LLaMA-Factory) and "all_linear" mean the same.
ALL_LINEAR = "all-linear"
# Fused query/key/value projections of some architectures: Baichuan's W_pack, ChatGLM's
# query_key_value. On a model with separate projections the same choice is q, k and v.
FUSED_QKV = {"W_pack": ("q_proj", "k_proj", "v_proj"),
             "query_key_value": ("q_proj", "k_proj", "v_proj")}


def comma_list(text: str) -> list[str]:
    """``"a, b,c"`` -> ``["a", "b", "c"]``: how YAML files and flags write lists."""
    return [part.strip() for part in text.split(",") if part.strip()]


def lora_targets(value) -> list[str] | None:
    """The one spelling of a LoRA target list: ``"q_proj,v_proj"`` or ``"all"`` -> a list."""
    if value is None:
        return None
    value = comma_list(value) if isinstance(value, str) else list(value)
    if value in (["all"], ["all_linear"], [ALL_LINEAR]):
        return [ALL_LINEAR]
    return value


def map_lora_targets(targets: list[str], module_names) -> tuple[list[str], list[str]]:
    """``targets`` as the model with these module names has them, and a note per change.

    A fused q/k/v name (``W_pack``, ``query_key_value``) that the model lacks becomes the
    model's ``q_proj, k_proj, v_proj``; on a model that has it, it is used as named.
    """
    names = {name.rsplit(".", 1)[-1] for name in module_names}
    mapped, notes = [], []
    for target in targets:
        if target in FUSED_QKV and target not in names and set(FUSED_QKV[target]) <= names:
            mapped.extend(t for t in FUSED_QKV[target] if t not in mapped)
            notes.append(f"lora_target {target} (fused q/k/v) is {', '.join(FUSED_QKV[target])} "
                         "on this model")
        elif target not in mapped:
            mapped.append(target)
    return mapped, notes

# Fields of RunConfig passed to transformers.TrainingArguments under their own name.
TRAINING_ARGUMENT_FIELDS = (
    "output_dir", "num_train_epochs", "max_steps", "per_device_train_batch_size",
    "per_device_eval_batch_size", "gradient_accumulation_steps", "learning_rate",
    "lr_scheduler_type", "weight_decay", "max_grad_norm", "optim", "adam_beta1",
    "adam_beta2", "adam_epsilon", "seed", "fp16", "bf16", "tf32", "gradient_checkpointing",
    "logging_strategy", "logging_steps", "save_strategy", "save_steps", "save_total_limit",
    "eval_strategy", "eval_steps", "report_to", "dataloader_num_workers", "deepspeed",
    "fsdp", "fsdp_config",
    "disable_tqdm", "remove_unused_columns", "log_level", "ddp_timeout", "use_cpu",
    "load_best_model_at_end", "metric_for_best_model", "greater_is_better",
)


class DatasetSpec(BaseModel):
    """One data file as a dataset registry describes it (LLaMA-Factory's ``dataset_info.json``).

    ``columns`` / ``tags`` are the entry's own, or None where the entry gives none: then
    LLaMA-Factory's defaults apply (``data/parser.py`` ``DatasetAttr``: alpaca
    instruction/input/output, sharegpt conversations with from/value, human/gpt). As there,
    an entry that gives ``columns`` leaves every column it does not name unset.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    file: str  # absolute path of a file or a folder of files
    formatting: Literal["alpaca", "sharegpt"] = "alpaca"
    columns: Optional[dict[str, str]] = None  # role in the record -> column name
    tags: Optional[dict[str, str]] = None  # sharegpt: role/content keys and role names
    ranking: bool = False  # preference pairs (chosen / rejected)
    kto_tag: Optional[str] = None  # column of the desirable (true) / undesirable (false) label
    split: str = "train"
    num_samples: Optional[int] = Field(None, ge=1)

    def load_arguments(self) -> dict[str, Any]:
        """Keyword arguments for ``ftkit.data.load``."""
        return {"path": self.file, "format": self.formatting, "columns": self.columns,
                "tags": self.tags, "ranking": self.ranking}


class RunConfig(BaseModel):
    """Every parameter of a fine-tuning run. ``RunConfig(**fields)`` validates on creation."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # What to train, how.
    stage: Stage = "sft"
    method: Method = "lora"
    model_name_or_path: str = "smollm2-135m-instruct"
    trust_remote_code: bool = False
    template: Optional[str] = None  # None: the model's own chat template

    # Data.
    train_file: Optional[str] = None
    # Data named through a dataset registry (LLaMA-Factory's dataset_info.json), resolved:
    # several specs mix into one training set.
    dataset_names: list[str] = Field(default_factory=list)  # as the config names them
    dataset_dir: Optional[str] = None  # the folder whose dataset_info.json resolved them
    datasets: list[DatasetSpec] = Field(default_factory=list)
    eval_datasets: list[DatasetSpec] = Field(default_factory=list)
    val_file: Optional[str] = None
    test_file: Optional[str] = None
    data_format: str = "auto"
    encoding: str = "utf-8"
    val_size: float = Field(0.0, ge=0, lt=1)
    max_samples: Optional[int] = Field(None, ge=1)
    preprocessing_num_workers: Optional[int] = Field(None, ge=1)
    max_seq_length: int = Field(512, ge=8, le=1_048_576)
    max_input_length: Optional[int] = Field(None, ge=1)
    max_output_length: Optional[int] = Field(None, ge=1)
    packing: bool = False

    # LoRA / QLoRA.
    lora_rank: int = Field(8, ge=1, le=4096)
    lora_alpha: float = Field(16, gt=0)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    lora_target: list[str] = Field(default_factory=lambda: [ALL_LINEAR])
    use_rslora: bool = False
    use_dora: bool = False
    quantization_bit: Optional[Literal[4, 8]] = None
    quant_type: Literal["nf4", "fp4"] = "nf4"
    double_quant: bool = True
    compute_dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"

    # Prompt methods (prefix = P-Tuning v2, ptuning = P-Tuning v1, prompt = prompt tuning).
    num_virtual_tokens: int = Field(20, ge=1, le=4096)
    prefix_projection: bool = False
    encoder_hidden_size: Optional[int] = Field(None, ge=1)
    prompt_encoder_type: Literal["MLP", "LSTM"] = "MLP"
    prompt_init_text: Optional[str] = None

    # Partial freezing.
    freeze_trainable_layers: int = Field(2, ge=1)
    freeze_trainable_modules: Optional[list[str]] = None

    # Preference alignment (stage dpo).
    dpo_beta: float = Field(0.1, gt=0)
    dpo_loss_type: str = "sigmoid"
    max_prompt_length: Optional[int] = Field(None, ge=1)
    max_completion_length: Optional[int] = Field(None, ge=1)

    # Multi-task mixtures.
    task_field: str = "task"
    task_weights: Optional[dict[str, float]] = None
    mix_strategy: Literal["concat", "interleave", "temperature"] = "concat"
    mix_temperature: float = Field(1.0, gt=0)
    task_loss_weighting: Literal["none", "static", "dynamic"] = "none"

    # Training loop (TrainingArguments names).
    output_dir: str = "output/run"
    overwrite_output_dir: bool = False
    num_train_epochs: float = Field(1.0, gt=0)
    max_steps: int = Field(-1, ge=-1)
    per_device_train_batch_size: int = Field(4, ge=1)
    per_device_eval_batch_size: int = Field(4, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    learning_rate: float = Field(2e-4, gt=0, le=1)
    lr_scheduler_type: Scheduler = "linear"
    warmup_steps: int = Field(0, ge=0)
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, ge=0)
    optim: Optimizer = "adamw_torch"
    adam_beta1: float = Field(0.9, ge=0, lt=1)
    adam_beta2: float = Field(0.999, ge=0, lt=1)
    adam_epsilon: float = Field(1e-8, gt=0)
    seed: int = Field(42, ge=0)
    fp16: bool = False
    bf16: bool = False
    tf32: Optional[bool] = None
    gradient_checkpointing: bool = False
    logging_strategy: Strategy = "steps"
    logging_steps: float = Field(10, gt=0)
    save_strategy: Strategy = "steps"
    save_steps: float = Field(500, gt=0)
    save_total_limit: Optional[int] = Field(None, ge=1)
    eval_strategy: Strategy = "no"
    eval_steps: Optional[float] = Field(None, gt=0)
    load_best_model_at_end: bool = False  # the final model is the best evaluated checkpoint
    metric_for_best_model: Optional[str] = None  # None: eval loss (e.g. "loss", "rewards/accuracies")
    greater_is_better: Optional[bool] = None  # None: False for names ending in "loss", else True
    early_stopping_patience: Optional[int] = Field(None, ge=1)  # evaluations without improvement
    early_stopping_threshold: float = Field(0.0, ge=0)  # the least change that counts as one
    report_to: list[str] = Field(default_factory=lambda: ["none"])
    dataloader_num_workers: int = Field(0, ge=0)
    deepspeed: Optional[Union[str, dict]] = None
    # Trainer's FSDP ("full_shard auto_wrap", or true + fsdp_config); shards on GPUs only.
    fsdp: Optional[Union[bool, str]] = None
    fsdp_config: Optional[Union[str, dict]] = None
    disable_tqdm: bool = False
    remove_unused_columns: bool = False
    log_level: Literal["passive", "debug", "info", "warning", "error", "critical"] = "passive"
    resume_from_checkpoint: Optional[Union[str, bool]] = None
    ddp_timeout: int = Field(1800, ge=1)
    use_cpu: bool = False
    group_by_length: bool = False
    plot_loss: bool = True
    # Any other transformers.TrainingArguments field, passed on as written.
    trainer_extra: dict[str, Any] = Field(default_factory=dict)

    # Bookkeeping: where the config came from, and the keys ftkit keeps but does not act on.
    dialect: str = "ftkit"
    kept: dict[str, Any] = Field(default_factory=dict)

    @field_validator("optim", mode="before")
    @classmethod
    def _optimizer_alias(cls, value):
        return OPTIMIZER_ALIASES.get(value, value) if isinstance(value, str) else value

    @field_validator("dataset_names", mode="before")
    @classmethod
    def _names(cls, value):
        return comma_list(value) if isinstance(value, str) else value

    @field_validator("lora_target", "report_to", "freeze_trainable_modules", mode="before")
    @classmethod
    def _comma_list(cls, value):
        return lora_targets(value)  # "q_proj,v_proj" or "all" from YAML/CLI

    @field_validator("save_strategy", "eval_strategy", "logging_strategy", mode="before")
    @classmethod
    def _yaml_no(cls, value):
        return "no" if value is False else value  # YAML 1.1 reads a bare `no` as false

    @field_validator("method", "lr_scheduler_type", mode="before")
    @classmethod
    def _lower(cls, value):
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self):
        if self.fp16 and self.bf16:
            raise ValueError("fp16 and bf16 are both on: choose one (bf16 on CPUs and Ampere+ GPUs, fp16 on older GPUs such as V100)")
        if self.method == "qlora" and self.quantization_bit is None:
            raise ValueError("method qlora needs quantization_bit: 4 (NF4/FP4) or 8 (LLM.int8)")
        if self.quantization_bit is not None and self.method != "qlora":
            raise ValueError(f"quantization_bit applies to LoRA on a quantized base: set method: qlora, or remove quantization_bit (method is {self.method})")
        if (self.max_input_length is None) != (self.max_output_length is None):
            raise ValueError("max_input_length and max_output_length go together: set both or neither")
        if self.max_input_length and self.max_input_length + self.max_output_length > self.max_seq_length:
            raise ValueError(f"max_input_length + max_output_length = {self.max_input_length + self.max_output_length} exceeds max_seq_length = {self.max_seq_length}: raise max_seq_length")
        if self.warmup_steps and self.warmup_ratio:
            raise ValueError("warmup_steps and warmup_ratio are both set: keep one")
        if self.eval_strategy != "no" and not self.val_file and not self.val_size:
            raise ValueError(f"eval_strategy {self.eval_strategy} needs validation data: set val_file, or val_size (a fraction such as 0.1)")
        unknown = sorted(set(self.trainer_extra) - set(training_argument_names()))
        if unknown:
            raise ValueError(f"trainer_extra holds {', '.join(unknown)}: not transformers.TrainingArguments fields")
        if (self.load_best_model_at_end or self.early_stopping_patience) and self.eval_strategy == "no":
            raise ValueError("load_best_model_at_end and early_stopping_patience compare evaluations: set eval_strategy: steps (with eval_steps) or epoch, and val_file or val_size")
        if self.load_best_model_at_end and self.save_strategy != self.eval_strategy:
            raise ValueError(f"load_best_model_at_end reloads a saved checkpoint: set save_strategy to eval_strategy ({self.eval_strategy}), with save_steps a multiple of eval_steps")
        if self.stage == "dpo" and self.method in PROMPT_METHODS:
            raise ValueError("stage dpo trains with method full, freeze, lora or qlora, not prompt methods")
        return self

    def training_arguments(self) -> dict[str, Any]:
        """Keyword arguments for ``transformers.TrainingArguments``."""
        args = {name: getattr(self, name) for name in TRAINING_ARGUMENT_FIELDS}
        # transformers 5 folds warmup_ratio into warmup_steps (a float < 1 is a ratio).
        args["warmup_steps"] = self.warmup_steps or self.warmup_ratio
        # transformers 5 renamed gradient_checkpointing (the name every seed uses).
        args["activation_checkpointing"] = args.pop("gradient_checkpointing")
        if self.group_by_length:
            args["train_sampling_strategy"] = "group_by_length"
        if self.eval_steps is None:
            args.pop("eval_steps")
        args.update(self.trainer_extra)
        return args

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self, path: str | Path | None = None) -> str:
        text = yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text


FIELDS = tuple(RunConfig.model_fields)


@lru_cache(maxsize=1)
def training_argument_defaults() -> dict[str, Any]:
    """Every field of the installed ``transformers.TrainingArguments`` with its default.

    Read from transformers' source rather than imported: importing TrainingArguments
    pulls in torch (seconds), and reading a config should stay instant. A default that is
    not a literal is given as its source text.
    """
    spec = importlib.util.find_spec("transformers")
    source = Path(spec.origin).parent / "training_args.py"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    cls = next(node for node in tree.body
               if isinstance(node, ast.ClassDef) and node.name == "TrainingArguments")
    defaults = {}
    for node in cls.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        value = node.value
        if isinstance(value, ast.Call) and getattr(value.func, "id", "") == "field":
            value = next((kw.value for kw in value.keywords if kw.arg == "default"), None)
        try:
            defaults[node.target.id] = ast.literal_eval(value) if value is not None else None
        except ValueError:
            defaults[node.target.id] = ast.unparse(value)
    return defaults


def training_argument_names() -> tuple[str, ...]:
    return tuple(training_argument_defaults())


def known_keys() -> tuple[str, ...]:
    """Every key a canonical config may hold: RunConfig's fields and TrainingArguments'."""
    return tuple(dict.fromkeys(FIELDS + training_argument_names()))


def closest_key(key: str, choices=None) -> str | None:
    """A key close enough to be a typo of ``key`` (``learnig_rate``), else None.

    The cutoff is high on purpose: a "did you mean" that names another feature
    (``use_badam`` -> ``use_dora``) misleads more than no hint at all.
    """
    match = difflib.get_close_matches(key, choices or known_keys(), n=1, cutoff=0.85)
    return match[0] if match else None


# Words too common in key names to relate two keys (use_badam is not use_dora's kin).
GENERIC_WORDS = {"use", "size", "type", "num", "max", "min", "per", "device", "steps",
                 "strategy", "name", "path", "file", "and", "or", "is", "enable", "disable", ""}


def hint(key: str, choices=None) -> str:
    """What to say after "unknown key": a close name, else keys sharing a word, else --keys."""
    choices = choices or known_keys()
    close = closest_key(key, choices)
    if close:
        return f" (did you mean {close}?)"
    words = set(key.lower().split("_")) - GENERIC_WORDS
    related = sorted((name for name in choices if words & set(name.split("_"))),
                     key=lambda name: -len(words & set(name.split("_"))))[:6]
    if related:
        return f"; related keys: {', '.join(related)} (all keys: ftkit config --keys)"
    return "; see the keys ftkit reads with: ftkit config --keys"


def line_of(text: str | None, key: str) -> int | None:
    """The first line of ``text`` that sets ``key`` (YAML, JSON or --flag), 1-based."""
    if not text:
        return None
    pattern = re.compile(rf'^\s*(?:"{re.escape(key)}"|{re.escape(key)}|--{re.escape(key)})\s*[:=\s]')
    for number, line in enumerate(text.splitlines(), 1):
        if pattern.search(line):
            return number
    return None


def _describe(error: dict, origin: dict[str, str]) -> tuple[str, str]:
    """(key as the user wrote it, what is wrong) for one pydantic error."""
    field = ".".join(str(part) for part in error["loc"]) or "config"
    key = origin.get(field, field)
    if error["type"] == "extra_forbidden":
        return key, f"unknown key '{key}'" + hint(key)
    got = error.get("input")
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "literal_error":
        message = f"must be one of {error['ctx']['expected']}"
    if field == "config":
        return key, message
    return key, f"field '{key}': {message} (got {got!r})"


def validate(raw: dict[str, Any], source: str | Path | None = None, text: str | None = None,
             origin: dict[str, str] | None = None) -> RunConfig:
    """``RunConfig`` from a dict of canonical keys, or a ConfigError naming each problem.

    ``origin`` maps canonical keys back to the key the user wrote (for dialects), so the
    message names the key and line the user can find in their own file.
    """
    origin = origin or {}
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            key, message = _describe(error, origin)
            line = line_of(text, key)
            where = f"{source}:{line}" if source and line else (str(source) if source else "config")
            lines.append(f"{where}: {message}")
        raise ConfigError("\n".join(lines)) from None


def parse_overrides(overrides) -> dict[str, Any]:
    """``["lr=1e-4", "method=qlora"]`` (the CLI's ``--set``) into a dict, values read as YAML."""
    if overrides is None:
        return {}
    if isinstance(overrides, dict):
        return dict(overrides)
    parsed = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set learning_rate=1e-4")
        parsed[key.strip()] = yaml.safe_load(value) if value.strip() else None
    return parsed
