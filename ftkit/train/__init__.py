"""Training runs: ``finetune(config) -> RunResult``, one recipe for every stage.

Taught in lessons 03-09. :func:`finetune` picks the stage from the config: ``stage: sft``
(chat examples, :mod:`.sft`), ``pt`` (plain text, :mod:`.pt`), ``dpo`` (preference pairs,
:mod:`.dpo`), and multi-task SFT when the config mixes or weights tasks (:mod:`.multitask`).
What every run does (arguments, output folder, out-of-memory advice, resume, evaluation
during training, early stopping, the final evaluation, saving, the summary) is
:mod:`.recipe`'s. Also here: ``collate`` (dynamic padding, packing), ``callbacks`` (live
loss plot, memory meter, early stopping, stop/resume helpers), ``summary``
(run_summary.json), ``oom`` (out-of-memory advice), ``distributed`` (several processes).
"""

from __future__ import annotations

from . import multitask, pt, sft
from .callbacks import StopAfterSteps
from .recipe import RunResult, Stage, StageData, resolve_config, run
from .summary import read_summary

__all__ = ["finetune", "stage_for", "stages", "RunResult", "Stage", "StageData",
           "resolve_config", "StopAfterSteps", "read_summary"]


def stages() -> dict[str, Stage]:
    """Every single-task stage by its ``stage`` name. The DPO stage is imported here, not with
    the package: it imports TRL, which takes seconds that an SFT run need not pay."""
    from . import dpo

    return {"sft": sft.STAGE, "pt": pt.STAGE, "dpo": dpo.STAGE}


def stage_for(cfg) -> Stage:
    """The stage that trains ``cfg``: multi-task when it mixes or weights tasks, else ``cfg.stage``."""
    if multitask.is_multitask(cfg):
        return multitask.STAGE
    return {"sft": sft.STAGE, "pt": pt.STAGE}.get(cfg.stage) or stages()[cfg.stage]


def finetune(config=None, *, model=None, tokenizer=None, callbacks=(), verbose: bool = True,
             **overrides) -> RunResult:
    """Train as ``config`` says (a RunConfig, a dict, or a config file in any dialect).

    ``overrides`` are config fields, e.g. ``finetune("configs/lora.yaml", max_steps=5)``.
    ``model`` is a base model to train instead of loading one (the method is applied to it
    in place); ``callbacks`` are extra ``TrainerCallback`` objects; ``verbose=False`` prints
    nothing but errors.
    """
    cfg = resolve_config(config, overrides)
    return run(stage_for(cfg), cfg, model=model, tokenizer=tokenizer, callbacks=callbacks,
               verbose=verbose)
