"""Batched generation for evaluation: left padding, KV cache, greedy by default (lesson 13).

``ftkit.infer.chat`` answers one prompt at a time; evaluating 50 held-out questions that
way repeats the model's fixed costs 50 times. Here prompts go in batches, padded on the
*left* so every row's last token is its generation prompt (with right padding a short row
would continue after its pad tokens), and ``generate`` keeps its KV cache on, so each new
token costs one position's forward pass, not the whole sequence's.

Every answer records whether it ended with the template's end-of-turn token within
``max_new_tokens`` (``stopped``): a model that never stops is the most common failure of
a fine-tuned chat model, and decoding it with ``skip_special_tokens`` would hide it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..data.templates import render
from ..data.tokenize import answer_spans
from ..infer import as_messages

ANSWER_MARK = "ANSWER"  # a placeholder answer, to find where the template ends a turn


@dataclass
class Decoding:
    """How answers are decoded; recorded next to every metric computed from them."""

    max_new_tokens: int = 64
    do_sample: bool = False  # greedy: the same answer on every run
    temperature: float | None = None
    top_p: float | None = None
    repetition_penalty: float | None = None
    batch_size: int = 16

    def generate_kwargs(self) -> dict:
        kwargs = {"max_new_tokens": self.max_new_tokens, "do_sample": self.do_sample}
        for name in ("temperature", "top_p", "repetition_penalty"):
            if getattr(self, name) is not None:
                kwargs[name] = getattr(self, name)
        return kwargs

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Answer:
    """One generated answer: the text, its token ids (end token included) and whether it stopped."""

    text: str
    token_ids: list[int] = field(repr=False)
    stopped: bool

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)


def end_of_turn(tokenizer, template: str | None = None) -> tuple[str, int] | None:
    """``(token, id)`` that closes an assistant turn in the chat template, or None if none does.

    Found by rendering a one-turn conversation: the last token of the assistant's span
    (ftkit's loss mask) after the answer text itself (``<|im_end|>`` for ChatML).
    """
    messages = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": ANSWER_MARK}]
    text, spans = answer_spans(messages, tokenizer, template)
    start, end = spans[-1]
    answer_end = text.index(ANSWER_MARK, start) + len(ANSWER_MARK)
    if end <= answer_end:
        return None  # the template closes the turn with nothing: the model cannot learn to stop
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = [i for i, (s, e) in zip(encoded["input_ids"], encoded["offset_mapping"])
           if s >= answer_end and e <= end and e > s]
    if not ids:
        return None
    return tokenizer.convert_ids_to_tokens(ids[-1]), ids[-1]


def stop_ids(tokenizer, template: str | None = None) -> list[int]:
    """Token ids that end an answer: the template's end-of-turn token and the EOS token."""
    ids = []
    found = end_of_turn(tokenizer, template)
    if found is not None:
        ids.append(found[1])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def prompt_texts(conversations, tokenizer, template: str | None = None) -> list[str]:
    """Each conversation (a prompt string or messages ending with a user turn) rendered for answering."""
    return [render(as_messages(c), tokenizer, template, add_generation_prompt=True)
            for c in conversations]


def generate_answers(model, tokenizer, conversations, decoding: Decoding | None = None,
                     template: str | None = None, stop_token_ids=None) -> list[Answer]:
    """Greedy (by default) answers to many prompts, in batches with left padding and a KV cache.

    ``stop_token_ids`` default to :func:`stop_ids`; pass the model's own
    ``generation_config.eos_token_id`` to see what ``chat`` would do with it.
    """
    import torch

    decoding = decoding or Decoding()
    stops = list(stop_token_ids) if stop_token_ids is not None else stop_ids(tokenizer, template)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    texts = prompt_texts(conversations, tokenizer, template)
    answers: list[Answer] = []
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    was_training = model.training
    model.eval()
    try:
        for first in range(0, len(texts), decoding.batch_size):
            batch = tokenizer(texts[first:first + decoding.batch_size], add_special_tokens=False,
                              padding=True, return_tensors="pt").to(model.device)
            with torch.no_grad():
                output = model.generate(**batch, **decoding.generate_kwargs(), use_cache=True,
                                        eos_token_id=stops, pad_token_id=pad_id)
            for row in output[:, batch["input_ids"].shape[1]:].tolist():
                answers.append(_answer(row, stops, tokenizer))
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return answers


def _answer(new_ids: list[int], stops: list[int], tokenizer) -> Answer:
    """Cut a generated row after its first stop token (the rest is padding)."""
    cut = next((i for i, t in enumerate(new_ids) if t in stops), None)
    ids = new_ids if cut is None else new_ids[:cut + 1]
    return Answer(tokenizer.decode(ids, skip_special_tokens=True).strip(), ids, cut is not None)
