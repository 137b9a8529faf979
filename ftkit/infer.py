"""Talk to a model: one answer, a chat turn, base vs tuned side by side; adapters and perplexity.

Taught in lessons 00 and 04. Generation is greedy by default, so an answer is the same on
every run and a lesson can assert on it. After training: :func:`load_adapter`,
:func:`merge_adapter` (LoRA folded into the weights) and :func:`perplexity`.
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path

from . import models
from .errors import FtkitError, ModelNotFoundError


def as_messages(prompt_or_messages, system: str | None = None) -> list[dict]:
    """A user prompt (str) or a message list, with an optional system message in front."""
    if isinstance(prompt_or_messages, str):
        messages = [{"role": "user", "content": prompt_or_messages}]
    else:
        messages = list(prompt_or_messages)
    if system is not None and (not messages or messages[0]["role"] != "system"):
        messages = [{"role": "system", "content": system}] + messages
    return messages


def chat(model, tokenizer, prompt_or_messages, max_new_tokens: int = 64,
         system: str | None = None, do_sample: bool = False, **generate_kwargs) -> str:
    """The model's answer to a prompt, rendered through the tokenizer's chat template."""
    import torch

    messages = as_messages(prompt_or_messages, system)
    inputs = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    ).to(model.device)
    with torch.no_grad():
        output = model.generate(
            **inputs, max_new_tokens=max_new_tokens, do_sample=do_sample,
            pad_token_id=tokenizer.pad_token_id, **generate_kwargs,
        )
    new_tokens = output[0, inputs["input_ids"].shape[1]:]
    return tokenizer.decode(new_tokens, skip_special_tokens=True).strip()


def side_by_side(model, tokenizer, prompts, base=None, max_new_tokens: int = 64,
                 system: str | None = None, show: bool = True) -> list[dict]:
    """Answers of the base model and the tuned one to the same prompts, as rows.

    ``base`` is a second model; left out, a peft model answers twice, once with its
    adapter switched off (``disable_adapter``), so no second copy of the weights is needed.
    """
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if base is None and not hasattr(model, "disable_adapter"):
        raise TypeError("side_by_side needs base= unless the tuned model is a peft model")
    rows = []
    for prompt in prompts:
        switch = model.disable_adapter() if base is None else contextlib.nullcontext()
        with switch:
            before = chat(base if base is not None else model, tokenizer, prompt,
                          max_new_tokens, system=system)
        after = chat(model, tokenizer, prompt, max_new_tokens, system=system)
        rows.append({"prompt": prompt, "base": before, "tuned": after})
    if show:
        for row in rows:
            print(f"Q: {row['prompt']}\n  base : {row['base']}\n  tuned: {row['tuned']}")
    return rows


def _adapter_config(adapter_dir) -> dict:
    path = Path(adapter_dir) / "adapter_config.json"
    if not path.exists():
        raise ModelNotFoundError(f"{adapter_dir} holds no adapter_config.json: not a PEFT adapter "
                                 "folder (a run's output_dir with a LoRA/prompt method is one)")
    return json.loads(path.read_text())


def load_adapter(adapter_dir, base: str | None = None, dtype="float32", device=None,
                 quantization=None, is_trainable: bool = False):
    """``(model, tokenizer)``: the base model with the trained adapter on top.

    Equivalent to peft's ``AutoPeftModelForCausalLM.from_pretrained(adapter_dir)`` (seed 002),
    but the base is resolved the ftkit way, so embedded short names and cached folders work.
    """
    from peft import PeftModel

    base = base or _adapter_config(adapter_dir).get("base_model_name_or_path")
    model = models.load_model(base, dtype=dtype, device=device, quantization=quantization)
    model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=is_trainable)
    if (Path(adapter_dir) / "tokenizer_config.json").exists():  # the run saved its tokenizer
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(adapter_dir))
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
    else:
        tokenizer = models.load_tokenizer(base)
    return model, tokenizer


def merge_adapter(adapter_dir, out_dir, base: str | None = None, dtype="float32"):
    """Fold a LoRA adapter into the base weights (W + (alpha/r)·B·A) and save a plain model.

    The folder ``out_dir`` then loads with ``AutoModelForCausalLM`` (or ``ftkit chat
    --model``) without peft. Returns its path.
    """
    config = _adapter_config(adapter_dir)
    if config.get("peft_type") != "LORA":
        raise FtkitError(f"{adapter_dir} is a {config.get('peft_type')} adapter: only LoRA merges "
                         "into the weights; prompt methods keep their virtual tokens apart.")
    model, tokenizer = load_adapter(adapter_dir, base=base, dtype=dtype)
    merged = model.merge_and_unload()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _texts(texts, tokenizer) -> list[str]:
    """Plain strings from strings, ``{"text": ...}`` rows or ``{"messages": [...]}`` rows."""
    out = []
    for item in ([texts] if isinstance(texts, str) else texts):
        if isinstance(item, str):
            out.append(item)
        elif "messages" in item:
            out.append(tokenizer.apply_chat_template(item["messages"], tokenize=False))
        else:
            out.append(item["text"])
    return out


def perplexity(model, tokenizer, texts, batch_size: int = 8, max_length: int = 512) -> float:
    """exp(mean negative log-likelihood per predicted token) over ``texts`` (lower is better).

    ``texts``: strings, ``{"text": ...}`` rows or ``{"messages": [...]}`` rows (rendered with
    the chat template). Token-weighted over the whole set, so a long text counts for its
    length; every token after the first of each text (truncated to ``max_length``) is
    predicted once. Batches are padded on the right and the padding is not counted, so the
    result does not depend on ``batch_size``.
    """
    import torch

    texts = _texts(texts, tokenizer)
    total_nll, total_tokens = 0.0, 0
    was_training, side = model.training, tokenizer.padding_side
    model.eval()
    tokenizer.padding_side = "right"  # positions start at 0 in every row
    try:
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True,
                              truncation=True, max_length=max_length).to(model.device)
            with torch.no_grad():
                logits = model(**batch).logits[:, :-1].float()
            targets = batch["input_ids"][:, 1:]
            mask = batch["attention_mask"][:, 1:].bool()
            total_nll += torch.nn.functional.cross_entropy(logits[mask], targets[mask],
                                                           reduction="sum").item()
            total_tokens += int(mask.sum())
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return math.exp(total_nll / total_tokens)
