"""Property: whatever bytes a JSON / JSONL / CSV file holds, loading it either gives a
dataset or raises ftkit's DataError, never anything else."""

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from ftkit import data

SUFFIXES = st.sampled_from([".jsonl", ".json", ".csv", ".txt"])
KEYS = st.sampled_from(["messages", "role", "content", "conversations", "from", "value", "task",
                        "input", "output", "instruction", "prompt", "chosen", "rejected", "score",
                        "text", "human", "assistant", "conversation", "history", "system", "x"])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
    | st.sampled_from(["user", "assistant", "system", "human", "gpt"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=12)


def load_or_data_error(content: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"f{suffix}"
        path.write_bytes(content)
        try:
            data.load(path, verbose=False)
        except data.DataError:
            pass


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200), SUFFIXES)
def test_random_bytes(content, suffix):
    load_or_data_error(content, suffix)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(JSON, max_size=5), SUFFIXES)
def test_random_json_records(records, suffix):
    if suffix == ".json":
        content = json.dumps(records)
    else:
        content = "\n".join(json.dumps(r) for r in records)
    load_or_data_error(content.encode(), suffix)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(st.text(alphabet='ab,"\n ', max_size=6), min_size=1, max_size=4), max_size=5),
       st.sampled_from(["category,human,assistant", "task,input,output", "text", "human,x"]))
def test_random_csv(rows, header):
    content = header + "\n" + "\n".join(",".join(r) for r in rows)
    load_or_data_error(content.encode(), ".csv")
