"""DeepSpeed ZeRO configs: read, check against this machine, and get the processes ready.

Taught in lesson 09 (``notebooks/09_multitask_and_scale.ipynb``); commands in
``docs/scale_out.md``. ``deepspeed:`` in a run config is a path (seed 001's ``ds_zero_3.json``,
LLaMA-Factory's ``ds_z3_config.json``) or an inline mapping. It goes to
``TrainingArguments(deepspeed=...)`` as a checked dict: Trainer fills its ``"auto"`` values
from the same arguments (batch sizes, accumulation, learning rate, betas, clipping, bf16/fp16),
so they always agree with the run config. What Trainer would only find out deep inside
DeepSpeed (a stage that does not exist, fp16 on a CPU, NVMe offload without a folder) stops
here with the file and the key.

On a CPU (DeepSpeed's CPU accelerator, gloo) Trainer sets up torch.distributed itself but not
DeepSpeed's own communication layer, which ZeRO-3's ``zero.Init`` asks for while the model
loads: :func:`init_cpu_processes` starts both before the model is loaded.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ConfigError, FtkitError

PIN = "deepspeed==0.19.8"
INSTALL = ("pip install setuptools wheel && pip install --no-build-isolation "
           f"{PIN} (after torch; or `pip install -e '.[scale]' --no-build-isolation`, "
           "or `make setup`, which installs it)")
STAGES = (0, 1, 2, 3)


def require() -> None:
    """Import DeepSpeed or say how to install it."""
    try:
        import deepspeed  # noqa: F401
    except ImportError:
        raise FtkitError(f"deepspeed is set, but the deepspeed package is not installed here. "
                         f"Install it with: {INSTALL}. It runs on CPU processes (gloo) as well "
                         "as on GPUs.") from None


def load(value) -> tuple[dict, str]:
    """``(config dict, where it came from)`` from a path or an inline mapping."""
    if isinstance(value, dict):
        return json.loads(json.dumps(value)), "deepspeed (inline mapping)"
    path = Path(value)
    if not path.is_file():
        raise ConfigError(f"deepspeed: {value}: no such file (a DeepSpeed JSON config, e.g. "
                          "configs/ds_zero_3.json, or an inline mapping under deepspeed:)")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}:{error.lineno}:{error.colno}: not valid JSON ({error.msg}); "
                          "a DeepSpeed config is a JSON object") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a DeepSpeed config is a JSON object, got {type(data).__name__}")
    return data, str(path)


def check(data: dict, source: str, *, cuda: bool) -> None:
    """Refuse what DeepSpeed or this machine cannot do, naming ``source`` and the key."""
    zero = data.get("zero_optimization") or {}
    if not isinstance(zero, dict):
        raise ConfigError(f"{source}: zero_optimization must be a mapping, got {zero!r}")
    stage = zero.get("stage", 0)
    if stage not in STAGES:
        raise ConfigError(f"{source}: zero_optimization.stage must be 0, 1, 2 or 3, got {stage!r}")
    fp16 = (data.get("fp16") or {}).get("enabled", False)
    if fp16 is True and not cuda:
        raise ConfigError(f"{source}: fp16.enabled is true, but ftkit runs fp16 with "
                          "loss scaling on CUDA GPUs only. On CPU processes set it to \"auto\" or false, and "
                          "use bf16 (bf16.enabled: \"auto\" with bf16: true in the run config).")
    for key in ("offload_optimizer", "offload_param"):
        offload = zero.get(key) or {}
        if str(offload.get("device", "none")).lower() == "nvme" and not offload.get("nvme_path"):
            raise ConfigError(f"{source}: zero_optimization.{key}.device is nvme but "
                              f"zero_optimization.{key}.nvme_path is not set: name a folder on a "
                              "fast local disk, or use device: cpu")
        if key == "offload_param" and offload.get("device", "none") != "none" and stage != 3:
            raise ConfigError(f"{source}: zero_optimization.offload_param needs stage 3 (only ZeRO-3 "
                              f"partitions the weights), got stage {stage}")


def resolve(value, *, cuda: bool) -> dict:
    """The checked DeepSpeed config as a dict, ready for ``TrainingArguments(deepspeed=...)``."""
    data, source = load(value)
    check(data, source, cuda=cuda)
    optimizer = data.get("optimizer") or {}
    offload = (data.get("zero_optimization") or {}).get("offload_optimizer") or {}
    if (not cuda and str(optimizer.get("type", "")).lower() in ("adam", "adamw")
            and str(offload.get("device", "none")).lower() == "none"):
        # DeepSpeed's FusedAdam is a C++ extension it compiles on first use: minutes on two
        # cores. torch's AdamW does the same update on CPU processes at once.
        optimizer.setdefault("params", {}).setdefault("torch_adam", True)
    return data


def stage(value) -> int:
    """The ZeRO stage a config (path or mapping) asks for (0 when none)."""
    data, _ = load(value)
    return int((data.get("zero_optimization") or {}).get("stage", 0))


def init_cpu_processes() -> None:
    """Start torch.distributed (gloo) and DeepSpeed's layer on top of it, once.

    Called before the model loads: under ZeRO-3, ``from_pretrained`` partitions each weight
    as it is created (``zero.Init``) and needs to know how many processes share it.
    """
    import deepspeed
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="gloo")
    deepspeed.init_distributed(dist_backend="gloo")


def resolved_config(trainer) -> dict:
    """The DeepSpeed config a Trainer actually ran with, ``"auto"`` values filled in."""
    plugin = trainer.accelerator.state.deepspeed_plugin
    return plugin.hf_ds_config.config if plugin is not None else {}


def local_bytes(engine) -> dict:
    """Bytes this process holds of parameters, gradients and optimizer state under ZeRO.

    Read from DeepSpeed's own buffers after a backward pass: ZeRO-3's parameter shards
    (``ds_tensor``), the gradient partitions (``averaged_gradients`` for stages 1-2,
    ``grad_partitions_flat_buffer`` for 3), the float32 master partition and the optimizer's
    moments. ``gradients`` is the larger of the partitions and of the full gradients a stage-1
    process holds before its reduce (see :func:`watch_full_gradients`).
    """
    def size(tensor):
        return tensor.numel() * tensor.element_size()

    params = list(engine.module.parameters())
    optimizer = engine.optimizer
    result = {"params": sum(size(p.ds_tensor) if hasattr(p, "ds_tensor") else size(p) for p in params)}
    partitions = 0
    if getattr(optimizer, "grad_partitions_flat_buffer", None) is not None:
        partitions = size(optimizer.grad_partitions_flat_buffer)
    else:
        for group in (getattr(optimizer, "averaged_gradients", None) or {}).values():
            partitions += sum(size(g) for g in group or () if g is not None)
    result["gradients"] = max(partitions, getattr(engine, "_ftkit_full_gradients", 0))
    master = (getattr(optimizer, "single_partition_of_fp32_groups", None)
              or getattr(optimizer, "fp32_partitioned_groups_flat", None) or [])
    moments = sum(size(v) for state in optimizer.optimizer.state.values() for v in state.values()
                  if hasattr(v, "dim") and v.dim() > 0)
    result["master_weights"] = sum(size(t) for t in master)
    result["moments"] = moments
    result["optimizer"] = result["master_weights"] + moments
    return result


def watch_full_gradients(engine) -> None:
    """Record the full gradients a process holds when DeepSpeed starts reducing them (ZeRO-1
    keeps each one whole until the end of backward; ZeRO-2/3 partition them on the way)."""
    optimizer = engine.optimizer
    reduce = getattr(optimizer, "reduce_gradients", None)
    if reduce is None:  # ZeRO-0 (bf16 optimizer): nothing is partitioned
        return

    def recording(*args, **kwargs):
        held = sum(p.grad.numel() * p.grad.element_size()
                   for p in engine.module.parameters() if p.grad is not None)
        engine._ftkit_full_gradients = max(getattr(engine, "_ftkit_full_gradients", 0), held)
        return reduce(*args, **kwargs)

    optimizer.reduce_gradients = recording


class zero3_init_paused:
    """While a Trainer runs ZeRO-3, transformers builds every new model through
    ``deepspeed.zero.Init`` (partitioned, initialised through gathers). Inside this block it
    builds them as usual, e.g. a meta-device model only to count its parameters."""

    def __enter__(self):
        from transformers.integrations import deepspeed as hf

        self._saved = hf._hf_deepspeed_config_weak_ref
        hf._hf_deepspeed_config_weak_ref = None
        return self

    def __exit__(self, *exc):
        from transformers.integrations import deepspeed as hf

        hf._hf_deepspeed_config_weak_ref = self._saved
        return False
