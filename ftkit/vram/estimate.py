"""The memory model: bytes of a fine-tuning (or inference) run, component by component.

Taught in lesson 01 (``notebooks/01_vram_calculator.ipynb``). Seed 004's rule of thumb says
full fine-tuning needs about 17.5 bytes per parameter (weights 2 + gradients 4 + Adam 8 +
activations 2 + overhead 1.5). Here each term is derived from the architecture
(:mod:`ftkit.vram.params`) and the settings instead, in the regime ftkit trains in:

* full: float32 weights, gradients and optimizer states, 16-bit autocast compute (what
  Trainer does with ``bf16=True`` on a float32 model); ``pure_bf16`` stores all in 16 bits;
* other methods: the frozen base in ``dtype``, trainable parameters upcast to float32;
  qlora: bitsandbytes 4/8-bit linear layers, the rest float32 (``prepare_model_for_kbit_training``);
* ZeRO (``zero`` 1/2/3): DeepSpeed's regime, 16-bit weights and gradients, float32 master
  weights + optimizer states, partitioned over ``gpus``.

Activations are what autograd saves for backward (see :mod:`ftkit.vram.activations`), the
number :func:`ftkit.vram.measure` reads back, so every component has a measured twin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import ConfigError
from .activations import activation_bytes, amp_weight_copy_bytes, logits_bytes
from .params import Architecture, architecture

GIB = 1024**3
METHODS = ("full", "freeze", "lora", "qlora", "prefix", "ptuning", "prompt", "inference")
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
DTYPE_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "float": "float32",
                 "half": "float16"}
OPTIMIZERS = ("adamw_torch", "adamw_torch_fused", "adamw_hf", "adamw", "adamw_8bit",
              "paged_adamw_8bit", "paged_adamw_32bit", "adamw_bnb_8bit", "sgd", "sgd_momentum",
              "adafactor", "adagrad")
CUDA_CONTEXT_BYTES = 512 * 1024**2  # CUDA context + cuBLAS workspace; not in max_memory_allocated
BNB_8BIT_MIN_SIZE = 4096  # bitsandbytes keeps 32-bit states for smaller tensors
BNB_OPTIM_BLOCK = 256  # block size of 8-bit optimizer states (one float32 absmax per block)
BNB_4BIT_BLOCK = 64  # NF4/FP4 block size (one absmax per block)


@dataclass
class Estimate:
    """Predicted bytes per component; ``total_bytes`` is their sum (an upper bound of the peak)."""

    params_total: int
    params_trainable: int
    bytes: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    cpu_bytes: int = 0  # what ZeRO offload keeps in host memory instead

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes.values())

    @property
    def total_gib(self) -> float:
        return self.total_bytes / GIB

    def to_dict(self) -> dict:
        return dict(params_total=self.params_total, params_trainable=self.params_trainable,
                    bytes=dict(self.bytes), total_bytes=self.total_bytes,
                    cpu_bytes=self.cpu_bytes, settings=dict(self.settings))

    def fits(self, gib: float) -> bool:
        """True when the total fits in a card of ``gib`` GB (decimal, as cards are sold)."""
        return self.total_bytes <= gib * 1e9


def _dtype(name: str) -> str:
    name = DTYPE_ALIASES.get(str(name).lower().replace("torch.", ""), str(name).lower().replace("torch.", ""))
    if name not in DTYPE_BYTES:
        raise ConfigError(f"dtype must be one of {', '.join(DTYPE_BYTES)} (or bf16/fp16/fp32), got {name!r}")
    return name


def _check(method, bits, batch_size, seq_len, optim, gpus, zero, offload, lora_rank,
           num_virtual_tokens, attn):
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    if method == "qlora" and bits not in (4, 8):
        raise ConfigError(f"qlora quantizes the base to 4 or 8 bits: pass bits=4 or bits=8, not {bits}")
    if method not in ("qlora", "inference") and bits is not None:
        raise ConfigError(f"bits={bits} only applies to method qlora (or inference); method is {method}")
    if method == "inference" and bits not in (None, 4, 8):
        raise ConfigError(f"inference bits must be 4, 8 or unset, not {bits}")
    for name, value in (("batch_size", batch_size), ("seq_len", seq_len), ("gpus", gpus),
                        ("lora_rank", lora_rank)):
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    if not isinstance(num_virtual_tokens, int) or num_virtual_tokens < 0:
        raise ConfigError(f"num_virtual_tokens must be an integer >= 0, got {num_virtual_tokens!r}")
    if optim not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {optim!r}: choose one of {', '.join(OPTIMIZERS)}")
    if zero not in (0, 1, 2, 3):
        raise ConfigError(f"zero stage must be 0, 1, 2 or 3, got {zero!r}")
    if zero and gpus == 1 and not offload:
        raise ConfigError(f"ZeRO-{zero} partitions across GPUs; with gpus=1 there is nothing to "
                          "partition: use gpus >= 2, or add offload to move states to CPU memory")
    if offload and zero not in (2, 3):
        raise ConfigError("offload is a DeepSpeed ZeRO feature: use it with zero=2 or zero=3")
    if attn not in ("sdpa", "eager", "flash_attention_2"):
        raise ConfigError(f"attn must be sdpa, eager or flash_attention_2, got {attn!r}")


def lora_modules(arch: Architecture, targets="all-linear") -> dict[str, tuple[int, int]]:
    """The linear modules LoRA adapts -> (in, out). ``all-linear``/``all`` = every linear but the head."""
    if isinstance(targets, str):
        targets = [t.strip() for t in targets.split(",") if t.strip()]
    targets = list(targets)
    linears = arch.linear_modules()
    if not targets or targets in (["all-linear"], ["all"]):
        return linears
    chosen = {name: shape for name, shape in linears.items() if name.rsplit(".", 1)[-1] in targets}
    if not chosen:
        names = sorted({name.rsplit(".", 1)[-1] for name in linears})
        raise ConfigError(f"lora targets {targets} match no linear module of this model; "
                          f"its linear modules are: {', '.join(names)} (or all-linear)")
    return chosen


def trainable_tensors(arch: Architecture, method: str, *, lora_rank=8, lora_targets_="all-linear",
                      num_virtual_tokens=20, freeze_trainable_layers=2) -> list[tuple[int, ...]]:
    """Shapes of the tensors the method trains (what gradients and optimizer states cover)."""
    if method == "full":
        return [t.shape for t in arch.tensors]
    if method == "freeze":
        n = min(max(freeze_trainable_layers, 0), arch.layers)
        first = arch.layers - n
        return [t.shape for t in arch.tensors if t.layer is not None and t.layer >= first]
    if method in ("lora", "qlora"):
        shapes = []
        for fan_in, fan_out in lora_modules(arch, lora_targets_).values():
            shapes += [(lora_rank, fan_in), (fan_out, lora_rank)]
        return shapes
    p, d = num_virtual_tokens, arch.hidden
    if method == "prompt":
        return [(p, d)]
    if method == "ptuning":  # peft PromptEncoder, MLP head: embedding + 3 Linear(d, d)
        return [(p, d)] + [(d, d), (d,)] * 3
    if method == "prefix":  # peft PrefixEncoder: one key and one value per layer and token
        return [(p, arch.layers * 2 * arch.kv_heads * arch.head_dim)]
    return []


def _numel(shape) -> int:
    return math.prod(shape)


def optimizer_state_bytes(shapes, optim: str, param_bytes: int) -> int:
    """Bytes of optimizer state for trainable tensors of the given shapes and storage size."""
    total = 0
    for shape in shapes:
        n = _numel(shape)
        if optim in ("adamw_torch", "adamw_torch_fused", "adamw_hf", "adamw", "paged_adamw_32bit"):
            total += 2 * n * param_bytes + 4  # exp_avg, exp_avg_sq, float32 step
        elif optim in ("adamw_8bit", "paged_adamw_8bit", "adamw_bnb_8bit"):
            if n < BNB_8BIT_MIN_SIZE:
                total += 2 * n * 4
            else:
                total += 2 * n + 2 * 4 * math.ceil(n / BNB_OPTIM_BLOCK)
        elif optim == "sgd":
            total += 0
        elif optim == "sgd_momentum":
            total += n * param_bytes
        elif optim == "adagrad":
            total += n * param_bytes + 4
        elif optim == "adafactor":  # factored second moment, no first moment (beta1=None)
            factored = _numel(shape[:-1]) + _numel(shape[:-2] + shape[-1:])
            total += (factored if len(shape) >= 2 else n) * param_bytes + 4  # + a float32 RMS
    if optim in ("adamw_8bit", "paged_adamw_8bit", "adamw_bnb_8bit") and shapes:
        total += 2 * 256 * 4  # the shared 8-bit quantization maps
    return total


def quantized_linear_bytes(shape, bits: int, double_quant: bool = True) -> int:
    """Bytes of one bitsandbytes-quantized weight with its quantization state."""
    n = _numel(shape)
    if bits == 8:
        return n + shape[0] * 4  # int8 weight + one float32 scale per output row
    blocks = math.ceil(n / BNB_4BIT_BLOCK)
    packed = math.ceil(n / 2)
    if not double_quant:
        return packed + blocks * 4 + 16 * 4  # + float32 absmax per block + the 16-value code
    # absmax quantized to 8 bits, plus its own float32 absmax per 256 blocks, code and offset
    return packed + blocks + math.ceil(blocks / 256) * 4 + 256 * 4 + 4 + 16 * 4


def quantized_model_bytes(arch: Architecture, bits: int, double_quant: bool = True,
                          rest_bytes: int = 4) -> int:
    """Weights of a bitsandbytes-quantized model: linear weights in ``bits``, the rest (embeddings,
    norms, biases, LM head) at ``rest_bytes`` each (float32 after ``prepare_model_for_kbit_training``)."""
    total = 0
    for t in arch.tensors:
        if t.kind == "linear" and t.name.endswith(".weight"):
            total += quantized_linear_bytes(t.shape, bits, double_quant)
        else:
            total += t.numel * rest_bytes
    return total


def estimate(model, method: str = "lora", *, batch_size: int = 1, seq_len: int = 512,
             gradient_checkpointing: bool = False, optim: str = "adamw_torch", lora_rank: int = 8,
             lora_targets="all-linear", bits=None, num_virtual_tokens: int = 20,
             dtype: str = "bfloat16", pure_bf16: bool = False, attn: str = "sdpa", gpus: int = 1,
             zero: int = 0, offload: bool = False, freeze_trainable_layers: int = 2,
             lora_dropout: float = 0.05, double_quant: bool = True, device: str = "cuda") -> Estimate:
    """Predict the memory of training (or running) ``model`` with ``method``, per GPU.

    ``model``: a preset name, a config.json path, a model folder, a dict or a transformers
    config. ``dtype`` is the compute dtype (bf16/fp16 train with 16-bit math; float32 is
    plain float32 training). ``device="cpu"`` drops the CUDA-only terms (context, transient
    logits buffers) so the total compares with what :func:`ftkit.vram.measure` reads on a CPU.
    Returns an :class:`Estimate`; ``bytes`` holds weights, gradients, optimizer, activations,
    logits, amp_weight_copies (16-bit copies autocast keeps), transient (logits buffers on the
    GPU), overhead (CUDA context) (+ kv_cache for inference, + ddp_buckets for plain multi-GPU).
    """
    method = str(method).lower()
    dtype = _dtype(dtype)
    _check(method, bits, batch_size, seq_len, optim, gpus, zero, offload, lora_rank,
           num_virtual_tokens, attn)
    arch = architecture(model)
    half = DTYPE_BYTES[dtype]
    settings = dict(method=method, batch_size=batch_size, seq_len=seq_len,
                    gradient_checkpointing=gradient_checkpointing, optim=optim,
                    lora_rank=lora_rank, lora_targets=lora_targets, bits=bits,
                    num_virtual_tokens=num_virtual_tokens, dtype=dtype, pure_bf16=pure_bf16,
                    attn=attn, gpus=gpus, zero=zero, offload=offload,
                    freeze_trainable_layers=freeze_trainable_layers, lora_dropout=lora_dropout,
                    device=device, model_type=arch.model_type, params_source=arch.source)
    overhead = CUDA_CONTEXT_BYTES if device == "cuda" else 0
    if method == "inference":
        return _inference(arch, batch_size, seq_len, dtype, bits, double_quant, overhead, settings)

    shapes = trainable_tensors(arch, method, lora_rank=lora_rank, lora_targets_=lora_targets,
                               num_virtual_tokens=num_virtual_tokens,
                               freeze_trainable_layers=freeze_trainable_layers)
    trainable = sum(_numel(s) for s in shapes)
    train_bytes = half if pure_bf16 else 4  # trainable parameters learn in float32 unless pure 16-bit
    if method == "full":
        frozen = 0
    elif method == "freeze":
        frozen = (arch.params_total - trainable) * half
    elif method == "qlora":
        frozen = quantized_model_bytes(arch, bits, double_quant, rest_bytes=4)
    else:
        frozen = arch.params_total * half
    weights = frozen + trainable * train_bytes
    gradients = trainable * train_bytes
    optimizer = optimizer_state_bytes(shapes, optim, train_bytes)
    autocast = dtype != "float32" and not pure_bf16

    extra = {}
    cpu = 0
    if zero:
        # DeepSpeed: 16-bit weights and gradients on the GPU; float32 master copy in the optimizer.
        if autocast or pure_bf16:
            weights = frozen + trainable * half
            gradients = trainable * half
            optimizer = optimizer_state_bytes(shapes, optim, 4) + trainable * 4
        optimizer //= gpus
        if zero >= 2:
            gradients //= gpus
        if zero == 3:
            weights //= gpus
        if offload:  # ZeRO-Offload: optimizer states and gradients live in CPU memory
            cpu += optimizer + gradients
            optimizer = gradients = 0
            if zero == 3:
                cpu += weights
                weights = 0
    elif gpus > 1:
        extra["ddp_buckets"] = gradients  # DDP reduces gradients through a flat copy of them

    if zero:
        autocast = False  # DeepSpeed holds the model in 16 bits and computes without autocast
    acts = activation_bytes(arch, method, batch_size=batch_size, seq_len=seq_len, dtype=dtype,
                            autocast=autocast, gradient_checkpointing=gradient_checkpointing,
                            attn=attn, lora_rank=lora_rank, lora_targets_=lora_targets,
                            lora_dropout=lora_dropout, num_virtual_tokens=num_virtual_tokens,
                            freeze_trainable_layers=freeze_trainable_layers, device=device)
    logits = logits_bytes(arch, method, batch_size=batch_size, seq_len=seq_len, dtype=dtype,
                          autocast=autocast, num_virtual_tokens=num_virtual_tokens)
    copies = amp_weight_copy_bytes(arch, method, dtype=dtype, autocast=autocast,
                                   trainable_shapes=shapes, gradient_checkpointing=gradient_checkpointing,
                                   freeze_trainable_layers=freeze_trainable_layers)
    transient = 0
    if device == "cuda":
        tokens = batch_size * (seq_len + (num_virtual_tokens if method in ("prompt", "ptuning") else 0))
        # The logits the model returns, and the float32 gradient of the loss w.r.t. them.
        transient = tokens * arch.vocab * (half + 4)
    result = dict(weights=weights, gradients=gradients, optimizer=optimizer, activations=acts,
                  logits=logits, amp_weight_copies=copies, transient=transient, overhead=overhead,
                  **extra)
    return Estimate(arch.params_total, trainable, result, settings, cpu)


def _inference(arch, batch_size, seq_len, dtype, bits, double_quant, overhead, settings):
    half = DTYPE_BYTES[dtype]
    if bits:
        weights = quantized_model_bytes(arch, bits, double_quant, rest_bytes=half)
    else:
        weights = arch.params_total * half
    kv_cache = 2 * arch.layers * batch_size * seq_len * arch.kv_heads * arch.head_dim * half
    # Prefill working set: one layer's largest tensors (MLP) for the whole prompt.
    activations = batch_size * seq_len * (2 * arch.hidden + 3 * arch.ffn) * half
    logits = batch_size * arch.vocab * 4  # generate() computes the last position only
    result = dict(weights=weights, gradients=0, optimizer=0, activations=activations,
                  logits=logits, kv_cache=kv_cache, transient=0, overhead=overhead)
    return Estimate(arch.params_total, 0, result, settings)


def estimate_for_config(run_config, model=None, **overrides) -> Estimate:
    """The estimate of a :class:`ftkit.config.RunConfig` run (per GPU).

    ``model`` (a loaded model, preset, path or config) overrides ``model_name_or_path``.
    The device is the CPU when the run is on one (``use_cpu`` or no CUDA), so the total
    compares with the training run's measured bytes.
    """
    cfg = run_config
    get = lambda name, default=None: getattr(cfg, name, default)  # noqa: E731
    source = model if model is not None else get("model_name_or_path")
    if source is not None and hasattr(source, "config") and hasattr(source, "parameters"):
        source = _base_config(source)
    source = source if source is not None else "smollm2-135m"
    method = get("method", "lora")
    dtype = "bfloat16" if get("bf16") else "float16" if get("fp16") else "float32"
    targets = get("lora_target", ["all-linear"])
    zero, offload = _deepspeed(get("deepspeed"))
    kwargs = dict(
        method=method, batch_size=int(get("per_device_train_batch_size", 1)),
        seq_len=int(get("max_seq_length", 512)),
        gradient_checkpointing=bool(get("gradient_checkpointing", False)),
        optim=_optim_name(get("optim", "adamw_torch")), lora_rank=int(get("lora_rank", 8)),
        lora_targets=targets, bits=get("quantization_bit") if method == "qlora" else None,
        num_virtual_tokens=int(get("num_virtual_tokens", 20)), dtype=dtype,
        freeze_trainable_layers=int(get("freeze_trainable_layers", 2)),
        lora_dropout=float(get("lora_dropout", 0.05)), double_quant=bool(get("double_quant", True)),
        zero=zero, offload=offload, gpus=max(int(_world_size()), 1) if zero else 1,
        device="cpu" if get("use_cpu", False) or not _cuda() else "cuda",
    )
    if zero and kwargs["gpus"] == 1 and not offload:
        kwargs["zero"] = 0  # one process: DeepSpeed has nothing to partition
    kwargs.update(overrides)
    return estimate(source, **kwargs)


def _base_config(model):
    """The transformers config of the base model under a (peft-wrapped) loaded model."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.config


def _optim_name(name: str) -> str:
    name = str(name).lower()
    return name if name in OPTIMIZERS else ("adamw_8bit" if "8bit" in name else "adamw_torch")


def _deepspeed(value) -> tuple[int, bool]:
    """(ZeRO stage, offload) from a DeepSpeed config path or dict (seed 001's ds_zero_*.json)."""
    if not value:
        return 0, False
    if not isinstance(value, dict):
        import json
        from pathlib import Path

        path = Path(value)
        if not path.is_file():
            raise ConfigError(f"deepspeed config {value} not found")
        value = json.loads(path.read_text())
    zero = value.get("zero_optimization", {}) or {}
    stage = int(zero.get("stage", 0))
    offload = any(str((zero.get(key) or {}).get("device", "none")).lower() not in ("none", "")
                  for key in ("offload_optimizer", "offload_param"))
    return stage, offload


def _world_size() -> int:
    import os

    return int(os.environ.get("WORLD_SIZE", "1"))


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False
