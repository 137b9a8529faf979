"""Out of memory: say what the calculator predicted and which changes would fit.

Taught in lesson 01 (the calculator) and 03 (the knobs that trade memory for time). A run
that dies with a CUDA out-of-memory error or the host's ``MemoryError`` becomes an
:class:`OutOfMemory` error that lists, for these settings and for each usual remedy, the
memory ``ftkit.vram`` predicts, and marks the ones that fit the memory this machine has.
"""

from __future__ import annotations

from ..errors import FtkitError
from ..methods import as_config
from ..vram import GIB, estimate_for_config


class OutOfMemory(FtkitError):
    """Training needed more memory than the device has; the message says what would fit."""


def is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, MemoryError):
        return True
    import torch

    if isinstance(error, torch.OutOfMemoryError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text)


def available_bytes(cfg) -> tuple[int | None, str]:
    """The memory training may use: the GPU's total, or the host's available RAM."""
    import torch

    if torch.cuda.is_available() and not cfg.use_cpu:
        return torch.cuda.get_device_properties(0).total_memory, "GPU memory"
    try:
        with open("/proc/meminfo") as handle:
            info = dict(line.split(":", 1) for line in handle)
        return int(info["MemAvailable"].split()[0]) * 1024, "available host RAM"
    except (OSError, KeyError, ValueError):
        return None, "host RAM"


def remedies(cfg) -> list[tuple[str, dict]]:
    """The usual changes, each as ``(description, config fields)``, gentlest first."""
    batch, accumulation = cfg.per_device_train_batch_size, cfg.gradient_accumulation_steps
    options = []
    if batch > 1:
        half = max(1, batch // 2)
        options.append((f"per_device_train_batch_size={half} with gradient_accumulation_steps="
                        f"{accumulation * batch // half} (same effective batch)",
                        {"per_device_train_batch_size": half,
                         "gradient_accumulation_steps": accumulation * batch // half}))
    if not cfg.gradient_checkpointing:
        options.append(("gradient_checkpointing=true (recompute activations, ~30% slower)",
                        {"gradient_checkpointing": True}))
    if cfg.max_seq_length > 128:
        options.append((f"max_seq_length={cfg.max_seq_length // 2}",
                        {"max_seq_length": cfg.max_seq_length // 2,
                         "max_input_length": None, "max_output_length": None}))
    if cfg.method in ("full", "freeze", "lora"):
        options.append(("method=qlora with quantization_bit=4 (4-bit frozen base)",
                        {"method": "qlora", "quantization_bit": 4}))
    if batch > 1 and not cfg.gradient_checkpointing:
        options.append(("per_device_train_batch_size=1 and gradient_checkpointing=true",
                        {"per_device_train_batch_size": 1, "gradient_checkpointing": True,
                         "gradient_accumulation_steps": accumulation * batch}))
    return options


def _predict(cfg, model=None) -> int | None:
    try:
        return int(estimate_for_config(cfg, model=model).total_bytes)
    except Exception:  # the advice must never hide the original error
        return None


def out_of_memory_error(cfg, error: BaseException, model=None) -> OutOfMemory:
    """An :class:`OutOfMemory` whose message names the prediction and the changes that fit."""
    have, where = available_bytes(cfg)
    predicted = _predict(cfg, model)
    lines = [f"out of memory while training ({type(error).__name__}: {str(error)[:160]})."]
    if predicted is not None:
        lines.append(f"ftkit's calculator predicts {predicted / GIB:.2f} GiB for these settings"
                     + (f"; this machine has {have / GIB:.2f} GiB of {where}." if have else "."))
    lines.append("Changes that lower the need (predicted total; * = fits):")
    for text, fields in remedies(cfg):
        try:
            need = _predict(as_config(cfg, **fields))
        except FtkitError:
            continue
        fits = "*" if need is not None and have is not None and need <= have else " "
        size = f"{need / GIB:.2f} GiB" if need is not None else "unknown"
        lines.append(f"  {fits} {text}: {size}")
    lines.append("Set them in the config or with `ftkit train CONFIG --set key=value`.")
    return OutOfMemory("\n".join(lines))
