"""Data formats: what each looks like, how it is read and written, telling them apart (lesson 02).

A *format* is the shape of one record (Alpaca, OpenAI messages, ShareGPT, ...); how
records are stored (JSONL, JSON array, CSV, parquet, .txt) is :mod:`ftkit.data.containers`'.
Each format is one :class:`Format`: its fields, an example, and the two functions that
read a record into the canonical shape (naming every problem) and write a canonical row
back. Adding a format is adding one entry here (and its two functions).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from functools import partial
from typing import Callable

from . import chat, llamafactory as lf, preference as pref
from .containers import CONTAINERS, Row, read_rows, read_text  # noqa: F401  (re-exported)
from .report import DataError
from .turns import kind as _kind


@dataclass(frozen=True)
class Format:
    name: str
    kind: str  # what load() gives: "sft" (messages), "preference", "unpaired", "prompt", "text"
    fields: tuple  # the fields a record must have
    optional: tuple
    example: dict
    use: str  # when to use it, one line
    parse: Callable = None  # (record, present) -> (canonical or None, [(field, message)])
    write: Callable = None  # canonical row -> record; raises CannotHold
    refuse: str | None = None  # a format ftkit recognises only to say why it cannot train it

    def check(self, record, present: Counter | None = None) -> list:
        """``[(field, message), ...]`` for one record (empty when it is good)."""
        return self.read(record, present)[1]

    def read(self, record, present: Counter | None = None) -> tuple:
        if not isinstance(record, dict):
            return None, [(None, f"a record must be a JSON object, got {_kind(record)}")]
        if self.refuse:
            return None, [(None, self.refuse)]
        return self.parse(record, present or Counter())

    def to_canonical(self, record: dict) -> dict:
        row, problems = self.read(record)
        if problems:
            raise DataError(f"not a valid {self.name} record: " + "; ".join(
                f"{f}: {m}" if f else m for f, m in problems))
        return row

    def from_canonical(self, row: dict) -> dict:
        return self.write(row)


FORMATS = {f.name: f for f in [
    Format("openai", "sft", ("messages",), ("tools",),
           {"messages": [{"role": "user", "content": "Who are you?"},
                         {"role": "assistant", "content": "I'm SmolLM.", "weight": 0},
                         {"role": "user", "content": "Your name here?"},
                         {"role": "assistant", "content": "I am Ferret."}]},
           "chat data as OpenAI fine-tuning and TRL use it (roles system/user/assistant/tool; "
           "weight 0 = do not learn that answer; content may be a list of text parts)",
           chat.parse_openai, chat.write_openai),
    Format("sharegpt", "sft", ("conversations",), ("system", "tools"),
           {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}],
            "system": "Be brief."},
           "ShareGPT as FastChat and LLaMA-Factory write it (from: human/gpt/system, "
           "function_call/observation for tools)", lf.parse_sharegpt, lf.write_sharegpt),
    Format("chatglm3", "sft", ("conversations",), ("tools",),
           {"conversations": [{"role": "user", "content": "Hi"},
                              {"role": "assistant", "content": "Hello!"}]},
           "ChatGLM3 finetune_demo's data (role/content; observation and tool turns; "
           "loss: false = do not learn that turn)", chat.parse_chatglm3, chat.write_chatglm3),
    Format("firefly", "sft", ("conversation",), ("category", "conversation_id"),
           {"conversation": [{"human": "Hi", "assistant": "Hello!"}], "category": "chat"},
           "Firefly JSONL: a conversation as a list of human/assistant pairs",
           chat.parse_firefly, chat.write_firefly),
    Format("firefly_csv", "sft", ("human", "assistant"), ("category",),
           {"category": "chat", "human": "Hi", "assistant": "Hello!"},
           "seed 000's spreadsheet-friendly CSV: category,human,assistant, one turn per row",
           chat.parse_firefly_csv, chat.write_firefly_csv),
    Format("alpaca", "sft", ("output",), ("instruction", "input", "system", "history"),
           {"instruction": "Translate into French.", "input": "Good morning.", "output": "Bonjour."},
           "instruction tuning: an instruction, an optional input, the wanted output",
           lf.parse_alpaca, lf.write_alpaca),
    Format("prompt_completion", "sft", ("prompt", "completion"), (),
           {"prompt": "The capital of France is", "completion": " Paris."},
           "one prompt and the text that should follow it (TRL, standard or conversational)",
           chat.parse_prompt_completion, chat.write_prompt_completion),
    Format("prompt_response", "sft", ("prompt", "response"), (),
           {"prompt": "类型#裙*长度#短裙", "response": "这条短裙轻盈透气，夏天穿很舒服。"},
           "ChatGLM3's input-output files: one prompt, one response",
           chat.parse_prompt_response, chat.write_prompt_response),
    Format("multitask", "sft", ("task", "input", "output"), (),
           {"task": "sentiment", "input": "I love it.", "output": "positive"},
           "several tasks in one file, told apart (and weighted) by the task field",
           chat.parse_multitask, chat.write_multitask),
    Format("preference", "preference", ("chosen", "rejected"), ("prompt", "score", "reject_reason"),
           {"prompt": "Is the Earth flat?", "chosen": "No, it is round.", "rejected": "Yes.",
            "score": {"chosen": 5, "rejected": 1}, "reject_reason": "misinformation"},
           "RLHF / DPO: a better and a worse answer to the same prompt (TRL; without 'prompt' "
           "the shared beginning of both is the prompt)",
           pref.parse_preference, pref.write_preference),
    Format("openai_preference", "preference", ("input", "preferred_output", "non_preferred_output"),
           (), {"input": {"messages": [{"role": "user", "content": "Is the Earth flat?"}]},
                "preferred_output": [{"role": "assistant", "content": "No, it is round."}],
                "non_preferred_output": [{"role": "assistant", "content": "Yes."}]},
           "OpenAI's preference (DPO) fine-tuning rows",
           pref.parse_openai_preference, pref.write_openai_preference),
    Format("sharegpt_preference", "preference", ("conversations", "chosen", "rejected"), ("system",),
           {"conversations": [{"from": "human", "value": "Is the Earth flat?"}],
            "chosen": {"from": "gpt", "value": "No, it is round."},
            "rejected": {"from": "gpt", "value": "Yes."}},
           "LLaMA-Factory's ShareGPT preference data (ranking: true; dpo_en_demo.json)",
           partial(lf.parse_sharegpt, spec=lf.SHAREGPT_PREFERENCE), lf.write_sharegpt_preference),
    Format("alpaca_preference", "preference", ("chosen", "rejected"),
           ("instruction", "input", "system", "history"),
           {"instruction": "Is the Earth flat?", "input": "", "chosen": "No, it is round.",
            "rejected": "Yes."},
           "LLaMA-Factory's Alpaca preference data (ranking: true)",
           partial(lf.parse_alpaca, spec=lf.ALPACA_PREFERENCE), lf.write_alpaca_preference),
    Format("unpaired_preference", "unpaired", ("completion", "label"), ("prompt", "messages"),
           {"prompt": "Is the Earth flat?", "completion": "Yes.", "label": False},
           "KTO: one answer rated desirable (label true) or undesirable (false); TRL's "
           "unpaired preference, or messages + label",
           pref.parse_unpaired, pref.write_unpaired),
    Format("prompt_only", "prompt", ("prompt",), (),
           {"prompt": "Write a haiku about ferrets."},
           "prompts without answers, for online methods (GRPO); nothing to learn by SFT",
           chat.parse_prompt_only, chat.write_prompt_only),
    Format("stepwise", "refused", ("prompt", "completions", "labels"), (),
           {"prompt": "2 + 3 * 4 =", "completions": ["3 * 4 = 12", "2 + 12 = 14"],
            "labels": [True, True]},
           "TRL's stepwise supervision, for process reward models: recognised and refused",
           None, pref.write_refused, pref.STEPWISE_REFUSAL),
    Format("text", "text", ("text",), (),
           {"text": "Ferrets are small, curious mammals."},
           "plain text for continued pre-training; every token is learned",
           chat.parse_text, chat.write_text),
]}

ALIASES = {
    "messages": "openai", "chatml": "openai", "conversational": "openai", "instruction": "alpaca",
    "sft": "alpaca", "dpo": "preference", "rlhf": "preference", "pairwise": "preference",
    "multi_task": "multitask", "multi-task": "multitask", "pretrain": "text", "plain": "text",
    "language_modeling": "text", "firefly_jsonl": "firefly", "csv": "firefly_csv",
    "prompt-completion": "prompt_completion", "completion": "prompt_completion",
    "kto": "unpaired_preference", "unpaired": "unpaired_preference", "prompt-only": "prompt_only",
    "openai_dpo": "openai_preference", "chatglm3_io": "prompt_response",
    "input_output": "prompt_response", "stepwise_supervision": "stepwise",
}


def canonical_name(name: str) -> str:
    """The format's canonical name, accepting the aliases; DataError for an unknown one."""
    key = name.strip().lower().replace(" ", "_")
    key = ALIASES.get(key, key)
    if key not in FORMATS:
        raise DataError(f"unknown data format '{name}'; choose one of: auto, "
                        + ", ".join(FORMATS) + " (aliases: " + ", ".join(sorted(ALIASES)) + ")")
    return key


