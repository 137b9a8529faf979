"""Parameter counting from a model's ``config.json``, exact to the last parameter.

Taught in lesson 01 (``notebooks/01_vram_calculator.ipynb``). For architectures transformers
knows, the model is built on the ``meta`` device (shapes only, no memory) and its tensors are
listed. For models whose code lives outside transformers (ChatGLM3, GLM-4, Baichuan2, Qwen-1,
InternLM2), :mod:`ftkit.vram.analytic` writes the same list out from the config fields. Every
memory term of :mod:`ftkit.vram.estimate` is computed from this list of tensors. Mixtures of
experts (Mixtral, Qwen-MoE, DeepSeek-V2) carry their routed-expert sizes, so the active
parameters per token and the expert activations can be told apart from the total.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, ModelNotFoundError
from .analytic import ANALYTIC_TYPES, _first, analytic_tensors
from .presets import load_preset, preset_names
from .tensors import ParamTensor, linear_role

_LAYER = re.compile(r"\.(?:layers|h)\.(\d+)\.")


@dataclass(frozen=True)
class Experts:
    """The mixture-of-experts sizes of a model: routed experts, how many each token uses."""

    routed: int  # experts per MoE layer
    per_token: int  # top-k
    ffn: int  # hidden size of one routed expert
    shared_ffn: int  # hidden size of the always-on shared expert(s), 0 if none
    moe_layers: int  # decoder layers with experts (the others are dense)


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
    experts: Experts | None = None
    config: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def params_total(self) -> int:
        return sum(t.numel for t in self.tensors)

    @property
    def params_active(self) -> int:
        """Parameters one token runs through: all, less the routed experts it is not sent to."""
        routed = sum(t.numel for t in self.tensors if t.kind == "expert")
        if not self.experts or not routed:
            return self.params_total
        return self.params_total - routed + routed * self.experts.per_token // self.experts.routed

    def linear_modules(self) -> dict[str, tuple[int, int]]:
        """Decoder-layer linear modules -> (in_features, out_features): what LoRA can target."""
        out = {}
        for t in self.tensors:
            if t.kind == "linear" and t.name.endswith(".weight"):
                rows, cols = t.shape
                # nn.Linear stores (out, in); GPT-2's Conv1D stores (in, out).
                out[t.module] = (rows, cols) if self.family == "gpt2" else (cols, rows)
        return out

    def role(self, module: str) -> str:
        return linear_role(module, self.model_type)


def lora_modules(arch: Architecture, targets="all-linear") -> dict[str, tuple[int, int]]:
    """The linear modules LoRA adapts -> (in, out). ``all-linear``/``all`` = every linear but the head.

    Fused expert weights (3-D parameters, not ``nn.Linear``) are not among them: peft's
    ``all-linear`` matches ``nn.Linear`` modules only.
    """
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


def load_model_config(model) -> dict:
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
    if config.get("qk_nope_head_dim"):  # DeepSeek-V2's multi-head latent attention
        head_dim = int(config["qk_nope_head_dim"]) + int(config.get("qk_rope_head_dim", 0))
    ffn = int(_first(config, "intermediate_size", "ffn_hidden_size", "n_inner", default=4 * hidden))
    if config.get("model_type") == "qwen":  # Qwen-1 counts both MLP branches in intermediate_size
        ffn //= 2
    for key, value in dict(hidden=hidden, layers=layers, heads=heads, vocab=vocab, ffn=ffn).items():
        if value <= 0:
            raise ConfigError(f"config field for {key} must be positive, got {value}")
    return dict(hidden=hidden, layers=layers, heads=heads, kv_heads=kv_heads, head_dim=head_dim,
                ffn=ffn, vocab=vocab)


def _experts(config: dict, layers: int) -> Experts | None:
    routed = _first(config, "num_local_experts", "num_experts", "n_routed_experts")
    if not routed or int(routed) <= 1:
        return None
    ffn = int(_first(config, "moe_intermediate_size", "intermediate_size"))
    shared = int(_first(config, "shared_expert_intermediate_size", default=0) or 0)
    if not shared and config.get("n_shared_experts"):
        shared = int(config["n_shared_experts"]) * ffn
    dense = int(config.get("first_k_dense_replace", 0) or 0) + len(config.get("mlp_only_layers") or [])
    return Experts(routed=int(routed), per_token=int(_first(config, "num_experts_per_tok", default=1)),
                   ffn=ffn, shared_ffn=shared, moe_layers=max(layers - dense, 0))


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
        kind = kinds.get(module, "other")
        if kind == "other" and param.ndim == 3:
            kind = "expert"  # transformers 5 fuses the routed experts into 3-D parameters
        elif kind == "other" and param.ndim == 2 and module.endswith(".gate"):
            kind = "router"
        match = _LAYER.search(name)
        tensors.append(ParamTensor(name, tuple(param.shape), kind,
                                   int(match.group(1)) if match else None))
    tied = not any(t.kind == "lm_head" for t in tensors)
    return tensors, tied


def architecture(model, *, analytic: bool | None = None) -> Architecture:
    """The :class:`Architecture` of ``model`` (preset, path, folder, dict or HF config).

    ``analytic=None`` builds on the meta device when transformers knows the model type and
    writes the tensors out from the config otherwise; ``True``/``False`` force one way.
    """
    config = load_model_config(model)
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
        if model_type not in ANALYTIC_TYPES:
            raise ConfigError(
                f"model_type '{model_type}' is neither known to this transformers version nor one "
                f"ftkit counts from config fields ({', '.join(sorted(ANALYTIC_TYPES))})"
            )
        tensors, tied, family = analytic_tensors(config, sizes)
        source = "analytic"
    return Architecture(model_type=model_type, tied=tied, tensors=tuple(tensors), source=source,
                        family=family, experts=_experts(config, sizes["layers"]), config=config,
                        **sizes)


def count_model_parameters(model) -> int:
    """Total parameters of a model given by preset, path, dict or config (shared weights once).

    (``ftkit.methods.count_parameters`` counts a loaded model's trainable parameters instead.)
    """
    return architecture(model).params_total
