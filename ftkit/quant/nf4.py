"""The two 4-bit code books of bitsandbytes, derived: NF4 from normal quantiles, and FP4.

Taught in lesson 10. Neural-network weights are roughly normally distributed, so NF4
(QLoRA, Dettmers et al. 2023) places its 16 levels at quantiles of a standard normal:
each level is equally likely to be used. It is asymmetric — 8 positive levels, 7 negative
and an exact zero — and is normalised to [-1, 1] so a block's absmax maps to ±1.
FP4 is a tiny floating-point format: 1 sign bit, 2 exponent bits, 1 mantissa bit.
"""

from __future__ import annotations

import torch

from .blockwise import codebook_dequantize, codebook_quantize

# The quantile that becomes ±1: QLoRA's choice, (1 - 1/(2·15) + 1 - 1/(2·16)) / 2,
# which avoids the infinite quantile at probability 1.
NF4_OFFSET = 0.9677083


def nf4_code(offset: float = NF4_OFFSET) -> torch.Tensor:
    """The 16 NF4 levels, sorted, in [-1, 1].

    Computed as bitsandbytes' ``create_normal_map`` does (probabilities in float32,
    quantiles in float64, then float32), so the values agree bit for bit.
    """
    positive = torch.special.ndtri(torch.linspace(offset, 0.5, 9)[:-1].double())  # 8 levels
    negative = -torch.special.ndtri(torch.linspace(offset, 0.5, 8)[:-1].double())  # 7 levels
    zero = torch.zeros(1, dtype=torch.float64)
    values = torch.cat([positive, zero, negative]).float().sort().values
    return values / values.max()


def fp4_code() -> torch.Tensor:
    """bitsandbytes' FP4 levels in code order (index = the 4-bit pattern s·e1·e0·m).

    Magnitudes for the patterns 000..111 are 0, 0.0625 (the two subnormals), then
    2^(e+1)·(1 + m/2) in bitsandbytes' exponent order: 8, 12, 4, 6, 2, 3; normalised by the
    largest, 12, so the format spans [-1, 1]. The sign bit mirrors them.
    """
    magnitudes = torch.tensor([0.0, 0.0625, 8.0, 12.0, 4.0, 6.0, 2.0, 3.0]) / 12.0
    return torch.cat([magnitudes, -magnitudes])


def nf4_roundtrip(weight: torch.Tensor, blocksize: int = 64) -> torch.Tensor:
    """``weight`` after hand-made NF4 quantize -> dequantize (equals bitsandbytes' values)."""
    code = nf4_code()
    indices, absmax = codebook_quantize(weight, code, blocksize)
    return codebook_dequantize(indices, absmax, code, weight.shape, blocksize).to(weight.dtype)


def fp4_roundtrip(weight: torch.Tensor, blocksize: int = 64) -> torch.Tensor:
    """``weight`` after hand-made FP4 quantize -> dequantize (equals bitsandbytes' values)."""
    code = fp4_code()
    indices, absmax = codebook_quantize(weight, code, blocksize)
    return codebook_dequantize(indices, absmax, code, weight.shape, blocksize).to(weight.dtype)
