"""Blockwise quantization: one absmax scale per block of 64 values instead of per tensor.

Taught in lesson 10. A weight matrix is flattened and cut into blocks; each block is
scaled by its own absmax, so an outlier only coarsens its own 64 neighbours. The scaled
values in [-1, 1] are then rounded either to an integer grid (``blockwise_quantize``) or
to the nearest entry of a 16-value code book (``codebook_quantize``: NF4, FP4). The price
is one scale per block, which double quantization shrinks in turn (``bits_per_param``).
"""

from __future__ import annotations

import torch

from .absmax import qmax


def _blocks(x: torch.Tensor, blocksize: int):
    """The flattened tensor as (blocks, blocksize), zero-padded; the pad never raises an absmax."""
    flat = x.reshape(-1).float()
    pad = (-flat.numel()) % blocksize
    return torch.nn.functional.pad(flat, (0, pad)).view(-1, blocksize)


def blockwise_quantize(x: torch.Tensor, blocksize: int = 64, bits: int = 8):
    """``(codes, absmax)``: integer codes per element, one absmax per block."""
    blocks = _blocks(x, blocksize)
    absmax = blocks.abs().amax(dim=1).clamp(min=1e-12)
    codes = torch.round(blocks * (qmax(bits) / absmax[:, None])).to(torch.int8)
    return codes.reshape(-1)[: x.numel()], absmax


def blockwise_dequantize(codes, absmax, shape, blocksize: int = 64, bits: int = 8):
    values = _blocks(codes, blocksize) * (absmax[:, None] / qmax(bits))
    return values.reshape(-1)[: torch.Size(shape).numel()].view(shape)


def codebook_quantize(x: torch.Tensor, code: torch.Tensor, blocksize: int = 64):
    """``(indices, absmax)``: each value, scaled into [-1, 1] by its block's absmax, is
    replaced by the index of the nearest code-book entry (0..15 for a 4-bit code)."""
    blocks = _blocks(x, blocksize)
    absmax = blocks.abs().amax(dim=1)
    # x * (1 / absmax), not x / absmax: the same float rounding as bitsandbytes.
    scaled = (blocks * (1.0 / absmax.clamp(min=1e-38))[:, None]).clamp(-1, 1)
    # Nearest entry = the interval between midpoints of the sorted code the value falls in.
    order = torch.argsort(code)
    sorted_code = code[order]
    midpoints = (sorted_code[:-1] + sorted_code[1:]) / 2
    indices = order[torch.bucketize(scaled, midpoints)].to(torch.uint8)
    return indices.reshape(-1)[: x.numel()], absmax


def codebook_dequantize(indices, absmax, code, shape, blocksize: int = 64):
    values = _blocks(code[indices.long()], blocksize) * absmax[:, None]
    return values.reshape(-1)[: torch.Size(shape).numel()].view(shape)


def double_quantize(absmax: torch.Tensor, blocksize: int = 256):
    """Quantize the absmax scales themselves: subtract their mean, then 8-bit blockwise.

    bitsandbytes does the same with a non-linear 8-bit code; this linear version shows
    the idea and the byte count, not bitsandbytes' exact values.
    """
    offset = absmax.mean()
    codes, absmax2 = blockwise_quantize(absmax - offset, blocksize, bits=8)
    restored = blockwise_dequantize(codes, absmax2, absmax.shape, blocksize, bits=8) + offset
    return restored, codes, absmax2, offset


def bits_per_param(bits: int = 4, blocksize: int = 64, double_quant: bool = False,
                   blocksize2: int = 256, scale_bits: int = 32) -> float:
    """Storage per weight including its share of the scales.

    NF4, blocks of 64, fp32 scales: 4 + 32/64 = 4.5 bits. With double quantization each
    scale is 8 bits and every 256 scales share one fp32 scale: 4 + 8/64 + 32/(64·256)
    ≈ 4.127 bits.
    """
    if not double_quant:
        return bits + scale_bits / blocksize
    return bits + 8 / blocksize + scale_bits / (blocksize * blocksize2)
