"""LLaMA-Factory's two dataset layouts, read as LLaMA-Factory reads them (lesson 02).

A :class:`Spec` is one entry of LLaMA-Factory's ``dataset_info.json``: ``formatting``
(``alpaca`` or ``sharegpt``), ``ranking`` (preference pairs), ``columns`` (which field
holds the prompt, query, response, history, messages, system, tools, chosen, rejected,
kto_tag, images, videos, audios) and, for sharegpt, ``tags`` (the role and content keys
and the role names). Source: LLaMA-Factory ``src/llamafactory/data/parser.py``
(``DatasetAttr.join``: when ``columns`` or ``tags`` is given, every name it leaves out is
unset, not defaulted) and ``converter.py`` (``AlpacaDatasetConverter``,
``SharegptDatasetConverter``); ``data/README.md`` for the layouts.

ftkit's own ``alpaca``, ``sharegpt`` (also FastChat's, with a top-level ``system``),
``sharegpt_preference`` and ``alpaca_preference`` formats are such specs with the
defaults, so a file reads the same with or without its ``dataset_info.json`` entry.
Where LLaMA-Factory skips a broken record with a log line, ftkit names it instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .report import DataError
from .turns import (
    CannotHold,
    check_chat,
    clean,
    content_text,
    extras,
    kind,
    missing,
    msg,
    multimodal_fields,
    need_text,
    pairs,
    split_system,
    tools_field,
    tools_out,
)

COLUMN_NAMES = ("prompt", "query", "response", "history", "messages", "system", "tools",
                "images", "videos", "audios", "chosen", "rejected", "kto_tag")
TAG_NAMES = ("role_tag", "content_tag", "user_tag", "assistant_tag", "observation_tag",
             "function_tag", "system_tag")
DEFAULT_COLUMNS = {"prompt": "instruction", "query": "input", "response": "output",
                   "messages": "conversations"}
DEFAULT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human",
                "assistant_tag": "gpt", "observation_tag": "observation",
                "function_tag": "function_call", "system_tag": "system"}


@dataclass(frozen=True)
class Spec:
    """How to read one LLaMA-Factory dataset (``columns``/``tags`` None: LLaMA-Factory's defaults)."""

    formatting: str = "alpaca"
    ranking: bool = False
    columns: dict | None = None
    tags: dict | None = None

    def column(self, name: str) -> str | None:
        return (self.columns if self.columns is not None else DEFAULT_COLUMNS).get(name)

    def tag(self, name: str) -> str | None:
        return (self.tags if self.tags is not None else DEFAULT_TAGS).get(name)

    def used(self) -> set:
        return {c for c in (self.column(n) for n in COLUMN_NAMES) if c}


def check_spec(formatting, columns, tags, ranking) -> Spec:
    """A Spec from a dataset_info entry's values; DataError naming what is wrong."""
    if formatting not in ("alpaca", "sharegpt"):
        raise DataError(f"formatting must be 'alpaca' or 'sharegpt' (LLaMA-Factory's two "
                        f"layouts), got {formatting!r}")
    for what, given, names in (("columns", columns, COLUMN_NAMES), ("tags", tags, TAG_NAMES)):
        if given is None:
            continue
        if not isinstance(given, dict):
            raise DataError(f"{what} must be an object, got {kind(given)}")
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise DataError(f"unknown {what} key(s) {', '.join(unknown)}; LLaMA-Factory knows: "
                            + ", ".join(names))
    return Spec(formatting, bool(ranking), dict(columns) if columns is not None else None,
                dict(tags) if tags is not None else None)


# ftkit's own formats, as specs (alpaca reads system and history; sharegpt reads FastChat's
# top-level system and tool descriptions).
ALPACA = Spec("alpaca", columns={"prompt": "instruction", "query": "input", "response": "output",
                                 "system": "system", "history": "history"})
ALPACA_PREFERENCE = Spec("alpaca", True, {"prompt": "instruction", "query": "input",
                                          "chosen": "chosen", "rejected": "rejected",
                                          "system": "system", "history": "history"})
SHAREGPT = Spec("sharegpt", columns={"messages": "conversations", "system": "system",
                                     "tools": "tools"})
SHAREGPT_PREFERENCE = Spec("sharegpt", True, {"messages": "conversations", "system": "system",
                                              "tools": "tools", "chosen": "chosen",
                                              "rejected": "rejected"})


def _modalities(record: dict, spec: Spec, problems: list) -> None:
    mapped = {spec.column(n): n[:-1] for n in ("images", "videos", "audios") if spec.column(n)}
    multimodal_fields(record, problems, {**{"images": "image", "image": "image",
                                            "videos": "video", "video": "video",
                                            "audios": "audio", "audio": "audio"}, **mapped})


def _label(record: dict, spec: Spec, problems: list):
    """The KTO label (``kto_tag`` column): True desirable, False undesirable; None if unused."""
    name = spec.column("kto_tag")
    if not name:
        return None
    value = record.get(name)
    if not isinstance(value, bool):
        problems.append((name, f"the KTO label must be true or false, got {kind(value)}"
                         + (" (missing)" if name not in record else "")))
    return value


def _system(record: dict, spec: Spec, problems: list) -> list:
    name = spec.column("system")
    text = need_text(record, name, problems, required=False) if name else None
    return [msg("system", text)] if text and text.strip() else []


def _history(record: dict, name: str, problems: list) -> list:
    history = record.get(name)
    if history is None:
        return []
    if not isinstance(history, list):
        problems.append((name, f"must be a list of [question, answer] pairs, got {kind(history)}"))
        return []
    out = []
    for i, pair in enumerate(history):
        if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                or not all(isinstance(x, str) and x.strip() for x in pair)):
            problems.append((f"{name}[{i}]", "must be a [question, answer] pair of non-empty strings"))
            continue
        out += [msg("user", pair[0]), msg("assistant", pair[1])]
    return out


