"""Data formats: what each looks like, reading files, and telling formats apart (lesson 02).

A *container* is how records are stored (JSONL, a JSON array, CSV, parquet, plain .txt);
a *format* is the shape of one record (Alpaca, OpenAI messages, ShareGPT, ...). Any
format can live in any container that can hold it. Reading keeps each record's place
(line, or index + line) so that every later message can point at it.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .report import DataError


@dataclass(frozen=True)
class Format:
    name: str
    kind: str  # "sft" (becomes messages), "preference" or "text"
    fields: tuple  # the fields a record must have
    optional: tuple
    example: dict
    use: str  # when to use it, one line


FORMATS = {f.name: f for f in [
    Format("openai", "sft", ("messages",), (),
           {"messages": [{"role": "user", "content": "Who are you?"},
                         {"role": "assistant", "content": "I am Ferret."}]},
           "chat data in the shape chat APIs and TRL use; roles system/user/assistant"),
    Format("sharegpt", "sft", ("conversations",), ("system",),
           {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]},
           "multi-turn chats scraped or exported as ShareGPT (from: human/gpt/system)"),
    Format("chatglm3", "sft", ("conversations",), (),
           {"conversations": [{"role": "user", "content": "Hi"},
                              {"role": "assistant", "content": "Hello!"}]},
           "ChatGLM3 finetune_demo's data (conversations with role/content)"),
    Format("firefly", "sft", ("conversation",), ("category", "conversation_id"),
           {"conversation": [{"human": "Hi", "assistant": "Hello!"}], "category": "chat"},
           "Firefly JSONL: a conversation as a list of human/assistant pairs"),
    Format("firefly_csv", "sft", ("human", "assistant"), ("category",),
           {"category": "chat", "human": "Hi", "assistant": "Hello!"},
           "seed 000's spreadsheet-friendly CSV: category,human,assistant, one turn per row"),
    Format("alpaca", "sft", ("output",), ("instruction", "input", "system", "history"),
           {"instruction": "Translate into French.", "input": "Good morning.", "output": "Bonjour."},
           "instruction tuning: an instruction, an optional input, the wanted output"),
    Format("prompt_completion", "sft", ("prompt", "completion"), (),
           {"prompt": "The capital of France is", "completion": " Paris."},
           "one prompt and the text that should follow it"),
    Format("multitask", "sft", ("task", "input", "output"), (),
           {"task": "sentiment", "input": "I love it.", "output": "positive"},
           "several tasks in one file, told apart (and weighted) by the task field"),
    Format("preference", "preference", ("prompt", "chosen", "rejected"), ("score", "reject_reason"),
           {"prompt": "Is the Earth flat?", "chosen": "No, it is round.", "rejected": "Yes.",
            "score": {"chosen": 5, "rejected": 1}, "reject_reason": "misinformation"},
           "RLHF / DPO: a better and a worse answer to the same prompt"),
    Format("text", "text", ("text",), (),
           {"text": "Ferrets are small, curious mammals."},
           "plain text for continued pre-training; every token is learned"),
]}

ALIASES = {
    "messages": "openai", "chatml": "openai", "instruction": "alpaca", "sft": "alpaca",
    "dpo": "preference", "rlhf": "preference", "multi_task": "multitask", "multi-task": "multitask",
    "pretrain": "text", "plain": "text", "firefly_jsonl": "firefly", "csv": "firefly_csv",
    "prompt-completion": "prompt_completion", "completion": "prompt_completion",
}

CONTAINERS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv",
              ".tsv": "csv", ".parquet": "parquet", ".txt": "txt"}


def canonical_name(name: str) -> str:
    """The format's canonical name, accepting the aliases; DataError for an unknown one."""
    key = name.strip().lower().replace(" ", "_")
    key = ALIASES.get(key, key)
    if key not in FORMATS:
        raise DataError(f"unknown data format '{name}'; choose one of: auto, "
                        + ", ".join(FORMATS) + " (aliases: " + ", ".join(sorted(ALIASES)) + ")")
    return key


# ---------------------------------------------------------------------------- reading


@dataclass
class Row:
    record: object  # normally a dict; anything else is reported by validation
    place: dict  # {"line": n} or {"index": i, "line": n}


def read_text(path: Path, encoding: str = "utf-8") -> str:
    data = path.read_bytes()
    if encoding.lower().replace("_", "-") in {"utf-8", "utf8"} and data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]  # a byte-order mark, as Excel writes it
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        hint = ""
        for guess in ("gbk", "gb18030", "big5", "latin-1"):
            try:
                data.decode(guess)
            except UnicodeDecodeError:
                continue
            hint = (f"; it reads as {guess.upper()}: pass encoding='{guess}' "
                    f"(command line: --encoding {guess})")
            break
        raise DataError("cannot read the file", path, [{"line": line, "message":
                        f"the file is not valid {encoding} text (byte 0x{data[error.start]:02x} "
                        f"at offset {error.start}){hint}"}]) from None
    except LookupError:
        raise DataError(f"unknown encoding '{encoding}'; try utf-8, gbk or gb18030") from None


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _json_error(text: str, error: json.JSONDecodeError) -> str:
    return f"broken JSON: {error.msg} (column {error.colno})"


def _read_jsonl(text: str, rows: list, problems: list) -> None:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue  # blank lines are not records
        try:
            rows.append(Row(json.loads(line), {"line": number}))
        except json.JSONDecodeError as error:
            problems.append({"line": number, "message": _json_error(line, error)})


