"""Turn a method name into a model ready to train: which weights learn, which stay frozen.

Taught in lessons 04 (LoRA), 05 (QLoRA), 06 (prompt tuning, P-Tuning, prefix / P-Tuning v2)
and 07 (full fine-tuning, freezing). One entry point, :func:`apply_method`, so that a lesson
switches method by changing one config field:

========  ==================================================================  =================
method    what trains                                                          peft config
========  ==================================================================  =================
full      every weight                                                         --
freeze    the last N decoder layers, or modules named by substring             --
lora      low-rank B·A beside each target Linear (W + (alpha/r)·B·A)           LoraConfig
qlora     LoRA on a 4-bit (NF4/FP4) or 8-bit base, after k-bit preparation     LoraConfig
prefix    key/value prefixes in every layer (P-Tuning v2, ChatGLM3's yaml)     PrefixTuningConfig
ptuning   virtual input tokens from an MLP/LSTM encoder (P-Tuning v1)          PromptEncoderConfig
prompt    virtual input tokens learned directly (prompt tuning)                PromptTuningConfig
========  ==================================================================  =================
"""

from __future__ import annotations

from dataclasses import dataclass

from . import models
from .config import METHODS, PEFT_METHODS, PROMPT_METHODS, RunConfig, validate
from .errors import ConfigError

__all__ = ["METHODS", "PEFT_METHODS", "PROMPT_METHODS", "ParameterCount", "count_parameters",
           "as_config", "base_dtype", "load_base_model", "lora_config", "prompt_config",
           "decoder_layers", "freeze", "prepare_kbit", "apply_method", "prepare_model"]


@dataclass(frozen=True)
class ParameterCount:
    """Trainable and total parameters of a model (4-bit weights counted unpacked)."""

    trainable: int
    total: int

    @property
    def percent(self) -> float:
        return 100.0 * self.trainable / self.total if self.total else 0.0

    def __str__(self) -> str:
        return (f"trainable params: {self.trainable:,} || all params: {self.total:,} "
                f"|| trainable%: {self.percent:.4f}")


def count_parameters(model) -> ParameterCount:
    """Count like peft's ``print_trainable_parameters``: a packed 4-bit tensor holds 2 values a byte.

    Under DeepSpeed ZeRO-3 each process holds an empty placeholder; ``ds_numel`` is the full size.
    """
    trainable = total = 0
    for param in model.parameters():  # shared (tied) tensors are listed once
        n = getattr(param, "ds_numel", None) or param.numel()
        if param.__class__.__name__ == "Params4bit":
            n *= 2 * getattr(getattr(param, "quant_storage", None), "itemsize", 1)
        total += n
        if param.requires_grad:
            trainable += n
    return ParameterCount(trainable, total)


def as_config(cfg=None, **fields):
    """A RunConfig from a RunConfig, a dict or nothing, with ``fields`` applied on top."""
    if cfg is None and not fields:
        return RunConfig()
    if isinstance(cfg, RunConfig) and not fields:
        return cfg
    base = cfg.to_dict() if isinstance(cfg, RunConfig) else dict(cfg or {})
    base.update(fields)
    return validate(base)


def base_dtype(cfg) -> str:
    """The dtype to load frozen weights in: half precision when training in it, else float32.

    Full fine-tuning keeps float32 master weights (mixed precision autocasts the math);
    other methods freeze the base, so bf16/fp16 storage halves its memory for free.
    """
    if cfg.method == "full":
        return "float32"
    if cfg.bf16:
        return "bfloat16"
    if cfg.fp16:
        return "float16"
    return "float32"


def load_base_model(cfg=None, device: str | None = None, **fields):
    """The base model the method trains on: bitsandbytes-quantized for qlora, else plain."""
    cfg = as_config(cfg, **fields)
    quantization = None
    dtype = base_dtype(cfg)
    if cfg.method == "qlora":
        quantization = models.bnb_config(cfg.quantization_bit, cfg.quant_type,
                                         cfg.double_quant, cfg.compute_dtype)
        dtype = cfg.compute_dtype
    return models.load_model(cfg.model_name_or_path, dtype=dtype, device=device,
                             quantization=quantization, trust_remote_code=cfg.trust_remote_code)


def lora_config(cfg=None, **fields):
    """peft ``LoraConfig`` from ``lora_rank``, ``lora_alpha``, ``lora_dropout``, ``lora_target``..."""
    from peft import LoraConfig, TaskType

    cfg = as_config(cfg, **fields)
    targets = cfg.lora_target
    target_modules = "all-linear" if targets == ["all-linear"] else list(targets)
    return LoraConfig(
        task_type=TaskType.CAUSAL_LM, r=cfg.lora_rank, lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout, target_modules=target_modules,
        use_rslora=cfg.use_rslora, use_dora=cfg.use_dora,
    )


