"""Training runs: ``finetune(config) -> RunResult`` on Hugging Face Trainer and peft.

Taught in lessons 03-07. Modules: ``run`` (finetune), ``collate`` (dynamic padding, packing),
``callbacks`` (live loss plot, memory meter, stop/resume helpers), ``summary``
(run_summary.json), ``oom`` (out-of-memory advice). Heavy imports wait for first use.
"""

__all__ = ["finetune", "RunResult", "resolve_config", "StopAfterSteps", "read_summary"]


def __getattr__(name):
    if name in ("finetune", "RunResult", "resolve_config"):
        from . import run

        return getattr(run, name)
    if name == "StopAfterSteps":
        from .callbacks import StopAfterSteps

        return StopAfterSteps
    if name == "read_summary":
        from .summary import read_summary

        return read_summary
    raise AttributeError(f"module 'ftkit.train' has no attribute {name!r}")
