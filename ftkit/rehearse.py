"""Rehearse a practitioner's own config on the laptop before renting a GPU (lesson 12).

``rehearse(path)`` reads the config as its source tool means it, then runs it end to end for a
few steps on the embedded default model and a small sample of the config's own data: the model
swapped, LoRA targets mapped to the default model's modules, quantization kept (bitsandbytes
runs 4/8-bit on a CPU), GPU-only settings (fp16, DeepSpeed, paged/8-bit optimizers) replaced
by their CPU equivalents, each change said. Then it prints what the real run will need on the
GPU: ``ftkit.vram``'s estimate for the config's own model on common cards.

A rehearsal proves that the config reads, the data loads in the format the config names, the
method applies and a training step runs; it does not prove the real model fits or learns.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import data, models
from .config import ALL_LINEAR, RunConfig, map_lora_targets
from .dialects import Reading, read_config
from .errors import ConfigError, FtkitError
from .paths import DATA_DIR

# Where the config's data is missing (train.json of a ChatGLM3 demo), the kit's own sample
# of the same kind stands in, and the rehearsal says so.
SAMPLE_DATA = {"sft": DATA_DIR / "identity.jsonl", "pt": DATA_DIR / "pretrain_text.jsonl",
               "dpo": DATA_DIR / "preference.jsonl"}
# bitsandbytes' paged and 8-bit optimizers need CUDA.
GPU_OPTIMIZERS = ("paged_", "8bit", "4bit")
HUB_ARGUMENTS = ("push_to_hub", "hub_model_id", "hub_strategy", "hub_token", "hub_private_repo",
                 "hub_always_push", "hub_revision")


@dataclass
class Rehearsal:
    """What a rehearsal changed, the data it used, its result and the GPU estimate."""

    reading: Reading
    config: RunConfig  # the rehearsed config (small)
    changes: list[str] = field(default_factory=list)
    records: dict[str, int] = field(default_factory=dict)  # data source -> records read
    result: object = None  # ftkit.train.RunResult
    estimate: object = None  # ftkit.vram.Estimate of the real run, or None
    estimate_note: str = ""


def rehearsal_config(reading: Reading, steps: int = 2, samples: int = 8, seq_len: int = 128,
                     workdir: Path | None = None, model: str = models.DEFAULT_MODEL) -> Rehearsal:
    """The small CPU config that exercises ``reading.config`` on ``model``, and what was changed."""
    cfg = reading.config
    work = Path(workdir or tempfile.mkdtemp(prefix="ftkit-rehearsal-"))
    rehearsal = Rehearsal(reading, cfg)
    changes = rehearsal.changes
    small = cfg.to_dict()
    small.update(model_name_or_path=str(model), trust_remote_code=False,
                 max_steps=steps, output_dir=str(work / "run"), overwrite_output_dir=True,
                 save_strategy="no", eval_strategy="no", val_size=0.0, val_file=None, test_file=None,
                 eval_datasets=[], logging_steps=1, report_to=["none"], plot_loss=False,
                 resume_from_checkpoint=None, dataloader_num_workers=0, log_level="passive",
                 preprocessing_num_workers=None, use_cpu=True, deepspeed=None, tf32=None,
                 load_best_model_at_end=False, early_stopping_patience=None,
                 per_device_train_batch_size=min(cfg.per_device_train_batch_size, 2),
                 gradient_accumulation_steps=1, warmup_steps=0, warmup_ratio=0.0)
    small = {key: value for key, value in small.items() if key in RunConfig.model_fields}
    changes.append(f"model {cfg.model_name_or_path} -> {model}"
                   + (" (the embedded default)" if model == models.DEFAULT_MODEL else ""))
    changes.append(f"{steps} steps, batch {small['per_device_train_batch_size']}, no gradient "
                   "accumulation, no evaluation, no checkpoints")
    _shorten(cfg, small, seq_len, changes)
    _cpu_settings(cfg, small, changes)
    _targets(cfg, small, changes, model)
    small["trainer_extra"] = {k: v for k, v in cfg.trainer_extra.items() if k not in HUB_ARGUMENTS}
    small["train_file"], small["datasets"] = _sample(cfg, reading, samples, work, rehearsal), []
    small["dataset_names"], small["max_samples"] = [], None
    rehearsal.config = RunConfig.model_validate(small)
    return rehearsal


def _shorten(cfg: RunConfig, small: dict, seq_len: int, changes: list) -> None:
    if cfg.max_seq_length > seq_len:
        small["max_seq_length"] = seq_len
        changes.append(f"max_seq_length {cfg.max_seq_length} -> {seq_len}")
    if cfg.max_input_length:
        small["max_input_length"] = min(cfg.max_input_length, small["max_seq_length"] // 2)
        small["max_output_length"] = small["max_seq_length"] - small["max_input_length"]
    if cfg.max_prompt_length:
        small["max_prompt_length"] = min(cfg.max_prompt_length, small["max_seq_length"] // 2)
    if cfg.max_completion_length:
        small["max_completion_length"] = min(cfg.max_completion_length, small["max_seq_length"] // 2)
    if cfg.method in ("prefix", "ptuning", "prompt") and cfg.num_virtual_tokens > 32:
        small["num_virtual_tokens"] = 32
        changes.append(f"num_virtual_tokens {cfg.num_virtual_tokens} -> 32")


def _cpu_settings(cfg: RunConfig, small: dict, changes: list) -> None:
    if cfg.fp16:
        small["fp16"], small["bf16"] = False, True
        changes.append("fp16 -> bf16 (ftkit trains fp16 on CUDA GPUs only)")
    if cfg.deepspeed:
        changes.append("DeepSpeed off (one CPU process); the estimate below counts it")
    if any(part in cfg.optim for part in GPU_OPTIMIZERS):
        small["optim"] = "adamw_torch"
        changes.append(f"optim {cfg.optim} -> adamw_torch (bitsandbytes' paged/8-bit optimizers need CUDA)")
    if cfg.method == "qlora":
        changes.append(f"quantization kept: {cfg.quantization_bit}-bit bitsandbytes on the CPU")


def model_modules(model: str = models.DEFAULT_MODEL) -> list[str]:
    """Linear module names of a model's decoder layers (what LoRA can target), from its config."""
    from .vram import architecture

    # The vram presets name the default model's architecture without "-instruct".
    return list(architecture(str(model).removesuffix("-instruct")).linear_modules())


