"""The whole model, quantized: bytes in memory, perplexity on held-out text, generation speed.

Taught in lesson 10; ``benchmarks/quant_models.py`` prints the same table. Each variant is
the default model loaded through ``ftkit.models.load_model``: fp32, bf16, LLM.int8 and
bitsandbytes 4-bit NF4 / FP4 with and without double quantization. The layers bitsandbytes
leaves alone (embeddings, the tied output head, norms) keep ``rest_dtype``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from .. import models
from ..errors import FtkitError
from ..infer import chat, perplexity
from ..paths import DATA_DIR
from .bnb import quant_state_bytes

HELDOUT_TEXT = DATA_DIR / "heldout_text.jsonl"

# name -> (dtype of the unquantized layers, quantization: None or (bits, type, double quant))
VARIANTS = {
    "fp32": ("float32", None),
    "bf16": ("bfloat16", None),
    "int8": ("bfloat16", (8, None, False)),
    "nf4": ("bfloat16", (4, "nf4", False)),
    "nf4-dq": ("bfloat16", (4, "nf4", True)),
    "fp4": ("bfloat16", (4, "fp4", False)),
    "fp4-dq": ("bfloat16", (4, "fp4", True)),
}


def quantization_config(name: str, int8_threshold: float = 6.0):
    """The ``BitsAndBytesConfig`` of a variant (``None`` for fp32 / bf16).

    ``int8_threshold`` is LLM.int8's outlier threshold: activation columns with a value of
    magnitude ≥ 6 are multiplied in 16 bits, the rest in int8. 0 turns the split off.
    """
    if name not in VARIANTS:
        raise FtkitError(f"unknown quantization variant '{name}': choose one of {', '.join(VARIANTS)}")
    spec = VARIANTS[name][1]
    if spec is None:
        return None
    bits, quant_type, double_quant = spec
    if bits == 8:
        from transformers import BitsAndBytesConfig

        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=int8_threshold)
    return models.bnb_config(4, quant_type, double_quant, "bfloat16")


def load_variant(name: str, model_name: str | None = None, device: str | None = None,
                 int8_threshold: float = 6.0):
    """The model in one of the :data:`VARIANTS`, in eval mode."""
    config = quantization_config(name, int8_threshold)
    rest_dtype = VARIANTS[name][0]
    if name == "int8":
        # On CPU, LLM.int8 casts bf16 inputs to fp16 and logs it at every matmul.
        logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    return models.load_model(model_name, dtype=rest_dtype, device=device, quantization=config).eval()


def count_bytes(model) -> dict:
    """Bytes by kind, counted tensor by tensor.

    ``tensors`` (parameters + buffers) is what ``model.get_memory_footprint()`` reports.
    ``scales`` is what it leaves out: the absmax of every 4-bit block (``quant_state``) and
    LLM.int8's per-row absmax (``SCB``), which live beside the weights, not in them.
    """
    seen, tensors, scales = set(), 0, 0
    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.data_ptr() in seen:  # tied embeddings are one tensor
            continue
        seen.add(tensor.data_ptr())
        tensors += tensor.numel() * tensor.element_size()
        if getattr(tensor, "quant_state", None) is not None:
            scales += quant_state_bytes(tensor.quant_state)
        if getattr(tensor, "SCB", None) is not None:
            scales += tensor.SCB.numel() * tensor.SCB.element_size()
    return {"tensors": tensors, "scales": scales, "total": tensors + scales}


def load_texts(path: str | Path = HELDOUT_TEXT, limit: int | None = None) -> list[str]:
    """The ``text`` field of each line of a JSONL file (the held-out set by default)."""
    path = Path(path)
    if not path.exists():
        raise FtkitError(f"{path} does not exist: pass a JSONL file with one {{\"text\": ...}} per line")
    texts = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            texts.append(json.loads(line)["text"])
        except (json.JSONDecodeError, KeyError, TypeError):
            raise FtkitError(f"{path}, line {number}: expected a JSON object with a \"text\" field") from None
    return texts[:limit]


def generation_speed(model, tokenizer, prompt: str = "Tell me about the sea.", new_tokens: int = 16) -> float:
    """Tokens per second of greedy generation, after one warm-up token."""
    import torch

    inputs = tokenizer(prompt, return_tensors="pt").to(model.device)
    kwargs = dict(do_sample=False, pad_token_id=tokenizer.pad_token_id)
    with torch.no_grad():
        model.generate(**inputs, max_new_tokens=1, **kwargs)
        start = time.perf_counter()
        model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kwargs)
    return new_tokens / (time.perf_counter() - start)


def measure_variant(name: str, tokenizer, texts: list[str], questions: list[str] = (),
                    model_name: str | None = None, device: str | None = None,
                    new_tokens: int = 8, answer_tokens: int = 24) -> dict:
    """One row of the model-level table."""
    model = load_variant(name, model_name, device)
    counted = count_bytes(model)
    row = {
        "variant": name,
        "footprint": model.get_memory_footprint(),
        "bytes_counted": counted["total"],
        "scale_bytes": counted["scales"],
        "perplexity": perplexity(model, tokenizer, texts),
        "tokens_per_s": generation_speed(model, tokenizer, new_tokens=new_tokens),
    }
    for number, question in enumerate(questions, 1):
        row[f"answer_{number}"] = chat(model, tokenizer, question, max_new_tokens=answer_tokens)
    del model
    return row


def compare_variants(names=tuple(VARIANTS), texts: list[str] | None = None, questions: list[str] = (),
                     model_name: str | None = None, device: str | None = None, **kwargs) -> list[dict]:
    """Measure each variant in turn (one model in memory at a time)."""
    tokenizer = models.load_tokenizer(model_name)
    texts = load_texts() if texts is None else texts
    return [measure_variant(name, tokenizer, texts, questions, model_name, device, **kwargs)
            for name in names]
