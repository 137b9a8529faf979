"""Activation memory: the tensors autograd saves for backward, layer by layer.

Taught in lesson 01. Autograd keeps a tensor only when a gradient that is still needed
depends on it: a frozen linear layer keeps no input, a trainable one does; RMSNorm keeps
its float32 input and 1/rms; attention with SDPA/flash keeps q, k, v, its output and a
float32 log-sum-exp per head and token, while eager attention also keeps the softmax
(heads x seq x seq). :func:`layer_terms` lists each saved tensor (elements per token and
bytes per element) for one decoder layer; the numbers were checked tensor by tensor
against ``torch.autograd.graph.saved_tensors_hooks`` on SmolLM2 (see the lesson).

A mixture-of-experts layer runs each token through ``k`` routed experts (and the shared
ones), so its MLP terms are those of ``k`` small MLPs plus the router's float32 softmax.
``torch.compile`` recomputes pointwise results (SiLU, the gate x up product) in backward
from the saved matmul outputs instead of keeping them.
"""

from __future__ import annotations

import math

from .params import Architecture, lora_modules

FP32 = 4
HALF = {"float32": 4, "bfloat16": 2, "float16": 2}


def _short(module: str) -> str:
    return module.rsplit(".", 1)[-1]


def _inside(name: str) -> str:
    """A module's path inside its decoder layer (``self_attn.q_proj``), or the name itself."""
    parts = name.split(".")
    for i, part in enumerate(parts[:-1]):
        if part.isdigit() and i and parts[i - 1] in ("layers", "h"):
            return ".".join(parts[i + 1:])
    return name


def _dropout(arch: Architecture, key: str) -> float:
    return float(arch.config.get(key) or 0.0)


def attention_dropout(arch: Architecture) -> float:
    """The dropout on attention probabilities during training (GPT-2's attn_pdrop)."""
    return _dropout(arch, "attn_pdrop") or _dropout(arch, "attention_dropout")


def _mlp_widths(arch: Architecture, moe_layer: bool) -> list[int]:
    """Hidden widths of the gated MLPs a token runs through in one layer (GPT-2's is not gated)."""
    if arch.family == "gpt2":
        return []
    e = arch.experts
    if not moe_layer or e is None:
        return [arch.ffn]
    return [e.ffn] * e.per_token + ([e.shared_ffn] if e.shared_ffn else [])


