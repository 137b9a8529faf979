"""ftkit.data: formats, validation (the malformed corpus), loading, conversion round trips,
and the `ftkit data` command."""

import json
import re
from pathlib import Path

import pytest

from ftkit import data
from ftkit.cli import main
from ftkit.data.convert import from_canonical
from ftkit.data.report import describe

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
CORPUS = Path(__file__).resolve().parent / "data_corpus"
EXPECTED = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))

# The bundled datasets, their format and record count.
BUNDLED = {
    "identity.jsonl": ("openai", 65), "preference.jsonl": ("preference", 50),
    "multitask.jsonl": ("multitask", 60), "instruction.json": ("alpaca", 60),
    "conversations_sharegpt.jsonl": ("sharegpt", 55), "conversations_chatglm3.jsonl": ("chatglm3", 55),
    "firefly.jsonl": ("firefly", 50), "firefly.csv": ("firefly_csv", 60),
    "prompt_completion.jsonl": ("prompt_completion", 55), "pretrain_text.jsonl": ("text", 55),
}


def raw_records(path: Path) -> list:
    if path.suffix == ".json":
        return json.loads(path.read_text(encoding="utf-8"))
    if path.suffix == ".csv":
        import csv
        with open(path, encoding="utf-8", newline="") as handle:
            return list(csv.DictReader(handle))
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# ---------------------------------------------------------------- bundled data


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_file_is_clean_and_loads_whole(name, capsys):
    fmt, count = BUNDLED[name]
    report = data.validate(DATA / name)
    assert report.ok, str(report)
    assert (report.format, report.records, report.total) == (fmt, count, count)
    dataset = data.load(DATA / name)
    assert len(dataset) == count
    assert f"kept {count} of {count}" in capsys.readouterr().out


def test_bundled_data_meets_the_brief():
    identity = data.load(DATA / "identity.jsonl", verbose=False)
    answers = [row["messages"][-1]["content"] for row in identity]
    assert len(identity) >= 60 and all("Ferret" in a for a in answers)
    assert not any(m["role"] == "system" for row in identity for m in row["messages"])
    assert any(re.search(r"[\u4e00-\u9fff]", a) for a in answers)  # Chinese beside English
    tasks = data.load(DATA / "multitask.jsonl", verbose=False)["task"]
    counts = sorted((tasks.count(t) for t in set(tasks)), reverse=True)
    assert len(counts) == 3 and counts[0] >= 2 * counts[-1]  # deliberately imbalanced
    pref = data.load(DATA / "preference.jsonl", verbose=False)
    assert sum(s is not None for s in pref["score"]) >= 10
    assert sum(r is not None for r in pref["reject_reason"]) >= 10


def test_canonical_shapes():
    row = data.load(DATA / "multitask.jsonl", verbose=False)[0]
    assert set(row) == {"messages", "task"}
    assert row["messages"][0]["content"].startswith(row["task"] + ": ")
    pref = data.load(DATA / "preference.jsonl", verbose=False)[0]
    assert pref["prompt"][0]["role"] == "user" and pref["chosen"][0]["role"] == "assistant"
    assert pref["score"] == {"chosen": 5.0, "rejected": 2.0}
    firefly = data.load(DATA / "firefly.jsonl", verbose=False)[0]
    assert {"conversation_id", "category"} <= set(firefly)  # extra fields are kept
    assert data.load(DATA / "pretrain_text.jsonl", verbose=False).column_names == ["text"]


def test_seed_004_instruction_without_instruction_field(tmp_path):
    path = tmp_path / "sft.json"
    path.write_text(json.dumps([
        {"instruction": "作为法律顾问，请回答以下问题：", "input": "如果我被解雇，有权获得赔偿吗？",
         "output": "根据《劳动合同法》第47条..."},
        {"input": "签订购房合同后，开发商违约怎么办？", "output": "您可以依据《合同法》要求..."}],
        ensure_ascii=False), encoding="utf-8")
    rows = data.load(path, verbose=False)
    assert rows[0]["messages"][0]["content"] == "作为法律顾问，请回答以下问题：\n如果我被解雇，有权获得赔偿吗？"
    assert rows[1]["messages"][0]["content"] == "签订购房合同后，开发商违约怎么办？"


def test_split_and_gbk_encoding():
    assert len(data.load(DATA / "identity.jsonl", split="train[:80%]", verbose=False)) == 52
    gbk = CORPUS / "23_gbk_encoded.jsonl"
    assert data.load(gbk, encoding="gbk", verbose=False)[0]["messages"][1]["content"] == "你好！"
    with pytest.raises(data.DataError, match="not understood"):
        data.load(DATA / "identity.jsonl", split="validation[:3]", verbose=False)


