"""Tokenization for training: chat template, assistant-only labels, truncation (lesson 02).

Labels are the token ids where the model should learn and -100 (ignored by the loss)
everywhere else: the system message, the user turns and the template's markup stay
masked; each assistant turn's tokens, *including the end-of-turn token* (so the model
learns to stop), are learned, except a turn marked ``weight: 0`` (OpenAI's per-message
weight, ChatGLM3's ``loss: false``): it stays in the context, masked. The answer spans are found by rendering each conversation
prefix with the same template and mapping characters to tokens (offsets), which works
for any template that renders a conversation as a growing prefix.

About the default system message: SmolLM2's template adds "You are a helpful AI
assistant named SmolLM, trained by Hugging Face" when a conversation has no system turn.
ftkit trains with the template exactly as it is, so a training example is rendered as
``ftkit.infer.chat`` renders a question; the identity lesson thus teaches "I am Ferret"
*under* that default system message, which is what plain chat shows afterwards. To train
with your own system message, put it in the data (then use the same one when chatting).
"""

from __future__ import annotations

import json

from .report import DataError
from .templates import resolve_template

IGNORE_INDEX = -100  # what torch's cross-entropy (and so every HF model's loss) skips


TOOLS_PREAMBLE = "You have access to the following tools:\n"  # as ChatGLM3 words it


def with_tools(messages: list[dict], tools, chat_template: str) -> tuple[list[dict], dict]:
    """``(messages, extra template arguments)`` for a conversation with tool descriptions
    (JSON text): given to a template that reads ``tools``, else written into the system
    message (as ChatGLM3's and LLaMA-Factory's preprocessing do), never dropped."""
    if not tools:
        return messages, {}
    parsed = json.loads(tools) if isinstance(tools, str) else tools
    if "tools" in chat_template:
        return messages, {"tools": parsed if isinstance(parsed, list) else [parsed]}
    described = TOOLS_PREAMBLE + json.dumps(parsed, ensure_ascii=False, indent=2)
    if messages and messages[0]["role"] == "system":
        return [{**messages[0], "content": messages[0]["content"] + "\n\n" + described}] + messages[1:], {}
    return [{"role": "system", "content": described}] + messages, {}


def answer_spans(messages: list[dict], tokenizer, template: str | None = None, tools=None):
    """``(text, [(start, end), ...])``: the rendered conversation and the character spans of
    its learned assistant turns (all but those with ``weight`` 0), each from its first
    character to its end-of-turn token."""
    chat_template = resolve_template(tokenizer, template)
    messages, extra = with_tools(messages, tools, chat_template)

    def render(msgs, prompt=False):
        return tokenizer.apply_chat_template(msgs, chat_template=chat_template, tokenize=False,
                                             add_generation_prompt=prompt, **extra)

    text = render(messages)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant" or message.get("weight") == 0:
            continue
        before, upto = render(messages[:i], prompt=True), render(messages[: i + 1])
        if not (upto.startswith(before) and text.startswith(upto)):
            raise DataError("the chat template does not render a conversation as a growing "
                            "prefix, so the assistant turns cannot be located; pass template= "
                            "one of ftkit.data.templates.TEMPLATES")
        end = len(upto.rstrip())  # the newline after the end-of-turn token is not learned
        spans.append((len(before), end))
    return text, spans


def tokenize_messages(messages: list[dict], tokenizer, template: str | None = None,
                      max_seq_length: int | None = 512, max_input_length: int | None = None,
                      max_output_length: int | None = None, tools=None) -> dict:
    """``input_ids``, ``labels``, ``attention_mask`` of one conversation, and ``truncated``.

    With ``max_input_length`` / ``max_output_length`` (ChatGLM3's pair) the prompt before the
    last answer keeps its last ``max_input_length`` tokens (the question's end and the
    assistant header) and that answer its first ``max_output_length`` tokens; then the
    whole is cut to ``max_seq_length``.
    """
    text, spans = answer_spans(messages, tokenizer, template, tools)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoded["input_ids"])
    learn = [any(s <= start < e for s, e in spans) for start, _ in encoded["offset_mapping"]]
    labels = [t if on else IGNORE_INDEX for t, on in zip(ids, learn)]
    truncated = False
    if (max_input_length or max_output_length) and spans:
        last_start = spans[-1][0]
        first = next(i for i, (s, _) in enumerate(encoded["offset_mapping"]) if s >= last_start)
        ends = [i for i, on in enumerate(learn) if on]
        stop = ends[-1] + 1
        prompt, answer, rest = (slice(0, first), slice(first, stop), slice(stop, len(ids)))
        keep_prompt = list(range(len(ids)))[prompt]
        keep_answer = list(range(len(ids)))[answer]
        if max_input_length and len(keep_prompt) > max_input_length:
            keep_prompt, truncated = keep_prompt[-max_input_length:], True
        if max_output_length and len(keep_answer) > max_output_length:
            keep_answer, truncated = keep_answer[:max_output_length], True
        keep = keep_prompt + keep_answer + list(range(len(ids)))[rest]
        ids, labels = [ids[i] for i in keep], [labels[i] for i in keep]
    if max_seq_length and len(ids) > max_seq_length:
        ids, labels, truncated = ids[:max_seq_length], labels[:max_seq_length], True
    return {"input_ids": ids, "labels": labels, "attention_mask": [1] * len(ids),
            "truncated": truncated}


