"""What this machine is and what runs on it: the versions cell every lesson opens with."""

from __future__ import annotations

import os
import platform
from importlib import metadata

PACKAGES = ["torch", "transformers", "peft", "trl", "bitsandbytes", "datasets",
            "accelerate", "ipywidgets"]


def versions(packages=PACKAGES) -> dict[str, str]:
    """Installed versions of the stack (``"missing"`` where a package is absent)."""
    found = {"python": platform.python_version()}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "missing"
    return found


def hardware() -> dict:
    """CPU cores, RAM, GPU (name and memory) and the bf16 support a lesson picks dtypes by."""
    import torch

    info = {"cpu_cores": os.cpu_count(), "ram_gib": None, "gpu": None, "gpu_memory_gib": None,
            "bf16": False}
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        info["ram_gib"] = round(pages * page_size / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    bf16=torch.cuda.is_bf16_supported())
    else:
        info["bf16"] = True  # torch runs bf16 on any x86/ARM CPU (fast where AVX512-BF16/AMX exist)
    return info


def report() -> None:
    """Print versions and hardware, one per line (the first code cell of every lesson)."""
    for name, version in versions().items():
        print(f"{name:>14}: {version}")
    for key, value in hardware().items():
        print(f"{key:>14}: {value}")
