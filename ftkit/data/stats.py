"""Token-length statistics, and choosing ``max_seq_length`` from them (lesson 02).

Too small a ``max_seq_length`` cuts answers (the model then never learns to finish);
too large wastes memory on padding and raises the activation memory of every batch.
A good choice covers nearly all examples, rounded up to a multiple of 8 (GPU-friendly).
"""

from __future__ import annotations

import math


def token_lengths(dataset) -> list[int]:
    """Lengths of a tokenized dataset (its ``input_ids``), or of a list of id lists."""
    rows = dataset["input_ids"] if hasattr(dataset, "column_names") else dataset
    return [len(ids) for ids in rows]


def percentile(values: list[int], q: float) -> int:
    """The nearest-rank percentile (a length that really occurs)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def length_stats(lengths: list[int]) -> dict:
    if not lengths:
        return {"count": 0}
    return {"count": len(lengths), "min": min(lengths), "mean": round(sum(lengths) / len(lengths), 1),
            "p50": percentile(lengths, 50), "p90": percentile(lengths, 90),
            "p95": percentile(lengths, 95), "p99": percentile(lengths, 99), "max": max(lengths)}


def suggest_max_seq_length(lengths: list[int], coverage: float = 0.99, multiple_of: int = 8) -> int:
    """The smallest multiple of ``multiple_of`` that holds ``coverage`` of the examples whole."""
    needed = percentile(lengths, coverage * 100)
    return int(math.ceil(needed / multiple_of) * multiple_of)
