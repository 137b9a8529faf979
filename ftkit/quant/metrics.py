"""How far a quantized tensor is from the original: MSE, max error, signal-to-noise ratio.

Taught in lesson 10 (notebooks/10_quantization.ipynb).
"""

from __future__ import annotations

import math


def mse(original, restored) -> float:
    """Mean squared error between a tensor and its quantize -> dequantize round trip."""
    return (original.float() - restored.float()).pow(2).mean().item()


def max_error(original, restored) -> float:
    """The largest absolute error of any single element."""
    return (original.float() - restored.float()).abs().max().item()


def snr_db(original, restored) -> float:
    """Signal-to-noise ratio in decibels: 10·log10(signal power / error power).

    Each extra bit of a uniform quantizer buys about 6 dB; infinity means exact.
    """
    noise = mse(original, restored)
    signal = original.float().pow(2).mean().item()
    return math.inf if noise == 0 else 10 * math.log10(signal / noise)


def error_report(original, restored) -> dict:
    """All three metrics in one dict (a row of the lesson's error table)."""
    return {
        "mse": mse(original, restored),
        "max_error": max_error(original, restored),
        "snr_db": snr_db(original, restored),
    }
