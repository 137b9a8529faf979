"""The floating-point format of weights and compute, chosen from the hardware.

Taught in lesson 03 (fp32, bf16, fp16, TF32). One rule for the whole kit: on a GPU with
bfloat16 (Ampere and newer) weights load in bfloat16 and training autocasts to it; on an older
GPU, float16 with loss scaling (float16's narrow range would underflow small gradients without
it); on a CPU, float32 (the lessons' reference numbers). ``ftkit.models.load_model`` uses it
for ``dtype="auto"``, and ``ftkit train`` for a config that sets neither ``bf16`` nor ``fp16``.
The hardware is passed in, so the rule is tested on a CPU for every kind of machine.

:func:`fast_bf16` answers a narrower question for the lessons: is bf16 autocast the *faster*
way to train here? On a CPU with bf16 in hardware (AVX-512 BF16 or AMX) it is, by about 1.4x
for LoRA on the default model (benchmarks/RESULTS.md, "Lesson runtimes"), so the lessons'
long runs, whose outcome rather than their number format is the point, train with it there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CPU_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}  # Linux /proc/cpuinfo names of bf16 in hardware


@dataclass(frozen=True)
class Hardware:
    """What the choice depends on: a CUDA GPU, and whether it computes in bfloat16."""

    cuda: bool = False
    bf16: bool = False
    name: str = "CPU"
    cpu_bf16: bool = False  # the CPU multiplies bf16 in hardware (AVX-512 BF16 or AMX)

    @classmethod
    def detect(cls) -> "Hardware":
        import torch

        if not torch.cuda.is_available():
            return cls(cpu_bf16=bool(CPU_BF16_FLAGS & cpu_flags()))
        return cls(cuda=True, bf16=torch.cuda.is_bf16_supported(), name=torch.cuda.get_device_name())


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's feature flags; empty where the file does not exist (macOS, Windows)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    return {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split(":", 1)[1].split()}


@dataclass(frozen=True)
class Precision:
    """``weights``: the dtype to load a model in; ``bf16`` / ``fp16``: Trainer's autocast flags."""

    weights: str
    bf16: bool
    fp16: bool
    why: str


def choose(hardware: Hardware | None = None) -> Precision:
    """The precision of ``hardware`` (default: this machine's)."""
    hw = hardware or Hardware.detect()
    if hw.cuda and hw.bf16:
        return Precision("bfloat16", True, False,
                         f"{hw.name} computes in bfloat16: half the bytes of float32, the same range")
    if hw.cuda:
        return Precision("float16", False, True,
                         f"{hw.name} has no bfloat16: float16 with loss scaling")
    return Precision("float32", False, False, "a CPU: float32")


def fast_bf16(hardware: Hardware | None = None) -> bool:
    """Whether bf16 autocast trains faster than float32 on ``hardware``: a GPU that has bf16, or a
    CPU with bf16 in hardware. Without it a CPU emulates bf16 and float32 is faster."""
    hw = hardware or Hardware.detect()
    return hw.bf16 if hw.cuda else hw.cpu_bf16


def for_training(config, sources: dict[str, str], hardware: Hardware | None = None):
    """``config`` with ``bf16`` / ``fp16`` chosen for ``hardware`` when both are ftkit's defaults
    (``sources`` as :func:`ftkit.dialects.read_config` reports them). A value from the file,
    from ``--set`` or from the other tool's own defaults is what that tool means: kept."""
    if any(sources.get(key, "ftkit default") != "ftkit default" for key in ("bf16", "fp16")):
        return config
    precision = choose(hardware)
    if (config.bf16, config.fp16) == (precision.bf16, precision.fp16):
        return config
    return config.model_copy(update={"bf16": precision.bf16, "fp16": precision.fp16})
