"""Containers: how records are stored (JSONL, a JSON array, CSV, parquet, plain .txt).

Reading keeps each record's place (line, or index + line) so that every later message
can point at it. The shape of one record (its *format*) is :mod:`ftkit.data.formats`'s
business; any format can live in any container that can hold it.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from .report import DataError

CONTAINERS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv",
              ".tsv": "csv", ".parquet": "parquet", ".txt": "txt"}



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


def _json_error(error: json.JSONDecodeError) -> str:
    return f"broken JSON: {error.msg} (column {error.colno})"


def _read_jsonl(text: str, rows: list, problems: list) -> None:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue  # blank lines are not records
        try:
            rows.append(Row(json.loads(line), {"line": number}))
        except json.JSONDecodeError as error:
            problems.append({"line": number, "message": _json_error(error)})


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
            problems.append({"line": error.lineno, "message": _json_error(error),
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
                             "message": _json_error(error) + "; the rest of the file "
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
