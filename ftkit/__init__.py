"""ftkit: the helper package of an executable course on fine-tuning LLMs.

Modules, one concept each (the lesson that teaches it in brackets):
``config`` run configs and the seeds' dialects (00), ``models`` loading and the embedded
default model (00), ``vram`` memory estimate and measurement (01), ``data`` formats,
templates and masks (02), ``methods`` full / freeze / LoRA / QLoRA / prompt methods
(03-07), ``train`` runs (03-09), ``infer`` chat and perplexity (04), ``quant``
quantization (10), ``widgets`` and ``groups`` parameter panels (11), ``cli`` the command.

Importing ftkit is cheap: heavy libraries (torch, transformers) load on first use.
"""

import logging as _logging
import warnings as _warnings

__version__ = "0.1.0"

# Two messages that every lesson would otherwise print and no learner can act on: peft calls a
# transformers method that transformers has renamed, and bitsandbytes looks for an optional
# faster CPU kernel package on CPUs with AVX512-BF16 (its fallback kernel works the same).
_warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.* is deprecated",
                         category=FutureWarning)
_logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(_logging.ERROR)
