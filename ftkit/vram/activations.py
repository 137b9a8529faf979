"""Activation memory: the tensors autograd saves for backward, layer by layer.

Taught in lesson 01. Autograd keeps a tensor only when a gradient that is still needed
depends on it: a frozen linear layer keeps no input, a trainable one does; RMSNorm keeps
its float32 input and 1/rms; attention with SDPA/flash keeps q, k, v, its output and a
float32 log-sum-exp per head and token, while eager attention also keeps the softmax
(heads x seq x seq). :func:`layer_terms` lists each saved tensor (elements per token and
bytes per element) for one decoder layer; the numbers were checked tensor by tensor
against ``torch.autograd.graph.saved_tensors_hooks`` on SmolLM2 (see the lesson).
"""

from __future__ import annotations

from .params import Architecture

FP32 = 4
HALF = {"float32": 4, "bfloat16": 2, "float16": 2}


def _short(module: str) -> str:
    return module.rsplit(".", 1)[-1]


def layer_terms(arch: Architecture, *, weights_trainable: bool, lora: dict, lora_rank: int = 8,
                lora_dropout: float = 0.05, dtype: str = "float32", autocast: bool = False,
                residual_bytes: int | None = None, kv_len_ratio: float = 1.0, seq_len: int = 512,
                attn: str = "sdpa", device: str = "cuda", expand_kv: bool = False) -> list:
    """Saved tensors of one decoder layer: ``[(what, elements per token, bytes each), ...]``.

    ``lora`` maps short linear names (``q_proj``) to (in, out) for adapted layers.
    ``kv_len_ratio`` = key length / query length (prefix tuning adds virtual keys).
    ``expand_kv``: grouped-query K/V are repeated to every head (SDPA with an explicit mask).
    """
    A = HALF[dtype]  # linear outputs (16-bit under autocast or a 16-bit model)
    R = residual_bytes or A  # the residual stream: float32 when the embeddings are float32
    h, f, heads = arch.hidden, arch.ffn, arch.heads
    q_dim, kv_dim = heads * arch.head_dim, arch.kv_heads * arch.head_dim
    k_dim = q_dim if (expand_kv or attn == "eager") else kv_dim
    W = weights_trainable
    amp = autocast and W  # float32 trainable weights cast to 16 bits by autocast at each use
    mask_bytes = 1 if device == "cuda" else R  # CUDA dropout keeps a bool mask, CPU a float one
    linear_in = {}  # short name -> which input tensor it reads
    for name in arch.linear_modules():
        short = _short(name)
        if arch.family == "gpt2":
            linear_in[short] = {"c_attn": "norm1", "c_fc": "norm2"}.get(short, "mid")
        elif short in ("q_proj", "k_proj", "v_proj", "W_pack", "query_key_value"):
            linear_in[short] = "norm1"
        elif short in ("gate_proj", "up_proj", "dense_h_to_4h"):
            linear_in[short] = "norm2"
        else:
            linear_in[short] = "mid"  # o_proj/dense read attention output; down_proj the product
    terms = []
    norm_kind = "LayerNorm" if arch.family == "gpt2" else "RMSNorm"
    for norm in ("norm1", "norm2"):
        terms.append((f"{norm} input (float32)", h, FP32))
        terms.append((f"{norm} 1/rms" if norm_kind == "RMSNorm" else f"{norm} mean, 1/std", 1 if norm_kind == "RMSNorm" else 2, FP32))
        if W:
            terms.append((f"{norm} normalized (for its weight's gradient)", h, R if not amp else FP32))
        readers = [s for s, src in linear_in.items() if src == norm]
        needs_input = [s for s in readers if W or (s in lora and lora_dropout == 0)]
        if needs_input and not amp:
            terms.append((f"{norm} output (input of {'/'.join(needs_input)})", h, R))
        elif needs_input:  # autocast makes one 16-bit copy per reader
            terms.append((f"{norm} output cast to 16 bits x{len(needs_input)}", h * len(needs_input), A))
    # attention
    if attn == "eager":
        terms += [("q", q_dim, A), ("k (repeated to every head)", k_dim * kv_len_ratio, A),
                  ("v (repeated to every head)", k_dim * kv_len_ratio, A),
                  ("softmax (heads x keys)", heads * seq_len * kv_len_ratio, FP32)]
        if A != FP32:
            terms.append(("softmax cast back to 16 bits", heads * seq_len * kv_len_ratio, A))
        if W or ("o_proj" in lora and lora_dropout == 0) or arch.family == "gpt2":
            terms.append(("attention output (input of o_proj)", q_dim, A))
    else:
        terms += [("q (after RoPE)", q_dim, A), ("k (after RoPE)", k_dim * kv_len_ratio, A),
                  ("v", k_dim * kv_len_ratio, A), ("attention output", q_dim, A),
                  ("log-sum-exp per head", heads, FP32)]
    # MLP: gate and up outputs, SiLU output, their product (the down projection's input)
    terms += [("gate output", f, A), ("up output", f, A), ("SiLU(gate)", f, A)]
    if W or ("down_proj" in lora and lora_dropout == 0) or ("dense_4h_to_h" in lora and lora_dropout == 0):
        terms.append(("gate x up (input of down_proj)", f, A))
    if arch.family == "gpt2":  # GELU(tanh) keeps a few more intermediates; dropout masks
        terms += [("GELU intermediates", 2 * f, A), ("dropout masks", 3 * h, mask_bytes)]
    # LoRA: each adapted layer keeps its dropout mask and dropped input, and A's output
    for short, (fan_in, _) in lora.items():
        if lora_dropout > 0:
            src_bytes = A if linear_in.get(short) == "mid" else R
            terms.append((f"LoRA {short}: dropout mask", fan_in, mask_bytes))
            terms.append((f"LoRA {short}: dropped input", fan_in, src_bytes))
        terms.append((f"LoRA {short}: A output", lora_rank, A if autocast else R))
    return terms


