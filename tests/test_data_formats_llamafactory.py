"""LLaMA-Factory datasets read through their dataset_info.json entry, as LLaMA-Factory reads them.

Source: LLaMA-Factory ``src/llamafactory/data/parser.py`` (``DatasetAttr``: defaults
prompt=instruction, query=input, response=output, messages=conversations, tags from/value/
human/gpt/observation/function_call/system; a given ``columns`` or ``tags`` object unsets
every name it leaves out), ``converter.py`` (alpaca: user = prompt + "\\n" + query; sharegpt:
an optional system turn, then human/observation and gpt/function_call alternating; ranking:
an odd number of turns and chosen/rejected turn objects; kto_tag: the last answer rated;
alpaca without a response column: pre-training text) and ``data/README.md``.
The folder tests/data_formats/llamafactory holds our own files and their dataset_info.json;
the real files of ../shared/interop are checked when FTKIT_INTEROP_DIR names that folder.
"""

import json
import os
from pathlib import Path

import pytest

from ftkit import data
from ftkit.cli import main

DIR = Path(__file__).resolve().parent / "data_formats" / "llamafactory"

# name -> (format, records, canonical columns)
ENTRIES = {
    "my_alpaca": ("alpaca (dataset_info)", 3, {"messages"}),
    "my_alpaca_defaults": ("alpaca (dataset_info)", 3, {"messages", "system", "history"}),
    "my_renamed": ("alpaca (dataset_info)", 2, {"messages"}),
    "my_alpaca_dpo": ("alpaca (dataset_info, ranking)", 2, {"prompt", "chosen", "rejected"}),
    "my_alpaca_kto": ("alpaca (dataset_info)", 3, {"prompt", "completion", "label"}),
    "my_tools": ("sharegpt (dataset_info)", 2, {"messages", "tools"}),
    "my_dpo": ("sharegpt (dataset_info, ranking)", 2, {"prompt", "chosen", "rejected"}),
    "my_kto": ("sharegpt (dataset_info)", 2, {"prompt", "completion", "label"}),
    "my_pretrain": ("alpaca (dataset_info)", 2, {"text"}),
}


def load(name):
    return data.load_dataset_info(name, DIR, verbose=False).to_list()


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_entry_reads_whole(name):
    fmt, count, columns = ENTRIES[name]
    entry = data.resolve_dataset_info(name, DIR)
    report = data.validate(**entry.load_arguments())
    assert report.ok, str(report)
    assert (report.format, report.records) == (fmt, count)
    assert set(data.load_dataset_info(name, DIR, verbose=False).column_names) == columns


def test_alpaca_columns_system_and_history():
    first = load("my_alpaca")[0]["messages"]
    assert first == [{"role": "system", "content": "You translate."},
                     {"role": "user", "content": "Translate: 谢谢"}, {"role": "assistant", "content": "Thank you."},
                     {"role": "user", "content": "Translate into English.\n早上好"},
                     {"role": "assistant", "content": "Good morning."}]


def test_an_entry_without_columns_reads_only_what_llamafactory_reads():
    # DatasetAttr leaves system and history unset by default: the fields stay as data, untrained
    first = load("my_alpaca_defaults")[0]
    assert [m["role"] for m in first["messages"]] == ["user", "assistant"]
    assert first["system"] == "You translate."


def test_renamed_columns():
    first, second = load("my_renamed")
    assert first["messages"][0]["content"] == "What colour is grass?\nAnswer in one word."
    assert second["messages"] == [{"role": "user", "content": "天空是什么颜色？"},
                                  {"role": "assistant", "content": "蓝色。"}]


def test_ranked_pairs_alpaca_and_sharegpt():
    pair = load("my_alpaca_dpo")[0]
    assert pair["prompt"] == [{"role": "user", "content": "Is the Earth flat?"}]
    assert pair["rejected"] == [{"role": "assistant", "content": "Yes, it is flat."}]
    first, second = load("my_dpo")
    assert [m["role"] for m in first["prompt"]] == ["system", "user"]
    assert [m["role"] for m in second["prompt"]] == ["user", "assistant", "user"]
    assert second["chosen"] == [{"role": "assistant", "content": "春、夏、秋、冬。"}]


def test_kto_tag_is_kept_as_the_label():
    assert [row["label"] for row in load("my_alpaca_kto")] == [True, False, True]
    bad = load("my_kto")[1]
    assert bad["label"] is False and bad["completion"] == [{"role": "assistant", "content": "Table."}]
    assert bad["prompt"] == [{"role": "user", "content": "Give me a word for happy."}]


def test_function_call_and_observation_turns():
    first = load("my_tools")[0]
    assert [m["role"] for m in first["messages"]] == ["user", "assistant", "tool", "assistant"]
    assert json.loads(first["tools"])[0]["name"] == "multiply"


def test_prompt_only_columns_are_pretraining_text():
    assert [row["text"][:7] for row in load("my_pretrain")] == ["Ferrets", "一只雪貂可以活"]


def test_broken_records_are_named_not_skipped_in_silence():
    order = data.validate(**data.resolve_dataset_info("my_bad_order", DIR).load_arguments())
    assert order.errors[0]["field"] == "conversations[1]"
    assert "where function_call or gpt belongs" in order.errors[0]["message"]
    mllm = data.validate(**data.resolve_dataset_info("my_mllm", DIR).load_arguments())
    assert mllm.records == 0 and "1 image input(s)" in mllm.errors[0]["message"]


