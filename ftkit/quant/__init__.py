"""Quantization from scratch next to bitsandbytes, and what it does to a whole model.

Taught in lesson 10 (notebooks/10_quantization.ipynb). One module per idea:
``absmax`` symmetric int8 per tensor / per channel, ``zeropoint`` asymmetric int8,
``blockwise`` per-block scales, code books and double quantization, ``nf4`` the NF4 and FP4
code books, ``metrics`` MSE / max error / SNR, ``bnb`` the same through bitsandbytes,
``footprint`` model-level bytes, perplexity and speed, ``ggufinfo`` the default model's GGUF
file, ``qat`` fake quantization with a straight-through estimator, ``prune`` magnitude
pruning, ``mixed`` choosing which weights to quantize.
"""

from .absmax import absmax_dequantize, absmax_quantize
from .blockwise import (
    bits_per_param,
    blockwise_dequantize,
    blockwise_quantize,
    codebook_dequantize,
    codebook_quantize,
    double_quantize,
)
from .metrics import error_report, max_error, mse, snr_db
from .nf4 import fp4_code, fp4_roundtrip, nf4_code, nf4_roundtrip
from .zeropoint import zeropoint_dequantize, zeropoint_quantize

__all__ = [
    "absmax_quantize", "absmax_dequantize", "zeropoint_quantize", "zeropoint_dequantize",
    "blockwise_quantize", "blockwise_dequantize", "codebook_quantize", "codebook_dequantize",
    "double_quantize", "bits_per_param", "nf4_code", "fp4_code", "nf4_roundtrip",
    "fp4_roundtrip", "mse", "max_error", "snr_db", "error_report",
]
