"""Bundled model configs (``data/model_configs/*.json``), usable by name: ``llama-2-7b``, ...

Taught in lesson 01. The files are the published ``config.json`` of each model;
``data/model_configs/README.md`` names where each one comes from.
"""

from __future__ import annotations

import json

from ..paths import DATA_DIR

MODEL_CONFIGS_DIR = DATA_DIR / "model_configs"

# Other names people use for the same presets (the embedded default model among them).
ALIASES = {
    "smollm2-135m-instruct": "smollm2-135m",
    "smollm2-360m-instruct": "smollm2-360m",
    "smollm2-1.7b-instruct": "smollm2-1.7b",
    "qwen2.5-0.5b-instruct": "qwen2.5-0.5b",
    "qwen2.5-7b-instruct": "qwen2.5-7b",
    "qwen1.5-7b-chat": "qwen1.5-7b",
    "llama-3-8b-instruct": "llama-3-8b",
    "llama-2-7b-chat": "llama-2-7b",
    "llama-2-13b-chat": "llama-2-13b",
    "mistral-7b-instruct": "mistral-7b",
    "baichuan2-7b-chat": "baichuan2-7b",
    "gpt2-small": "gpt2",
    "meta-llama-3-8b": "llama-3-8b",
    "meta-llama-3-8b-instruct": "llama-3-8b",
    "mistral-7b-v0.1": "mistral-7b",
    "mistral-7b-instruct-v0.2": "mistral-7b",
    "baichuan2-7b-base": "baichuan2-7b",
    # Llama 3.1 8B has Llama 3 8B's tensors (only the RoPE scaling differs)
    "llama-3.1-8b": "llama-3-8b", "meta-llama-3.1-8b": "llama-3-8b", "llama-3.1-8b-instruct": "llama-3-8b",
    "meta-llama-3.1-8b-instruct": "llama-3-8b", "llama-3.2-3b-instruct": "llama-3.2-3b",
    "mixtral-8x7b-v0.1": "mixtral-8x7b", "mixtral-8x7b-instruct-v0.1": "mixtral-8x7b",
    "qwen1.5-moe-a2.7b-chat": "qwen1.5-moe-a2.7b", "deepseek-v2-lite-chat": "deepseek-v2-lite",
    "qwen-7b-chat": "qwen-7b", "internlm2-chat-7b": "internlm2-7b", "glm-4-9b-chat": "glm-4-9b",
    "codellama-34b-hf": "codellama-34b",
}


def preset_names() -> list[str]:
    return sorted(p.stem for p in MODEL_CONFIGS_DIR.glob("*.json"))


def load_preset(name: str) -> dict | None:
    """The config dict of a preset, or ``None`` when ``name`` is not one.

    A hub name of a bundled model (``Qwen/Qwen2.5-7B-Instruct``) finds its preset too.
    """
    text = name.strip()
    if text.count("/") > 1 or text.startswith((".", "/", "~")) or text.endswith(".json"):
        return None
    key = text.split("/")[-1].lower()
    key = key[: -len("-hf")] if key.endswith("-hf") else key
    key = ALIASES.get(key, key)
    path = MODEL_CONFIGS_DIR / f"{key}.json"
    return json.loads(path.read_text()) if path.is_file() else None
