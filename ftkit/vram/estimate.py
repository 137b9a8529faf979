"""The memory model: bytes of a fine-tuning (or inference) run, component by component and over time.

Taught in lesson 01 (``notebooks/01_vram_calculator.ipynb``). Seed 004's rule of thumb says
full fine-tuning needs about 17.5 bytes per parameter. Here each term is derived from the
architecture (:mod:`ftkit.vram.params`) and the settings (:class:`~ftkit.vram.settings.VramSettings`)
instead, in the regime ftkit trains in:

* full: float32 weights, gradients and optimizer states, 16-bit autocast compute (what
  Trainer does with ``bf16=True`` on a float32 model); ``pure_bf16`` stores all in 16 bits;
* other methods: the frozen base in ``dtype``, trainable parameters upcast to float32;
  qlora: bitsandbytes 4/8-bit linear layers, the rest float32 (``prepare_model_for_kbit_training``);
  the fused 3-D expert weights of transformers 5's mixtures of experts are not ``nn.Linear``, so
  bitsandbytes leaves them as loaded (16 bits) - see ``_frozen_weight_bytes``;
* ZeRO (``zero`` 1/2/3): DeepSpeed's regime, 16-bit weights and gradients, float32 master
  weights + optimizer states, partitioned over ``gpus``.

The components are never all alive at once. :mod:`ftkit.vram.timeline` walks the phases of one
step (forward up to the loss, the start of backward, its end, the optimizer step) and the
estimate's ``peak_bytes`` is the largest of them; ``total_bytes`` stays the sum, a safe bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..units import CARDS_GB
from .activations import (
    activation_bytes,
    amp_weight_copy_bytes,
    logits_bytes,
    logits_transient_bytes,
)
from .optimizers import is_paged, state_bytes, step_temporary_bytes
from .params import Architecture, architecture, lora_modules
from .settings import VramSettings, vram_settings
from .timeline import timeline

# CUDA context + cuBLAS workspace: outside max_memory_allocated/reserved, inside nvidia-smi.
# transformers' docs (model_memory_anatomy.md) measure "the kernels alone take up 1.3GB".
CUDA_CONTEXT_BYTES = 1300 * 10**6
BNB_4BIT_BLOCK = 64  # NF4/FP4 block size (one absmax per block)
METRICS = ("allocated", "reserved", "device")


@dataclass
class Estimate:
    """Predicted bytes per component, and the peak over the phases of one step (per GPU)."""

    params_total: int
    params_trainable: int
    bytes: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    cpu_bytes: int = 0  # what ZeRO offload keeps in host memory instead
    phases: dict = field(default_factory=dict)  # phase -> live allocator bytes at that moment
    reserve_bytes: int = 0  # cached by PyTorch's allocator beyond the live peak
    paged_bytes: int = 0  # paged optimizer states: CUDA unified memory, outside the allocator
    params_active: int = 0

    @property
    def total_bytes(self) -> int:
        """The sum of components: an upper bound, as if everything were alive at once."""
        return sum(self.bytes.values())

    @property
    def peak_phase(self) -> str:
        return max(self.phases, key=self.phases.get) if self.phases else "sum"

    @property
    def peak_bytes(self) -> int:
        """The largest live set of one step: what ``torch.cuda.max_memory_allocated`` reports."""
        return max(self.phases.values()) if self.phases else self.total_bytes - self.bytes.get("overhead", 0)

    def predict(self, metric: str = "device") -> int:
        """``allocated`` (max_memory_allocated), ``reserved`` (+ the allocator's cache) or
        ``device`` (+ CUDA context and paged states: what nvidia-smi shows)."""
        if metric == "allocated":
            return self.peak_bytes
        if metric == "reserved":
            return self.peak_bytes + self.reserve_bytes
        if metric == "device":
            return self.peak_bytes + self.reserve_bytes + self.bytes.get("overhead", 0) + self.paged_bytes
        raise ValueError(f"metric must be one of {', '.join(METRICS)}")

    def to_dict(self) -> dict:
        return dict(params_total=self.params_total, params_trainable=self.params_trainable,
                    params_active=self.params_active, bytes=dict(self.bytes),
                    total_bytes=self.total_bytes, peak_bytes=self.peak_bytes,
                    peak_phase=self.peak_phase, phases=dict(self.phases),
                    reserved_bytes=self.predict("reserved"), device_bytes=self.predict("device"),
                    cpu_bytes=self.cpu_bytes, settings=dict(self.settings))

    def fits(self, gb: float) -> bool:
        """True when the step's peak on the device fits a card of ``gb`` GB (decimal, as sold)."""
        return self.predict("device") <= gb * 1e9

    def fitting_cards(self, cards=CARDS_GB) -> list[int]:
        """The card sizes (GB) one GPU of this run fits on."""
        return [gb for gb in cards if self.fits(gb)]


def trainable_tensors(arch: Architecture, s: VramSettings) -> list[tuple[int, ...]]:
    """Shapes of the tensors the method trains (what gradients and optimizer states cover)."""
    method = s.method
    if method == "full":
        return [t.shape for t in arch.tensors]
    extra = [t.shape for t in arch.tensors if _saved_module(t, s.modules_to_save)]
    if method == "freeze":
        n = min(max(s.freeze_trainable_layers, 0), arch.layers)
        first = arch.layers - n
        return [t.shape for t in arch.tensors if t.layer is not None and t.layer >= first] + extra
    if method in ("lora", "qlora"):
        shapes = []
        for fan_in, fan_out in lora_modules(arch, s.lora_targets).values():
            shapes += [(s.lora_rank, fan_in), (fan_out, s.lora_rank)]
        return shapes + extra
    p, d = s.num_virtual_tokens, arch.hidden
    if method == "prompt":
        return [(p, d)] + extra
    if method == "ptuning":  # peft PromptEncoder, MLP head: embedding + 3 Linear(d, d)
        return [(p, d)] + [(d, d), (d,)] * 3 + extra
    if method == "prefix":  # peft PrefixEncoder: one key and one value per layer and token
        return [(p, arch.layers * 2 * arch.kv_heads * arch.head_dim)] + extra
    return []


def _saved_module(t, modules_to_save) -> bool:
    """peft ``modules_to_save``: a trainable copy of the embeddings / LM head."""
    names = modules_to_save.split(",") if isinstance(modules_to_save, str) else modules_to_save
    names = {n.strip() for n in names if n.strip()}
    if not names:
        return False
    return t.kind in ("embedding", "lm_head") and t.module.rsplit(".", 1)[-1] in names


def quantized_linear_bytes(shape, bits: int, double_quant: bool = True) -> int:
    """Bytes of one bitsandbytes-quantized weight with its quantization state."""
    n = math.prod(shape)
    if bits == 8:
        return n + shape[0] * 4  # int8 weight + one float32 scale per output row
    blocks = math.ceil(n / BNB_4BIT_BLOCK)
    packed = math.ceil(n / 2)
    if not double_quant:
        return packed + blocks * 4 + 16 * 4  # + float32 absmax per block + the 16-value code
    # absmax quantized to 8 bits, plus its own float32 absmax per 256 blocks, code and offset
    return packed + blocks + math.ceil(blocks / 256) * 4 + 256 * 4 + 4 + 16 * 4


def quantized_model_bytes(arch: Architecture, bits: int, double_quant: bool = True,
                          rest_bytes: int = 4, expert_bytes: int = 2) -> int:
    """Weights of a bitsandbytes-quantized model: linear weights in ``bits``; fused expert
    weights as loaded (``expert_bytes``: bitsandbytes replaces ``nn.Linear`` modules only,
    transformers/integrations/bitsandbytes.py ``replace_with_bnb_linear``); the rest (embeddings,
    norms, biases, router, LM head) at ``rest_bytes`` (float32 after ``prepare_model_for_kbit_training``)."""
    total = 0
    for t in arch.tensors:
        if t.kind == "linear" and t.name.endswith(".weight"):
            total += quantized_linear_bytes(t.shape, bits, double_quant)
        elif t.kind == "expert":
            total += int(t.numel * expert_bytes)
        else:
            total += t.numel * rest_bytes
    return total


def estimate(model, method: str = "lora", **settings) -> Estimate:
    """Predict the memory of training (or running) ``model`` with ``method``, per GPU.

    ``model``: a preset name, a config.json path, a model folder, a dict or a transformers
    config. ``settings`` are the fields of :class:`~ftkit.vram.settings.VramSettings`
    (batch_size, seq_len, gradient_checkpointing, optim, lora_rank, lora_targets, bits, dtype,
    attn, loss, compile, ...). ``device="cpu"`` drops the CUDA-only terms (context, transient
    logits buffers) so the total compares with what :func:`ftkit.vram.measure` reads on a CPU.
    """
    s = vram_settings(method=method, **settings)
    arch = architecture(model)
    echo = s.model_dump()
    echo.update(model_type=arch.model_type, params_source=arch.source)
    overhead = CUDA_CONTEXT_BYTES if s.device == "cuda" else 0
    if s.method == "inference":
        return _inference(arch, s, overhead, echo)

    half = s.half_bytes
    shapes = trainable_tensors(arch, s)
    trainable = sum(math.prod(x) for x in shapes)
    train_bytes = half if s.pure_bf16 else 4  # trainable parameters learn in float32 unless pure 16-bit
    frozen = _frozen_weight_bytes(arch, s, trainable)
    weights = frozen + trainable * train_bytes
    gradients = trainable * train_bytes
    optimizer = state_bytes(shapes, s.optim, train_bytes)

    extra, cpu = {}, 0
    if s.zero:
        # DeepSpeed: 16-bit weights and gradients on the GPU; float32 master copy in the optimizer.
        # pure_bf16 (FSDP as torchtune and litgpt run it): no master copy, states in bf16 too.
        if half != 4 and not s.pure_bf16:
            weights = frozen + trainable * half
            gradients = trainable * half
            optimizer = state_bytes(shapes, s.optim, 4) + trainable * 4
        optimizer //= s.gpus
        if s.zero >= 2:
            gradients //= s.gpus
        if s.zero == 3:
            weights //= s.gpus
        if s.offload:  # ZeRO-Offload: optimizer states and gradients live in CPU memory
            cpu += optimizer + gradients
            optimizer = gradients = 0
            if s.zero == 3:
                cpu += weights
                weights = 0
    elif s.gpus > 1:
        extra["ddp_buckets"] = gradients  # DDP reduces gradients through a flat copy of them

    autocast = s.autocast
    saved, recompute = activation_bytes(arch, s.method, batch_size=s.batch_size, seq_len=s.seq_len,
                            dtype=s.dtype, autocast=autocast,
                            gradient_checkpointing=s.gradient_checkpointing, attn=s.attn,
                            lora_rank=s.lora_rank, lora_targets=s.lora_targets,
                            lora_dropout=s.lora_dropout, num_virtual_tokens=s.num_virtual_tokens,
                            freeze_trainable_layers=s.freeze_trainable_layers, device=s.device,
                            compiled=s.compile, activation_offload=s.activation_offload,
                            kbit_upcast=s.kbit_upcast, split=True,
                            kbit_saves_inputs=s.kbit_saves_inputs)
    acts = saved + recompute
    logits = logits_bytes(arch, s.method, batch_size=s.batch_size, seq_len=s.seq_len, dtype=s.dtype,
                          autocast=autocast, num_virtual_tokens=s.num_virtual_tokens, loss=s.loss,
                          compiled=s.compile)
    copies = amp_weight_copy_bytes(arch, s.method, dtype=s.dtype, autocast=autocast,
                                   trainable_shapes=shapes,
                                   gradient_checkpointing=s.gradient_checkpointing,
                                   freeze_trainable_layers=s.freeze_trainable_layers)
    tokens = s.batch_size * (s.seq_len + (s.num_virtual_tokens if s.method in ("prompt", "ptuning") else 0))
    buffers = logits_transient_bytes(arch, tokens=tokens, dtype=s.dtype, autocast=autocast, loss=s.loss,
                                     compiled=s.compile)
    transient = max(buffers.values()) if s.device == "cuda" else 0
    paged = 0
    if is_paged(s.optim) and s.device == "cuda":
        paged, optimizer = optimizer, 0  # unified memory: nvidia-smi sees it, the allocator does not
    scratch = step_temporary_bytes(shapes, s.optim, train_bytes, s.device)
    if s.optimizer_in_backward or s.device != "cuda" or s.zero:
        scratch = 0  # per-parameter steps; DeepSpeed's fused Adam; on a CPU the meter does not read it
    result = dict(weights=weights, gradients=gradients, optimizer=optimizer, activations=acts,
                  logits=logits, amp_weight_copies=copies, transient=transient,
                  optimizer_scratch=scratch, overhead=overhead, **extra)
    largest_grad = max((math.prod(x) for x in shapes), default=0) * (half if s.zero else train_bytes)
    phases = timeline(result, buffers if s.device == "cuda" else {"forward": 0, "backward": 0},
                      step_temp=scratch,
                      largest_grad=largest_grad, settings=s, recompute=recompute)
    reserve = max(buffers.values()) if s.device == "cuda" else 0
    return Estimate(arch.params_total, trainable, result, echo, cpu, phases=phases,
                    reserve_bytes=reserve, paged_bytes=paged, params_active=arch.params_active)


def _frozen_weight_bytes(arch: Architecture, s: VramSettings, trainable: int) -> int:
    half = s.half_bytes
    if s.method == "full":
        return 0
    if s.method == "freeze":
        return (arch.params_total - trainable) * half
    if s.method == "qlora":
        return quantized_model_bytes(arch, s.bits, s.double_quant,
                                     rest_bytes=4 if s.kbit_upcast else half,
                                     expert_bytes=_expert_bytes(s, s.bits))
    return arch.params_total * half


def _expert_bytes(s: VramSettings, bits) -> float:
    """Bytes per fused expert weight: 4-bit (+ absmax) when parametrized, else as loaded (16 bits).

    Stock ``from_pretrained(quantization_config=...)`` in transformers 5 converts ``nn.Linear``
    only; bitsandbytes' ``replace_parameter_4bit`` quantizes a 3-D parameter in 64-value blocks.
    peft's ``prepare_model_for_kbit_training`` would upcast unquantized 16-bit experts to
    float32 (4 bytes): keep them out of it.
    """
    if bits == 4 and s.quantize_experts:
        return 0.5 + (1 + 4 / 256) / BNB_4BIT_BLOCK if s.double_quant else 0.5 + 4 / BNB_4BIT_BLOCK
    return 2


def _inference(arch, s: VramSettings, overhead, echo):
    half = s.half_bytes
    if s.bits:
        weights = quantized_model_bytes(arch, s.bits, s.double_quant, rest_bytes=half,
                                        expert_bytes=_expert_bytes(s, s.bits) if s.bits == 4 else half)
    else:
        weights = arch.params_total * half
    b, t = s.batch_size, s.seq_len
    kv_cache = 2 * arch.layers * b * t * arch.kv_heads * arch.head_dim * half
    # Prefill working set: one layer's largest tensors (MLP) for the whole prompt.
    activations = b * t * (2 * arch.hidden + 3 * arch.ffn) * half
    logits = b * arch.vocab * 4  # generate() computes the last position only
    result = dict(weights=weights, gradients=0, optimizer=0, activations=activations,
                  logits=logits, kv_cache=kv_cache, transient=0, overhead=overhead)
    phases = {"generate": weights + kv_cache + activations + logits}
    return Estimate(arch.params_total, 0, result, echo, phases=phases, params_active=arch.params_active)
