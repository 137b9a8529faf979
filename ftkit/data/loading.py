"""``load``: any supported file -> a ``datasets.Dataset`` in the canonical shape (lesson 02).

Loading says what it did: how many records it kept, which it skipped and why (with
their places), so that nothing disappears silently between the file and the trainer.
"""

from __future__ import annotations

import json
from pathlib import Path

from .report import DataError, describe_all
from .turns import CANONICAL_FIELDS as CANONICAL_COLUMNS
from .validate import check_file

SHAPES = {"sft": "messages", "preference": "prompt/chosen/rejected",
          "unpaired": "prompt/completion/label (unpaired preference, KTO)",
          "prompt": "prompt (prompt-only: nothing to learn by SFT)", "text": "text"}


def _to_dataset(rows: list[dict]):
    """A Dataset with every column any record has (missing values None); extra fields whose
    types differ between records are kept as JSON text rather than failing."""
    import datasets

    columns = list(dict.fromkeys(k for row in rows for k in row))
    table = {c: [row.get(c) for row in rows] for c in columns}
    try:
        return datasets.Dataset.from_dict(table)
    except Exception:  # pyarrow refuses mixed types; keep those extras as text
        for column in columns:
            if column in CANONICAL_COLUMNS:
                continue
            kinds = {type(v) for v in table[column] if v is not None}
            if len(kinds) > 1 or kinds & {dict, list}:
                table[column] = [None if v is None else v if isinstance(v, str)
                                 else json.dumps(v, ensure_ascii=False) for v in table[column]]
        return datasets.Dataset.from_dict(table)


def _select_split(dataset, split: str | None, path):
    if not split or split == "train":
        return dataset
    from datasets import ReadInstruction

    try:
        (instruction,) = ReadInstruction.from_spec(split).to_absolute({"train": len(dataset)})
    except Exception as error:
        raise DataError(f"split '{split}' is not understood ({error}); a data file is one split "
                        "called 'train': use e.g. 'train[:80%]', 'train[80%:]' or 'train[:100]'",
                        path) from None
    return dataset.select(range(instruction.from_, instruction.to))


def load(path, format="auto", encoding: str = "utf-8", split: str | None = None,
         on_error: str = "skip", verbose: bool = True, columns: dict | None = None,
         tags: dict | None = None, ranking: bool = False, dataset_info: dict | None = None):
    """Read a data file (JSONL, JSON array, CSV, parquet, .txt) in any supported format and
    return a ``datasets.Dataset`` in the canonical shape (see :mod:`ftkit.data.convert`).

    ``format`` is ``"auto"`` or a format name (``ftkit.data.FORMATS``). A file named by a
    LLaMA-Factory ``dataset_info.json`` entry is read as LLaMA-Factory reads it: pass the
    entry as written (``dataset_info={"formatting": "sharegpt", "ranking": true, "columns":
    {...}, "tags": {...}}``, its defaults applied where it is silent), or its values as
    ``format`` (the ``formatting``) / ``columns`` / ``tags`` / ``ranking``. ``kto_tag`` is
    one of the ``columns``, as there.

    Bad records are skipped and listed (``on_error="skip"``) or make the load fail
    (``on_error="raise"``); a file that cannot be read at all, or with no good record,
    always raises :class:`DataError` listing every problem with its place.
    """
    if on_error not in ("skip", "raise"):
        raise DataError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
    path = Path(path)
    fmt, good, problems, total, rows = check_file(path, format, encoding, columns, tags, ranking,
                                                  dataset_info)
    fatal = [p for p in problems if p.get("fatal")]
    clean = [{k: v for k, v in p.items() if k != "fatal"} for p in problems]
    if fatal or not good or (problems and on_error == "raise"):
        why = f"{len(problems)} problem(s) found" + (" (no usable record)" if not good else "")
        raise DataError(f"cannot load {path}: {why}", path, clean)
    dataset = _select_split(_to_dataset(rows), split, path)
    if verbose:
        from .turns import kind_of_row

        kind = kind_of_row(rows[0])
        line = (f"loaded {path.name}: format {fmt.name}, kept {len(good)} of {total} record(s) as "
                f"{SHAPES[kind]}")
        if split:
            line += f"; split {split}: {len(dataset)}"
        print(line)
        if problems:
            skipped = len({(p.get("index"), p.get("line")) for p in clean})
            print(f"skipped {skipped} bad record(s):\n{describe_all(path, clean)}")
    return dataset


def load_dataset_info(name: str, dataset_dir="data", **kwargs):
    """A dataset named in LLaMA-Factory's ``dataset_info.json`` (in ``dataset_dir``), read
    the way that entry says. ``num_samples`` keeps the first that many records (LLaMA-Factory
    draws them at random; the first ones keep a rehearsal reproducible)."""
    from .llamafactory import resolve

    entry = resolve(name, dataset_dir)
    dataset = load(**entry.load_arguments(), **kwargs)
    if entry.num_samples:
        dataset = dataset.select(range(min(entry.num_samples, len(dataset))))
    return dataset
