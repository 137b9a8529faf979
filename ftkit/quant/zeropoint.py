"""Asymmetric (zero-point) integer quantization: the range [min, max] onto [0, 2^bits - 1].

Taught in lesson 10. Absmax wastes half the levels when values are all positive (after a
ReLU, say); a zero point shifts the grid so that min maps to 0 and max to 255. GGUF's
Q4_1, the format the default model ships in, is this idea per block of 32 with 4 bits.
"""

from __future__ import annotations

import torch


def zeropoint_quantize(x: torch.Tensor, bits: int = 8, per_channel: bool = False):
    """``(codes, scale, zero_point)`` with ``x ≈ (codes - zero_point) · scale``."""
    x = x.float()
    levels = 2**bits - 1
    if per_channel:
        low, high = x.amin(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)
    else:
        low, high = x.min(), x.max()
    scale = ((high - low) / levels).clamp(min=1e-12)
    zero_point = torch.round(-low / scale)
    codes = torch.clamp(torch.round(x / scale) + zero_point, 0, levels).to(torch.uint8)
    return codes, scale, zero_point


def zeropoint_dequantize(codes: torch.Tensor, scale, zero_point) -> torch.Tensor:
    return (codes.float() - zero_point) * scale
