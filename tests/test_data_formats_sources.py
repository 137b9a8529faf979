"""Data formats of other tools, each detected from its records and read as that tool means it.

Sources, per file of tests/data_formats/ (our own sentences in each tool's layout):
- trl_*: TRL's "Dataset formats and types" (huggingface.co/docs/trl/dataset_formats): every
  type in standard and conversational form; the implicit prompt as TRL's ``extract_prompt``
  takes it; stepwise supervision refused (ftkit trains no process reward model).
- openai_*: OpenAI's fine-tuning guides: chat rows with per-message ``weight`` (0 or 1, on
  assistant messages), ``tool_calls`` and ``tools``; content as a list of parts; preference
  rows ``input`` / ``preferred_output`` / ``non_preferred_output``.
- fastchat_sharegpt.json: FastChat's ShareGPT (``id``, from human/gpt/system).
- chatglm3_*: ChatGLM3 ``finetune_demo/README.md`` (tools, ``tool`` and ``observation``
  turns, ``loss`` flag) and ``preprocess_utils.InputOutputDataset`` (prompt/response).
"""

import json
from pathlib import Path

import pytest

from ftkit import data
from ftkit.cli import main

FILES = Path(__file__).resolve().parent / "data_formats"

# file -> (format detected, records, columns of the canonical dataset)
TABLE = {
    "trl_language_modeling_standard.jsonl": ("text", 3, {"text"}),
    "trl_language_modeling_conversational.jsonl": ("openai", 2, {"messages"}),
    "trl_prompt_only_standard.jsonl": ("prompt_only", 2, {"prompt"}),
    "trl_prompt_only_conversational.jsonl": ("prompt_only", 2, {"prompt"}),
    "trl_prompt_completion_standard.jsonl": ("prompt_completion", 3, {"messages"}),
    "trl_prompt_completion_conversational.jsonl": ("prompt_completion", 2, {"messages"}),
    "trl_preference_standard.jsonl": ("preference", 2, {"prompt", "chosen", "rejected"}),
    "trl_preference_conversational.jsonl": ("preference", 2, {"prompt", "chosen", "rejected"}),
    "trl_preference_implicit_standard.jsonl": ("preference", 2, {"prompt", "chosen", "rejected"}),
    "trl_preference_implicit_conversational.jsonl": ("preference", 2, {"prompt", "chosen", "rejected"}),
    "trl_unpaired_standard.jsonl": ("unpaired_preference", 3, {"prompt", "completion", "label"}),
    "trl_unpaired_conversational.jsonl": ("unpaired_preference", 2, {"prompt", "completion", "label"}),
    "openai_chat_weights.jsonl": ("openai", 3, {"messages", "tools"}),
    "openai_content_parts.jsonl": ("openai", 1, {"messages"}),
    "openai_preference.jsonl": ("openai_preference", 2, {"prompt", "chosen", "rejected"}),
    "fastchat_sharegpt.json": ("sharegpt", 2, {"messages", "id"}),
    "chatglm3_tools.jsonl": ("chatglm3", 3, {"messages", "tools"}),
    "chatglm3_prompt_response.json": ("prompt_response", 2, {"messages"}),
}


def test_every_file_is_in_the_table():
    on_disk = {p.name for p in FILES.iterdir() if p.is_file()}
    refused = {"trl_stepwise_supervision.jsonl", "openai_image_part.jsonl"}
    assert on_disk == set(TABLE) | refused


@pytest.mark.parametrize("name", sorted(TABLE))
def test_detected_validated_and_loaded_whole(name):
    fmt, count, columns = TABLE[name]
    report = data.validate(FILES / name)
    assert report.ok, str(report)
    assert (report.format, report.records, report.total) == (fmt, count, count)
    dataset = data.load(FILES / name, verbose=False)
    assert len(dataset) == count and set(dataset.column_names) == columns


def rows(name):
    return data.load(FILES / name, verbose=False).to_list()


def test_standard_text_is_wrapped_as_a_chat_turn_and_conversations_kept():
    standard = rows("trl_prompt_completion_standard.jsonl")[0]["messages"]
    assert standard == [{"role": "user", "content": "The opposite of hot is"},
                        {"role": "assistant", "content": " cold."}]
    chat = rows("trl_prompt_completion_conversational.jsonl")[1]["messages"]
    assert [m["role"] for m in chat] == ["system", "user", "assistant"]


