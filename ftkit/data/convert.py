"""Conversion: every format into one canonical shape, and back out (lesson 02).

Canonical shapes (what :func:`ftkit.data.load` returns):

* SFT-like formats -> ``{"messages": [{"role", "content"}, ...]}`` plus the record's other
  fields (a multi-task record keeps ``task``; its prompt is ``"<task>: <input>"``, the
  T5 convention, so that one model can tell the tasks apart);
* preference -> ``{"prompt": [msgs], "chosen": [msgs], "rejected": [msgs]}`` plus ``score``
  and ``reject_reason`` when the file has them;
* plain text -> ``{"text": str}``.

Writing back out is lossless where the target can hold the data; where it cannot (a
system message into Firefly, three turns into one CSV row) it raises DataError naming
the records, instead of dropping something quietly.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from .formats import CONTAINERS, FORMATS, canonical_name
from .report import DataError
from .validate import SHAREGPT_ROLES

FROM_SHAREGPT = SHAREGPT_ROLES
TO_SHAREGPT = {v: k for k, v in SHAREGPT_ROLES.items()}
MESSAGE_FIELDS = {"openai": ("messages",), "sharegpt": ("conversations", "system"),
                  "chatglm3": ("conversations",), "firefly": ("conversation",),
                  "firefly_csv": ("human", "assistant"),
                  "alpaca": ("instruction", "input", "output", "system", "history"),
                  "prompt_completion": ("prompt", "completion"),
                  "multitask": ("input", "output")}


def _msg(role: str, content: str) -> dict:
    return {"role": role, "content": content}


def _as_messages(value, role: str) -> list[dict]:
    if isinstance(value, str):
        return [_msg(role, value)]
    return [_msg(m["role"], m["content"]) for m in value]


def _extras(record: dict, fmt: str) -> dict:
    used = set(MESSAGE_FIELDS.get(fmt, ()))
    return {k: v for k, v in record.items() if k not in used}


def to_canonical(record: dict, fmt: str) -> dict:
    """One valid record of format ``fmt`` in the canonical shape."""
    fmt = canonical_name(fmt)
    kind = FORMATS[fmt].kind
    if kind == "text":
        return {"text": record["text"], **{k: v for k, v in record.items() if k != "text"}}
    if kind == "preference":
        out = {"prompt": _as_messages(record["prompt"], "user"),
               "chosen": _as_messages(record["chosen"], "assistant"),
               "rejected": _as_messages(record["rejected"], "assistant")}
        if record.get("score") is not None:
            out["score"] = {k: float(v) for k, v in record["score"].items()}
        for k, v in record.items():
            if k not in out and k != "score":
                out[k] = v
        return out
    if fmt == "openai":
        messages = _as_messages(record["messages"], "user")
    elif fmt == "chatglm3":
        messages = _as_messages(record["conversations"], "user")
    elif fmt == "sharegpt":
        messages = [_msg("system", record["system"])] if record.get("system") else []
        messages += [_msg(FROM_SHAREGPT[t["from"]], t["value"]) for t in record["conversations"]]
    elif fmt == "firefly":
        messages = [m for pair in record["conversation"]
                    for m in (_msg("user", pair["human"]), _msg("assistant", pair["assistant"]))]
    elif fmt == "firefly_csv":
        messages = [_msg("user", record["human"]), _msg("assistant", record["assistant"])]
    elif fmt == "alpaca":
        messages = [_msg("system", record["system"])] if record.get("system") else []
        for question, answer in record.get("history") or []:
            messages += [_msg("user", question), _msg("assistant", answer)]
        parts = [record.get(f) for f in ("instruction", "input")]
        messages += [_msg("user", "\n".join(p for p in parts if p and p.strip())),
                     _msg("assistant", record["output"])]
    elif fmt == "prompt_completion":
        messages = (_as_messages(record["prompt"], "user")
                    + _as_messages(record["completion"], "assistant"))
    elif fmt == "multitask":
        messages = [_msg("user", f"{record['task']}: {record['input']}"),
                    _msg("assistant", record["output"])]
    else:  # pragma: no cover
        raise ValueError(fmt)
    return {"messages": messages, **_extras(record, fmt)}


class CannotHold(Exception):
    """The target format cannot hold this record (the reason is the message)."""


def _pairs(messages: list[dict]) -> list[tuple[str, str]]:
    """user/assistant alternation as (question, answer) pairs; CannotHold otherwise."""
    if len(messages) % 2 or any(m["role"] != ("user", "assistant")[i % 2]
                                for i, m in enumerate(messages)):
        raise CannotHold("needs strictly alternating user/assistant turns")
    return [(messages[i]["content"], messages[i + 1]["content"]) for i in range(0, len(messages), 2)]


def _split_system(messages: list[dict]) -> tuple[str | None, list[dict]]:
    if messages and messages[0]["role"] == "system":
        return messages[0]["content"], messages[1:]
    return None, messages


def from_canonical(row: dict, fmt: str) -> dict:
    """One canonical record written as format ``fmt``; CannotHold when it does not fit."""
    fmt = canonical_name(fmt)
    kind = FORMATS[fmt].kind
    have = "preference" if "chosen" in row else "text" if "text" in row and "messages" not in row else "sft"
    if kind != have:
        raise CannotHold(f"{have} data cannot be written as {fmt} ({kind} data)")
    extras = {k: v for k, v in row.items()
              if k not in ("messages", "prompt", "chosen", "rejected", "score", "reject_reason", "text")}
    if kind == "text":
        return {"text": row["text"], **extras}
    if kind == "preference":
        simple = (len(row["prompt"]) == 1 and row["prompt"][0]["role"] == "user"
                  and len(row["chosen"]) == 1 and len(row["rejected"]) == 1)
        out = ({"prompt": row["prompt"][0]["content"], "chosen": row["chosen"][0]["content"],
                "rejected": row["rejected"][0]["content"]} if simple else
               {k: row[k] for k in ("prompt", "chosen", "rejected")})
        for key in ("score", "reject_reason"):
            if row.get(key) is not None:
                out[key] = row[key]
        return {**out, **extras}
    messages = row["messages"]
    system, turns = _split_system(messages)
    if fmt == "openai":
        return {"messages": messages, **extras}
    if fmt == "chatglm3":
        return {"conversations": messages, **extras}
    if fmt == "sharegpt":
        return {"conversations": [{"from": TO_SHAREGPT[m["role"]], "value": m["content"]}
                                  for m in messages], **extras}
    if fmt == "alpaca":
        pairs = _pairs(turns)
        out = {"instruction": pairs[-1][0], "input": "", "output": pairs[-1][1]}
        if system is not None:
            out["system"] = system
        if len(pairs) > 1:
            out["history"] = [list(p) for p in pairs[:-1]]
        return {**out, **extras}
    if fmt == "multitask":
        pairs = _pairs(turns)
        task = extras.pop("task", None)
        if system is not None or len(pairs) != 1 or not task:
            raise CannotHold("multitask holds one question and answer with a 'task' field")
        question = pairs[0][0]
        prefix = f"{task}: "
        return {"task": task, "input": question[len(prefix):] if question.startswith(prefix) else question,
                "output": pairs[0][1], **extras}
    if system is not None and fmt in ("firefly", "firefly_csv"):
        raise CannotHold(f"{fmt} has no place for a system message")
    if fmt == "firefly":
        return {"conversation": [{"human": q, "assistant": a} for q, a in _pairs(turns)], **extras}
    if fmt == "firefly_csv":
        pairs = _pairs(turns)
        if len(pairs) != 1:
            raise CannotHold("a firefly_csv row holds one question and one answer")
        return {"category": extras.pop("category", ""), "human": pairs[0][0],
                "assistant": pairs[0][1], **extras}
    if fmt == "prompt_completion":
        if system is None and len(turns) == 2 and [m["role"] for m in turns] == ["user", "assistant"]:
            return {"prompt": turns[0]["content"], "completion": turns[1]["content"], **extras}
        if messages[-1]["role"] != "assistant":
            raise CannotHold("the conversation must end with an assistant turn")
        return {"prompt": messages[:-1], "completion": messages[-1:], **extras}
    raise ValueError(fmt)  # pragma: no cover


def convert_records(rows, to: str) -> list[dict]:
    """Canonical rows (a Dataset or a list of dicts) in format ``to``; DataError listing
    every record that the target cannot hold."""
    out, problems = [], []
    for index, row in enumerate(rows):
        row = {k: v for k, v in row.items() if v is not None}
        try:
            out.append(from_canonical(row, to))
        except CannotHold as reason:
            problems.append({"index": index, "message": f"cannot be written as {to}: {reason}"})
    if problems:
        raise DataError(f"{len(problems)} record(s) do not fit format {to}; nothing was written",
                        "input", problems)
    return out


def write_records(records: list[dict], path) -> Path:
    """Write records to .jsonl, .json (an array), .csv or .parquet, chosen by the suffix."""
    path = Path(path)
    container = CONTAINERS.get(path.suffix.lower())
    path.parent.mkdir(parents=True, exist_ok=True)
    if container == "jsonl":
        with open(path, "w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    elif container == "json":
        path.write_text(json.dumps(records, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    elif container == "csv":
        columns = list(dict.fromkeys(k for r in records for k in r))
        nested = sorted({k for r in records for k, v in r.items() if isinstance(v, (dict, list))})
        if nested:
            raise DataError(f"{path}: CSV cells hold plain text, but field(s) {', '.join(nested)} "
                            "hold lists or objects; write .jsonl or pick a flat format "
                            "(e.g. firefly_csv, alpaca without history)", path)
        with open(path, "w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(records)
    elif container == "parquet":
        import datasets

        datasets.Dataset.from_list(records).to_parquet(str(path))
    else:
        raise DataError(f"{path}: write to .jsonl, .json, .csv or .parquet", path)
    return path


def convert(path, to: str, out, format: str = "auto", encoding: str = "utf-8") -> Path:
    """Convert a data file into format ``to`` and write it to ``out`` (seed 000's CSV ->
    JSONL is ``convert("train.csv", "openai", "train.jsonl")``). Refuses files with bad
    records: validate and fix them first."""
    from .validate import check_file

    fmt, good, problems, _ = check_file(path, format, encoding)
    if problems:
        raise DataError(f"{path} has {len(problems)} problem(s); fix them before converting",
                        path, problems)
    canonical = [to_canonical(row.record, fmt) for row in good]
    return write_records(convert_records(canonical, canonical_name(to)), out)
