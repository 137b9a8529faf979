"""The settings of one memory estimate, validated once (pydantic), in the config's vocabulary.

Taught in lesson 01. Method and optimizer names are :mod:`ftkit.config`'s (plus ``inference``
and ``sgd_momentum``, which only the calculator knows). Every mistake becomes a
:class:`~ftkit.errors.ConfigError` that names the setting and what is allowed, so ``ftkit vram``
exits with status 2.

Kernel settings people turn on, each a field here and a flag of ``ftkit vram``:

* ``attn``: ``sdpa`` / ``flash_attention_2`` keep no ``seq x seq`` scores, ``eager`` does;
* ``loss``: ``eager`` (transformers' float32 log-softmax over the whole vocabulary),
  ``chunked`` (torchtune's ``CEWithChunkedOutputLoss``: the logits in chunks, upcast one chunk
  at a time), ``fused_linear`` (Liger's fused linear cross-entropy: no logits kept at all);
* ``compile``: ``torch.compile`` recomputes pointwise results in backward instead of saving them;
* ``optimizer_in_backward``: each parameter steps as soon as its gradient exists (torchtune);
* ``activation_offload``: checkpointed layer inputs wait in CPU memory (needs checkpointing);
* ``paged_*`` / 8-bit optimizers: see :mod:`ftkit.vram.optimizers`.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..config import METHODS, PROMPT_METHODS
from ..errors import ConfigError
from .optimizers import OPTIMIZERS, canonical

ALL_METHODS = METHODS + ("inference",)
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
DTYPE_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "float": "float32",
                 "half": "float16"}
Attention = Literal["sdpa", "eager", "flash_attention_2"]
Loss = Literal["eager", "chunked", "fused_linear"]
Device = Literal["cuda", "cpu"]


class VramSettings(BaseModel):
    """Everything an estimate depends on besides the model."""

    model_config = ConfigDict(extra="forbid")

    method: str = "lora"
    batch_size: int = Field(1, ge=1)
    seq_len: int = Field(512, ge=1)
    gradient_checkpointing: bool = False
    gradient_accumulation_steps: int = Field(1, ge=1)
    optim: str = "adamw_torch"
    lora_rank: int = Field(8, ge=1)
    lora_targets: str | list[str] = "all-linear"
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    modules_to_save: str | list[str] = ""
    bits: int | None = None
    double_quant: bool = True
    # Fused 3-D expert weights (transformers 5 MoE) are not nn.Linear: stock loading leaves them
    # 16-bit. bitsandbytes 0.50's nn.parametrize.replace_parameter_4bit quantizes them (4-bit only).
    quantize_experts: bool = True
    # qlora: peft's prepare_model_for_kbit_training casts every unquantized weight (embeddings,
    # norms, head) to float32, and so the hidden states too; litgpt and torchtune keep them 16-bit.
    kbit_upcast: bool = True
    # bitsandbytes' MatMul4Bit saved each 4-bit layer's input for backward in older releases
    # (ctx.tensors = (A, B), as in 0.41 that litgpt's tables used); 0.50 keeps only the weight.
    kbit_saves_inputs: bool = False
    num_virtual_tokens: int = Field(20, ge=0)
    freeze_trainable_layers: int = Field(2, ge=0)
    dtype: str = "bfloat16"
    pure_bf16: bool = False
    attn: Attention = "sdpa"
    loss: Loss = "eager"
    compile: bool = False
    optimizer_in_backward: bool = False
    activation_offload: bool = False
    packing: bool = False
    gpus: int = Field(1, ge=1)
    zero: Literal[0, 1, 2, 3] = 0
    offload: bool = False
    device: Device = "cuda"

    @model_validator(mode="before")
    @classmethod
    def _names(cls, values):
        if isinstance(values, dict):
            values = dict(values)
            if "method" in values:
                values["method"] = str(values["method"]).lower()
            if "optim" in values:
                values["optim"] = canonical(values["optim"])
            if "dtype" in values:
                name = str(values["dtype"]).lower().replace("torch.", "")
                values["dtype"] = DTYPE_ALIASES.get(name, name)
        return values

    @model_validator(mode="after")
    def _combinations(self):
        m = self.method
        if m not in ALL_METHODS:
            raise ValueError(f"unknown method {m!r}: choose one of {', '.join(ALL_METHODS)}")
        if self.optim not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optim!r}: choose one of {', '.join(OPTIMIZERS)}")
        if self.dtype not in DTYPE_BYTES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPE_BYTES)} (or bf16/fp16/fp32), "
                             f"got {self.dtype!r}")
        if m == "qlora" and self.bits not in (4, 8):
            raise ValueError(f"qlora quantizes the base to 4 or 8 bits: pass bits=4 or bits=8, not {self.bits}")
        if m not in ("qlora", "inference") and self.bits is not None:
            raise ValueError(f"bits={self.bits} only applies to method qlora (or inference); method is {m}")
        if m == "inference" and self.bits not in (None, 4, 8):
            raise ValueError(f"inference bits must be 4, 8 or unset, not {self.bits}")
        if self.zero and self.gpus == 1 and not self.offload:
            raise ValueError(f"ZeRO-{self.zero} partitions across GPUs; with gpus=1 there is nothing to "
                             "partition: use gpus >= 2, or add offload to move states to CPU memory")
        if self.offload and self.zero not in (2, 3):
            raise ValueError("offload is a DeepSpeed ZeRO feature: use it with zero=2 or zero=3")
        if self.packing and m in PROMPT_METHODS:
            raise ValueError(f"packing joins examples into one row; {m} prepends virtual tokens to "
                             "each example: use packing with full, freeze, lora or qlora")
        if self.activation_offload and not self.gradient_checkpointing:
            raise ValueError("activation_offload moves the checkpointed layer inputs to CPU memory: "
                             "turn on gradient_checkpointing too")
        if self.optimizer_in_backward and self.gradient_accumulation_steps > 1:
            raise ValueError("optimizer_in_backward steps each parameter during backward: it cannot "
                             "accumulate gradients (gradient_accumulation_steps must be 1)")
        return self

    @property
    def half_bytes(self) -> int:
        return DTYPE_BYTES[self.dtype]

    @property
    def autocast(self) -> bool:
        """Trainer's mixed precision: float32 master weights, 16-bit math (not under ZeRO)."""
        return self.dtype != "float32" and not self.pure_bf16 and not self.zero


def describe(error: ValidationError) -> str:
    """One line per mistake: the setting, what was wrong, what is allowed."""
    lines = []
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"]) or "settings"
        message = str(item.get("msg", "")).removeprefix("Value error, ")
        if item["type"] in ("greater_than_equal", "greater_than"):
            message = f"must be a positive integer, got {item.get('input')!r}"
        if item["type"] == "extra_forbidden":
            allowed = ", ".join(VramSettings.model_fields)
            message = f"is not a setting of the memory estimate; settings: {allowed}"
        lines.append(message if field == "settings" else f"{field}: {message}")
    return "; ".join(lines)


def vram_settings(**values) -> VramSettings:
    try:
        return VramSettings(**values)
    except ValidationError as error:
        raise ConfigError(describe(error)) from None


LOSS_KERNELS = get_args(Loss)
ATTENTION_KERNELS = get_args(Attention)