def layer_terms(arch: Architecture, *, weights_trainable: bool, lora: dict, lora_rank: int = 8,
                lora_dropout: float = 0.05, dtype: str = "float32", autocast: bool = False,
                residual_bytes: int | None = None, kv_len_ratio: float = 1.0, seq_len: int = 512,
                attn: str = "sdpa", device: str = "cuda", expand_kv: bool = False,
                moe_layer: bool = False, compiled: bool = False, saves_inputs: bool = False) -> list:
    """Saved tensors of one decoder layer: ``[(what, elements per token, bytes each), ...]``.

    ``lora`` maps module paths inside a layer (``self_attn.q_proj``) to (in, out) for adapted layers.
    ``kv_len_ratio`` = key length / query length (prefix tuning adds virtual keys).
    ``expand_kv``: grouped-query K/V are repeated to every head (SDPA with an explicit mask).
    ``saves_inputs``: frozen linear layers keep their input anyway (older bitsandbytes 4-bit layers).
    """
    A = HALF[dtype]  # linear outputs (16-bit under autocast or a 16-bit model)
    R = residual_bytes or A  # the residual stream: float32 when the embeddings are float32
    h, heads = arch.hidden, arch.heads
    q_dim, kv_dim = heads * arch.head_dim, arch.kv_heads * arch.head_dim
    k_dim = q_dim if (expand_kv or attn == "eager") else kv_dim
    W = weights_trainable
    amp = autocast and W  # float32 trainable weights cast to 16 bits by autocast at each use
    mask_bytes = 1 if device == "cuda" else R  # CUDA dropout keeps a bool mask, CPU a float one
    source = {"attn_in": "norm1", "mlp_in": "norm2", "attn_out": "mid", "mlp_out": "mid"}
    linear_in = {}  # module path inside the layer -> which input tensor it reads
    for name in arch.linear_modules():
        inside = _inside(name)
        if arch.family == "gpt2":
            linear_in[inside] = {"c_attn": "norm1", "c_fc": "norm2"}.get(_short(name), "mid")
        else:
            linear_in[inside] = source[arch.role(name)]
    shorts = {_short(k) for k in lora}
    terms = []
    norm_kind = "LayerNorm" if arch.family == "gpt2" else "RMSNorm"
    for norm in ("norm1", "norm2"):
        terms.append((f"{norm} input (float32)", h, FP32))
        terms.append((f"{norm} 1/rms" if norm_kind == "RMSNorm" else f"{norm} mean, 1/std", 1 if norm_kind == "RMSNorm" else 2, FP32))
        if W and norm_kind == "RMSNorm":  # torch's LayerNorm recomputes it from mean and 1/std
            terms.append((f"{norm} normalized (for its weight's gradient)", h, R if not amp else FP32))
        readers = sorted({_short(s) for s, src in linear_in.items() if src == norm})
        needs_input = [s for s in readers if W or saves_inputs or (s in shorts and lora_dropout == 0)]
        if moe_layer and norm == "norm2" and W:
            needs_input = needs_input[:1]  # routed experts read gathered copies, counted below
        if needs_input and not amp:
            terms.append((f"{norm} output (input of {'/'.join(needs_input)})", h, R))
        elif needs_input:  # autocast makes one 16-bit copy per reader
            terms.append((f"{norm} output cast to 16 bits x{len(needs_input)}", h * len(needs_input), A))
    # attention
    if attn == "eager":
        terms += [("q", q_dim, A), ("k (repeated to every head)", k_dim * kv_len_ratio, A),
                  ("v (repeated to every head)", k_dim * kv_len_ratio, A),
                  ("softmax (heads x keys)", heads * seq_len * kv_len_ratio, FP32)]
        if A != FP32 and not compiled:
            terms.append(("softmax cast back to 16 bits", heads * seq_len * kv_len_ratio, A))
        if W or saves_inputs or ("o_proj" in shorts and lora_dropout == 0) or arch.family == "gpt2":
            terms.append(("attention output (input of o_proj)", q_dim, A))
    elif attention_dropout(arch) > 0 and device == "cpu":
        # SDPA with dropout has no fused kernel on a CPU: the math path keeps the probabilities,
        # the dropout mask and the dropped probabilities, each heads x keys per token.
        keys = heads * seq_len * kv_len_ratio
        terms += [("q", q_dim, A), ("k", k_dim * kv_len_ratio, A), ("v", k_dim * kv_len_ratio, A),
                  ("softmax (heads x keys)", keys, A), ("attention dropout mask", keys, mask_bytes),
                  ("dropped probabilities", keys, A), ("attention output", q_dim, A)]
    else:
        terms += [("q (after RoPE)", q_dim, A), ("k (after RoPE)", k_dim * kv_len_ratio, A),
                  ("v", k_dim * kv_len_ratio, A), ("attention output", q_dim, A),
                  ("log-sum-exp per head", heads, FP32)]
    # MLP: gate and up outputs, SiLU output, their product (the down projection's input)
    down_keeps = W or saves_inputs or (lora_dropout == 0 and bool(shorts & {"down_proj", "dense_4h_to_h", "w2", "c_proj"}))
    if arch.family == "gpt2":  # GELU's tanh form keeps its input, tanh, x/2 and 1 + tanh
        terms.append(("GELU input and intermediates", 4 * arch.ffn, A))
        if down_keeps:
            terms.append(("GELU output (input of c_proj)", arch.ffn, A))
        if _dropout(arch, "resid_pdrop") > 0:  # after attention and after the MLP
            terms.append(("residual dropout masks", 2 * h, mask_bytes))
    for i, width in enumerate(_mlp_widths(arch, moe_layer)):
        tag = "" if not moe_layer else (f" (expert {i + 1})" if i < arch.experts.per_token else " (shared)")
        if moe_layer and W and i < arch.experts.per_token:
            terms.append((f"token copy gathered for the expert{tag}", h, A))
        terms += [(f"gate output{tag}", width, A), (f"up output{tag}", width, A)]
        if not compiled:
            terms.append((f"SiLU(gate){tag}", width, A))
            if down_keeps:
                terms.append((f"gate x up (input of down_proj){tag}", width, A))
    if moe_layer:
        e = arch.experts
        terms.append(("router softmax (float32, one per expert)", e.routed, FP32))
        terms.append(("expert outputs weighted by the router", e.per_token * h, A))
    # LoRA: each adapted layer keeps its dropout mask and dropped input, and A's output
    for inside, (fan_in, _) in lora.items():
        short = _short(inside)
        if lora_dropout > 0:
            src_bytes = A if linear_in.get(inside) == "mid" else R
            terms.append((f"LoRA {short}: dropout mask", fan_in, mask_bytes))
            terms.append((f"LoRA {short}: dropped input", fan_in, src_bytes))
        terms.append((f"LoRA {short}: A output", lora_rank, A if autocast else R))
    return terms