def prompt_config(model, cfg=None, **fields):
    """peft config of a prompt method: prefix (P-Tuning v2), ptuning (v1) or prompt tuning."""
    from peft import (
        PrefixTuningConfig,
        PromptEncoderConfig,
        PromptTuningConfig,
        PromptTuningInit,
        TaskType,
    )

    cfg = as_config(cfg, **fields)
    hidden = model.config.hidden_size
    common = dict(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=cfg.num_virtual_tokens)
    if cfg.method == "prefix":
        return PrefixTuningConfig(**common, prefix_projection=cfg.prefix_projection,
                                  encoder_hidden_size=cfg.encoder_hidden_size or hidden)
    if cfg.method == "ptuning":
        return PromptEncoderConfig(**common, encoder_reparameterization_type=cfg.prompt_encoder_type,
                                   encoder_hidden_size=cfg.encoder_hidden_size or hidden)
    if cfg.method == "prompt":
        if cfg.prompt_init_text:  # start from the embeddings of real words, not noise
            return PromptTuningConfig(**common, prompt_tuning_init=PromptTuningInit.TEXT,
                                      prompt_tuning_init_text=cfg.prompt_init_text,
                                      tokenizer_name_or_path=model.config._name_or_path)
        return PromptTuningConfig(**common, prompt_tuning_init=PromptTuningInit.RANDOM)
    raise ConfigError(f"method {cfg.method!r} is not a prompt method ({', '.join(PROMPT_METHODS)})")


def decoder_layers(model):
    """The model's stack of transformer blocks (the ModuleList with num_hidden_layers entries)."""
    import torch

    n = getattr(model.config, "num_hidden_layers", None)
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n:
            return name, module
    raise ConfigError("could not find the decoder layers of this model: name the modules to "
                      "train with freeze_trainable_modules (substrings of parameter names)")


def freeze(model, trainable_layers: int = 2, trainable_modules: list[str] | None = None) -> None:
    """Freeze everything except the last ``trainable_layers`` blocks, or the named modules."""
    for param in model.parameters():
        param.requires_grad_(False)
    if trainable_modules:
        names = [n for n, _ in model.named_parameters() if any(s in n for s in trainable_modules)]
        if not names:
            raise ConfigError(f"freeze_trainable_modules {trainable_modules} matches no parameter "
                              f"name; names look like {next(iter(dict(model.named_parameters())))!r}")
        params = dict(model.named_parameters())
        for name in names:
            params[name].requires_grad_(True)
        return
    _, layers = decoder_layers(model)
    if trainable_layers > len(layers):
        raise ConfigError(f"freeze_trainable_layers = {trainable_layers} but the model has only "
                          f"{len(layers)} layers: use at most {len(layers)} (or method: full)")
    for layer in list(layers)[-trainable_layers:]:
        for param in layer.parameters():
            param.requires_grad_(True)


def prepare_kbit(model, cfg):
    """QLoRA's preparation of a quantized base, before the adapter goes on: norms in float32,
    gradients reaching the adapters through the frozen inputs, and (when asked) activation
    checkpointing without re-entrant autograd (it works with frozen inputs)."""
    from peft import prepare_model_for_kbit_training

    if not getattr(model, "is_quantized", False):
        raise ConfigError("method qlora needs a quantized base model: load it with "
                          "ftkit.methods.load_base_model(cfg)")
    return prepare_model_for_kbit_training(
        model, use_gradient_checkpointing=cfg.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False})


def apply_method(model, cfg=None, verbose: bool = True, **fields):
    """Make ``model`` ready for ``cfg.method``; return ``(model, ParameterCount)``.

    PEFT methods return a ``PeftModel`` that wraps ``model``; full and freeze change
    ``requires_grad`` in place. ``fields`` override config fields, e.g.
    ``apply_method(model, method="lora", lora_rank=4)``.
    """
    import torch
    from peft import get_peft_model

    cfg = as_config(cfg, **fields)
    method = cfg.method
    if method == "full":
        for param in model.parameters():
            param.requires_grad_(True)
    elif method == "freeze":
        freeze(model, cfg.freeze_trainable_layers, cfg.freeze_trainable_modules)
    elif method in ("lora", "qlora"):
        if method == "qlora":
            model = prepare_kbit(model, cfg)
        model = get_peft_model(model, lora_config(cfg))
    else:  # a prompt method (RunConfig admits no other name)
        model = get_peft_model(model, prompt_config(model, cfg))
    # Trainable weights learn in float32 even when the frozen base is stored in half precision.
    for param in model.parameters():
        if param.requires_grad and param.dtype in (torch.float16, torch.bfloat16):
            param.data = param.data.float()
    count = count_parameters(model)
    if verbose:
        print(f"{method}: {count}")
    return model, count


def prepare_model(cfg=None, device: str | None = None, verbose: bool = True, **fields):
    """Load the base model for ``cfg`` and apply its method: ``(model, ParameterCount)``."""
    cfg = as_config(cfg, **fields)
    return apply_method(load_base_model(cfg, device), cfg, verbose=verbose)
