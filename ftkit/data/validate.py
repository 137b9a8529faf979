"""Validation: every bad record, with its place and what to do about it (lesson 02).

``validate(path)`` reads a file, decides its format (or takes the one you name), checks
each record against that format and returns a :class:`Report`. Nothing is fixed or
dropped silently: :func:`ftkit.data.load` uses the same checks and says what it skipped.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from .formats import FORMATS, Row, canonical_name, detect_format, detect_record, read_rows
from .report import DataError, Report

CHAT_ROLES = {"system", "user", "assistant"}
SHAREGPT_ROLES = {"system": "system", "human": "user", "gpt": "assistant"}


def _kind(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false",
            int: "a number", float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _need_text(record: dict, field: str, problems: list, required: bool = True,
               present_in: int = 0) -> None:
    """A required (or optional, when present) non-empty string field."""
    if field not in record or (record[field] is None and not required):
        if required:
            others = f" ({present_in} other record(s) in this file have it)" if present_in else ""
            problems.append((field, f"missing required field '{field}'{others}"))
        return
    value = record[field]
    if not isinstance(value, str):
        problems.append((field, f"must be a string, got {_kind(value)}"))
    elif required and not value.strip():
        problems.append((field, "is empty"))


def _check_turns(turns, field: str, problems: list, role_key: str, content_key: str,
                 roles: dict, need_answer: bool = True) -> None:
    """A conversation: a non-empty list of {role, content} turns with known roles,
    system only first, and (for SFT) at least one assistant turn, the last one included."""
    if not isinstance(turns, list):
        problems.append((field, f"must be a list of turns, got {_kind(turns)}"))
        return
    if not turns:
        problems.append((field, "is an empty conversation"))
        return
    mapped = []
    for i, turn in enumerate(turns):
        where = f"{field}[{i}]"
        if not isinstance(turn, dict):
            problems.append((where, f"a turn must be an object with '{role_key}' and "
                                    f"'{content_key}', got {_kind(turn)}"))
            mapped.append(None)
            continue
        role = turn.get(role_key)
        if role_key not in turn:
            problems.append((f"{where}.{role_key}", f"missing '{role_key}'"))
        elif role not in roles:
            problems.append((f"{where}.{role_key}", f"unknown role {role!r}; allowed: "
                             + ", ".join(sorted(roles))))
        content = turn.get(content_key)
        if content_key not in turn:
            problems.append((f"{where}.{content_key}", f"missing '{content_key}'"))
        elif not isinstance(content, str):
            problems.append((f"{where}.{content_key}", f"must be a string, got {_kind(content)}"))
        elif not content.strip():
            problems.append((f"{where}.{content_key}", "is empty"))
        mapped.append(roles.get(role) if isinstance(role, str) else None)
    for i, role in enumerate(mapped):
        if role == "system" and i > 0:
            problems.append((f"{field}[{i}]", "a system turn may only come first"))
    if need_answer and all(r is not None for r in mapped):
        if "assistant" not in mapped:
            problems.append((field, "the conversation has no assistant turn, so there is "
                                    "nothing to learn from it"))
        elif mapped[-1] != "assistant":
            problems.append((field, f"the conversation ends with a {mapped[-1]} turn that has "
                                    "no answer; end it with an assistant turn or drop that turn"))


def _check_pairs(pairs, problems: list) -> None:
    """Firefly's conversation: a list of {human, assistant} pairs."""
    if not isinstance(pairs, list) or not pairs:
        problems.append(("conversation", "must be a non-empty list of {human, assistant} pairs, "
                         f"got {_kind(pairs) if pairs != [] else 'an empty list'}"))
        return
    for i, pair in enumerate(pairs):
        if not isinstance(pair, dict):
            problems.append((f"conversation[{i}]", f"must be an object with 'human' and "
                                                   f"'assistant', got {_kind(pair)}"))
            continue
        sub: list = []
        _need_text(pair, "human", sub)
        _need_text(pair, "assistant", sub)
        problems.extend((f"conversation[{i}].{f}", m) for f, m in sub)


