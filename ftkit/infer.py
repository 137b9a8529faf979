"""Talk to a model: one answer, a chat turn, base vs tuned side by side.

Taught in lessons 00 and 04. Generation is greedy by default, so an answer is the same on
every run and a lesson can assert on it.
"""

from __future__ import annotations


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
