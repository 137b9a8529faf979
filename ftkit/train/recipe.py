"""The recipe every training run follows, whatever its stage; stages supply only what differs.

Taught in lessons 03-09. :func:`run` does, for every stage:

    resolve the config -> TrainingArguments -> output folder -> tokenizer -> stage.data
    -> seed -> model + method -> stage.trainer -> train (out-of-memory advice, resume errors)
    -> final evaluation when the schedule missed it -> save -> memory -> summary
    (+ stage.extras) -> RunResult

A stage (``sft``, ``pt``, ``dpo``, ``multitask``) is a :class:`Stage` subclass; it must say
how to read its data (``data``) and build its trainer (``trainer``), and may change the
arguments class, how the method is applied, and add summary keys and plots. Evaluation
during training (``eval_strategy``, ``load_best_model_at_end``, early stopping) is the
recipe's, so it works the same in every stage. The output folder receives the adapter or
model, the tokenizer, ``run_config.yaml``, Trainer's state, ``training_loss.png`` and
``run_summary.json`` (see :mod:`ftkit.train.summary`).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import torch
from transformers import Trainer, TrainingArguments, set_seed

from .. import dialects, models
from ..config import RunConfig
from ..errors import ConfigError, FtkitError
from ..infer import chat
from ..methods import ParameterCount, apply_method, as_config, count_parameters, load_base_model
from ..paths import REPO_ROOT
from ..plots.training import loss_curve, save_loss_plot
from ..vram import ActivationMeter, estimate_for_config
from . import collate
from .callbacks import early_stopping, quiet_if_asked, standard_callbacks, stopped_early
from .deepspeed import zero3_init_paused
from .distributed import (
    barrier,
    cpu_processes_need_flag,
    is_main_process,
    require_deepspeed,
    world_size,
)
from .oom import is_out_of_memory, out_of_memory_error
from .summary import build_summary, evaluation_summary, write_summary

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

    @property
    def eval_losses(self) -> list[float]:
        """The evaluation losses, in order (the last one is the final model's)."""
        return [row["eval_loss"] for row in self.log_history if "eval_loss" in row]

    def plot(self, ax=None, label=None):
        return loss_curve(self.log_history, ax=ax, label=label or self.config.method)

    def chat(self, prompt, **kwargs) -> str:
        return chat(self.model, self.tokenizer, prompt, **kwargs)


@dataclass
class StageData:
    """What a stage's ``data`` hook returns: the training and evaluation sets, and anything
    the stage's later hooks need (``info``)."""

    train: Any
    eval: Any = None
    packing: bool = False
    info: dict = field(default_factory=dict)


class Stage:
    """The hooks of a training stage. Subclasses implement ``data`` and ``trainer``."""

    name = "sft"
    loss_title = "training loss"  # the live plot's title

    def check(self, cfg) -> None:
        """Refuse a config this stage cannot train, before anything is loaded."""

    def arguments(self, cfg, args: dict):
        """The arguments object from the common fields (``args``); SFT-like stages by default."""
        args["label_names"] = ["labels"]  # peft wrappers hide the signature Trainer reads it from
        return build_arguments(TrainingArguments, args)

    def data(self, cfg, tokenizer, verbose: bool) -> StageData:
        raise NotImplementedError

    def method(self, cfg, model) -> tuple[Any, dict]:
        """``(model ready to train, extra keyword arguments for the trainer hook)``."""
        model, _ = apply_method(model, cfg, verbose=False)
        return model, {}

    def trainer(self, cfg, model, args, data: StageData, tokenizer, callbacks, **kwargs) -> Trainer:
        raise NotImplementedError

    def before_training(self, trainer, data: StageData) -> dict:
        """Measurements to take before the first step (passed to ``extras``)."""
        return {}

    def extras(self, cfg, trainer, data: StageData, final_eval: dict | None, before: dict) -> dict:
        """The stage's own summary keys."""
        return {}

    def memory_overrides(self, cfg) -> dict:
        """Settings of the memory prediction that differ from the config's."""
        return {}

    def plots(self) -> list:
        """``f(log_history, output_dir)`` functions for plots beyond the loss curve."""
        return []

    def report(self, summary: dict) -> str:
        """The stage's words in the last line a run prints."""
        return ""


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
        if self._measured >= self.measure_steps:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        self._measured += 1
        with ActivationMeter(model) as meter:
            result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        self.activation_bytes = max(self.activation_bytes, meter.bytes)
        return result


def resolve_config(config, overrides: dict | None = None) -> RunConfig:
    """A RunConfig from a RunConfig, a dict, or a config file in any dialect, plus overrides."""
    if isinstance(config, (str, Path)):
        return dialects.load_config(config, overrides=overrides or None)
    if isinstance(config, (RunConfig, dict)) or config is None:
        return as_config(config, **(overrides or {}))
    raise ConfigError(f"finetune() takes a RunConfig, a dict or a config path, not {type(config).__name__}")


def data_path(name: str | None) -> str | None:
    """A data file as given, or else inside the repository (so notebooks/ finds data/...)."""
    if name is None or Path(name).exists() or Path(name).is_absolute():
        return name
    bundled = REPO_ROOT / name
    return str(bundled) if bundled.exists() else name


def sources(file: str | None, specs) -> list[tuple[str, dict]]:
    """``[(path, ftkit.data.load keyword arguments), ...]``: a dataset registry's resolved
    ``specs`` (LLaMA-Factory's ``dataset_info.json``) when the config has them, else ``file``."""
    if specs:
        return [(spec.file, {k: v for k, v in spec.load_arguments().items() if k != "path"})
                for spec in specs]
    return [(data_path(file), {})] if file else []


def has_training_data(cfg) -> bool:
    return bool(cfg.train_file or cfg.datasets)


def split_train_eval(cfg, read):
    """``(train, eval or None)``: ``train_file`` (or the registry's ``datasets``, joined), its
    ``max_samples`` first rows, then ``val_file`` (or ``eval_datasets``) or else a ``val_size``
    fraction held out with the run's seed. ``read(path, **load_arguments)`` reads one source
    the stage's way (and refuses data it cannot train)."""
    def read_all(file, specs):
        parts = [read(path, **arguments) for path, arguments in sources(file, specs)]
        return (parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)) if parts else None

    train = read_all(cfg.train_file, cfg.datasets)
    if cfg.max_samples:
        train = train.select(range(min(cfg.max_samples, len(train))))
    evaluation = read_all(cfg.val_file, cfg.eval_datasets)
    if evaluation is None and cfg.val_size:
        split = train.train_test_split(test_size=cfg.val_size, seed=cfg.seed)
        train, evaluation = split["train"], split["test"]
    return train, evaluation