@pytest.mark.parametrize("name, message", [
    ("on_the_hub", "dataset_info.json:98: dataset 'on_the_hub' comes from hf_hub_url"),
    ("bad_formatting", "dataset_info.json:101: dataset 'bad_formatting': formatting must be 'alpaca' or 'sharegpt'"),
    ("no_such_name", "no dataset named 'no_such_name' (it defines 13: my_alpaca"),
])
def test_entries_that_cannot_be_used_say_where(name, message):
    with pytest.raises(data.DataError, match="dataset_info.json") as caught:
        data.resolve_dataset_info(name, DIR)
    assert message in str(caught.value)


def test_load_takes_a_spec_directly():
    rows = data.load(DIR / "sharegpt_preference.json", format="sharegpt", ranking=True, verbose=False,
                     columns={"messages": "conversations", "chosen": "chosen", "rejected": "rejected"})
    assert len(rows) == 2 and rows.column_names == ["prompt", "chosen", "rejected"]
    with pytest.raises(data.DataError, match="unknown columns key"):
        data.load(DIR / "alpaca_sft.json", format="alpaca", columns={"answer": "output"})


def test_load_takes_an_entry_as_written():
    # the hand-off from a run config's `dataset:` names: the entry itself, defaults applied
    info = json.loads((DIR / "dataset_info.json").read_text(encoding="utf-8"))
    kto = data.load(DIR / "messages_kto.json", dataset_info=info["my_kto"], verbose=False)
    assert kto["label"] == [True, False]
    plain = data.load(DIR / "alpaca_sft.json", dataset_info={}, verbose=False)[0]
    assert [m["role"] for m in plain["messages"]] == ["user", "assistant"]  # as LLaMA-Factory
    own = data.load(DIR / "alpaca_sft.json", verbose=False)[0]  # ftkit's alpaca reads more
    assert [m["role"] for m in own["messages"]][:2] == ["system", "user"]


def test_cli_validates_a_name_in_a_dataset_dir(capsys):
    assert main(["data", "validate", "my_dpo", "--dataset-dir", str(DIR)]) == 0
    assert "sharegpt (dataset_info, ranking), 2 good record(s) of 2" in capsys.readouterr().out
    assert main(["data", "validate", "my_mllm", "--dataset-dir", str(DIR)]) == 2
    assert "mllm.json record 0 (line 2): field 'images'" in capsys.readouterr().err
    assert main(["data", "validate", "on_the_hub", "--dataset-dir", str(DIR)]) == 2


def test_cli_converts_a_named_dataset(tmp_path):
    out = tmp_path / "pairs.jsonl"
    assert main(["data", "convert", "my_dpo", "--dataset-dir", str(DIR), "--to", "preference",
                 "-o", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert records[0]["chosen"] == [{"role": "assistant", "content": "No, ferrets cannot fly."}]
    assert data.validate(out).format == "preference"


# ---------------------------------------------------------------- the real files, when given

INTEROP = os.environ.get("FTKIT_INTEROP_DIR")


def raw_count(path: Path) -> int:
    text = path.read_text(encoding="utf-8")
    return len(json.loads(text)) if path.suffix == ".json" else sum(1 for line in text.splitlines() if line.strip())


@pytest.mark.skipif(not INTEROP, reason="FTKIT_INTEROP_DIR not given: the real LLaMA-Factory files were not checked")
def test_real_dataset_info_entries():
    folder = Path(INTEROP) / "llamafactory" / "data"
    info = json.loads((folder / "dataset_info.json").read_text(encoding="utf-8"))
    checked = 0
    for name, entry in info.items():
        if "file_name" not in entry or any(k.endswith("_url") for k in entry):
            with pytest.raises(data.DataError, match="reads local files only"):
                data.resolve_dataset_info(name, folder)
            continue
        resolved = data.resolve_dataset_info(name, folder)
        if not resolved.path.exists():
            with pytest.raises(data.DataError, match="no such file"):
                data.validate(**resolved.load_arguments())
            continue
        report = data.validate(**resolved.load_arguments())
        multimodal = {"images", "videos", "audios"} & set(entry.get("columns", {}))
        if multimodal:  # refused record by record, naming the modality
            assert report.records == 0 and all(e["field"] in multimodal for e in report.errors), name
            continue
        assert report.ok and report.records == raw_count(resolved.path), (name, str(report)[:500])
        rows = data.load_dataset_info(name, folder, verbose=False)
        kto = entry.get("columns", {}).get("kto_tag")
        if kto:  # every label, false ones included, reaches the record
            raw = json.loads(resolved.path.read_text(encoding="utf-8"))
            assert rows["label"] == [r[kto] for r in raw]
        expected = ({"prompt", "chosen", "rejected"} if entry.get("ranking") else
                    {"prompt", "completion", "label"} if kto else
                    {"text"} if entry.get("columns", {}).keys() == {"prompt"} else None)
        if expected:
            assert set(rows.column_names) == expected, name
        else:
            assert "messages" in rows.column_names, name
        checked += 1
    assert checked >= 6