def parse_alpaca(record: dict, present, spec: Spec = ALPACA) -> tuple:
    """LLaMA-Factory's ``AlpacaDatasetConverter``: user = prompt + "\\n" + query (the
    non-empty ones); then a KTO example, a ranked pair, an answer, or (no response column)
    plain text for pre-training."""
    problems: list = []
    _modalities(record, spec, problems)
    messages = _system(record, spec, problems)
    if spec.column("history"):
        messages += _history(record, spec.column("history"), problems)
    parts = []
    for name in (spec.column("prompt"), spec.column("query")):
        if name:
            value = need_text(record, name, problems, required=False)
            if value and value.strip():
                parts.append(value)
    question = "\n".join(parts)
    rest = extras(record, spec.used())
    label = _label(record, spec, problems)
    response, chosen = spec.column("response"), spec.column("chosen")
    if spec.ranking:
        answers = []
        for side in ("chosen", "rejected"):
            name = spec.column(side)
            if not name:
                problems.append((side, f"ranking: true needs a '{side}' column"))
            answers.append(need_text(record, name, problems, present=present.get(name, 0))
                           if name else None)
        out = {"prompt": messages + [msg("user", question)],
               "chosen": [msg("assistant", answers[0])], "rejected": [msg("assistant", answers[1])], **rest}
        if not problems and answers[0] == answers[1]:
            problems.append((chosen, "chosen and rejected are the same, so the pair teaches nothing"))
    elif response is None:  # LLaMA-Factory's "unsupervised" example: the prompt is the text
        out = {"text": question, **rest}
        if not question.strip():
            problems.append((spec.column("prompt") or "prompt", "is empty: a pre-training record "
                             "needs its text"))
        return (None, problems) if problems else (out, problems)
    else:
        answer = need_text(record, response, problems, present=present.get(response, 0))
        out = ({"prompt": messages + [msg("user", question)], "completion": [msg("assistant", answer)],
                "label": label, **rest} if label is not None else
               {"messages": messages + [msg("user", question), msg("assistant", answer)], **rest})
    names = [n for n in (spec.column("prompt"), spec.column("query")) if n]
    if not question.strip() and not any(p[0] in names for p in problems):
        problems.append((names[0] if names else "instruction",
                         f"needs a non-empty '{names[0] if names else 'instruction'}'"
                         + (f" or '{names[1]}'" if len(names) > 1 else "")))
    return (None, problems) if problems else (out, problems)


def _sharegpt_turn(turn, where: str, spec: Spec, tag_map: dict, problems: list):
    role_tag, content_tag = spec.tag("role_tag"), spec.tag("content_tag")
    if not isinstance(turn, dict):
        problems.append((where, f"a turn must be an object with '{role_tag}' and "
                                f"'{content_tag}', got {kind(turn)}"))
        return None
    if role_tag not in turn:
        problems.append((f"{where}.{role_tag}", f"missing '{role_tag}'"))
        return None
    role = turn[role_tag]
    if role not in tag_map:
        problems.append((f"{where}.{role_tag}", f"unknown role {role!r}; allowed: "
                         + ", ".join(sorted(tag_map))))
        return None
    if content_tag not in turn:
        problems.append((f"{where}.{content_tag}", f"missing '{content_tag}'"))
        return None
    content = content_text(turn[content_tag], f"{where}.{content_tag}", problems)
    return None if content is None else (role, msg(tag_map[role], content))


