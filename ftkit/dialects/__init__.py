"""Read other tools' config files into ftkit's one :class:`~ftkit.config.RunConfig`.

Taught in lesson 00. One module per source tool, each reading the file as that tool means
it, with that tool's own defaults where the file is silent:

  ``llamafactory``  LLaMA-Factory YAML; ``dataset:`` names through ``dataset_info.json``
  ``llamafactory_v1`` LLaMA-Factory's v1 layout (model, peft_config, train_dataset ...)
  ``firefly``       Firefly ``train_args/*.json`` (seed 000)
  ``chatglm3``      ChatGLM3 ``finetune_demo/configs/*.yaml`` (seed 001), older script flags
  ``baichuan2``     Baichuan2 ``fine-tune.py`` flags (seed 002)
  ``group``         a parameter group as seed 003's console names its fields
  ``shell``         a ``.sh`` script: its training command names one of the above
  ``ftkit``         ftkit's own YAML/JSON (canonical keys)

:func:`read_config` returns a :class:`Reading`: the validated config, where each value came
from (the file, the tool's default, ftkit's default, ``--set``), the keys kept but not used,
and notes. :func:`load_config` returns the config alone. Every HF ``TrainingArguments`` field
passes through any dialect. A DeepSpeed JSON given as a run config is named as one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..config import FIELDS, RunConfig, line_of, parse_overrides, training_argument_names, validate
from ..errors import ConfigError
from . import baichuan2, chatglm3, firefly, group, llamafactory, llamafactory_v1, shell
from .common import Draft, Refused, pass_through

READERS = {"llamafactory": llamafactory.read, "firefly": firefly.read, "chatglm3": chatglm3.read,
           "group": group.read, "baichuan2": baichuan2.read}
GROUP_KEYS = group.KEYS  # the console form's field names -> canonical keys (lesson 11)
DIALECTS = ("ftkit", "llamafactory", "llamafactory_v1", "firefly", "chatglm3", "baichuan2", "group")
MARKERS = {
    "firefly": {"train_mode", "train_file_path", "train_file_name", "template_name", "task_type",
                "tokenize_num_workers", "use_unsloth"},
    "chatglm3": {"data_config", "training_args", "peft_config"},
    "group": set(group.KEYS) | set(group.BITS_KEYS) | {"TrainerType"},
    "llamafactory": {"finetuning_type", "cutoff_len", "dataset", "eval_dataset", "dataset_dir",
                     "pref_beta", "pref_loss", "quantization_method", "double_quantization",
                     "lora_target", "template"},
}
DEEPSPEED_KEYS = {"zero_optimization", "train_micro_batch_size_per_gpu", "train_batch_size",
                  "zero_allow_untested_optimizer", "gradient_clipping", "steps_per_print",
                  "wall_clock_breakdown"}
SCRIPT_SUFFIXES = (".sh", ".bash", ".txt")


@dataclass
class Reading:
    """How a file was read: the config, each value's source, what was kept, notes."""

    path: Path
    dialect: str
    tool: str
    config: RunConfig
    sources: dict[str, str]
    kept: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def rows(self, everything: bool = False) -> list[tuple[str, Any, str]]:
        """``(key, value, source)``; ftkit's own defaults only when ``everything``."""
        return [(key, getattr(self.config, key), source) for key, source in self.sources.items()
                if everything or source != "ftkit default"]

    def to_dict(self) -> dict:
        return {"file": str(self.path), "dialect": self.dialect, "tool": self.tool,
                "config": self.config.to_dict(), "sources": self.sources,
                "kept_not_used": self.kept, "notes": self.notes}


def read_text(path: str | Path, encoding: str = "utf-8") -> str:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        return path.read_text(encoding=encoding)
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None