def _read_json(text: str, rows: list, problems: list) -> None:
    """A JSON array, walked element by element so each record knows its line."""
    decoder = json.JSONDecoder()
    pos = _skip_ws(text, 0)
    if pos == len(text):
        return
    if text[pos] != "[":
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as error:
            problems.append({"line": error.lineno, "message": _json_error(text, error),
                             "fatal": True})
            return
        if _skip_ws(text, end) < len(text):  # more values follow: it is JSON Lines
            return _read_jsonl(text, rows, problems)
        if isinstance(value, dict) and len(value) == 1 and isinstance(next(iter(value.values())), list):
            key = next(iter(value))
            problems.append({"line": 1, "fatal": True, "message":
                             f"the file is one object whose '{key}' holds a list; put the records "
                             "themselves at the top: a JSON array [ {...}, ... ] or one per line (JSONL)"})
            return
        rows.append(Row(value, {"index": 0, "line": _line_of(text, pos)}))
        return
    pos = _skip_ws(text, pos + 1)
    index = 0
    while pos < len(text) and text[pos] != "]":
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as error:
            problems.append({"index": index, "line": error.lineno, "fatal": True,
                             "message": _json_error(text, error) + "; the rest of the file "
                             "cannot be read"})
            return
        rows.append(Row(value, {"index": index, "line": _line_of(text, pos)}))
        index += 1
        pos = _skip_ws(text, end)
        if pos < len(text) and text[pos] == ",":
            pos = _skip_ws(text, pos + 1)
        elif pos < len(text) and text[pos] != "]":
            problems.append({"index": index, "line": _line_of(text, pos), "fatal": True,
                             "message": "broken JSON: expected ',' or ']' between records"})
            return
    if pos >= len(text):
        problems.append({"line": _line_of(text, len(text)), "fatal": True,
                         "message": "broken JSON: the array is never closed with ']'"})
    elif _skip_ws(text, pos + 1) < len(text):
        problems.append({"line": _line_of(text, _skip_ws(text, pos + 1)), "fatal": True,
                         "message": "broken JSON: extra text after the closing ']'"})


def _read_csv(text: str, rows: list, problems: list, delimiter: str = ",") -> list | None:
    """Rows as dicts keyed by the header; returns the header (None for an empty file)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return None
    except csv.Error as error:
        problems.append({"line": 1, "message": f"broken CSV header: {error}", "fatal": True})
        return None
    header = [name.strip() for name in header]
    if not any(header):
        problems.append({"line": 1, "fatal": True,
                         "message": "the first line must name the columns, e.g. category,human,assistant"})
        return header
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            problems.append({"line": start, "message": f"broken CSV: {error}"})
            continue
        if not any(cell.strip() for cell in cells):
            continue  # blank row
        if len(cells) != len(header):
            problems.append({"line": start, "message":
                             f"the row has {len(cells)} cells but the header names {len(header)} "
                             f"columns ({', '.join(header)}); quote cells that contain a comma"})
            continue
        rows.append(Row(dict(zip(header, cells)), {"line": start}))
    return header


def _read_parquet(path: Path, rows: list) -> None:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as error:  # pyarrow raises several types for a bad file
        raise DataError(f"{path}: not a readable parquet file ({error})", path) from None
    rows.extend(Row(record, {"index": i}) for i, record in enumerate(table.to_pylist()))


def container_of(path: Path, text_start: str = "") -> str:
    if path.suffix.lower() in CONTAINERS:
        return CONTAINERS[path.suffix.lower()]
    start = text_start.lstrip()[:1]
    return {"[": "json", "{": "jsonl"}.get(start, "txt")


def read_rows(path, encoding: str = "utf-8") -> tuple[list[Row], list[dict], str, list | None]:
    """``(rows, problems, container, csv_header)``; problems found while reading (broken
    JSON, bad CSV rows) carry their place. Raises DataError for a missing or unreadable file."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file", path)
    if path.is_dir():
        raise DataError(f"{path} is a folder; give one data file (.jsonl, .json, .csv, .parquet, .txt)", path)
    rows: list[Row] = []
    problems: list[dict] = []
    header = None
    if path.suffix.lower() == ".parquet":
        _read_parquet(path, rows)
        return rows, problems, "parquet", None
    text = read_text(path, encoding)
    container = container_of(path, text[:100])
    if container == "jsonl":
        _read_jsonl(text, rows, problems)
    elif container == "json":
        _read_json(text, rows, problems)
    elif container == "csv":
        header = _read_csv(text, rows, problems, "\t" if path.suffix.lower() == ".tsv" else ",")
    else:  # plain text: one record per non-empty line
        rows.extend(Row({"text": line}, {"line": n})
                    for n, line in enumerate(text.splitlines(), start=1) if line.strip())
    return rows, problems, container, header


# ---------------------------------------------------------------------------- detection


def detect_record(record) -> str | None:
    """The format one record looks like, from its fields; None when it matches none."""
    if not isinstance(record, dict):
        return None
    keys = set(record)
    if "messages" in keys:
        return "openai"
    if "conversations" in keys:
        turns = record["conversations"]
        first = turns[0] if isinstance(turns, list) and turns else {}
        if isinstance(first, dict) and ("from" in first or "value" in first):
            return "sharegpt"
        return "chatglm3"
    if "conversation" in keys:
        return "firefly"
    if "chosen" in keys or "rejected" in keys:
        return "preference"
    if "task" in keys:
        return "multitask"
    if "instruction" in keys or ("output" in keys and "input" in keys):
        return "alpaca"
    if "prompt" in keys and "completion" in keys:
        return "prompt_completion"
    if "human" in keys and "assistant" in keys:
        return "firefly_csv"
    if "text" in keys:
        return "text"
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
