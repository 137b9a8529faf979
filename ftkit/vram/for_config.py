"""The estimate of a run described by a :class:`ftkit.config.RunConfig` (what training records).

Taught in lesson 01 and used by training runs (the predicted bytes of their summary) and the
training panel. The config already holds the names the estimate speaks (:mod:`ftkit.config`'s
``Method`` and ``Optimizer``); this module only maps fields and reads a DeepSpeed file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import ConfigError
from .estimate import Estimate, estimate


def estimate_for_config(run_config, model=None, **overrides) -> Estimate:
    """The estimate of a :class:`ftkit.config.RunConfig` run (per GPU).

    ``model`` (a loaded model, preset, path or config) overrides ``model_name_or_path``.
    The device is the CPU when the run is on one (``use_cpu`` or no CUDA), so the total
    compares with the training run's measured bytes.
    """
    from ..config import PROMPT_METHODS, RunConfig

    cfg = run_config if isinstance(run_config, RunConfig) else RunConfig(**dict(run_config))
    source = model if model is not None else cfg.model_name_or_path
    if hasattr(source, "config") and hasattr(source, "parameters"):
        base = source.get_base_model() if hasattr(source, "get_base_model") else source
        source = base.config
    zero, offload = _deepspeed(cfg.deepspeed)
    gpus = max(int(os.environ.get("WORLD_SIZE", "1")), 1) if zero else 1
    if zero and gpus == 1 and not offload:
        zero = 0  # one process: DeepSpeed has nothing to partition
    settings = dict(
        batch_size=cfg.per_device_train_batch_size, seq_len=cfg.max_seq_length,
        gradient_checkpointing=cfg.gradient_checkpointing,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps, optim=cfg.optim,
        lora_rank=cfg.lora_rank, lora_targets=cfg.lora_target,
        bits=cfg.quantization_bit if cfg.method == "qlora" else None,
        num_virtual_tokens=cfg.num_virtual_tokens,
        dtype="bfloat16" if cfg.bf16 else "float16" if cfg.fp16 else "float32",
        freeze_trainable_layers=cfg.freeze_trainable_layers, lora_dropout=cfg.lora_dropout,
        double_quant=getattr(cfg, "double_quant", True),
        # the run pads instead for prompt methods (ftkit.train.collate.packing_allowed)
        packing=cfg.packing and cfg.method not in PROMPT_METHODS,
        zero=zero, offload=offload, gpus=gpus,
        device="cpu" if cfg.use_cpu or not _cuda() else "cuda",
    )
    settings.update(overrides)
    return estimate(source, cfg.method, **settings)


predicted_bytes_for_config = estimate_for_config


def _deepspeed(value) -> tuple[int, bool]:
    """(ZeRO stage, offload) from a DeepSpeed config path or dict (seed 001's ds_zero_*.json)."""
    if not value:
        return 0, False
    if not isinstance(value, dict):
        path = Path(value)
        if not path.is_file():
            raise ConfigError(f"deepspeed config {value} not found")
        value = json.loads(path.read_text())
    zero = value.get("zero_optimization", {}) or {}
    stage = int(zero.get("stage", 0))
    offload = any(str((zero.get(key) or {}).get("device", "none")).lower() not in ("none", "")
                  for key in ("offload_optimizer", "offload_param"))
    return stage, offload


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