def per_layer_lora(arch: Architecture, targets) -> dict:
    """The adapted modules of one decoder layer (the first one found), keyed by path inside it."""
    chosen = lora_modules(arch, targets)
    layer = {}
    for name, shape in chosen.items():
        if _inside(name) != name and (".0." in name):
            layer[_inside(name)] = shape
    if not layer:  # layer numbering not found: take the shapes by short name
        layer = {_short(name): shape for name, shape in chosen.items()}
    return layer


def _residual_bytes(method: str, dtype: str, autocast: bool) -> int:
    if method in ("full", "qlora"):
        return FP32 if (autocast or dtype == "float32" or method == "qlora") else HALF[dtype]
    return HALF[dtype]


def activation_bytes(arch: Architecture, method: str, *, batch_size: int, seq_len: int,
                     dtype: str = "bfloat16", autocast: bool = False,
                     gradient_checkpointing: bool = False, attn: str = "sdpa", lora_rank: int = 8,
                     lora_targets="all-linear", lora_dropout: float = 0.05,
                     num_virtual_tokens: int = 20, freeze_trainable_layers: int = 2,
                     device: str = "cuda", compiled: bool = False,
                     activation_offload: bool = False, kbit_upcast: bool = True, split: bool = False,
                     kbit_saves_inputs: bool = False):
    """Bytes saved for backward by the decoder layers (and the final norm), at their peak.

    ``split=True`` returns ``(saved at the end of forward, recomputed in backward)``: under
    gradient checkpointing one layer's full set exists only while backward recomputes it,
    after the logits are gone.
    """
    upcast = method == "qlora" and kbit_upcast  # prepare_model_for_kbit_training: float32 states
    R = _residual_bytes(method if upcast or method != "qlora" else "lora", dtype, autocast)
    act_dtype = "float32" if upcast else dtype
    p = num_virtual_tokens
    tokens_per_seq = seq_len + (p if method in ("prompt", "ptuning") else 0)
    ratio = (seq_len + p) / seq_len if method == "prefix" else 1.0
    lora = per_layer_lora(arch, lora_targets) if method in ("lora", "qlora") else {}
    W = method in ("full", "freeze")
    common = dict(lora=lora, lora_rank=lora_rank, lora_dropout=lora_dropout, dtype=act_dtype,
                  autocast=autocast and not upcast, residual_bytes=R, kv_len_ratio=ratio,
                  seq_len=tokens_per_seq, attn=attn, device=device,
                  expand_kv=method == "prefix", compiled=compiled,
                  saves_inputs=method == "qlora" and kbit_saves_inputs)

    def per_token(moe_layer: bool) -> float:
        return sum(n * b for _, n, b in layer_terms(arch, weights_trainable=W, moe_layer=moe_layer, **common))

    layers = arch.layers
    if method == "freeze":
        layers = min(max(freeze_trainable_layers, 0), arch.layers)
    moe = min(arch.experts.moe_layers, layers) if arch.experts else 0
    dense_token, moe_token = per_token(False), (per_token(True) if moe else 0.0)
    tokens = batch_size * tokens_per_seq
    recompute = 0
    if gradient_checkpointing and layers:
        # Each layer keeps only its input; backward recomputes one layer at a time. Offloaded,
        # the inputs wait in CPU memory and two are on the GPU at once (in use, prefetched).
        kept = min(2, layers) if activation_offload else layers
        layer_total = kept * tokens * arch.hidden * R
        recompute = tokens * max(dense_token, moe_token)
    else:
        layer_total = tokens * ((layers - moe) * dense_token + moe * moe_token)
    # Final norm (input, 1/rms, and normalized when its weight trains) and the input ids.
    if arch.family == "gpt2":  # LayerNorm: input, mean and 1/std; the embedding's dropout mask
        mask = (1 if device == "cuda" else R) if _dropout(arch, "embd_pdrop") > 0 else 0
        final = tokens * (arch.hidden * FP32 + 2 * FP32 + arch.hidden * mask)
    else:
        final = tokens * (arch.hidden * FP32 + FP32 + (arch.hidden * R if method == "full" else 0))
    ids = tokens * 8 if method == "full" else 0
    if split:
        return int(layer_total + final + ids), int(recompute)
    return int(layer_total + final + ids + recompute)


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
            if t.kind in ("linear", "expert") and t.name.endswith((".weight", "_proj")) \
                    and t.layer is not None and t.layer >= first:
                per_layer[t.layer] += t.numel
            elif method == "full" and (t.kind == "lm_head" or (arch.tied and t.kind == "embedding"
                                                                and t.shape[0] == arch.vocab)):
                head = t.numel
        layers = max(per_layer) if gradient_checkpointing else sum(per_layer)
        return (layers + head) * half
    if method in ("lora", "qlora"):  # the float32 adapters, cast at each use
        return sum(math.prod(s) for s in trainable_shapes) * half
    return 0