def check_precision(cfg, args: dict) -> None:
    """fp16/bf16/tf32 only where the hardware has them; say so clearly where it has not."""
    cuda = torch.cuda.is_available() and not cfg.use_cpu
    if cfg.fp16 and not cuda:
        # torch has CPU autocast and a CPU GradScaler, but fp16 on a CPU is slow and gains no
        # memory that bf16 does not: ftkit allows fp16 (with loss scaling) on CUDA GPUs only.
        raise FtkitError("fp16: true: ftkit runs fp16 with loss scaling on CUDA GPUs only. "
                         "On a CPU use bf16: true, or neither for float32.")
    if cfg.bf16 and cuda and not torch.cuda.is_bf16_supported():
        raise FtkitError("bf16: true needs an Ampere or newer GPU (A100, RTX 30xx...); "
                         "this GPU has none: use fp16: true instead.")
    if cfg.tf32 and not (cuda and torch.cuda.get_device_capability()[0] >= 8):
        print("ftkit: tf32 needs an Ampere or newer NVIDIA GPU; ignored on this device.")
        args["tf32"] = None


def common_arguments(cfg) -> dict:
    """TrainingArguments fields every stage shares; a stage adds its own and picks the class."""
    args = cfg.training_arguments()
    check_precision(cfg, args)
    deepspeed = require_deepspeed(cfg)  # checked and resolved for this machine, or None
    if deepspeed is not None:
        args["deepspeed"] = deepspeed
    # Under torchrun on CPUs, Trainer would otherwise start no DDP at all; and Trainer takes
    # bf16 on a machine without a GPU only as CPU autocast, which it ties to use_cpu.
    if cpu_processes_need_flag(cfg.use_cpu) or (cfg.bf16 and not torch.cuda.is_available()):
        args["use_cpu"] = True
    if world_size() > 1:
        # Every trainable tensor of ftkit's methods takes part in every step; without this,
        # DDP assumes peft models may skip some and walks the autograd graph after each step.
        args["ddp_find_unused_parameters"] = False
    if cfg.early_stopping_patience and not cfg.metric_for_best_model:
        args["metric_for_best_model"] = "loss"  # what load_best_model_at_end defaults to
    args.update(
        logging_first_step=True,  # first_loss is the loss before any learning
        activation_checkpointing_kwargs={"use_reentrant": False},  # works with frozen inputs
        dataloader_pin_memory=torch.cuda.is_available(),
    )
    return args


def build_arguments(arguments_class, args: dict):
    """``arguments_class(**args)``, its refusals turned into an FtkitError."""
    try:
        return arguments_class(**args)
    except (ValueError, TypeError, ImportError) as error:
        raise FtkitError(f"{arguments_class.__name__} refused these settings: {error}") from None


def prepare_output_dir(cfg) -> Path:
    """The output folder, refusing to mix a new run into an earlier run's checkpoints."""
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


def train(trainer, cfg, model, out: Path):
    """``trainer.train()``, with out-of-memory advice and a resume error that says what to do."""
    try:
        return trainer.train(resume_from_checkpoint=cfg.resume_from_checkpoint)
    except Exception as error:
        if is_out_of_memory(error):
            raise out_of_memory_error(cfg, error, model) from None
        if cfg.resume_from_checkpoint and "checkpoint" in str(error).lower():
            raise FtkitError(f"cannot resume: {error}. Checkpoints are the checkpoint-N folders in "
                             f"{out}; resume_from_checkpoint takes true (the latest) or one of them.") from None
        raise


