"""Quantization-aware training (QAT): train through the rounding so the weights learn to survive it.

Taught in lesson 10. The forward pass uses fake-quantized weights (quantize, then dequantize
at once); rounding has a zero gradient almost everywhere, so the backward pass pretends it
was the identity — the straight-through estimator (STE). The optimizer then moves the
float weights to where their rounded versions do well. PyTorch's
``torch.fake_quantize_per_channel_affine`` does exactly this; ``fake_quantize_ste`` is the
same written out, for the lesson to compare.
"""

from __future__ import annotations

import torch

from .absmax import qmax


def _per_channel_scale(weight: torch.Tensor, bits: int) -> torch.Tensor:
    # Scales follow the weights but get no gradient (detach): only the weights learn.
    return (weight.detach().abs().amax(dim=1) / qmax(bits)).clamp(min=1e-8)


def fake_quantize_ste(weight: torch.Tensor, bits: int = 4) -> torch.Tensor:
    """Per-row absmax fake quantization by hand: rounded values forward, identity backward."""
    scale = _per_channel_scale(weight, bits)[:, None]
    rounded = torch.clamp(torch.round(weight * (1.0 / scale)), -qmax(bits), qmax(bits)) * scale
    return weight + (rounded - weight).detach()  # value of `rounded`, gradient of `weight`


def fake_quantize(weight: torch.Tensor, bits: int = 4) -> torch.Tensor:
    """The same through PyTorch's fake-quant op (symmetric: zero point 0)."""
    scale = _per_channel_scale(weight, bits)
    zero_point = torch.zeros(weight.shape[0], dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(weight, scale, zero_point, 0, -qmax(bits), qmax(bits))


class QATLinear(torch.nn.Linear):
    """A Linear layer that computes with its weights fake-quantized to ``bits``."""

    def __init__(self, in_features: int, out_features: int, bits: int = 4, bias: bool = True):
        super().__init__(in_features, out_features, bias=bias)
        self.bits = bits

    def forward(self, x):
        return torch.nn.functional.linear(x, fake_quantize(self.weight, self.bits), self.bias)
