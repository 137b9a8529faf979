"""Parameter counting from a model's ``config.json``, exact to the last parameter.

Taught in lesson 01 (``notebooks/01_vram_calculator.ipynb``). For architectures transformers
knows, the model is built on the ``meta`` device (shapes only, no memory) and its tensors are
listed. For models whose code lives outside transformers (ChatGLM3, Baichuan2), the same list
is written out from the config fields, following the modules of their published code. Every
memory term of :mod:`ftkit.vram.estimate` is computed from this list of tensors.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, ModelNotFoundError
from .presets import load_preset, preset_names

_LAYER = re.compile(r"\.(?:layers|h)\.(\d+)\.")


@dataclass(frozen=True)
class ParamTensor:
    """One parameter tensor: its name, shape and the kind of module that owns it."""

    name: str
    shape: tuple[int, ...]
    kind: str  # "linear" (incl. GPT-2's Conv1D), "embedding", "lm_head", "other" (norms, ...)
    layer: int | None = None  # index of the decoder layer, None outside the layer stack

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def module(self) -> str:
        return self.name.rsplit(".", 1)[0]


@dataclass(frozen=True)
class Architecture:
    """The sizes a memory model needs, plus every parameter tensor of the model."""

    model_type: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    ffn: int
    vocab: int
    tied: bool
    tensors: tuple[ParamTensor, ...]
    source: str  # "meta" (built by transformers on the meta device) or "analytic"
    family: str = "llama"  # "llama" (RMSNorm, RoPE, gated MLP) or "gpt2" (LayerNorm, GELU MLP)
    config: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def params_total(self) -> int:
        return sum(t.numel for t in self.tensors)

    def layer_params(self, layer: int) -> int:
        return sum(t.numel for t in self.tensors if t.layer == layer)

    def linear_modules(self) -> dict[str, tuple[int, int]]:
        """Decoder-layer linear modules -> (in_features, out_features): what LoRA can target."""
        out = {}
        for t in self.tensors:
            if t.kind == "linear" and t.name.endswith(".weight"):
                rows, cols = t.shape
                # nn.Linear stores (out, in); GPT-2's Conv1D stores (in, out).
                out[t.module] = (rows, cols) if self.family == "gpt2" else (cols, rows)
        return out


def load_config(model) -> dict:
    """A config dict from a preset name, a config.json, a model folder, a dict or a HF config."""
    if isinstance(model, dict):
        return dict(model)
    if hasattr(model, "to_dict") and hasattr(model, "model_type"):
        return model.to_dict()
    if not isinstance(model, (str, Path)):
        raise ConfigError(f"model must be a preset name, a path, a dict or a config, not {type(model).__name__}")
    name = str(model)
    path = Path(name).expanduser()
    if not path.exists():
        preset = load_preset(name)
        if preset is not None:
            return preset
    if path.is_dir():
        path = path / "config.json"
        if not path.exists():
            raise ModelNotFoundError(f"{model} is a folder without config.json: not a model folder")
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path}: not valid JSON (line {error.lineno}: {error.msg})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a config.json holds one JSON object, found {type(data).__name__}")
        return data
    return _from_hub(name)


def _from_hub(name: str) -> dict:
    if "/" not in name:
        raise ModelNotFoundError(
            f"unknown model '{name}': not a bundled preset, not a file or folder. "
            f"Presets: {', '.join(preset_names())}; or pass a config.json path or a hub name (org/model)."
        )
    try:
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(name).to_dict()
    except Exception as error:  # offline, unknown repo, remote code: all mean "no config here"
        raise ModelNotFoundError(
            f"could not fetch the config of '{name}' from the model hub ({type(error).__name__}). "
            f"Download its config.json and pass the path, or use a preset: {', '.join(preset_names())}"
        ) from None


def _first(config: dict, *keys, default=None):
    for key in keys:
        if config.get(key) is not None:
            return config[key]
    return default


def _sizes(config: dict) -> dict:
    """The common sizes under the many names configs give them."""
    try:
        hidden = int(_first(config, "hidden_size", "n_embd", "d_model"))
        layers = int(_first(config, "num_hidden_layers", "num_layers", "n_layer"))
        heads = int(_first(config, "num_attention_heads", "n_head"))
        vocab = int(_first(config, "padded_vocab_size", "vocab_size"))
    except TypeError:
        raise ConfigError(
            "the config lacks a basic size: it needs hidden_size (or n_embd), num_hidden_layers "
            "(or num_layers / n_layer), num_attention_heads (or n_head) and vocab_size"
        ) from None
    if config.get("multi_query_attention"):
        kv_heads = int(config.get("multi_query_group_num", 1))
    else:
        kv_heads = int(_first(config, "num_key_value_heads", default=heads))
    head_dim = int(_first(config, "head_dim", "kv_channels", default=hidden // heads))
    ffn = int(_first(config, "intermediate_size", "ffn_hidden_size", "n_inner", default=4 * hidden))
    for key, value in dict(hidden=hidden, layers=layers, heads=heads, vocab=vocab, ffn=ffn).items():
        if value <= 0:
            raise ConfigError(f"config field for {key} must be positive, got {value}")
    return dict(hidden=hidden, layers=layers, heads=heads, kv_heads=kv_heads, head_dim=head_dim,
                ffn=ffn, vocab=vocab)


def _transformers_knows(model_type: str) -> bool:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES


def _meta_tensors(config: dict) -> tuple[list[ParamTensor], bool]:
    """Build the model on the meta device and list its parameters (shared ones once)."""
    import torch
    from torch import nn
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.pytorch_utils import Conv1D

    skip = ("model_type", "auto_map", "architectures", "quantization_config")
    fields = {k: v for k, v in config.items() if k not in skip}
    hf_config = AutoConfig.for_model(config["model_type"], **fields)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(hf_config)
    output = model.get_output_embeddings()
    kinds = {}
    for name, module in model.named_modules():
        if module is output:
            kinds[name] = "lm_head"
        elif isinstance(module, (nn.Linear, Conv1D)):
            kinds[name] = "linear"
        elif isinstance(module, nn.Embedding):
            kinds[name] = "embedding"
    tensors = []
    for name, param in model.named_parameters():
        module = name.rsplit(".", 1)[0]
        match = _LAYER.search(name)
        tensors.append(ParamTensor(name, tuple(param.shape), kinds.get(module, "other"),
                                   int(match.group(1)) if match else None))
    tied = not any(t.kind == "lm_head" for t in tensors)
    return tensors, tied


def _analytic_tensors(config: dict, s: dict) -> tuple[list[ParamTensor], bool, str]:
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


_ANALYTIC_TYPES = {"llama", "mistral", "qwen2", "baichuan", "chatglm", "gpt2"}


def architecture(model, *, analytic: bool | None = None) -> Architecture:
    """The :class:`Architecture` of ``model`` (preset, path, folder, dict or HF config).

    ``analytic=None`` builds on the meta device when transformers knows the model type and
    writes the tensors out from the config otherwise; ``True``/``False`` force one way.
    """
    config = load_config(model)
    return _architecture(json.dumps(config, sort_keys=True, default=str), analytic)


@functools.lru_cache(maxsize=64)
def _architecture(config_json: str, analytic: bool | None) -> Architecture:
    config = json.loads(config_json)
    model_type = config.get("model_type")
    if not model_type:
        raise ConfigError("the config has no 'model_type': it is not a Hugging Face config.json")
    sizes = _sizes(config)
    use_meta = _transformers_knows(model_type) if analytic is None else not analytic
    if use_meta:
        if not _transformers_knows(model_type):
            raise ConfigError(f"transformers has no causal-LM class for model_type '{model_type}'")
        tensors, tied = _meta_tensors(config)
        family = "gpt2" if model_type == "gpt2" else "llama"
        source = "meta"
    else:
        if model_type not in _ANALYTIC_TYPES:
            raise ConfigError(
                f"model_type '{model_type}' is neither known to this transformers version nor one "
                f"ftkit counts from config fields ({', '.join(sorted(_ANALYTIC_TYPES))})"
            )
        tensors, tied, family = _analytic_tensors(config, sizes)
        source = "analytic"
    return Architecture(model_type=model_type, tied=tied, tensors=tuple(tensors), source=source,
                        family=family, config=config, **sizes)


def count_parameters(model) -> int:
    """Total parameters of a model given by preset, path, dict or config (shared weights once)."""
    return architecture(model).params_total
