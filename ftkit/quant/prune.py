"""Magnitude pruning: set the smallest weights to zero, with ``torch.nn.utils.prune``.

Taught in lesson 10. Seed 004 counts pruning among the compressions next to quantization
("quantizing a weight to zero"). Unstructured zeros save memory only in a sparse format
and time only on hardware that skips them; the lesson measures what they cost in
perplexity.
"""

from __future__ import annotations

import torch
from torch.nn.utils import prune
from transformers.pytorch_utils import Conv1D

LINEAR = (torch.nn.Linear, Conv1D)  # GPT-2's layers are Conv1D: the same weight, stored (in, out)


def prune_linear_layers(model, amount: float, name_contains: str = "mlp") -> int:
    """L1-prune ``amount`` (a fraction) of each linear layer whose name contains ``name_contains``.

    The pruning is made permanent (``prune.remove``), so the model stays a plain model.
    Returns how many layers were pruned.
    """
    layers = [module for name, module in model.named_modules()
              if isinstance(module, LINEAR) and name_contains in name]
    for module in layers:
        prune.l1_unstructured(module, "weight", amount=amount)
        prune.remove(module, "weight")
    return len(layers)


def sparsity(module) -> float:
    """Fraction of exactly-zero entries among the weights of all linear layers in ``module``."""
    linears = [m for m in module.modules() if isinstance(m, LINEAR)]
    zeros = sum(int((m.weight == 0).sum()) for m in linears)
    return zeros / sum(m.weight.numel() for m in linears)
