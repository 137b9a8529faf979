"""Trainer callbacks: a live loss plot in notebooks, a memory meter, early stopping, and two
small controls.

Taught in lesson 03. The progress bar itself is Trainer's own (a table in notebooks, tqdm in
a terminal); :class:`LiveLossPlot` adds a loss curve that redraws in place while training,
through an IPython display handle, and stays silent outside a notebook kernel.
"""

from __future__ import annotations

import io
import time

import torch
from transformers import EarlyStoppingCallback, TrainerCallback
from transformers.trainer_callback import PrinterCallback

from ..plots.training import loss_curve
from ..vram import grad_bytes, optimizer_bytes, param_bytes


def in_notebook() -> bool:
    """True inside a Jupyter kernel (JupyterLab, nbconvert, nbval), False in a terminal."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


class LiveLossPlot(TrainerCallback):
    """Redraw the loss curve in one notebook output at most every ``min_interval`` seconds."""

    def __init__(self, min_interval: float = 2.0, title: str = "training loss"):
        self.min_interval, self.title = min_interval, title
        self.handle, self.last_draw = None, 0.0

    def _draw(self, state) -> None:
        from IPython.display import Image, display

        if not any("loss" in row for row in state.log_history):
            return
        buffer = io.BytesIO()
        loss_curve(state.log_history, title=self.title).savefig(buffer, format="png")
        image = Image(data=buffer.getvalue(), format="png")
        if self.handle is None:
            self.handle = display(image, display_id=True)
        else:
            self.handle.update(image)
        self.last_draw = time.monotonic()

    def on_log(self, args, state, control, **kwargs):
        if time.monotonic() - self.last_draw >= self.min_interval:
            self._draw(state)

    def on_train_end(self, args, state, control, **kwargs):
        self._draw(state)  # the final curve, whatever the throttle said


class LogFinalStep(TrainerCallback):
    """Log the loss at the last step too, so ``last_loss`` is the end of training."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.max_steps and state.global_step >= state.max_steps:
            control.should_log = True


class StopAfterSteps(TrainerCallback):
    """Stop training after ``steps`` optimizer steps, as an interruption would (resume demos)."""

    def __init__(self, steps: int):
        self.steps = steps

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.steps:
            control.should_save = True  # a checkpoint to resume from, as a crash would leave
            control.should_training_stop = True


class MemoryMeter(TrainerCallback):
    """Measure the training memory: CUDA's peak, or on a CPU the sum of measured parts.

    On a CPU there is no allocator peak to read, so the meter adds what ``ftkit.vram``
    measures after an optimizer step (weights, gradients, optimizer state) to the largest
    activation footprint seen by the trainer's :class:`~ftkit.vram.ActivationMeter`.
    """

    def __init__(self):
        self.parts: dict[str, int] = {}
        self.cuda_peak: int | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        if torch.cuda.is_available() and not args.use_cpu:
            torch.cuda.reset_peak_memory_stats()

    def on_optimizer_step(self, args, state, control, model=None, optimizer=None, **kwargs):
        if self.parts or model is None:
            return  # the parts do not change after the first step
        self.parts = {"weights": param_bytes(model), "gradients": grad_bytes(model)}
        if optimizer is not None:
            self.parts["optimizer"] = optimizer_bytes(optimizer)

    def on_train_end(self, args, state, control, **kwargs):
        if torch.cuda.is_available() and not args.use_cpu:
            self.cuda_peak = torch.cuda.max_memory_allocated()

    def measured_bytes(self, activation_bytes: int = 0) -> int | None:
        if self.cuda_peak is not None:
            return self.cuda_peak
        if not self.parts:
            return None
        return sum(self.parts.values()) + activation_bytes


def standard_callbacks(title: str = "training loss") -> tuple[MemoryMeter, list[TrainerCallback]]:
    """The meter and the callbacks every ftkit trainer gets (the plot only in notebooks)."""
    meter = MemoryMeter()
    return meter, [meter, LogFinalStep()] + ([LiveLossPlot(title=title)] if in_notebook() else [])


def early_stopping(cfg) -> EarlyStoppingCallback | None:
    """transformers' early stopping when ``early_stopping_patience`` asks for it: stop after
    that many evaluations in a row without improving ``metric_for_best_model`` (the eval loss
    unless set) by more than ``early_stopping_threshold``."""
    if not cfg.early_stopping_patience:
        return None
    return EarlyStoppingCallback(cfg.early_stopping_patience, cfg.early_stopping_threshold)


def stopped_early(callback: EarlyStoppingCallback | None) -> bool:
    """True when the early-stopping callback ended the run (its patience ran out)."""
    return bool(callback and callback.early_stopping_patience_counter >= callback.early_stopping_patience)


def quiet_if_asked(trainer) -> None:
    """``disable_tqdm`` asks for a quiet run, but Trainer then prints every log line as a dict
    in place of the bar. Drop that printer too: the numbers stay in ``state.log_history``."""
    if trainer.args.disable_tqdm:
        trainer.remove_callback(PrinterCallback)
