"""More than one process: who am I, how many are we, and who writes the files.

Taught in lesson 09 (``notebooks/09_multitask_and_scale.ipynb``). ftkit does not launch
processes itself: ``torchrun --nproc_per_node N``, ``accelerate launch`` and DeepSpeed's
``deepspeed --hostfile`` start N copies of the same ``ftkit train`` and set ``RANK``,
``LOCAL_RANK`` and ``WORLD_SIZE``; Trainer reads them, wraps the model in DDP (gloo on a
CPU, NCCL on GPUs) and gives each process its share of every batch. What is left here is
the bookkeeping: only rank 0 writes the run's files, and a DeepSpeed config is checked and
DeepSpeed's processes started before the model loads (:func:`require_deepspeed`). DeepSpeed
ZeRO runs on CPU processes (gloo) here and on GPUs; Trainer's ``fsdp`` shards on GPUs only
(see :mod:`ftkit.train.fsdp`).
"""

from __future__ import annotations

import os


def world_size() -> int:
    """Processes in this run (1 when not launched by torchrun / accelerate / deepspeed)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's global rank (0 when alone)."""
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    """True for the one process that writes summaries, plots and configs."""
    return rank() == 0


def barrier() -> None:
    """Wait for every process (no-op when alone or before the process group exists)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def require_deepspeed(cfg) -> dict | None:
    """The run's checked DeepSpeed config (a dict for ``TrainingArguments(deepspeed=...)``),
    or None without one. Stops early and clearly when DeepSpeed is missing or the config asks
    for what this machine cannot do (see :mod:`ftkit.train.deepspeed`). Under torchrun on CPU
    processes it also starts DeepSpeed's communication, which ZeRO-3 needs before the model
    loads; on GPUs Trainer does that itself. A Trainer ``fsdp`` is checked here too."""
    from . import deepspeed, fsdp

    fsdp.check(cfg)
    if not cfg.deepspeed:
        return None
    import torch

    deepspeed.require()
    on_cpu = cfg.use_cpu or not torch.cuda.is_available()
    config = deepspeed.resolve(cfg.deepspeed, cuda=not on_cpu)
    if on_cpu and world_size() > 1:
        deepspeed.init_cpu_processes()
    return config


def all_reduce_sum(tensor):
    """Sum a tensor over every process in place (per-task loss sums); alone, nothing to do."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def cpu_processes_need_flag(use_cpu: bool) -> bool:
    """True when torchrun started several processes on a machine without a GPU and the
    config does not say ``use_cpu``: Trainer would then set up no DDP at all and every
    process would train alone on all the data (world_size 1 each). ftkit sets use_cpu."""
    import torch

    return world_size() > 1 and not use_cpu and not torch.cuda.is_available()