def _per_layer_lora(arch: Architecture, targets) -> dict:
    from .estimate import lora_modules

    chosen = lora_modules(arch, targets)
    first = {}
    for name, shape in chosen.items():
        if ".0." in name or name.split(".")[-2] == "0":
            first[_short(name)] = shape
    if not first:  # layer numbering not found: take the shapes by short name
        first = {_short(name): shape for name, shape in chosen.items()}
    return first


def _residual_bytes(method: str, dtype: str, autocast: bool) -> int:
    if method in ("full", "qlora"):
        return FP32 if (autocast or dtype == "float32" or method == "qlora") else HALF[dtype]
    return HALF[dtype]


def activation_bytes(arch: Architecture, method: str, *, batch_size: int, seq_len: int,
                     dtype: str = "bfloat16", autocast: bool = False,
                     gradient_checkpointing: bool = False, attn: str = "sdpa", lora_rank: int = 8,
                     lora_targets_="all-linear", lora_dropout: float = 0.05,
                     num_virtual_tokens: int = 20, freeze_trainable_layers: int = 2,
                     device: str = "cuda") -> int:
    """Bytes saved for backward by the decoder layers (and the final norm), at their peak."""
    R = _residual_bytes(method, dtype, autocast)
    act_dtype = "float32" if method == "qlora" else dtype
    p = num_virtual_tokens
    tokens_per_seq = seq_len + (p if method in ("prompt", "ptuning") else 0)
    ratio = (seq_len + p) / seq_len if method == "prefix" else 1.0
    lora = _per_layer_lora(arch, lora_targets_) if method in ("lora", "qlora") else {}
    W = method in ("full", "freeze")
    common = dict(lora=lora, lora_rank=lora_rank, lora_dropout=lora_dropout, dtype=act_dtype,
                  autocast=autocast and method != "qlora", residual_bytes=R, kv_len_ratio=ratio,
                  seq_len=tokens_per_seq, attn=attn, device=device,
                  expand_kv=method == "prefix")
    per_token = sum(n * b for _, n, b in layer_terms(arch, weights_trainable=W, **common))
    layers = arch.layers
    if method == "freeze":
        layers = min(max(freeze_trainable_layers, 0), arch.layers)
    tokens = batch_size * tokens_per_seq
    if gradient_checkpointing and layers:
        # Each layer keeps only its input; backward recomputes one layer at a time.
        layer_total = layers * tokens * arch.hidden * R + tokens * per_token
    else:
        layer_total = layers * tokens * per_token
    # Final norm (input, 1/rms, and normalized when its weight trains) and the input ids.
    final = tokens * (arch.hidden * FP32 + FP32 + (arch.hidden * R if method == "full" else 0))
    ids = tokens * 8 if method == "full" else 0
    return int(layer_total + final + ids)


def amp_weight_copy_bytes(arch: Architecture, method: str, *, dtype: str, autocast: bool,
                          trainable_shapes=(), gradient_checkpointing: bool = False,
                          freeze_trainable_layers: int = 2) -> int:
    """16-bit copies of float32 weights that autocast makes and linear layers keep for backward.

    This is the "+2 bytes per parameter" of mixed precision (4 float32 + 2 half = 6 bytes
    of weights). Frozen 16-bit weights need no copy; under gradient checkpointing only the
    recomputed layer's copies (and the LM head's) are alive at once.
    """
    if not autocast or dtype == "float32":
        return 0
    half = HALF[dtype]
    if method in ("full", "freeze"):
        first = 0 if method == "full" else arch.layers - min(max(freeze_trainable_layers, 0), arch.layers)
        per_layer = [0] * arch.layers
        head = 0
        for t in arch.tensors:
            if t.kind == "linear" and t.name.endswith(".weight") and t.layer is not None and t.layer >= first:
                per_layer[t.layer] += t.numel
            elif method == "full" and (t.kind == "lm_head" or (arch.tied and t.kind == "embedding"
                                                                and t.shape[0] == arch.vocab)):
                head = t.numel
        layers = max(per_layer) if gradient_checkpointing else sum(per_layer)
        return (layers + head) * half
    if method in ("lora", "qlora"):  # the float32 adapters, cast at each use
        return sum(_numel(s) for s in trainable_shapes) * half
    return 0


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def logits_bytes(arch: Architecture, method: str, *, batch_size: int, seq_len: int,
                 dtype: str = "bfloat16", autocast: bool = False, num_virtual_tokens: int = 20) -> int:
    """Bytes saved from the LM head on: float32 log-softmax over the vocabulary, labels, and
    the head's input when the head trains."""
    tokens = batch_size * (seq_len + (num_virtual_tokens if method in ("prompt", "ptuning") else 0))
    total = tokens * arch.vocab * FP32 + tokens * 8 + 4
    if method == "full":
        total += tokens * arch.hidden * (HALF[dtype] if autocast else _residual_bytes(method, dtype, autocast))
    return int(total)