def _targets(cfg: RunConfig, small: dict, changes: list, model: str) -> None:
    if cfg.method not in ("lora", "qlora") or cfg.lora_target == [ALL_LINEAR]:
        return
    names = model_modules(model)
    mapped, notes = map_lora_targets(cfg.lora_target, names)
    changes.extend(notes)
    leaf = {name.rsplit(".", 1)[-1] for name in names}
    missing = [t for t in mapped if t not in leaf]
    if missing:
        changes.append(f"lora_target {', '.join(missing)}: not in the default model; "
                       f"rehearsed on all linear layers")
        mapped = [ALL_LINEAR]
    small["lora_target"] = mapped


def _sample(cfg: RunConfig, reading: Reading, samples: int, work: Path, rehearsal: Rehearsal) -> str:
    """A JSONL of the first ``samples`` records of the config's own data, read as it says."""
    rows = []
    if cfg.datasets:
        for spec in cfg.datasets:
            part = data.load(**spec.load_arguments(), verbose=False)
            rehearsal.records[spec.name] = len(part)
            rows += list(part.select(range(min(samples, len(part)))))
    else:
        path = _data_file(cfg.train_file, reading.path)
        if path is None:
            stand_in = SAMPLE_DATA[cfg.stage]
            rehearsal.changes.append(f"data {cfg.train_file or '(none named)'} not found here: rehearsed "
                                     f"on the kit's {stand_in.name}; the real run needs that file")
            path, fmt = stand_in, "auto"
        else:
            fmt = cfg.data_format
        part = data.load(path, format=fmt, encoding=cfg.encoding, verbose=False)
        rehearsal.records[str(path)] = len(part)
        rows = list(part.select(range(min(samples, len(part)))))
    out = work / "sample.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(_plain(row), ensure_ascii=False) + "\n" for row in rows),
                   encoding="utf-8")
    rehearsal.changes.append(f"data: at most {samples} record(s) of each source, {len(rows)} in all")
    return str(out)


