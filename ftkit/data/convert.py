"""Conversion: every format into one canonical shape, and back out (lesson 02).

Canonical shapes (what :func:`ftkit.data.load` returns):

* SFT-like formats -> ``{"messages": [{"role", "content"}, ...]}`` plus the record's other
  fields (a multi-task record keeps ``task``; its prompt is ``"<task>: <input>"``, the
  T5 convention); a message not to be learned has ``"weight": 0``; tool descriptions are
  kept as JSON text in ``tools``;
* preference pairs -> ``{"prompt": [msgs], "chosen": [msgs], "rejected": [msgs]}`` plus
  ``score`` and ``reject_reason`` when the file has them;
* unpaired ratings (KTO) -> ``{"prompt": [msgs], "completion": [msgs], "label": bool}``;
* prompts only -> ``{"prompt": [msgs]}``; plain text -> ``{"text": str}``.

Each format reads and writes itself (:class:`ftkit.data.formats.Format`). Writing back out
is lossless where the target can hold the data; where it cannot (a system message into
Firefly, three turns into one CSV row, a weight-0 turn into Alpaca) it raises DataError
naming the records, instead of dropping something quietly.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from .formats import CONTAINERS, FORMATS, canonical_name
from .report import DataError
from .turns import CannotHold, kind_of_row

KIND_NAMES = {"sft": "sft", "preference": "preference", "unpaired": "unpaired preference (KTO)",
              "prompt": "prompt-only", "text": "text"}


def to_canonical(record: dict, fmt: str) -> dict:
    """One valid record of format ``fmt`` in the canonical shape (DataError if invalid)."""
    return FORMATS[canonical_name(fmt)].to_canonical(record)


def from_canonical(row: dict, fmt: str) -> dict:
    """One canonical record written as format ``fmt``; CannotHold when it does not fit."""
    spec = FORMATS[canonical_name(fmt)]
    have = kind_of_row(row)
    if spec.kind != have:
        raise CannotHold(f"{KIND_NAMES[have]} data cannot be written as {spec.name} "
                         f"({KIND_NAMES.get(spec.kind, spec.kind)} data)")
    return spec.write(row)


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


def convert(path, to: str, out, format="auto", encoding: str = "utf-8", columns=None,
            tags=None, ranking: bool = False, dataset_info: dict | None = None) -> Path:
    """Convert a data file into format ``to`` and write it to ``out`` (seed 000's CSV ->
    JSONL is ``convert("train.csv", "openai", "train.jsonl")``). Refuses files with bad
    records: validate and fix them first. The other arguments: as in load()."""
    from .validate import check_file

    _, _, problems, _, canonical = check_file(path, format, encoding, columns, tags, ranking,
                                              dataset_info)
    if problems:
        raise DataError(f"{path} has {len(problems)} problem(s); fix them before converting",
                        path, problems)
    return write_records(convert_records(canonical, canonical_name(to)), out)
