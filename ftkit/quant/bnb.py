"""The same quantizers through bitsandbytes, the library QLoRA and ``load_in_4bit`` use.

Taught in lesson 10, next to the hand-written versions in ``absmax``, ``blockwise`` and
``nf4``, which it checks them against: bitsandbytes' NF4 with blocks of 64 gives exactly
the values of ``codebook_quantize(w, nf4_code(), 64)``, and its LLM.int8 row-wise codes are
exactly ``absmax_quantize(w, per_channel=True)``.
"""

from __future__ import annotations

import torch


def _functional():
    import bitsandbytes.functional as F  # imported late: it prints a CPU-kernel notice

    return F


def code_table(quant_type: str = "nf4") -> torch.Tensor:
    """bitsandbytes' own 16-entry table for ``nf4`` or ``fp4``."""
    return _functional().get_4bit_type(quant_type, device="cpu")


def quantize_4bit(weight: torch.Tensor, quant_type: str = "nf4", blocksize: int = 64,
                  double_quant: bool = False):
    """``(packed, quant_state)``: two 4-bit codes per byte, and the scales needed to undo it."""
    return _functional().quantize_4bit(
        weight.float().contiguous(), blocksize=blocksize, quant_type=quant_type,
        compress_statistics=double_quant,
    )


def dequantize_4bit(packed: torch.Tensor, quant_state) -> torch.Tensor:
    return _functional().dequantize_4bit(packed, quant_state)


def roundtrip_4bit(weight: torch.Tensor, quant_type: str = "nf4", blocksize: int = 64,
                   double_quant: bool = False) -> torch.Tensor:
    """``weight`` after bitsandbytes' 4-bit quantize -> dequantize."""
    packed, state = quantize_4bit(weight, quant_type, blocksize, double_quant)
    return dequantize_4bit(packed, state).reshape(weight.shape)


def quantize_int8(weight: torch.Tensor, threshold: float = 0.0):
    """LLM.int8's row-wise int8: ``(codes, row_absmax, outlier_columns)``.

    With ``threshold > 0`` the columns holding a value of magnitude ≥ threshold are the
    outlier columns, which LLM.int8 computes in 16 bits instead (their int8 codes are 0).
    """
    # The library zeroes outliers in its input while it works: give it a copy.
    return _functional().int8_vectorwise_quant(weight.float().clone(), threshold=threshold)


def roundtrip_int8(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` after bitsandbytes' row-wise int8 quantize -> dequantize (no outliers)."""
    codes, row_absmax, _ = quantize_int8(weight)
    return _functional().int8_vectorwise_dequant(codes, row_absmax)


def quant_state_bytes(quant_state) -> int:
    """Bytes of the scales a 4-bit weight carries: absmax per block, and with double
    quantization the 8-bit absmax plus its own fp32 scales and offset. The 16/256-entry
    code books are shared constants and not counted."""
    total = quant_state.absmax.numel() * quant_state.absmax.element_size()
    if quant_state.nested:
        nested = quant_state.state2
        total += nested.absmax.numel() * nested.absmax.element_size()
        total += quant_state.offset.numel() * quant_state.offset.element_size()
    return total
