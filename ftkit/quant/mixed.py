"""Mixed precision: choose which parts of a model to quantize, by simulating it.

Taught in lesson 10. Seed 004's "mixed-precision quantization" gives sensitive parameters
more bits. bitsandbytes already does it: embeddings, the output head and the norms stay in
16 bits while the Linear layers go to 4 or 8 bits. ``simulate_weight_quantization`` replaces
chosen weights by their quantize -> dequantize round trip in a float model, so the effect
of quantizing any subset can be measured without a special kernel.
"""

from __future__ import annotations

import torch


def simulate_weight_quantization(model, roundtrip, include) -> int:
    """Overwrite each 2-D weight whose parameter name satisfies ``include(name)`` with
    ``roundtrip(weight)``; returns how many tensors were changed. Tied weights once."""
    changed, seen = 0, set()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.dim() != 2 or not include(name) or parameter.data_ptr() in seen:
                continue
            seen.add(parameter.data_ptr())
            parameter.copy_(roundtrip(parameter))
            changed += 1
    return changed