def _check_history(history, problems: list) -> None:
    if not isinstance(history, list):
        problems.append(("history", f"must be a list of [question, answer] pairs, got {_kind(history)}"))
        return
    for i, pair in enumerate(history):
        if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                or not all(isinstance(x, str) and x.strip() for x in pair)):
            problems.append((f"history[{i}]", "must be a [question, answer] pair of non-empty strings"))


def _check_side(record: dict, field: str, problems: list, present_in: int, roles: set) -> None:
    """A preference side: a string, or a list of messages."""
    if field not in record:
        others = f" ({present_in} other record(s) in this file have it)" if present_in else ""
        what = {"rejected": "a preference pair needs a rejected answer to compare with 'chosen'",
                "chosen": "a preference pair needs the chosen (better) answer",
                "prompt": "a preference pair needs the prompt both answers reply to"}[field]
        problems.append((field, f"missing required field '{field}': {what}{others}"))
        return
    value = record[field]
    if isinstance(value, list):
        _check_turns(value, field, problems, "role", "content", {r: r for r in roles},
                     need_answer=False)
    elif not isinstance(value, str):
        problems.append((field, f"must be a string or a list of messages, got {_kind(value)}"))
    elif not value.strip():
        problems.append((field, "is empty"))


def check_record(record, fmt: str, present: Counter | None = None) -> list[tuple[str | None, str]]:
    """``[(field, message), ...]`` for one record against a format (empty when it is good).

    ``present`` counts how many records of the file have each field, so that a field only
    some records have is reported as such.
    """
    present = present or Counter()
    if not isinstance(record, dict):
        return [(None, f"a record must be a JSON object, got {_kind(record)}")]
    problems: list = []
    count = lambda f: present.get(f, 0)  # noqa: E731
    if fmt == "openai":
        if "messages" not in record:
            problems.append(("messages", "missing required field 'messages'"))
        else:
            _check_turns(record["messages"], "messages", problems, "role", "content",
                         {r: r for r in CHAT_ROLES})
    elif fmt in ("sharegpt", "chatglm3"):
        if "conversations" not in record:
            problems.append(("conversations", "missing required field 'conversations'"))
        elif fmt == "sharegpt":
            _check_turns(record["conversations"], "conversations", problems, "from", "value",
                         SHAREGPT_ROLES)
            _need_text(record, "system", problems, required=False)
        else:
            _check_turns(record["conversations"], "conversations", problems, "role", "content",
                         {r: r for r in CHAT_ROLES})
    elif fmt == "firefly":
        if "conversation" not in record:
            problems.append(("conversation", "missing required field 'conversation'"))
        else:
            _check_pairs(record["conversation"], problems)
    elif fmt == "firefly_csv":
        _need_text(record, "human", problems, present_in=count("human"))
        _need_text(record, "assistant", problems, present_in=count("assistant"))
    elif fmt == "alpaca":
        _need_text(record, "output", problems, present_in=count("output"))
        for field in ("instruction", "input", "system"):
            _need_text(record, field, problems, required=False)
        texts = [record.get(f) for f in ("instruction", "input")]
        if not any(isinstance(t, str) and t.strip() for t in texts) and not any(
                f in {p[0] for p in problems} for f in ("instruction", "input")):
            problems.append(("instruction", "needs a non-empty 'instruction' or 'input'"))
        if record.get("history") is not None:
            _check_history(record["history"], problems)
    elif fmt == "prompt_completion":
        for field in ("prompt", "completion"):
            if isinstance(record.get(field), list):
                _check_turns(record[field], field, problems, "role", "content",
                             {r: r for r in CHAT_ROLES}, need_answer=False)
            else:
                _need_text(record, field, problems, present_in=count(field))
    elif fmt == "multitask":
        for field in ("task", "input", "output"):
            _need_text(record, field, problems, present_in=count(field))
    elif fmt == "preference":
        _check_side(record, "prompt", problems, count("prompt"), CHAT_ROLES)
        _check_side(record, "chosen", problems, count("chosen"), {"assistant"})
        _check_side(record, "rejected", problems, count("rejected"), {"assistant"})
        if not problems and record["chosen"] == record["rejected"]:
            problems.append(("rejected", "is the same as 'chosen', so the pair teaches nothing"))
        score = record.get("score")
        if score is not None and not (
                isinstance(score, dict) and set(score) <= {"chosen", "rejected"} and score
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in score.values())):
            problems.append(("score", 'must look like {"chosen": 5, "rejected": 1} (numbers), '
                                      f"got {_kind(score)}"))
        _need_text(record, "reject_reason", problems, required=False)
    elif fmt == "text":
        _need_text(record, "text", problems, present_in=count("text"))
    else:  # pragma: no cover - canonical_name() guards this
        raise ValueError(fmt)
    return problems


