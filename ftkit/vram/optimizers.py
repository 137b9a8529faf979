"""Optimizer state: the bytes each optimizer keeps per trainable tensor.

Taught in lesson 01. The names are the config's (:data:`ftkit.config.Optimizer`, the names of
``transformers.TrainingArguments.optim``), so the estimate and a run speak one vocabulary.
Every name is modelled on its own layout; none is silently read as AdamW.

* torch AdamW (``adamw_torch``, ``adamw_torch_fused``): two moments in the parameter's dtype and
  a float32 step per tensor; RMSprop: one square average; Adagrad: one sum; SGD: none.
* bitsandbytes (``adamw_8bit``, ``lion_8bit``, ``paged_*``): 8-bit states with one float32
  absmax per 256-value block, 32-bit states for tensors under 4096 values; Lion keeps one
  moment, AdamW two. ``paged_*`` states live in CUDA unified memory, outside PyTorch's
  allocator: ``max_memory_allocated`` never sees them (nvidia-smi does, while they are resident).
* torchao (``adamw_torch_8bit``, ``adamw_torch_4bit``): blockwise states (256-value blocks at
  8 bits, 128-value blocks at 4 bits, one float32 scale each) for tensors of at least 4096
  values that divide into blocks, float32 otherwise (torchao ``optim/adam.py`` ``_new_buffer``).
"""

from __future__ import annotations

import math
from typing import get_args

from ..config import OPTIMIZER_ALIASES, Optimizer

BNB_8BIT_MIN_SIZE = 4096  # bitsandbytes keeps 32-bit states for smaller tensors
BNB_BLOCK = 256  # block size of 8-bit optimizer states (one float32 absmax per block)
TORCHAO_MIN_SIZE = 4096
TORCHAO_BLOCK = {8: 256, 4: 128}

# The config's names, plus momentum SGD (a lesson exercise, not a TrainingArguments name).
OPTIMIZERS = tuple(get_args(Optimizer)) + ("sgd_momentum",)


def canonical(name: str) -> str:
    """The config's name for an optimizer (``adamw_hf`` -> ``adamw_torch``)."""
    name = str(name).lower()
    return OPTIMIZER_ALIASES.get(name, name)


def is_paged(optim: str) -> bool:
    return canonical(optim).startswith("paged_")


def _bnb_state(n: int, bits: int) -> int:
    if bits == 32 or n < BNB_8BIT_MIN_SIZE:
        return 4 * n
    return n + 4 * math.ceil(n / BNB_BLOCK)


def _torchao_state(n: int, bits: int, param_bytes: int) -> int:
    block = TORCHAO_BLOCK[bits]
    if n < TORCHAO_MIN_SIZE or n % block:
        return n * param_bytes
    return n * bits // 8 + 4 * (n // block)


def state_bytes(shapes, optim: str, param_bytes: int) -> int:
    """Bytes of optimizer state for trainable tensors of the given shapes and storage size."""
    optim = canonical(optim)
    total = 0
    for shape in shapes:
        n = math.prod(shape)
        if optim in ("adamw_torch", "adamw_torch_fused"):
            total += 2 * n * param_bytes + 4  # exp_avg, exp_avg_sq, float32 step
        elif optim in ("adamw_8bit", "adamw_bnb_8bit", "paged_adamw_8bit"):
            total += 2 * _bnb_state(n, 8)
        elif optim == "paged_adamw_32bit":
            total += 2 * _bnb_state(n, 32)
        elif optim in ("lion_8bit", "paged_lion_8bit"):
            total += _bnb_state(n, 8)
        elif optim in ("lion_32bit", "paged_lion_32bit"):
            total += _bnb_state(n, 32)
        elif optim in ("adamw_torch_8bit", "adamw_torch_4bit"):
            bits = 8 if optim.endswith("8bit") else 4
            total += 2 * _torchao_state(n, bits, param_bytes) + 4
        elif optim == "rmsprop":  # torch RMSprop as Trainer builds it: no momentum, not centered
            total += n * param_bytes + 4
        elif optim == "sgd":
            total += 0
        elif optim == "sgd_momentum":
            total += n * param_bytes
        elif optim == "adagrad":
            total += n * param_bytes + 4
        elif optim == "adafactor":  # factored second moment, no first moment (beta1=None)
            factored = math.prod(shape[:-1]) + math.prod(shape[:-2] + shape[-1:])
            total += (factored if len(shape) >= 2 else n) * param_bytes + 4  # + a float32 RMS
        else:
            raise ValueError(f"no state model for optimizer {optim!r}")
    if shapes and ("8bit" in optim and not optim.startswith("adamw_torch")):
        total += 2 * 256 * 4  # bitsandbytes' shared 8-bit quantization maps
    return total


def step_temporary_bytes(shapes, optim: str, param_bytes: int, device: str) -> int:
    """Scratch memory of one optimizer step, on top of states and gradients.

    torch's AdamW on CUDA runs the ``foreach`` path: ``_foreach_sqrt(exp_avg_sq)`` makes one
    temporary as large as all trainable parameters together (``torch/optim/adamw.py``,
    ``_multi_tensor_adam``). The fused kernel and the bitsandbytes/torchao optimizers update in
    place; on a CPU the per-tensor loop needs one temporary of the largest tensor.
    """
    optim = canonical(optim)
    if optim not in ("adamw_torch", "rmsprop", "adagrad") or not shapes:
        return 0
    sizes = [math.prod(s) * param_bytes for s in shapes]
    return sum(sizes) if device == "cuda" else max(sizes)
