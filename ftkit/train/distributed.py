"""More than one process: who am I, how many are we, and who writes the files.

Taught in lesson 09 (``notebooks/09_multitask_and_scale.ipynb``). ftkit does not launch
processes itself: ``torchrun --nproc_per_node N``, ``accelerate launch`` and DeepSpeed's
``deepspeed --hostfile`` start N copies of the same ``ftkit train`` and set ``RANK``,
``LOCAL_RANK`` and ``WORLD_SIZE``; Trainer reads them, wraps the model in DDP (gloo on a
CPU, NCCL on GPUs) and gives each process its share of every batch. What is left here is
the bookkeeping: only rank 0 writes the run's files, and a DeepSpeed config on a machine
without DeepSpeed stops with a clear message instead of an ImportError deep in Trainer.
"""

from __future__ import annotations

import os

from ..errors import FtkitError


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


def require_deepspeed(cfg) -> None:
    """Stop early and clearly when a config asks for DeepSpeed that cannot run here."""
    if not cfg.deepspeed:
        return
    try:
        import deepspeed  # noqa: F401
    except ImportError:
        raise FtkitError(
            f"deepspeed: {cfg.deepspeed} is set, but the deepspeed package is not installed. "
            "DeepSpeed ZeRO needs NVIDIA GPUs with CUDA (it does not build on a CPU-only "
            "machine): on a GPU machine run `pip install deepspeed`, then launch with "
            "`deepspeed --num_gpus N -m ftkit train CONFIG` or torchrun. On this machine remove "
            "the deepspeed key (plain DDP under torchrun needs no DeepSpeed).") from None


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