def _csv_header_problem(header: list, fmt: str) -> dict | None:
    missing = [f for f in FORMATS[fmt].fields if f not in header]
    if not missing:
        return None
    return {"line": 1, "fatal": True, "message":
            f"the CSV lacks the required column(s) {', '.join(missing)} for format {fmt}; "
            f"its header is: {','.join(header)}; expected e.g. "
            + ",".join(FORMATS[fmt].optional[:1] + FORMATS[fmt].fields)}


def _no_format_message(keys: list, container: str) -> str:
    """Which format the fields come closest to, and what that format still needs."""
    def overlap(f):
        spec = FORMATS[f]
        return (len(set(spec.fields + spec.optional) & set(keys)), -len(spec.fields))
    closest = max(FORMATS, key=overlap)
    what = f"its columns are: {','.join(keys)}" if container == "csv" else (
        f"the first record has: {', '.join(keys)}" if keys else "the first record is not an object")
    hint = ""
    if overlap(closest)[0]:
        missing = [f for f in FORMATS[closest].fields if f not in keys]
        hint = (f"; closest is {closest}, which also needs {', '.join(missing)}" if missing else "")
    return (f"no known format matches ({what}){hint}; expected e.g. messages / conversations / "
            "instruction+output / prompt+chosen+rejected / task+input+output / "
            "category,human,assistant / text, or name the format with format=...")


def check_file(path, format: str = "auto", encoding: str = "utf-8"):
    """``(fmt, good_rows, problems, total)``: the shared work of validate() and load()."""
    rows, problems, container, header = read_rows(path, encoding)
    total = len(rows) + sum(1 for p in problems if not p.get("fatal"))  # unreadable records count
    if total == 0 and not problems:
        problems.append({"fatal": True, "message": "the file holds no records"})
    if format and format != "auto":
        fmt = canonical_name(format)
    else:
        fmt, counts = detect_format(rows)
        if fmt is None and rows:
            first = rows[0].record
            keys = list(first) if isinstance(first, dict) else []
            if container == "csv" and header is not None:
                keys, where = header, {"line": 1}
            else:
                where = rows[0].place
            problems.append({**where, "fatal": True, "message": _no_format_message(keys, container)})
            return None, [], problems, total
    if fmt is not None and container == "csv" and header is not None:
        problem = _csv_header_problem(header, fmt)
        if problem:
            return fmt, [], problems + [problem], total
    present = Counter(k for row in rows if isinstance(row.record, dict) for k in row.record)
    good: list[Row] = []
    for row in rows:
        found = check_record(row.record, fmt, present)
        seen = detect_record(row.record)
        if found and seen not in (None, fmt):
            found.append((None, f"(this record looks like {seen} data, but the file is {fmt})"))
        for field, message in found:
            problem = dict(row.place)
            if field:
                problem["field"] = field
            problem["message"] = message
            problems.append(problem)
        if not found:
            good.append(row)
    problems.sort(key=lambda p: (p.get("index", -1), p.get("line", 0)))
    return fmt, good, problems, total


def validate(path, format: str = "auto", encoding: str = "utf-8") -> Report:
    """Check a data file record by record. Raises DataError only when there is no file."""
    path = Path(path)
    try:
        fmt, good, problems, total = check_file(path, format, encoding)
    except DataError as error:
        if not path.is_file() or not error.errors:
            raise
        return Report(str(path), None if format == "auto" else format, 0, error.errors, 0)
    clean = [{k: v for k, v in p.items() if k != "fatal"} for p in problems]
    return Report(str(path), fmt, len(good), clean, total)
