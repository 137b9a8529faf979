"""FSDP: Trainer's ``fsdp`` for GPUs, and torch's FSDP2 ``fully_shard`` on CPU processes.

Taught in lesson 09 (``notebooks/09_multitask_and_scale.ipynb``). Measured on this CPU machine
(transformers 5.23, accelerate 1.15, torch 2.13): ``Trainer`` with ``fsdp`` and ``use_cpu``
does not shard (FSDP2 falls back to plain DDP without a word, FSDP1 refuses with "no available
devices"), so a run config's ``fsdp:`` passes through to Trainer on GPUs and is refused on a
CPU. torch's own ``fully_shard`` on a ``cpu`` device mesh (gloo) does shard:
:func:`shard` wraps each decoder layer and then the whole model, as FSDP2's documentation
does, and :func:`local_bytes` reads what one process holds.
"""

from __future__ import annotations

from ..errors import ConfigError, FtkitError

OPTIONS = ("full_shard", "shard_grad_op", "no_shard", "hybrid_shard", "hybrid_shard_zero2",
           "offload", "auto_wrap")  # transformers.trainer_utils.FSDPOption


def check(cfg) -> None:
    """Refuse an ``fsdp`` that Trainer would silently run as something else."""
    if not cfg.fsdp:
        return
    import torch

    if isinstance(cfg.fsdp, str):
        unknown = [word for word in cfg.fsdp.split() if word not in OPTIONS]
        if unknown:
            raise ConfigError(f"fsdp: unknown option {' '.join(unknown)!r}; the options are "
                              f"{', '.join(OPTIONS)} (or fsdp: true with an fsdp_config)")
    if cfg.deepspeed:
        raise ConfigError("fsdp and deepspeed are both set: choose one way to shard")
    if cfg.use_cpu or not torch.cuda.is_available():
        raise FtkitError(
            "fsdp: Trainer's FSDP shards only on GPUs; on CPU processes it would run as plain DDP "
            "(every process holding everything). To shard across CPU processes use DeepSpeed "
            "(deepspeed: configs/ds_zero_3.json), or torch's fully_shard as lesson 09 shows "
            "(ftkit.train.fsdp.shard).")


def shard(model, mesh=None, *, layers=None):
    """Shard ``model`` in place with FSDP2: each decoder layer, then the rest.

    ``mesh`` defaults to every process of the default group on this device type
    (``cpu`` without a GPU). Returns the model, now holding DTensor shards.
    """
    import torch
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    if mesh is None:
        import torch.distributed as dist

        device = "cuda" if torch.cuda.is_available() else "cpu"
        mesh = init_device_mesh(device, (dist.get_world_size(),))
    for layer in layers if layers is not None else decoder_layers(model):
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def decoder_layers(model):
    """The repeated blocks of a causal LM (``model.model.layers`` for Llama-style models)."""
    inner = getattr(model, "model", model)
    layers = getattr(inner, "layers", None)
    if layers is None:
        raise FtkitError(f"{type(model).__name__}: no .model.layers to shard one by one; "
                         "pass layers=[...] to ftkit.train.fsdp.shard")
    return list(layers)


def local_bytes(model, optimizer=None) -> dict:
    """Bytes this process holds of parameters, gradients and optimizer state (its shards)."""
    def local(tensor):
        return tensor.to_local() if hasattr(tensor, "to_local") else tensor

    params = [p for p in model.parameters()]
    result = {"params": sum(local(p).numel() * local(p).element_size() for p in params),
              "gradients": sum(local(p.grad).numel() * local(p.grad).element_size()
                               for p in params if p.grad is not None),
              "optimizer": 0}
    if optimizer is not None:
        for state in optimizer.state.values():
            for value in state.values():
                if hasattr(value, "numel") and value.dim() > 0:  # skip the scalar step count
                    value = local(value)
                    result["optimizer"] += value.numel() * value.element_size()
    return result
