"""Property: whatever bytes a JSON / JSONL / CSV file holds, loading it (auto-detected, or
read through a LLaMA-Factory dataset_info entry) either gives a dataset or raises ftkit's
DataError, never anything else."""

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from ftkit import data

SUFFIXES = st.sampled_from([".jsonl", ".json", ".csv", ".txt"])
KEYS = st.sampled_from(["messages", "role", "content", "conversations", "from", "value", "task",
                        "input", "output", "instruction", "prompt", "chosen", "rejected", "score",
                        "text", "human", "assistant", "conversation", "history", "system", "x",
                        "completion", "label", "completions", "labels", "response", "weight", "loss",
                        "tools", "tool_calls", "function", "name", "parameters", "observation",
                        "preferred_output", "non_preferred_output", "images", "type", "id"])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
    | st.sampled_from(["user", "assistant", "system", "human", "gpt", "tool", "observation",
                       "function_call", "text", "image_url", "{}", "[]"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=12)


ENTRIES = [None, {}, {"formatting": "sharegpt"}, {"formatting": "sharegpt", "ranking": True},
           {"formatting": "sharegpt", "columns": {"messages": "messages", "kto_tag": "label"},
            "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                     "assistant_tag": "assistant"}},
           {"ranking": True, "columns": {"prompt": "instruction", "chosen": "chosen", "rejected": "rejected"}},
           {"columns": {"prompt": "text"}}]


def load_or_data_error(content: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"f{suffix}"
        path.write_bytes(content)
        for entry in ENTRIES:
            try:
                data.load(path, verbose=False, dataset_info=entry)
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
