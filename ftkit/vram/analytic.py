"""Parameter lists written out from config fields, for models whose code ships with the weights.

Taught in lesson 01. transformers cannot build remote-code models (``trust_remote_code``:
ChatGLM2/3 and GLM-4, Baichuan2, Qwen-1, InternLM2), so their tensors are listed here module
by module, following each model's published ``modeling_*.py``. The Llama-family branch also
serves configs of known types when ``analytic=True`` (the tests compare it with the meta model).
"""

from __future__ import annotations

from .tensors import ParamTensor

# model_type -> counted here; llama-style configs (Yi, Mistral, Qwen1.5/2) use the last branch.
ANALYTIC_TYPES = {"llama", "mistral", "qwen2", "baichuan", "chatglm", "gpt2", "qwen", "internlm2"}


def _first(config: dict, *keys, default=None):
    for key in keys:
        if config.get(key) is not None:
            return config[key]
    return default


def analytic_tensors(config: dict, s: dict) -> tuple[list[ParamTensor], bool, str]:
    """The parameter list written out from config fields, module by module."""
    model_type = config.get("model_type", "")
    h, f, v, L = s["hidden"], s["ffn"], s["vocab"], s["layers"]
    q, kv = s["heads"] * s["head_dim"], s["kv_heads"] * s["head_dim"]
    out: list[ParamTensor] = []

    def add(name, shape, kind, layer=None):
        out.append(ParamTensor(name, tuple(shape), kind, layer))

    if model_type == "chatglm":  # THUDM modeling_chatglm.py (ChatGLM2/3)
        tied = bool(config.get("tie_word_embeddings", False))
        bias = bool(config.get("add_bias_linear", False))
        qkv_bias = bias or bool(config.get("add_qkv_bias", False))
        add("transformer.embedding.word_embeddings.weight", (v, h), "embedding")
        for i in range(L):
            p = f"transformer.encoder.layers.{i}."
            add(p + "input_layernorm.weight", (h,), "other", i)
            add(p + "self_attention.query_key_value.weight", (q + 2 * kv, h), "linear", i)
            if qkv_bias:
                add(p + "self_attention.query_key_value.bias", (q + 2 * kv,), "linear", i)
            add(p + "self_attention.dense.weight", (h, q), "linear", i)
            if bias:
                add(p + "self_attention.dense.bias", (h,), "linear", i)
            add(p + "post_attention_layernorm.weight", (h,), "other", i)
            add(p + "mlp.dense_h_to_4h.weight", (2 * f, h), "linear", i)  # gate and up, fused
            if bias:
                add(p + "mlp.dense_h_to_4h.bias", (2 * f,), "linear", i)
            add(p + "mlp.dense_4h_to_h.weight", (h, f), "linear", i)
            if bias:
                add(p + "mlp.dense_4h_to_h.bias", (h,), "linear", i)
        if config.get("post_layer_norm", True):
            add("transformer.encoder.final_layernorm.weight", (h,), "other")
        if not tied:
            add("transformer.output_layer.weight", (v, h), "lm_head")
        return out, tied, "llama"
    if model_type == "qwen":  # Qwen-1 modeling_qwen.py: fused c_attn with bias; w1, w2 of ffn each
        tied = bool(config.get("tie_word_embeddings", False))
        bias = not config.get("no_bias", True)
        half_ffn = f  # intermediate_size / 2 (see params._sizes)
        add("transformer.wte.weight", (v, h), "embedding")
        for i in range(L):
            p = f"transformer.h.{i}."
            add(p + "ln_1.weight", (h,), "other", i)
            add(p + "attn.c_attn.weight", (3 * q, h), "linear", i)
            add(p + "attn.c_attn.bias", (3 * q,), "linear", i)
            add(p + "attn.c_proj.weight", (h, q), "linear", i)
            add(p + "ln_2.weight", (h,), "other", i)
            for name, shape in (("mlp.w1", (half_ffn, h)), ("mlp.w2", (half_ffn, h)),
                                ("mlp.c_proj", (h, half_ffn))):
                add(p + name + ".weight", shape, "linear", i)
                if bias:
                    add(p + name + ".bias", shape[:1], "linear", i)
        add("transformer.ln_f.weight", (h,), "other")
        if not tied:
            add("lm_head.weight", (v, h), "lm_head")
        return out, tied, "llama"
    if model_type == "internlm2":  # InternLM2 modeling_internlm2.py: fused wqkv, w1/w3 gate/up, w2 down
        tied = bool(config.get("tie_word_embeddings", False))
        bias = bool(config.get("bias", False))
        add("model.tok_embeddings.weight", (v, h), "embedding")
        for i in range(L):
            p = f"model.layers.{i}."
            for name, shape in (("attention.wqkv", (q + 2 * kv, h)), ("attention.wo", (h, q)),
                                ("feed_forward.w1", (f, h)), ("feed_forward.w3", (f, h)),
                                ("feed_forward.w2", (h, f))):
                add(p + name + ".weight", shape, "linear", i)
                if bias:
                    add(p + name + ".bias", shape[:1], "linear", i)
            add(p + "attention_norm.weight", (h,), "other", i)
            add(p + "ffn_norm.weight", (h,), "other", i)
        add("model.norm.weight", (h,), "other")
        if not tied:
            add("output.weight", (v, h), "lm_head")
        return out, tied, "llama"
    if model_type == "gpt2":
        tied = bool(config.get("tie_word_embeddings", True))
        add("transformer.wte.weight", (v, h), "embedding")
        add("transformer.wpe.weight", (int(_first(config, "n_positions", default=1024)), h), "embedding")
        for i in range(L):
            p = f"transformer.h.{i}."
            for norm in ("ln_1", "ln_2"):
                add(p + norm + ".weight", (h,), "other", i)
                add(p + norm + ".bias", (h,), "other", i)
            for name, (a, b) in (("attn.c_attn", (h, 3 * h)), ("attn.c_proj", (h, h)),
                                 ("mlp.c_fc", (h, f)), ("mlp.c_proj", (f, h))):
                add(p + name + ".weight", (a, b), "linear", i)
                add(p + name + ".bias", (b,), "linear", i)
        add("transformer.ln_f.weight", (h,), "other")
        add("transformer.ln_f.bias", (h,), "other")
        if not tied:
            add("lm_head.weight", (v, h), "lm_head")
        return out, tied, "gpt2"
    # Llama family: Llama, Mistral, Qwen1.5/2/2.5, SmolLM2, and Baichuan2 (fused W_pack).
    tied = bool(config.get("tie_word_embeddings", False))
    qkv_bias = bool(config.get("attention_bias", False)) or model_type == "qwen2"
    mlp_bias = bool(config.get("mlp_bias", False))
    add("model.embed_tokens.weight", (v, h), "embedding")
    for i in range(L):
        p = f"model.layers.{i}."
        if model_type == "baichuan":
            add(p + "self_attn.W_pack.weight", (q + 2 * kv, h), "linear", i)
        else:
            for name, rows in (("q_proj", q), ("k_proj", kv), ("v_proj", kv)):
                add(p + f"self_attn.{name}.weight", (rows, h), "linear", i)
                if qkv_bias:
                    add(p + f"self_attn.{name}.bias", (rows,), "linear", i)
        add(p + "self_attn.o_proj.weight", (h, q), "linear", i)
        if config.get("attention_bias", False):
            add(p + "self_attn.o_proj.bias", (h,), "linear", i)
        for name, shape in (("gate_proj", (f, h)), ("up_proj", (f, h)), ("down_proj", (h, f))):
            add(p + f"mlp.{name}.weight", shape, "linear", i)
            if mlp_bias:
                add(p + f"mlp.{name}.bias", shape[:1], "linear", i)
        add(p + "input_layernorm.weight", (h,), "other", i)
        add(p + "post_attention_layernorm.weight", (h,), "other", i)
    add("model.norm.weight", (h,), "other")
    if not tied:
        add("lm_head.weight", (v, h), "lm_head")
    return out, tied, "llama"
