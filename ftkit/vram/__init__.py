"""The memory model (``estimate``) and the memory meter (``measure``) of a fine-tuning run.

Taught in lesson 01 (``notebooks/01_vram_calculator.ipynb``). ``estimate`` predicts the bytes
of every component from a config.json and the training settings; ``measure`` reads the same
components back from one real step, so each prediction can be checked.
"""

from .estimate import GIB, METHODS, OPTIMIZERS, Estimate, estimate, estimate_for_config
from .measure import ActivationMeter, Measurement, grad_bytes, measure, optimizer_bytes, param_bytes
from .params import Architecture, ParamTensor, architecture, count_parameters, load_config
from .presets import preset_names

__all__ = [
    "GIB", "METHODS", "OPTIMIZERS", "Estimate", "estimate", "estimate_for_config",
    "ActivationMeter", "Measurement", "grad_bytes", "measure", "optimizer_bytes", "param_bytes",
    "Architecture", "ParamTensor", "architecture", "count_parameters", "load_config", "preset_names",
]