def test_plain_txt_file_is_text(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text("First line.\n\nSecond line.\n", encoding="utf-8")
    assert data.load(path, verbose=False)["text"] == ["First line.", "Second line."]


# ---------------------------------------------------------------- the malformed corpus


def matches_place(problem: dict, place: str) -> bool:
    if not place:
        return "line" not in problem and "index" not in problem
    record = re.fullmatch(r"record (\d+) \(line (\d+)\)", place)
    if record:
        return problem.get("index") == int(record[1]) and problem.get("line") == int(record[2])
    return problem.get("line") == int(place.split()[1]) and "index" not in problem


def test_corpus_is_big_enough():
    assert len(EXPECTED) >= 25
    assert sorted(EXPECTED) == sorted(p.name for p in CORPUS.iterdir() if p.name != "expected.json")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_malformed_file_gets_its_message(name):
    expect = EXPECTED[name]
    report = data.validate(CORPUS / name, expect.get("format_arg", "auto"))
    assert not report.ok
    hits = [p for p in report.errors if expect["message"] in p["message"]]
    assert hits, f"{name}: no error says {expect['message']!r}: {report.errors}"
    assert any(matches_place(p, expect["place"]) for p in hits), f"{name}: wrong place {hits}"
    if "field" in expect:
        assert any(p.get("field") == expect["field"] for p in hits), hits
    if "format" in expect:
        assert report.format == expect["format"]
    assert set(report.to_dict()) >= {"format", "records", "errors"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_malformed_file_exits_2_naming_its_place(name, capsys):
    expect = EXPECTED[name]
    status = main(["data", "validate", str(CORPUS / name), "--format", expect.get("format_arg", "auto")])
    assert status == 2
    err = capsys.readouterr().err
    place = expect["place"]
    shown = f"{name}:{place.split()[1]}:" if place.startswith("line") else f"{name} {place}" if place else name
    assert shown in err and expect["message"] in err


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_strict_load_raises_data_error_listing_the_place(name):
    expect = EXPECTED[name]
    with pytest.raises(data.DataError) as caught:
        data.load(CORPUS / name, expect.get("format_arg", "auto"), on_error="raise", verbose=False)
    assert expect["message"] in str(caught.value)
    assert any(matches_place(p, expect["place"]) for p in caught.value.errors)


def test_skipping_load_keeps_good_records_and_says_why(capsys):
    rows = data.load(CORPUS / "13_multitask_missing_task.jsonl")
    out = capsys.readouterr().out
    assert len(rows) == 3 and "kept 3 of 4" in out and "skipped 1 bad record" in out
    assert "13_multitask_missing_task.jsonl:4: field 'task'" in out


def test_validate_json_output(capsys):
    assert main(["data", "validate", str(CORPUS / "10_preference_no_rejected.jsonl"), "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["format"] == "preference" and report["records"] == 2
    assert report["errors"] == [{"line": 3, "field": "rejected", "message": report["errors"][0]["message"]}]
    assert main(["data", "validate", str(DATA / "identity.jsonl"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["records"] == 65


def test_missing_file_is_a_data_error(capsys):
    assert main(["data", "validate", "no/such/file.jsonl"]) == 2
    assert "no such file" in capsys.readouterr().err


# ---------------------------------------------------------------- conversion


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_round_trip_to_own_format_is_lossless(name, tmp_path):
    fmt, _ = BUNDLED[name]
    original = data.load(DATA / name, verbose=False)
    written = data.write_records(data.convert_records(original, fmt), tmp_path / ("out" + Path(name).suffix))
    again = data.load(written, verbose=False)
    assert again.to_list() == original.to_list()
    expected = raw_records(DATA / name)
    if fmt not in ("alpaca", "preference"):
        assert data.convert_records(original, fmt) == expected
    else:  # alpaca joins instruction and input; a one-message preference side becomes a string
        assert [data.to_canonical(r, fmt) for r in expected] == [
            data.to_canonical(r, fmt) for r in data.convert_records(original, fmt)]


SFT_TARGETS = ["openai", "sharegpt", "chatglm3", "firefly", "firefly_csv", "alpaca",
               "prompt_completion", "prompt_response", "multitask"]
SYSTEM = "has no place for a system message"
ONE_PAIR = "holds one question and one answer"
TASK = "one question and answer with a 'task' field"
# Every conversion a bundled file cannot make: (file, target) -> (records refused, why).
# Any other pair must convert and read back unchanged; a pair refused that is not listed
# here, or refused for another reason or count, fails.
REFUSED = {
    ("identity.jsonl", "firefly_csv"): (3, ONE_PAIR), ("identity.jsonl", "prompt_response"): (3, ONE_PAIR),
    ("identity.jsonl", "multitask"): (65, TASK),
    ("instruction.json", "firefly"): (1, SYSTEM), ("instruction.json", "firefly_csv"): (1, SYSTEM),
    ("instruction.json", "prompt_response"): (1, ONE_PAIR), ("instruction.json", "multitask"): (60, TASK),
    ("conversations_sharegpt.jsonl", "firefly"): (19, SYSTEM),
    ("conversations_sharegpt.jsonl", "firefly_csv"): (55, (SYSTEM, ONE_PAIR)),
    ("conversations_sharegpt.jsonl", "prompt_response"): (55, ONE_PAIR),
    ("conversations_sharegpt.jsonl", "multitask"): (55, TASK),
    ("conversations_chatglm3.jsonl", "firefly"): (18, SYSTEM),
    ("conversations_chatglm3.jsonl", "firefly_csv"): (55, (SYSTEM, ONE_PAIR)),
    ("conversations_chatglm3.jsonl", "prompt_response"): (55, ONE_PAIR),
    ("conversations_chatglm3.jsonl", "multitask"): (55, TASK),
    ("firefly.jsonl", "firefly_csv"): (50, ONE_PAIR), ("firefly.jsonl", "prompt_response"): (50, ONE_PAIR),
    ("firefly.jsonl", "multitask"): (50, TASK),
    ("firefly.csv", "multitask"): (60, TASK), ("prompt_completion.jsonl", "multitask"): (55, TASK),
}
SFT_FILES = [n for n, (f, _) in BUNDLED.items() if f not in ("preference", "text")]


def test_refusal_table_names_real_pairs():
    assert {name for name, _ in REFUSED} <= set(SFT_FILES)
    assert {target for _, target in REFUSED} <= set(SFT_TARGETS)


@pytest.mark.parametrize("name", SFT_FILES)
@pytest.mark.parametrize("target", SFT_TARGETS)
def test_round_trip_through_every_format_that_can_hold_it(name, target, tmp_path):
    original = data.load(DATA / name, verbose=False)
    if (name, target) in REFUSED:
        count, why = REFUSED[name, target]
        why = why if isinstance(why, tuple) else (why,)
        with pytest.raises(data.DataError) as caught:
            data.convert_records(original, target)
        assert "cannot be written as" in str(caught.value)
        assert len(caught.value.errors) == count
        assert all(any(w in problem["message"] for w in why) for problem in caught.value.errors)
        return
    records = data.convert_records(original, target)
    suffix = ".csv" if target == "firefly_csv" else ".jsonl"
    again = data.load(data.write_records(records, tmp_path / f"x{suffix}"), target, verbose=False)
    assert again["messages"] == original["messages"]


def test_seed_000_csv_to_jsonl(tmp_path):
    out = tmp_path / "train.jsonl"
    assert main(["data", "convert", str(DATA / "firefly.csv"), "--to", "openai", "-o", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    csv_rows = raw_records(DATA / "firefly.csv")
    assert len(records) == len(csv_rows) == 60
    assert records[0] == {"messages": [{"role": "user", "content": csv_rows[0]["human"]},
                                       {"role": "assistant", "content": csv_rows[0]["assistant"]}],
                          "category": csv_rows[0]["category"]}


def test_convert_refuses_what_the_target_cannot_hold(tmp_path, capsys):
    status = main(["data", "convert", str(DATA / "conversations_sharegpt.jsonl"), "--to",
                   "firefly_csv", "-o", str(tmp_path / "x.csv")])
    assert status == 2 and not (tmp_path / "x.csv").exists()
    assert "record 0" in capsys.readouterr().err
    with pytest.raises(data.DataError, match="preference data cannot be written as alpaca"):
        data.convert_records(data.load(DATA / "preference.jsonl", verbose=False), "alpaca")


def test_preference_round_trip_keeps_message_lists():
    rows = data.load(DATA / "preference.jsonl", verbose=False).to_list()
    listed = from_canonical({**rows[0], "prompt": [{"role": "system", "content": "Be kind."}] + rows[0]["prompt"]},
                            "preference")
    assert isinstance(listed["prompt"], list) and listed["score"] == rows[0]["score"]


def test_describe_names_the_place():
    assert describe("f.jsonl", {"line": 3, "field": "task", "message": "missing"}) == \
        "f.jsonl:3: field 'task': missing"
    assert describe("f.json", {"index": 2, "line": 9, "message": "x"}) == "f.json record 2 (line 9): x"