def parse_mapping(path: str | Path, text: str) -> dict[str, Any]:
    """A YAML or JSON file's top-level mapping, or a ConfigError with the line of the fault."""
    if Path(path).suffix in (".jsonl", ".csv", ".parquet"):
        raise ConfigError(f"{path}: a data file, not a run config: check it with ftkit data validate {path}, "
                          "and name it as train_file in a config")
    try:
        data = json.loads(text) if Path(path).suffix == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}:{error.lineno}: broken JSON: {error.msg}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{line}: broken YAML: {getattr(error, 'problem', error)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        found = type(data).__name__
        raise ConfigError(f"{path}: expected a mapping of keys to values, found {found}"
                          + (f" (a list of records is a data file: ftkit data validate {path})" if found == "list" else ""))
    return data


def detect(data: dict) -> str:
    """The dialect whose marker keys a mapping has (``ftkit`` when none)."""
    keys = set(data.get("parameters", {}) if isinstance(data.get("parameters"), dict) else data)
    if keys <= set(FIELDS) | set(training_argument_names()):
        return "ftkit"  # canonical keys only (a file ftkit wrote, or a hand-written one)
    if llamafactory_v1.looks_like(data):
        return "llamafactory_v1"  # before ChatGLM3: both write peft_config
    for name, markers in MARKERS.items():
        if keys & markers:
            return name
    return "ftkit"


def is_deepspeed(data: dict) -> bool:
    return "zero_optimization" in data or len(set(data) & DEEPSPEED_KEYS) >= 2


def _is_dataset_registry(data: dict) -> bool:
    entries = [value for value in data.values() if isinstance(value, dict)]
    return bool(data) and len(entries) == len(data) and all(
        entry.keys() & {"file_name", "hf_hub_url", "ms_hub_url", "om_hub_url", "script_url"} for entry in entries)


def read_ftkit(data: dict) -> Draft:
    draft = Draft("ftkit")
    pass_through(dict(data), draft)
    return draft


def read_config(path: str | Path, dialect: str | None = None, overrides=None) -> Reading:
    """Read a config file in any dialect, apply ``--set`` overrides, validate; see :class:`Reading`."""
    if dialect is not None and dialect not in DIALECTS:
        raise ConfigError(f"--dialect must be one of {', '.join(DIALECTS)} (got {dialect!r})")
    path = Path(path)
    text = read_text(path)
    try:
        if path.suffix in SCRIPT_SUFFIXES:
            found, draft = _read_script(path, text, dialect)
        else:
            data = parse_mapping(path, text)
            if is_deepspeed(data) and dialect is None:
                raise ConfigError(f"{path}: this is a DeepSpeed config, not a run config; put it under "
                                  f"`deepspeed:` in a run config (deepspeed: {path}) and give that file")
            if dialect is None and _is_dataset_registry(data):
                raise ConfigError(f"{path}: this is a LLaMA-Factory dataset listing (dataset_info.json, or a "
                                  "v1 train_dataset file), not a run config: name its datasets in a config "
                                  "(dataset: with dataset_dir, or train_dataset:)")
            found = dialect or detect(data)
            if found == "ftkit":
                draft = read_ftkit(data)
            elif found == "llamafactory_v1":
                draft = llamafactory_v1.read(data, path)
            else:
                draft = READERS[found](data)
        _resolve_datasets(draft, path)
        _locate_deepspeed(draft, path)
    except Refused as error:
        line = line_of(text, error.key)
        raise ConfigError(f"{path}{f':{line}' if line else ''}: {error}") from None
    except ConfigError as error:
        message = str(error)
        raise ConfigError(message if message.startswith(str(path)) else f"{path}: {message}") from None
    return _finish(path, text, found, draft, parse_overrides(overrides))


def load_config(path: str | Path, dialect: str | None = None, overrides=None) -> RunConfig:
    """Read a config in any supported dialect, apply ``--set`` overrides, validate."""
    return read_config(path, dialect, overrides).config


def mapping_table(path, dialect: str | None = None) -> list[tuple[str, str, Any]]:
    """Rows ``(key as written, canonical key, resolved value)`` for the values the file set."""
    reading = read_config(path, dialect)
    written = [key for key, source in reading.sources.items() if source.startswith("file")]
    return [(reading.sources[key][len("file ("):-1], key, getattr(reading.config, key))
            for key in written]


def _finish(path: Path, text: str, found: str, draft: Draft, overrides: dict) -> Reading:
    raw = {**draft.defaults, **draft.values, **overrides}
    kept = {**draft.kept, **(raw.pop("kept", None) or {})}
    raw["kept"], raw["dialect"] = kept, found
    config = validate(raw, source=path, text=text, origin=draft.origin)
    sources = {}
    for key in FIELDS:
        if key in ("kept", "dialect"):
            continue
        if key in overrides:
            sources[key] = "--set"
        elif key in draft.values:
            sources[key] = f"file ({draft.origin.get(key, key)})"
        elif key in draft.defaults:
            sources[key] = f"{draft.tool} default"
        else:
            sources[key] = "ftkit default"
    return Reading(path, found, draft.tool, config, sources, kept, draft.notes)


def _resolve_datasets(draft: Draft, path: Path) -> None:
    """LLaMA-Factory's dataset names -> DatasetSpecs, when dataset_info.json can be found."""
    names = draft.values.get("dataset_names")
    eval_names = draft.kept.pop("eval_dataset", None)
    if (not names and not eval_names) or draft.values.get("datasets"):
        return  # none named, or the reader resolved them (LLaMA-Factory v1)
    folder = llamafactory.find_dataset_dir(draft.values.get("dataset_dir"), path)
    if folder is None:
        where = draft.values.get("dataset_dir", "data")
        draft.notes.append(f"dataset names {', '.join(names or eval_names)} not resolved: no "
                           f"{where}/dataset_info.json here or beside {path.name}; set dataset_dir "
                           "to the folder that holds it before training")
        if eval_names:
            draft.kept["eval_dataset"] = eval_names
        return
    stage = draft.values.get("stage", draft.defaults.get("stage", "sft"))
    for key, field_name, group_names in (("dataset", "datasets", names), ("eval_dataset", "eval_datasets", eval_names)):
        if group_names:
            specs = llamafactory.resolve_dataset_names(group_names, folder)
            llamafactory.check_stage(stage, specs)
            draft.values[field_name] = [spec.model_dump() for spec in specs]
            draft.origin[field_name] = key
    if "dataset_dir" in draft.values:
        draft.values["dataset_dir"] = str(folder)
    else:
        draft.defaults["dataset_dir"] = str(folder)  # LLaMA-Factory's default "data", found
    draft.notes.append(f"dataset names resolved through {folder / 'dataset_info.json'}"
                       + (" (several datasets mix into one training set)" if names and len(names) > 1 else ""))


def _locate_deepspeed(draft: Draft, path: Path) -> None:
    """A relative DeepSpeed path as the source tool meant it: from the folder it runs in,
    which for LLaMA-Factory's ``examples/`` is the folder above them."""
    value = draft.values.get("deepspeed")
    if not isinstance(value, str) or Path(value).is_absolute() or Path(value).is_file():
        return
    found = next((parent / value for parent in path.resolve().parents if (parent / value).is_file()), None)
    if found is not None:
        draft.values["deepspeed"] = str(found)
        draft.notes.append(f"deepspeed {value}: found at {found}")


def _read_script(path: Path, text: str, dialect: str | None) -> tuple[str, Draft]:
    command = shell.find_command(path, text)
    where = f"{path}:{command.line}"
    flags, positionals = shell.parse_flags(command.args, where)
    program = command.program
    launcher = " ".join(command.launcher + [program])
    if dialect == "baichuan2" or program == "fine-tune.py":
        found, draft = "baichuan2", baichuan2.read(flags)
    elif program == "llamafactory-cli train":
        data = _referenced(path, positionals[0], where) if positionals else {}
        found, draft = "llamafactory", llamafactory.read({**data, **flags})
    elif program == "finetune_hf.py":
        found, draft = "chatglm3", _chatglm3_script(path, flags, positionals, where)
    elif program in ("finetune.py", "main.py") and flags.keys() & {"pre_seq_len", "train_format", "max_source_length"}:
        found, draft = "chatglm3", chatglm3.read_flags(flags)
    elif "train_args_file" in flags:
        data = _referenced(path, str(flags.pop("train_args_file")), where)
        found, draft = "firefly", firefly.read({**data, **flags})
    elif flags.keys() & {"stage", "finetuning_type", "cutoff_len"}:
        found, draft = "llamafactory", llamafactory.read(flags)
    else:
        found, draft = "ftkit", read_ftkit(flags)
    draft.kept["launcher"] = launcher
    draft.notes.append(f"read from the command at line {command.line}: {launcher}")
    return found, draft


def _referenced(script: Path, name: str, where: str) -> dict:
    """A config file a script names, found beside the script or in a folder above it (the
    script's tool runs from there), else from the current folder."""
    candidates = [parent / name for parent in script.resolve().parents] + [Path(name)]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise ConfigError(f"{where}: the command reads {name}, which is not beside the script or "
                          "in a folder above it: give that file to ftkit instead")
    return parse_mapping(found, read_text(found))


def _chatglm3_script(path: Path, flags: dict, positionals: list[str], where: str) -> Draft:
    """``python finetune_hf.py DATA_DIR MODEL_DIR CONFIG_FILE [AUTO_RESUME]``."""
    if len(positionals) < 3:
        raise ConfigError(f"{where}: finetune_hf.py takes DATA_DIR MODEL_DIR CONFIG_FILE "
                          f"(found {len(positionals)} argument(s))")
    data_dir, model_dir, config_file = positionals[:3]
    draft = chatglm3.read(_referenced(path, config_file, where))
    draft.set("model_name_or_path", model_dir, "MODEL_DIR")
    for key in ("train_file", "val_file", "test_file"):  # finetune_hf.py joins them to DATA_DIR
        if draft.values.get(key):
            draft.values[key] = str(Path(data_dir) / draft.values[key])
    pass_through(flags, draft)
    return draft