def _plain(row: dict) -> dict:
    return {key: value for key, value in row.items() if value is not None}


def _data_file(name: str | None, config_path: Path) -> Path | None:
    """The config's data file: beside the config or in a folder above it (where its tool
    runs), else from the current folder."""
    if not name:
        return None
    if Path(name).is_absolute():
        return Path(name) if Path(name).exists() else None
    candidates = [parent / name for parent in config_path.resolve().parents] + [Path(name)]
    return next((c for c in candidates if c.exists()), None)


def gpu_estimate(cfg: RunConfig):
    """``(estimate, note)`` of the real run on its own model; the note says why when none,
    or what was assumed (fused targets mapped, a DeepSpeed file that is not here)."""
    from .vram import estimate_for_config

    update, notes = {"use_cpu": False}, []
    if isinstance(cfg.deepspeed, str) and not Path(cfg.deepspeed).is_file():
        update["deepspeed"] = None
        notes.append(f"DeepSpeed file {cfg.deepspeed} not here: estimated without ZeRO")
    try:
        if cfg.method in ("lora", "qlora") and cfg.lora_target != [ALL_LINEAR]:
            update["lora_target"], mapped = map_lora_targets(cfg.lora_target, model_modules(cfg.model_name_or_path))
            notes += mapped
        return estimate_for_config(cfg.model_copy(update=update)), "; ".join(notes)
    except FtkitError as error:
        return None, (f"no estimate for {cfg.model_name_or_path}: {error} (ftkit vram --model "
                      "path/to/config.json estimates any model from its config.json)")


def rehearse(path, overrides=None, steps: int = 2, samples: int = 8, seq_len: int = 128,
             workdir=None, verbose: bool = True, model: str = models.DEFAULT_MODEL) -> Rehearsal:
    """Read ``path``, run it small on ``model`` (the default model), estimate the real run's
    GPU memory on the config's own model."""
    from .train import finetune

    if steps < 1:
        raise ConfigError(f"--steps must be at least 1 (got {steps})")
    reading = read_config(path, overrides=overrides)
    if reading.config.dataset_names and not reading.config.datasets:
        raise ConfigError(f"{path}: dataset names {', '.join(reading.config.dataset_names)} are not "
                          "resolved: set dataset_dir to the folder holding dataset_info.json")
    rehearsal = rehearsal_config(reading, steps, samples, seq_len, workdir, model)
    if verbose:
        print(f"rehearsing {path} ({reading.tool}) on the CPU:")
        for change in rehearsal.changes:
            print(f"  - {change}")
    rehearsal.result = finetune(rehearsal.config, verbose=verbose)
    rehearsal.estimate, rehearsal.estimate_note = gpu_estimate(reading.config)
    if verbose:
        print(report(rehearsal))
    return rehearsal


def report(rehearsal: Rehearsal) -> str:
    summary = rehearsal.result.summary if rehearsal.result is not None else {}
    lines = [f"rehearsal passed: {summary.get('steps')} step(s), loss {summary.get('first_loss')} -> "
             f"{summary.get('last_loss')}",
             "records: " + ", ".join(f"{name}: {n}" for name, n in rehearsal.records.items())]
    estimate, cfg = rehearsal.estimate, rehearsal.reading.config
    if estimate is None or rehearsal.estimate_note:
        lines.append(rehearsal.estimate_note)
    if estimate is not None:
        cards = estimate.fitting_cards()
        lines.append(f"the real run ({cfg.model_name_or_path}, {cfg.method}, batch "
                     f"{cfg.per_device_train_batch_size} x {cfg.max_seq_length} tokens) needs about "
                     f"{estimate.predict('device') / 1e9:.1f} GB per GPU: fits cards of "
                     + (", ".join(f"{gb} GB" for gb in cards) if cards else "none of the common sizes")
                     + " (ftkit vram for the details)")
    return "\n".join(lines)