def logits_bytes(arch: Architecture, method: str, *, batch_size: int, seq_len: int,
                 dtype: str = "bfloat16", autocast: bool = False, num_virtual_tokens: int = 20,
                 loss: str = "eager", compiled: bool = False) -> int:
    """Bytes saved from the LM head on: the loss's saved tensor, labels, and the head's input
    when the head trains.

    ``eager``: the float32 log-softmax over the vocabulary. ``chunked``: the same, one chunk at
    a time, unless compiled (then the 16-bit logits and one log-sum-exp per token). ``fused_linear``:
    no logits; the gradient of the hidden states, computed during forward, is kept instead.
    """
    tokens = batch_size * (seq_len + (num_virtual_tokens if method in ("prompt", "ptuning") else 0))
    half = HALF[dtype] if (autocast or dtype != "float32") else FP32
    if loss == "fused_linear":
        saved = tokens * arch.hidden * half
    elif loss == "chunked" and compiled:
        saved = tokens * arch.vocab * half + tokens * FP32
    else:
        saved = tokens * arch.vocab * FP32
    total = saved + tokens * 8 + 4
    if method == "full" and loss != "fused_linear":
        total += tokens * arch.hidden * (HALF[dtype] if autocast else _residual_bytes(method, dtype, autocast))
    return int(total)


def logits_transient_bytes(arch: Architecture, *, tokens: int, dtype: str, autocast: bool,
                           loss: str, compiled: bool = False) -> dict:
    """Logit-sized buffers alive only around the loss: ``{"forward": ..., "backward": ...}``.

    eager: the logits the head returns (16-bit) and their float32 copy exist while the
    log-softmax runs; in backward the gradient w.r.t. the log-softmax output and w.r.t. the
    logits (both float32) exist with the saved log-softmax. chunked: one chunk (1/8) of those.
    fused_linear: a chunk of logits about the size of the hidden states (Liger's heuristic).
    """
    half = HALF[dtype] if (autocast or dtype != "float32") else FP32
    full = tokens * arch.vocab
    if loss == "fused_linear":
        chunk = tokens * arch.hidden
        return {"forward": chunk * (half + 2 * FP32), "backward": chunk * (half + 2 * FP32)}
    upcast = FP32 if half != FP32 else 0
    if loss == "chunked" and compiled:  # the saved 16-bit chunks are the model's output itself
        return {"forward": full // 8 * (upcast + FP32), "backward": full // 8 * (half + 2 * FP32)}
    if loss == "chunked":
        return {"forward": full * half + full // 8 * (upcast + FP32), "backward": full // 8 * 2 * FP32}
    return {"forward": full * (half + upcast), "backward": full * 2 * FP32}