# Fields other tools' configs carry (ChatGLM3's data_config, LLaMA-Factory's arguments) that
# ftkit reads and validates but does not act on: each run says so instead of seeming to use them.
READ_NOT_USED = {
    "test_file": "training evaluates on val_file or val_size; score the test file afterwards "
                 "with `ftkit eval --adapter OUTPUT_DIR --data TEST_FILE`",
    "preprocessing_num_workers": "ftkit tokenizes in one process",
}


def final_evaluation(trainer, eval_set) -> dict | None:
    """The metrics of the final model on the evaluation set (None without one).

    Taken from the log when the schedule evaluated at the last step and that model is the
    final one; otherwise (no evaluation at the end, or the best checkpoint was loaded back)
    evaluated now.
    """
    if eval_set is None:
        return None
    state = trainer.state
    logged = {}  # every eval_* value logged at the last step (a stage may log in several rows)
    for row in state.log_history:
        if row.get("step") == state.global_step:
            logged.update({k: v for k, v in row.items() if k.startswith("eval_")})
    reloaded = trainer.args.load_best_model_at_end and state.best_model_checkpoint is not None \
        and state.best_global_step != state.global_step
    if "eval_loss" in logged and not reloaded:
        return logged
    return {k: v for k, v in trainer.evaluate().items() if k.startswith("eval_")}


def predicted_bytes(cfg, model, **overrides) -> int:
    """What ``ftkit.vram`` predicts for this run (``overrides`` go to the estimate).

    The estimate builds the architecture on the meta device; under ZeRO-3 transformers would
    build it through ``deepspeed.zero.Init``, which cannot copy meta tensors, so that is paused.
    """
    with zero3_init_paused():
        return int(estimate_for_config(cfg, model=model, **overrides).total_bytes)


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
            save_loss_plot(trainer.state.log_history, out / LOSS_PLOT_FILE)
            for plot in extra_plots:
                plot(trainer.state.log_history, out)
        write_summary(summary, out)
    barrier()


def run(stage: Stage, config=None, /, *, model=None, tokenizer=None, callbacks=(),
        verbose: bool = True, **overrides) -> RunResult:
    """Train ``config`` (a RunConfig, a dict or a config file, plus ``overrides``) as ``stage``.

    ``model`` is a base model to train instead of loading one (the method is applied to it
    in place); ``callbacks`` are extra ``TrainerCallback`` objects.
    """
    cfg = resolve_config(config, overrides)
    stage.check(cfg)
    if verbose and is_main_process():
        for field, why in READ_NOT_USED.items():
            if getattr(cfg, field, None) is not None:
                print(f"ftkit: {field} is read but not used: {why}")
    args = stage.arguments(cfg, common_arguments(cfg))
    out = prepare_output_dir(cfg)
    tokenizer = tokenizer or models.load_tokenizer(cfg.model_name_or_path, cfg.trust_remote_code)
    data = stage.data(cfg, tokenizer, verbose)
    set_seed(cfg.seed)  # adapter initialisation is random too
    model = model if model is not None else load_base_model(cfg)
    model, trainer_kwargs = stage.method(cfg, model)
    meter, standard = standard_callbacks(stage.loss_title)
    stopper = early_stopping(cfg)
    trainer = stage.trainer(cfg, model, args, data, tokenizer,
                            standard + ([stopper] if stopper else []) + list(callbacks),
                            **trainer_kwargs)
    quiet_if_asked(trainer)
    params = count_parameters(trainer.model)
    if verbose and is_main_process():
        print(f"{cfg.method if stage.name == 'sft' else f'{stage.name}/{cfg.method}'}: {params}")
    before = stage.before_training(trainer, data)
    output = train(trainer, cfg, trainer.model, out)
    final_eval = final_evaluation(trainer, data.eval)
    trainer.save_model(str(out))  # Trainer saves on the main process only
    activations = getattr(trainer, "activation_bytes", 0)
    memory = {"predicted_bytes": predicted_bytes(cfg, trainer.model, **stage.memory_overrides(cfg)),
              "measured_bytes": meter.measured_bytes(activations),
              "measured_parts": {**meter.parts, **({"activations": activations} if activations else {})}}
    summary = build_summary(cfg, trainer, output.metrics, params, trainer.real_tokens, memory,
                            data.packing)
    summary.update(evaluation_summary(trainer, final_eval, stopped_early(stopper)))
    summary.update(stage.extras(cfg, trainer, data, final_eval, before))
    save_run(cfg, trainer, tokenizer, out, summary, stage.plots())
    if verbose and is_main_process():
        evaluated = f", eval loss {summary['eval_loss']:.4f}" if summary["eval_loss"] is not None else ""
        print(f"ftkit: {stage.name} {summary['steps']} steps, loss {summary['first_loss']} -> "
              f"{summary['last_loss']}{evaluated}, {summary['tokens_per_second'] or 0:.0f} tokens/s"
              f"{stage.report(summary)}; saved to {out}")
    return RunResult(cfg, out, summary, trainer.model, tokenizer, trainer, params)