def parse_sharegpt(record: dict, present, spec: Spec = SHAREGPT) -> tuple:
    """LLaMA-Factory's ``SharegptDatasetConverter``: an optional system turn first, then
    user/observation turns at odd places and assistant/function turns at even ones; an
    even count for SFT, odd for a ranked pair (whose chosen/rejected are single turns),
    the last turn as the KTO completion."""
    problems: list = []
    _modalities(record, spec, problems)
    field_name = spec.column("messages")
    tags = {k: spec.tag(k) for k in TAG_NAMES}
    tag_map = {tags[t]: role for t, role in (("user_tag", "user"), ("assistant_tag", "assistant"),
                                            ("observation_tag", "tool"), ("function_tag", "assistant"),
                                            ("system_tag", "system")) if tags[t]}
    odd = {t for t in (tags["user_tag"], tags["observation_tag"]) if t}
    even = {t for t in (tags["assistant_tag"], tags["function_tag"]) if t}
    turns = record.get(field_name)
    if field_name not in record:
        return None, problems + [(field_name, missing(field_name, present.get(field_name, 0)))]
    if not isinstance(turns, list):
        return None, problems + [(field_name, f"must be a list of turns, got {kind(turns)}")]
    if not turns:
        return None, problems + [(field_name, "is an empty conversation")]
    start, system = 0, _system(record, spec, problems)
    first = turns[0]
    if tags["system_tag"] and isinstance(first, dict) and first.get(tags["role_tag"]) == tags["system_tag"]:
        read = _sharegpt_turn(first, f"{field_name}[0]", spec, tag_map, problems)
        system, start = ([read[1]] if read else []), 1
    messages = []
    for i in range(start, len(turns)):
        read = _sharegpt_turn(turns[i], f"{field_name}[{i}]", spec, tag_map, problems)
        if read is None:
            continue
        expected = odd if (i - start) % 2 == 0 else even
        if read[0] not in expected:
            where = "a system turn may only come first" if read[1]["role"] == "system" else (
                f"is {read[0]!r} where {' or '.join(sorted(expected))} belongs: "
                f"{'/'.join(sorted(odd))} and {'/'.join(sorted(even))} turns alternate")
            problems.append((f"{field_name}[{i}]", where))
            continue
        messages.append(read[1])
    rest = extras(record, spec.used())
    tools = tools_field(record, spec.column("tools"), problems) if spec.column("tools") else None
    if tools:
        rest["tools"] = tools
    label = _label(record, spec, problems)
    if problems:
        return None, problems
    if spec.ranking:
        if len(messages) % 2 == 0:
            return None, [(field_name, "a ranked pair's conversation must end with a user turn "
                           f"(an odd number of turns), got {len(messages)}")]
        sides = []
        for side in ("chosen", "rejected"):
            name = spec.column(side) or side
            value, read = record.get(name), None
            if name not in record:
                problems.append((name, missing(name, present.get(name, 0),
                                               f"a preference pair needs a {side} answer")))
            elif not isinstance(value, dict):
                problems.append((name, f"must be one turn object like {{\"{tags['role_tag']}\": "
                                 f"\"{tags['assistant_tag']}\", \"{tags['content_tag']}\": \"...\"}}, "
                                 f"got {kind(value)}"))
            else:
                read = _sharegpt_turn(value, name, spec, tag_map, problems)
            if read and read[0] not in even:
                problems.append((f"{name}.{tags['role_tag']}", f"must be {' or '.join(sorted(even))}"))
            sides.append(read[1] if read else None)
        if not problems and sides[0] == sides[1]:
            problems.append((spec.column("rejected"), "is the same as 'chosen', so the pair teaches nothing"))
        out = {"prompt": system + messages, "chosen": sides[:1], "rejected": sides[1:], **rest}
    elif label is not None:
        if len(messages) % 2:
            problems.append((field_name, "a KTO record must end with the answer being rated"))
        out = {"prompt": system + messages[:-1], "completion": messages[-1:], "label": label, **rest}
    else:
        check_chat(system + messages, field_name, problems)
        out = {"messages": system + messages, **rest}
    return (None, problems) if problems else (out, problems)


# ---------------------------------------------------------------- writers


def write_alpaca(row: dict) -> dict:
    system, turns = split_system(row["messages"])
    found = pairs(turns)
    out = {"instruction": found[-1][0], "input": "", "output": found[-1][1]}
    if system is not None:
        out["system"] = system
    if len(found) > 1:
        out["history"] = [list(p) for p in found[:-1]]
    return {**out, **extras(row)}


def write_sharegpt(row: dict) -> dict:
    to = {"system": "system", "user": "human", "assistant": "gpt", "tool": "observation"}
    messages = clean(row["messages"])
    if any(m.get("weight") == 0 for m in messages):
        raise CannotHold("sharegpt has no place for a turn that is not learned (weight 0)")
    return {"conversations": [{"from": to[m["role"]], "value": m["content"]} for m in messages],
            **tools_out(row), **extras(row)}