def test_implicit_prompt_is_the_shared_beginning_as_trl_extracts_it():
    from trl.data_utils import extract_prompt  # TRL's own reading, the reference

    raw = [json.loads(line) for line in (FILES / "trl_preference_implicit_standard.jsonl").read_text().splitlines()]
    for record, row in zip(raw, rows("trl_preference_implicit_standard.jsonl")):
        trl = extract_prompt(record)
        assert row["prompt"] == [{"role": "user", "content": trl["prompt"]}]
        assert row["chosen"][0]["content"] == trl["chosen"]
        assert row["rejected"][0]["content"] == trl["rejected"]
    raw = [json.loads(line) for line in (FILES / "trl_preference_implicit_conversational.jsonl").read_text().splitlines()]
    for record, row in zip(raw, rows("trl_preference_implicit_conversational.jsonl")):
        trl = extract_prompt(record)
        assert (row["prompt"], row["chosen"], row["rejected"]) == (trl["prompt"], trl["chosen"], trl["rejected"])


def test_implicit_prompt_without_a_shared_beginning_is_refused(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"chosen": "Yes, gladly.", "rejected": "No."}) + "\n")
    report = data.validate(path)
    assert not report.ok and "share no beginning" in report.errors[0]["message"]
    assert report.errors[0]["line"] == 1 and report.errors[0]["field"] == "prompt"


def test_kto_labels_are_kept_false_included():
    labels = [row["label"] for row in rows("trl_unpaired_standard.jsonl")]
    assert labels == [True, False, True]
    bad = rows("trl_unpaired_conversational.jsonl")[1]
    assert bad["label"] is False and bad["completion"] == [{"role": "assistant", "content": "Yes, obviously."}]


def test_kto_label_must_be_a_boolean(tmp_path):
    path = tmp_path / "kto.jsonl"
    path.write_text(json.dumps({"prompt": "Hi", "completion": "Hello", "label": "yes"}) + "\n")
    report = data.validate(path)
    assert report.format == "unpaired_preference"
    assert report.errors[0]["field"] == "label" and "true (a desirable answer) or false" in report.errors[0]["message"]


def test_openai_weights_tool_calls_and_parts():
    first, second, tools = rows("openai_chat_weights.jsonl")
    assert [m.get("weight") for m in first["messages"]] == [None, None, 0, None, None]  # 1: the default
    assert second["messages"][1]["weight"] == 0 and second["messages"][3].get("weight") is None
    call = tools["messages"][1]
    assert call["role"] == "assistant" and json.loads(call["content"]) == [
        {"name": "get_weather", "arguments": '{"city": "Oslo"}'}]
    assert tools["messages"][2] == {"role": "tool", "content": '{"temp_c": 3}', "weight": None}
    assert json.loads(tools["tools"])[0]["function"]["name"] == "get_weather"
    parts = rows("openai_content_parts.jsonl")[0]["messages"]
    assert parts == [{"role": "user", "content": "Translate: good night"},
                     {"role": "assistant", "content": "晚安。"}]


@pytest.mark.parametrize("weight, message", [(2, "must be 0 or 1, got 2"), (True, "must be 0 or 1, got True")])
def test_openai_weight_values(tmp_path, weight, message):
    path = tmp_path / "w.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "Hi"},
                                             {"role": "assistant", "content": "Hello", "weight": weight}]}) + "\n")
    problem = data.validate(path).errors[0]
    assert problem["field"] == "messages[1].weight" and message in problem["message"]


def test_weight_on_a_user_message_and_all_weights_zero_are_refused(tmp_path):
    path = tmp_path / "w.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"messages": [{"role": "user", "content": "Hi", "weight": 0}, {"role": "assistant", "content": "Hello"}]},
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello", "weight": 0}]},
    ]) + "\n")
    first, second = data.validate(path).errors
    assert first["line"] == 1 and "only assistant messages have a weight" in first["message"]
    assert second["line"] == 2 and "nothing to learn" in second["message"]


def test_openai_preference_rows():
    row = rows("openai_preference.jsonl")[1]
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    assert row["chosen"] == [{"role": "assistant", "content": "中国。"}]


def test_openai_preference_is_not_hinted_as_alpaca(tmp_path):
    path = tmp_path / "pref.jsonl"
    path.write_text(json.dumps({"input": {"messages": [{"role": "user", "content": "Hi"}]},
                                "preferred_output": [{"role": "assistant", "content": "Hello"}]}) + "\n")
    report = data.validate(path)
    assert report.format == "openai_preference"
    assert "non_preferred_output" in report.errors[0]["message"]
    assert "alpaca" not in str(report)


def test_fastchat_system_turn_and_system_field():
    first, second = rows("fastchat_sharegpt.json")
    assert first["messages"][0] == {"role": "system", "content": "You answer in one sentence."}
    assert second["messages"][0] == {"role": "system", "content": "你是一位耐心的老师。"}
    assert [m["role"] for m in second["messages"][1:]] == ["user", "assistant"] * 2
    assert first["id"] == "a1"


