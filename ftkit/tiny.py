"""Tiny random-initialised models of other families, to run a lesson on an architecture that
is not the default model's (``make test-portable``).

A lesson's claims are of two kinds: mechanisms (LoRA by hand equals peft, a mask covers the
answer, the counts follow the config) hold for any model; outcomes (the model learns its new
name) need a trained model. Running every lesson on a model with other module names, other
biases, an untied head and another chat template shows which cells assumed the default model.

Two families, shrunk from the bundled configs in ``data/model_configs`` to 3-7 M parameters
(most of them the embedding the default tokenizer's vocabulary needs):

* ``qwen2``: Qwen2's decoder (q/k/v projections with biases) with an untied output head;
* ``gpt2``: GPT-2's decoder (one fused ``c_attn`` ``Conv1D`` for q, k and v; learned positions).

Both use the default model's tokenizer with a Llama-3 style chat template and its four special
tokens added (so the vocabulary, the end-of-turn token and the markup all differ from ChatML).
"""

from __future__ import annotations

import json
from pathlib import Path

from .data.templates import LLAMA3
from .paths import DATA_DIR

# Llama-3's markup tokens; <|eot_id|> ends a turn (and so generation), as in Llama-3.
LLAMA3_TOKENS = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]

# The default model's own layout (Llama), shrunk: 2 layers, hidden size 64, ~3.2 M parameters,
# almost all of them the tied embedding the default tokenizer's 49,152 tokens need; token ids as in
# the default model. The tests' plumbing model (tests/conftest.py) and the sharding benchmark's.
TINY_LLAMA = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                  vocab_size=49_152, max_position_embeddings=2048, tie_word_embeddings=True,
                  bos_token_id=1, eos_token_id=2, pad_token_id=2)

# Each family: the bundled config it starts from, and the sizes that shrink it.
FAMILIES = {
    "qwen2": ("qwen2.5-0.5b", dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2,
                                   max_position_embeddings=2048, max_window_layers=2,
                                   sliding_window=2048, tie_word_embeddings=False)),
    "gpt2": ("gpt2", dict(n_embd=64, n_layer=2, n_head=4, n_positions=2048, n_ctx=2048)),
}


def tokenizer_with_llama3_template():
    """The default model's tokenizer with Llama-3's template, markup tokens and end of turn."""
    from . import models

    tokenizer = models.load_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": LLAMA3_TOKENS})
    tokenizer.bos_token, tokenizer.eos_token = "<|begin_of_text|>", "<|eot_id|>"
    tokenizer.pad_token = None  # as Llama-3: no pad token of its own
    tokenizer.chat_template = LLAMA3
    return tokenizer


def build(family: str, target: str | Path, seed: int = 0) -> Path:
    """Write a tiny random ``family`` model folder (config, weights, tokenizer) to ``target``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    if family not in FAMILIES:
        raise ValueError(f"unknown family '{family}'; choose one of {', '.join(FAMILIES)}")
    preset, sizes = FAMILIES[family]
    target = Path(target)
    tokenizer = tokenizer_with_llama3_template()
    fields = json.loads((DATA_DIR / "model_configs" / f"{preset}.json").read_text())
    fields.pop("torch_dtype", None)  # weights are written in fp32; the loader chooses the dtype
    ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    config = AutoConfig.for_model(fields.pop("model_type"), **{**fields, **sizes, **ids,
                                                               "vocab_size": len(tokenizer)})
    with torch.random.fork_rng():  # seeded without touching the caller's random state
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
    model.generation_config = GenerationConfig(**ids, pad_token_id=tokenizer.eos_token_id)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


if __name__ == "__main__":  # python -m ftkit.tiny FAMILY FOLDER
    import sys

    print(build(sys.argv[1], sys.argv[2]))
