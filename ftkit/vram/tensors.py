"""One parameter tensor of a model, and the role each linear layer plays in a decoder layer.

Taught in lesson 01. :mod:`ftkit.vram.params` lists these for a whole model; the memory model
reads their shapes (weights, gradients, optimizer states) and roles (which input a linear layer
keeps for backward, see :mod:`ftkit.vram.activations`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Last name of a linear module -> what it reads: the first norm's output, the attention
# output, the second norm's output, or the MLP's hidden product. Qwen-1's mlp.w2 is an input
# projection while InternLM2's feed_forward.w2 is the down projection: hence the full paths.
_ATTN_IN = {"q_proj", "k_proj", "v_proj", "W_pack", "query_key_value", "c_attn", "wqkv",
            "q_a_proj", "kv_a_proj_with_mqa"}
_ATTN_OUT = {"o_proj", "dense", "wo", "attn.c_proj", "kv_b_proj", "q_b_proj"}
_MLP_IN = {"gate_proj", "up_proj", "dense_h_to_4h", "w1", "w3", "c_fc", "mlp.w2", "gate",
           "shared_expert_gate"}


@dataclass(frozen=True)
class ParamTensor:
    """One parameter tensor: its name, shape and the kind of module that owns it."""

    name: str
    shape: tuple[int, ...]
    # "linear" (incl. GPT-2's Conv1D), "expert" (fused 3-D expert weights of a mixture of
    # experts), "router", "embedding", "lm_head", "other" (norms, ...)
    kind: str
    layer: int | None = None  # index of the decoder layer, None outside the layer stack

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def module(self) -> str:
        return self.name.rsplit(".", 1)[0]


def linear_role(module: str, model_type: str = "") -> str:
    """``attn_in``, ``attn_out``, ``mlp_in`` or ``mlp_out``: which tensor the linear layer reads."""
    parts = module.split(".")
    last, two = parts[-1], ".".join(parts[-2:])
    if model_type == "qwen" and two == "mlp.w2":
        return "mlp_in"
    if last in _ATTN_IN:
        return "attn_in"
    if last in _ATTN_OUT or two in _ATTN_OUT:
        return "attn_out"
    if last in _MLP_IN and not (model_type == "internlm2" and last == "w2"):
        return "mlp_in"
    return "mlp_out"
