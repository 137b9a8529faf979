"""The memory model (``estimate``) and the memory meter (``measure``) of a fine-tuning run.

Taught in lesson 01 (``notebooks/01_vram_calculator.ipynb``). ``estimate`` predicts the bytes
of every component from a config.json and the training settings, and the peak over the phases
of one step; ``measure`` reads the same components back from one real step, so each prediction
can be checked.
"""

from ..units import CARDS_GB, GIB
from .estimate import CUDA_CONTEXT_BYTES, METRICS, Estimate, estimate
from .for_config import estimate_for_config, predicted_bytes_for_config
from .measure import ActivationMeter, Measurement, grad_bytes, measure, optimizer_bytes, param_bytes
from .optimizers import OPTIMIZERS
from .params import (
    Architecture,
    Experts,
    architecture,
    count_model_parameters,
    load_model_config,
    lora_modules,
)
from .presets import preset_names
from .settings import ALL_METHODS as METHODS, VramSettings
from .tensors import ParamTensor

__all__ = [
    "CARDS_GB", "GIB", "CUDA_CONTEXT_BYTES", "METRICS", "Estimate", "estimate",
    "estimate_for_config", "predicted_bytes_for_config", "ActivationMeter", "Measurement",
    "grad_bytes", "measure", "optimizer_bytes", "param_bytes", "OPTIMIZERS", "Architecture",
    "Experts", "architecture", "count_model_parameters", "load_model_config", "lora_modules",
    "preset_names", "METHODS", "VramSettings", "ParamTensor",
]