def _single(side: list, name: str) -> str:
    side = clean(side)
    if len(side) != 1 or side[0]["role"] != "assistant":
        raise CannotHold(f"'{name}' must be one assistant answer")
    return side[0]["content"]


def write_sharegpt_preference(row: dict) -> dict:
    to = {"system": "system", "user": "human", "assistant": "gpt", "tool": "observation"}
    prompt = clean(row["prompt"])
    if not prompt or prompt[-1]["role"] != "user":
        raise CannotHold("the prompt must end with a user turn")
    out = {"conversations": [{"from": to[m["role"]], "value": m["content"]} for m in prompt],
           "chosen": {"from": "gpt", "value": _single(row["chosen"], "chosen")},
           "rejected": {"from": "gpt", "value": _single(row["rejected"], "rejected")}}
    return {**out, **tools_out(row), **extras(row)}


def write_alpaca_preference(row: dict) -> dict:
    system, turns = split_system(clean(row["prompt"]))
    if not turns or turns[-1]["role"] != "user":
        raise CannotHold("the prompt must end with a user turn")
    history = pairs(turns[:-1])
    out = {"instruction": turns[-1]["content"], "input": "",
           "chosen": _single(row["chosen"], "chosen"), "rejected": _single(row["rejected"], "rejected")}
    if system is not None:
        out["system"] = system
    if history:
        out["history"] = [list(p) for p in history]
    return {**out, **extras(row)}


# ---------------------------------------------------------------- dataset_info.json


@dataclass
class DatasetEntry:
    """One resolved ``dataset_info.json`` entry: the file and how to read it."""

    name: str
    path: Path
    spec: Spec
    num_samples: int | None = None
    info: dict = field(default_factory=dict)  # the entry as written

    def load_arguments(self) -> dict:
        """Keyword arguments for :func:`ftkit.data.load` (with ``path``)."""
        return {"path": self.path, "dataset_info": self.info}


def entry_arguments(entry: dict) -> dict:
    """``format``/``columns``/``tags``/``ranking`` of a ``dataset_info.json`` entry, with
    LLaMA-Factory's defaults spelled out, so that the entry is read as LLaMA-Factory reads
    it even where ftkit's format of the same name reads more (alpaca's system and history)."""
    if not isinstance(entry, dict):
        raise DataError(f"a dataset_info entry must be an object, got {kind(entry)}")
    formatting = entry.get("formatting", "alpaca")
    columns = entry.get("columns")
    tags = entry.get("tags")
    return {"format": formatting,
            "columns": dict(DEFAULT_COLUMNS) if columns is None else columns,
            "tags": (dict(DEFAULT_TAGS) if tags is None else tags) if formatting == "sharegpt" else None,
            "ranking": bool(entry.get("ranking", False))}


def _entry_line(text: str, name: str) -> int:
    at = text.find(json.dumps(name) + ":")
    return text.count("\n", 0, at) + 1 if at >= 0 else 1


def resolve(name: str, dataset_dir="data") -> DatasetEntry:
    """``dataset_info.json``'s entry ``name`` in ``dataset_dir``, as LLaMA-Factory's
    ``get_dataset_list`` reads it; DataError (file and line) when it cannot be used here."""
    info_path = Path(dataset_dir) / "dataset_info.json"
    if not info_path.is_file():
        raise DataError(f"{info_path}: no such file; LLaMA-Factory dataset names are looked up "
                        "in dataset_info.json inside dataset_dir", info_path)
    text = info_path.read_text(encoding="utf-8")
    try:
        info = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"{info_path}:{error.lineno}: broken JSON: {error.msg}", info_path) from None
    if name not in info:
        raise DataError(f"{info_path}: no dataset named '{name}' (it defines "
                        f"{len(info)}: {', '.join(list(info)[:12])}{', ...' if len(info) > 12 else ''})",
                        info_path)
    entry, where = info[name], f"{info_path}:{_entry_line(text, name)}"
    hub = [k for k in ("hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name")
           if k in entry]
    if hub:
        raise DataError(f"{where}: dataset '{name}' comes from {hub[0]} = {entry[hub[0]]!r}; ftkit "
                        "reads local files only: download it, save it under dataset_dir and "
                        "give the entry a file_name", info_path)
    if "file_name" not in entry:
        raise DataError(f"{where}: dataset '{name}' has no file_name", info_path)
    try:
        spec = check_spec(entry.get("formatting", "alpaca"), entry.get("columns"), entry.get("tags"),
                          entry.get("ranking", False))
    except DataError as error:
        raise DataError(f"{where}: dataset '{name}': {error}", info_path) from None
    return DatasetEntry(name, Path(dataset_dir) / entry["file_name"], spec, entry.get("num_samples"), entry)