def tokenize_text(text: str, tokenizer, max_seq_length: int | None = 512) -> dict:
    """Continued pre-training: every token is learned; EOS closes the document."""
    ids = tokenizer(text, add_special_tokens=True)["input_ids"]
    if tokenizer.eos_token_id is not None and (not ids or ids[-1] != tokenizer.eos_token_id):
        ids = ids + [tokenizer.eos_token_id]
    truncated = bool(max_seq_length and len(ids) > max_seq_length)
    ids = ids[:max_seq_length] if max_seq_length else ids
    return {"input_ids": ids, "labels": list(ids), "attention_mask": [1] * len(ids),
            "truncated": truncated}


def tokenize_sft(dataset, tokenizer, max_seq_length: int | None = 512, template: str | None = None,
                 max_input_length: int | None = None, max_output_length: int | None = None,
                 verbose: bool = True):
    """A canonical dataset (``messages``, or ``text``) -> ``input_ids``, ``labels``,
    ``attention_mask`` (and ``task`` when present), ready for a Trainer's collator.

    Prints how many examples were truncated, and drops (and counts) those whose answer was
    cut away entirely: an example with no learned token adds nothing but a NaN risk.
    """
    import datasets

    if isinstance(dataset, (str, bytes)) or hasattr(dataset, "__fspath__"):
        from .loading import load

        dataset = load(dataset, verbose=verbose)
    columns = dataset.column_names
    if "chosen" in columns:
        raise DataError("this is preference data (prompt/chosen/rejected): train it with DPO "
                        "(stage: dpo); tokenize_sft wants messages")
    if "label" in columns and "completion" in columns:
        raise DataError("this is unpaired preference data (KTO: prompt/completion/label, where "
                        "label false marks an answer not to imitate): SFT would learn the bad "
                        "answers too; train it with KTO (stage: kto) or keep only label-true "
                        "records for SFT")
    if "prompt" in columns and "messages" not in columns and "text" not in columns:
        raise DataError("this is prompt-only data (no answers): there is nothing for SFT to "
                        "learn; it is for online methods such as GRPO")
    if "messages" not in columns and "text" not in columns:
        raise DataError(f"tokenize_sft wants a 'messages' (or 'text') column; this dataset has "
                        f"{', '.join(columns)}. Load files with ftkit.data.load to get it")
    out = {"input_ids": [], "labels": [], "attention_mask": []}
    tasks = [] if "task" in columns else None
    truncated = dropped = 0
    for row in dataset:
        if "messages" in columns:
            example = tokenize_messages(row["messages"], tokenizer, template, max_seq_length,
                                        max_input_length, max_output_length, row.get("tools"))
        else:
            example = tokenize_text(row["text"], tokenizer, max_seq_length)
        truncated += example["truncated"]
        if all(label == IGNORE_INDEX for label in example["labels"]):
            dropped += 1
            continue
        for key in out:
            out[key].append(example[key])
        if tasks is not None:
            tasks.append(row["task"])
    if tasks is not None:
        out["task"] = tasks
    limit = f"max_seq_length={max_seq_length}"
    if max_input_length or max_output_length:
        limit += f", max_input_length={max_input_length}, max_output_length={max_output_length}"
    if verbose:
        print(f"tokenized {len(dataset)} example(s): kept {len(out['input_ids'])}, "
              f"truncated {truncated} ({limit}), dropped {dropped} (no answer token left)")
    if not out["input_ids"]:
        raise DataError(f"no example kept a single answer token under {limit}; raise the limits")
    return datasets.Dataset.from_dict(out)
