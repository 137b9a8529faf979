"""``finetune(config)``: one supervised fine-tuning run on Hugging Face ``Trainer`` and peft.

Taught in lessons 03-07. Data come from :mod:`ftkit.data` (tokenized once, cached for the
session), the model from :mod:`ftkit.models`, the method from :mod:`ftkit.methods`; every
training field of the config reaches ``TrainingArguments``. The output folder receives the
adapter or model, the tokenizer, ``run_config.yaml``, Trainer's state, ``training_loss.png``
and ``run_summary.json``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import Trainer

from ..errors import ConfigError, FtkitError
from ..methods import PROMPT_METHODS, ParameterCount, apply_method, as_config, load_base_model
from . import collate
from .callbacks import quiet_if_asked, standard_callbacks
from .distributed import (barrier, cpu_processes_need_flag, is_main_process, require_deepspeed,
                          world_size)
from .oom import is_out_of_memory, out_of_memory_error
from .summary import build_summary, write_summary

CONFIG_FILE = "run_config.yaml"
LOSS_PLOT_FILE = "training_loss.png"


@dataclass
class RunResult:
    """What a run leaves behind: the trained model in memory and the facts on disk."""

    config: Any
    output_dir: Path
    summary: dict
    model: Any
    tokenizer: Any
    trainer: Any = field(repr=False)
    params: ParameterCount = None

    @property
    def log_history(self) -> list[dict]:
        return self.trainer.state.log_history

    @property
    def losses(self) -> list[float]:
        """The logged training losses, in order."""
        return [row["loss"] for row in self.log_history if "loss" in row]

    def plot(self, ax=None, label=None):
        from ..plots.training import loss_curve

        return loss_curve(self.log_history, ax=ax, label=label or self.config.method)

    def chat(self, prompt, **kwargs) -> str:
        from ..infer import chat

        return chat(self.model, self.tokenizer, prompt, **kwargs)


class FtkitTrainer(Trainer):
    """``Trainer`` that also counts real (non-pad) tokens and measures activation memory."""

    measure_steps = 2  # activations are the same size every step; two samples suffice

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.real_tokens = 0
        self.activation_bytes = 0
        self._measured = 0

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not model.training:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        self.real_tokens += collate.real_tokens(inputs)
        meter_class = _activation_meter()
        if self._measured >= self.measure_steps or meter_class is None:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        self._measured += 1
        with meter_class(model) as meter:
            result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        self.activation_bytes = max(self.activation_bytes, _meter_bytes(meter))
        return result


def _activation_meter():
    try:
        from ..vram import ActivationMeter
    except ImportError:
        return None
    return ActivationMeter


def _meter_bytes(meter) -> int:
    for name in ("bytes", "total_bytes", "peak_bytes"):
        value = getattr(meter, name, None)
        if isinstance(value, int):
            return value
    return 0


def resolve_config(config, overrides: dict | None = None):
    """A RunConfig from a RunConfig, a dict, or a config file in any dialect, plus overrides."""
    from ..config import RunConfig, load_config

    if isinstance(config, (str, Path)):
        return load_config(config, overrides=overrides or None)
    if isinstance(config, (RunConfig, dict)) or config is None:
        return as_config(config, **(overrides or {}))
    raise ConfigError(f"finetune() takes a RunConfig, a dict or a config path, not {type(config).__name__}")


def check_precision(cfg, args: dict) -> None:
    """fp16/bf16/tf32 only where the hardware has them; say so clearly where it has not."""
    import torch

    cuda = torch.cuda.is_available() and not cfg.use_cpu
    if cfg.fp16 and not cuda:
        raise FtkitError("fp16: true needs an NVIDIA GPU (its loss scaling is CUDA-only). "
                         "On a CPU use bf16: true, or neither for float32.")
    if cfg.bf16 and cuda and not torch.cuda.is_bf16_supported():
        raise FtkitError("bf16: true needs an Ampere or newer GPU (A100, RTX 30xx...); "
                         "this GPU has none: use fp16: true instead.")
    if cfg.tf32 and not (cuda and torch.cuda.get_device_capability()[0] >= 8):
        print("ftkit: tf32 needs an Ampere or newer NVIDIA GPU; ignored on this device.")
        args["tf32"] = None


# Tokenized datasets of this session, so runs that differ only in method tokenize once.
_TOKENIZED: dict[tuple, tuple] = {}


def data_path(name: str | None) -> str | None:
    """A data file as given, or else inside the repository (so notebooks/ finds data/...)."""
    from ..paths import REPO_ROOT

    if name is None or Path(name).exists() or Path(name).is_absolute():
        return name
    bundled = REPO_ROOT / name
    return str(bundled) if bundled.exists() else name


def _data_key(cfg, tokenizer) -> tuple:
    files = []
    for name in (data_path(cfg.train_file), data_path(cfg.val_file)):
        path = Path(name) if name else None
        files.append((str(path.resolve()), path.stat().st_mtime) if path and path.exists() else name)
    return (*files, tokenizer.name_or_path, len(tokenizer), cfg.template, cfg.max_seq_length,
            cfg.max_input_length, cfg.max_output_length, cfg.max_samples, cfg.val_size, cfg.seed,
            cfg.data_format, cfg.encoding)


def prepare_datasets(cfg, tokenizer):
    """``(train, eval or None)`` tokenized with assistant-only labels, cached per session."""
    from .. import data

    if not cfg.train_file:
        raise ConfigError("train_file is not set: name a data file, e.g. data/identity.jsonl")
    key = _data_key(cfg, tokenizer)
    if key in _TOKENIZED:
        return _TOKENIZED[key]
    train = data.load(data_path(cfg.train_file), format=cfg.data_format, encoding=cfg.encoding)
    if cfg.max_samples:
        train = train.select(range(min(cfg.max_samples, len(train))))
    evaluation = data.load(data_path(cfg.val_file), format=cfg.data_format, encoding=cfg.encoding) if cfg.val_file else None
    if evaluation is None and cfg.val_size:
        split = train.train_test_split(test_size=cfg.val_size, seed=cfg.seed)
        train, evaluation = split["train"], split["test"]
    tokenized = tuple(_tokenize(cfg, tokenizer, part) if part is not None else None
                      for part in (train, evaluation))
    if len(_TOKENIZED) > 8:
        _TOKENIZED.clear()
    _TOKENIZED[key] = tokenized
    return tokenized


def _tokenize(cfg, tokenizer, dataset):
    from .. import data

    tokenized = data.tokenize_sft(dataset, tokenizer, cfg.max_seq_length, template=cfg.template,
                                  max_input_length=cfg.max_input_length,
                                  max_output_length=cfg.max_output_length)
    if "length" not in tokenized.column_names:  # for group_by_length, read without decoding
        tokenized = tokenized.add_column("length", [len(ids) for ids in tokenized["input_ids"]])
    return tokenized


def _prepare_output_dir(cfg) -> Path:
    out = Path(cfg.output_dir)
    checkpoints = sorted(out.glob("checkpoint-*")) if out.is_dir() else []
    if checkpoints and not cfg.resume_from_checkpoint:
        if not cfg.overwrite_output_dir:
            raise FtkitError(
                f"output_dir {out} holds checkpoints of an earlier run ({checkpoints[-1].name}): "
                "set resume_from_checkpoint: true to continue it, overwrite_output_dir: true to "
                "start over, or choose another output_dir.")
        for checkpoint in checkpoints:
            shutil.rmtree(checkpoint)
    out.mkdir(parents=True, exist_ok=True)
    return out


def common_arguments(cfg) -> dict:
    """TrainingArguments fields every ftkit run shares (SFT here, DPO in ``dpo.py``)."""
    import torch

    args = cfg.training_arguments()
    check_precision(cfg, args)
    require_deepspeed(cfg)
    # Under torchrun on CPUs, Trainer would otherwise start no DDP at all; and Trainer takes
    # bf16 on a machine without a GPU only as CPU autocast, which it ties to use_cpu.
    if cpu_processes_need_flag(cfg.use_cpu) or (cfg.bf16 and not torch.cuda.is_available()):
        args["use_cpu"] = True
    if world_size() > 1:
        # Every trainable tensor of ftkit's methods takes part in every step; without this,
        # DDP assumes peft models may skip some and walks the autograd graph after each step.
        args["ddp_find_unused_parameters"] = False
    args.update(
        logging_first_step=True,  # first_loss is the loss before any learning
        activation_checkpointing_kwargs={"use_reentrant": False},  # works with frozen inputs
        dataloader_pin_memory=torch.cuda.is_available(),
    )
    return args


def _training_arguments(cfg, packing: bool):
    from transformers import TrainingArguments

    args = common_arguments(cfg)
    args["label_names"] = ["labels"]  # peft wrappers hide the signature Trainer would read it from
    if packing:
        args["train_sampling_strategy"] = "random"  # one packed row per batch: lengths irrelevant
    try:
        return TrainingArguments(**args)
    except (ValueError, ImportError) as error:
        raise FtkitError(f"TrainingArguments refused these settings: {error}") from None


def finetune(config=None, *, model=None, tokenizer=None, callbacks=(), verbose: bool = True,
             **overrides) -> RunResult:
    """Train as ``config`` says (a RunConfig, a dict, or a config file in any dialect).

    ``overrides`` are config fields, e.g. ``finetune("configs/lora.yaml", max_steps=5)``.
    ``model`` is a base model to train instead of loading one (the method is applied to it
    in place); ``callbacks`` are extra ``TrainerCallback`` objects.
    """
    from transformers import set_seed

    from .. import models

    cfg = resolve_config(config, overrides)
    if cfg.stage == "dpo":  # preference alignment has its own trainer (TRL's DPOTrainer)
        from .dpo import train_dpo

        return train_dpo(cfg, model=model, tokenizer=tokenizer, callbacks=callbacks, verbose=verbose)
    from .multitask import is_multitask, train_multitask

    if is_multitask(cfg):  # mixing by weights, per-task losses
        return train_multitask(cfg, model=model, tokenizer=tokenizer, callbacks=callbacks,
                               verbose=verbose)
    packing = cfg.packing
    if packing and cfg.method in PROMPT_METHODS:
        print(f"ftkit: packing is off for method {cfg.method}: its virtual tokens go in front of "
              "each row, and a packed row holds several examples. Padding per batch instead.")
        packing = False
    args = _training_arguments(cfg, packing)
    out = _prepare_output_dir(cfg)
    tokenizer = tokenizer or models.load_tokenizer(cfg.model_name_or_path, cfg.trust_remote_code)
    train_set, eval_set = prepare_datasets(cfg, tokenizer)
    set_seed(cfg.seed)  # adapter initialisation is random too
    model = model if model is not None else load_base_model(cfg)
    if packing:  # with a KV cache, SDPA would let packed examples attend to each other
        from ..data import prepare_model_for_packing

        prepare_model_for_packing(model)
    model, params = apply_method(model, cfg, tokenizer, verbose=verbose)
    meter, extra = standard_callbacks()
    trainer = FtkitTrainer(
        model=model, args=args, data_collator=collate.make_collator(tokenizer, packing),
        train_dataset=train_set, eval_dataset=eval_set, processing_class=tokenizer,
        callbacks=extra + list(callbacks))
    quiet_if_asked(trainer)
    try:
        output = trainer.train(resume_from_checkpoint=cfg.resume_from_checkpoint)
    except Exception as error:
        if is_out_of_memory(error):
            raise out_of_memory_error(cfg, error, model) from None
        if cfg.resume_from_checkpoint and "checkpoint" in str(error).lower():
            raise FtkitError(f"cannot resume: {error}. Checkpoints are the checkpoint-N folders in "
                             f"{out}; resume_from_checkpoint takes true (the latest) or one of them.") from None
        raise
    if eval_set is not None and not any("eval_loss" in r and r["step"] == trainer.state.global_step
                                        for r in trainer.state.log_history):
        trainer.evaluate()  # the summary's eval_loss describes the final model
    trainer.save_model(str(out))  # Trainer saves on the main process only
    memory = {"predicted_bytes": predicted_bytes(cfg, model),
              "measured_bytes": meter.measured_bytes(trainer.activation_bytes),
              "measured_parts": {**meter.parts, "activations": trainer.activation_bytes}}
    summary = build_summary(cfg, trainer, output.metrics, params, trainer.real_tokens, memory, packing)
    save_run(cfg, trainer, tokenizer, out, summary)
    if verbose and is_main_process():
        print(f"ftkit: {summary['steps']} steps, loss {summary['first_loss']} -> "
              f"{summary['last_loss']}, {summary['tokens_per_second'] or 0:.0f} tokens/s; "
              f"saved to {out}")
    return RunResult(cfg, out, summary, model, tokenizer, trainer, params)


def save_run(cfg, trainer, tokenizer, out: Path, summary: dict, extra_plots=()) -> None:
    """Write the run's files: tokenizer, Trainer's state, the resolved config, plots, summary.

    Under torchrun every process reaches this point; one writes, the others wait for it, so
    no file is written twice at once and none is missing when the launcher returns.
    ``extra_plots`` are ``f(log_history, out)`` functions for plots beyond the loss curve.
    """
    if is_main_process():
        tokenizer.save_pretrained(str(out))
        trainer.save_state()
        cfg.to_yaml(out / CONFIG_FILE)
        if cfg.plot_loss:
            from ..plots.training import save_loss_plot

            save_loss_plot(trainer.state.log_history, out / LOSS_PLOT_FILE)
            for plot in extra_plots:
                plot(trainer.state.log_history, out)
        write_summary(summary, out)
    barrier()


def predicted_bytes(cfg, model, **overrides) -> int:
    """What ``ftkit.vram`` predicts for this run (``overrides`` go to the estimate)."""
    from ..vram import estimate_for_config

    return int(estimate_for_config(cfg, model=model, **overrides).total_bytes)
