"""Symmetric (absmax) integer quantization, per tensor or per output channel.

Taught in lesson 10. The largest magnitude maps to the largest integer (127 for int8), zero
maps to zero: ``q = round(x · 127 / absmax)``, ``x ≈ q · absmax / 127``. One scale for the
whole tensor is spoiled by a single outlier; one scale per row (output channel) confines
the damage to that row. This per-row int8 is what LLM.int8 stores for each weight matrix
(``bitsandbytes.functional.int8_vectorwise_quant``).
"""

from __future__ import annotations

import torch


def qmax(bits: int) -> int:
    """The largest symmetric integer level: 127 for 8 bits, 7 for 4 bits."""
    return 2 ** (bits - 1) - 1


def absmax_quantize(x: torch.Tensor, bits: int = 8, per_channel: bool = False):
    """``(codes, absmax)``: integer codes in [-qmax, qmax] and the scale(s) that map them back.

    ``per_channel=True`` keeps one absmax per row of a 2-D weight (an output channel).
    """
    x = x.float()
    if per_channel:
        absmax = x.abs().amax(dim=1, keepdim=True)
    else:
        absmax = x.abs().max().reshape(1, *[1] * (x.dim() - 1))
    absmax = absmax.clamp(min=1e-12)  # an all-zero row would divide by zero
    # Multiply by (levels / absmax) as bitsandbytes does, so the codes match it exactly.
    codes = torch.round(x * (qmax(bits) / absmax)).to(torch.int8)
    return codes, absmax.squeeze()


def absmax_dequantize(codes: torch.Tensor, absmax: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """Floats back from the codes: ``codes · absmax / qmax``."""
    scale = absmax.reshape(-1, *[1] * (codes.dim() - 1)) if absmax.dim() else absmax
    # Times 1/qmax rather than divided by qmax: bitsandbytes' order, so values match exactly.
    return codes.float() * scale * (1.0 / qmax(bits))
