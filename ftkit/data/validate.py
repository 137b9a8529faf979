"""Validation: every bad record, with its place and what to do about it (lesson 02).

``validate(path)`` reads a file, decides its format (or takes the one you name, or a
LLaMA-Factory column map), checks each record with that format's reader and returns a
:class:`Report`. Nothing is fixed or dropped silently: :func:`ftkit.data.load` uses the
same checks and says what it skipped.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from .formats import (
    FORMATS,
    Format,
    Row,
    canonical_name,
    detect_format,
    detect_record,
    read_rows,
    spec_format,
)
from .report import DataError, Report


def check_record(record, fmt, present: Counter | None = None) -> list[tuple[str | None, str]]:
    """``[(field, message), ...]`` for one record against a format (empty when it is good).

    ``present`` counts how many records of the file have each field, so that a field only
    some records have is reported as such.
    """
    spec = fmt if isinstance(fmt, Format) else FORMATS[canonical_name(fmt)]
    return spec.check(record, present)


def resolve_format(format="auto", columns=None, tags=None, ranking=False,
                   dataset_info: dict | None = None) -> Format | None:
    """A Format from a name, a Format, or a LLaMA-Factory entry (``dataset_info``: the
    entry as written in dataset_info.json; or ``format`` = its ``formatting`` with
    ``columns`` / ``tags`` / ``ranking``); None for auto-detection."""
    if dataset_info is not None:
        from .llamafactory import entry_arguments

        args = entry_arguments(dataset_info)
        return spec_format(args["format"], args["columns"], args["tags"], args["ranking"])
    if isinstance(format, Format):
        return format
    if columns is not None or tags is not None or ranking:
        return spec_format(format if format not in (None, "auto") else "alpaca", columns, tags, ranking)
    if not format or format == "auto":
        return None
    return FORMATS[canonical_name(format)]


def _csv_header_problem(header: list, fmt: Format) -> dict | None:
    missing = [f for f in fmt.fields if f not in header]
    if not missing:
        return None
    return {"line": 1, "fatal": True, "message":
            f"the CSV lacks the required column(s) {', '.join(missing)} for format {fmt.name}; "
            f"its header is: {','.join(header)}; expected e.g. "
            + ",".join(fmt.optional[:1] + fmt.fields)}


def _no_format_message(keys: list, container: str) -> str:
    """What the record holds, and a hint only when one format is truly close: it shares
    at least one field and lacks one required field at most."""
    def closeness(name):
        spec = FORMATS[name]
        shared = len(set(spec.fields + spec.optional) & set(keys))
        lacking = [f for f in spec.fields if f not in keys]
        return shared, lacking
    what = f"its columns are: {','.join(keys)}" if container == "csv" else (
        f"the first record has: {', '.join(keys)}" if keys else "the first record is not an object")
    hint = ""
    close = [(name, *closeness(name)) for name in FORMATS if FORMATS[name].parse]
    close = [c for c in close if c[1] and len(c[2]) == 1]
    if close:
        name, _, lacking = max(close, key=lambda c: c[1])
        hint = f"; closest is {name}, which also needs {lacking[0]}"
    return (f"no known format matches ({what}){hint}; expected e.g. messages / conversations / "
            "instruction+output / prompt+completion / prompt+chosen+rejected / "
            "input+preferred_output+non_preferred_output / task+input+output / "
            "category,human,assistant / text, or name the format with format=...")


def check_file(path, format="auto", encoding: str = "utf-8", columns=None, tags=None,
               ranking: bool = False, dataset_info: dict | None = None):
    """``(format, good_rows, problems, total, canonical_rows)``: the shared work of
    validate() and load(); ``format`` is a :class:`Format` (None when none matched)."""
    rows, problems, container, header = read_rows(path, encoding)
    total = len(rows) + sum(1 for p in problems if not p.get("fatal"))  # unreadable records count
    if total == 0 and not problems:
        problems.append({"fatal": True, "message": "the file holds no records"})
    fmt = resolve_format(format, columns, tags, ranking, dataset_info)
    if fmt is None:
        name, _ = detect_format(rows)
        if name is None and rows:
            first = rows[0].record
            keys = list(first) if isinstance(first, dict) else []
            if container == "csv" and header is not None:
                keys, where = header, {"line": 1}
            else:
                where = rows[0].place
            problems.append({**where, "fatal": True, "message": _no_format_message(keys, container)})
            return None, [], problems, total, []
        fmt = FORMATS[name] if name else None
    if fmt is not None and fmt.refuse and rows:
        problems.append({**rows[0].place, "fatal": True, "message": fmt.refuse})
        return fmt, [], problems, total, []
    if fmt is not None and container == "csv" and header is not None:
        problem = _csv_header_problem(header, fmt)
        if problem:
            return fmt, [], problems + [problem], total, []
    present = Counter(k for row in rows if isinstance(row.record, dict) for k in row.record)
    good: list[Row] = []
    canonical: list[dict] = []
    for row in rows:
        made, found = fmt.read(row.record, present)
        seen = detect_record(row.record)
        if found and seen not in (None, fmt.name) and fmt.name in FORMATS:
            found.append((None, f"(this record looks like {seen} data, but the file is {fmt.name})"))
        for field, message in found:
            problem = dict(row.place)
            if field:
                problem["field"] = field
            problem["message"] = message
            problems.append(problem)
        if not found:
            good.append(row)
            canonical.append(made)
    problems.sort(key=lambda p: (p.get("index", -1), p.get("line", 0)))
    return fmt, good, problems, total, canonical


def validate(path, format="auto", encoding: str = "utf-8", columns=None, tags=None,
             ranking: bool = False, dataset_info: dict | None = None) -> Report:
    """Check a data file record by record (arguments as :func:`ftkit.data.load`). Raises
    DataError only when there is no file."""
    path = Path(path)
    try:
        fmt, good, problems, total, _ = check_file(path, format, encoding, columns, tags, ranking,
                                                   dataset_info)
    except DataError as error:
        if not path.is_file() or not error.errors:
            raise
        return Report(str(path), None if format == "auto" else str(format), 0, error.errors, 0)
    clean = [{k: v for k, v in p.items() if k != "fatal"} for p in problems]
    return Report(str(path), fmt.name if fmt else None, len(good), clean, total)