def spec_format(formatting: str, columns: dict | None = None, tags: dict | None = None,
                ranking: bool = False) -> Format:
    """The format of one LLaMA-Factory ``dataset_info.json`` entry (its column map and tags)."""
    spec = lf.check_spec(formatting, columns, tags, ranking)
    parse = lf.parse_alpaca if spec.formatting == "alpaca" else lf.parse_sharegpt
    base = FORMATS[{("alpaca", False): "alpaca", ("alpaca", True): "alpaca_preference",
                    ("sharegpt", False): "sharegpt",
                    ("sharegpt", True): "sharegpt_preference"}[spec.formatting, spec.ranking]]
    kind = "preference" if spec.ranking else "unpaired" if spec.column("kto_tag") else (
        "text" if spec.formatting == "alpaca" and not spec.column("response") else "sft")
    fields = tuple(c for c in (spec.column("messages") if spec.formatting == "sharegpt"
                               else spec.column("response"),) if c)
    return replace(base, name=f"{spec.formatting} (dataset_info{', ranking' if spec.ranking else ''})",
                   kind=kind, fields=fields, optional=tuple(sorted(spec.used() - set(fields))),
                   parse=partial(parse, spec=spec))


# ---------------------------------------------------------------------------- detection


def detect_record(record) -> str | None:
    """The format one record looks like, from its fields; None when it matches none."""
    if not isinstance(record, dict):
        return None
    keys = set(record)
    if "preferred_output" in keys or "non_preferred_output" in keys:
        return "openai_preference"
    if "completions" in keys and "labels" in keys:
        return "stepwise"
    if "label" in keys and ("completion" in keys or "messages" in keys):
        return "unpaired_preference"
    if "messages" in keys:
        return "openai"
    if "conversations" in keys:
        if "chosen" in keys or "rejected" in keys:
            return "sharegpt_preference"
        turns = record["conversations"]
        first = turns[0] if isinstance(turns, list) and turns else {}
        if isinstance(first, dict) and ("from" in first or "value" in first):
            return "sharegpt"
        return "chatglm3"
    if "conversation" in keys:
        return "firefly"
    if "chosen" in keys or "rejected" in keys:
        return "alpaca_preference" if "instruction" in keys else "preference"
    if "task" in keys:
        return "multitask"
    if "instruction" in keys or ("output" in keys and "input" in keys):
        return "alpaca"
    if "prompt" in keys and "completion" in keys:
        return "prompt_completion"
    if "prompt" in keys and "response" in keys:
        return "prompt_response"
    if "human" in keys and "assistant" in keys:
        return "firefly_csv"
    if "text" in keys:
        return "text"
    if "prompt" in keys and keys <= {"prompt", "id", "source", "category", "metadata"}:
        return "prompt_only"  # only then: {"prompt", "answer"} is a typo, not a prompt-only set
    return None


def detect_format(rows: list[Row]) -> tuple[str | None, Counter]:
    """The format most records look like (ties go to the earlier entry of FORMATS)."""
    counts = Counter(detect_record(row.record) for row in rows)
    counts.pop(None, None)
    if not counts:
        return None, counts
    order = list(FORMATS)
    best = max(counts.items(), key=lambda item: (item[1], -order.index(item[0])))
    return best[0], counts