def test_chatglm3_tool_observation_and_loss():
    tool, observation, loss = rows("chatglm3_tools.jsonl")
    assert [m["role"] for m in tool["messages"]] == ["system", "user", "assistant", "tool", "assistant"]
    assert json.loads(tool["messages"][2]["content"]) == {"name": "get_weather", "parameters": {"city": "上海"}}
    assert json.loads(tool["messages"][3]["content"]) == {"temp_c": 26}
    assert json.loads(tool["tools"])[0]["name"] == "get_weather"
    assert observation["messages"][2] == {"role": "tool", "content": '{"time": "14:05"}', "weight": None}
    assert [m.get("weight") for m in loss["messages"]] == [None, 0, None, None]


def test_chatglm3_learned_observation_is_refused(tmp_path):
    path = tmp_path / "glm.jsonl"
    path.write_text(json.dumps({"conversations": [
        {"role": "user", "content": "time?"}, {"role": "observation", "content": "12:00", "loss": True},
        {"role": "assistant", "content": "Noon."}]}) + "\n")
    problem = data.validate(path).errors[0]
    assert problem["field"] == "conversations[1].loss" and "never learned" in problem["message"]


@pytest.mark.parametrize("name, field, modality", [
    ("openai_image_part.jsonl", "messages[0].content[1]", "image_url"),
])
def test_multimodal_content_is_refused_naming_the_modality(name, field, modality):
    report = data.validate(FILES / name)
    assert report.records == 0 and report.errors[0]["field"] == field
    assert modality in report.errors[0]["message"] and "text models" in report.errors[0]["message"]
    with pytest.raises(data.DataError, match="image"):
        data.load(FILES / name, verbose=False)


@pytest.mark.parametrize("field, value, word", [("images", ["a.png"], "image"), ("audios", ["a.wav"], "audio"),
                                               ("videos", ["a.mp4"], "video")])
def test_multimodal_fields_are_refused_naming_the_modality(tmp_path, field, value, word):
    path = tmp_path / "mm.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "What is this?"},
                                             {"role": "assistant", "content": "A ferret."}],
                                field: value}) + "\n")
    problem = data.validate(path).errors[0]
    assert problem["field"] == field and f"1 {word} input(s)" in problem["message"]


def test_stepwise_supervision_is_refused_once_with_what_to_do(capsys):
    report = data.validate(FILES / "trl_stepwise_supervision.jsonl")
    assert report.format == "stepwise" and report.records == 0 and len(report.errors) == 1
    assert "process reward model" in report.errors[0]["message"] and report.errors[0]["line"] == 1
    assert main(["data", "validate", str(FILES / "trl_stepwise_supervision.jsonl")]) == 2
    assert "trl_stepwise_supervision.jsonl:1:" in capsys.readouterr().err


def test_sft_refuses_kto_and_prompt_only_data():
    from ftkit.data.tokenize import tokenize_sft

    with pytest.raises(data.DataError, match="KTO"):
        tokenize_sft(data.load(FILES / "trl_unpaired_standard.jsonl", verbose=False), tokenizer=None)
    with pytest.raises(data.DataError, match="prompt-only"):
        tokenize_sft(data.load(FILES / "trl_prompt_only_standard.jsonl", verbose=False), tokenizer=None)


def test_hint_only_when_truly_close(tmp_path):
    close = tmp_path / "close.jsonl"
    close.write_text(json.dumps({"category": "x", "human": "Hi"}) + "\n")
    assert "closest is firefly_csv, which also needs assistant" in str(data.validate(close))
    far = tmp_path / "far.jsonl"
    far.write_text(json.dumps({"question": "Hi", "answer": "Hello"}) + "\n")
    assert "closest" not in str(data.validate(far))


@pytest.mark.parametrize("name, target", [
    ("openai_chat_weights.jsonl", "openai"), ("openai_chat_weights.jsonl", "chatglm3"),
    ("chatglm3_tools.jsonl", "openai"), ("openai_preference.jsonl", "preference"),
    ("trl_preference_conversational.jsonl", "openai_preference"),
    ("trl_preference_standard.jsonl", "sharegpt_preference"),
    ("trl_unpaired_conversational.jsonl", "unpaired_preference"),
    ("trl_prompt_only_conversational.jsonl", "prompt_only"),
    ("chatglm3_prompt_response.json", "prompt_response"),
])
def test_written_out_and_read_back_unchanged(name, target, tmp_path):
    original = data.load(FILES / name, verbose=False)
    written = data.write_records(data.convert_records(original, target), tmp_path / "out.jsonl")
    again = data.load(written, target, verbose=False)
    keep = [c for c in original.column_names if c != "tools"]
    assert again.select_columns(keep).to_list() == original.select_columns(keep).to_list()


def test_weight_zero_is_not_written_where_it_cannot_be_held():
    weighted = data.load(FILES / "openai_chat_weights.jsonl", verbose=False).select(range(2))
    with pytest.raises(data.DataError, match="weight 0"):
        data.convert_records(weighted, "sharegpt")
    with pytest.raises(data.DataError, match="weight 0"):
        data.convert_records(weighted, "alpaca")
