"""What a record says about learning reaches the loss mask: a turn with weight 0 (OpenAI) or
``loss: false`` (ChatGLM3) stays in the input but is masked (-100); tool descriptions reach
the input; ``ftkit data inspect`` shows the mask and names the masked turn."""

from pathlib import Path

import pytest

from ftkit import data, models
from ftkit.cli import main
from ftkit.data.tokenize import IGNORE_INDEX

FILES = Path(__file__).resolve().parent / "data_formats"


@pytest.fixture(scope="module")
def tokenizer():
    return models.load_tokenizer()


def learned_text(tokenizer, example) -> str:
    return tokenizer.decode([t for t, label in zip(example["input_ids"], example["labels"])
                             if label != IGNORE_INDEX])


@pytest.fixture(scope="module")
def weighted(tokenizer):
    rows = data.load(FILES / "openai_chat_weights.jsonl", verbose=False)
    return rows, data.tokenize_sft(rows, tokenizer, max_seq_length=1024, verbose=False)


def test_weight_zero_turn_is_in_the_input_but_not_learned(tokenizer, weighted):
    rows, tokenized = weighted
    first = tokenized[0]
    assert "<|im_start|>assistant\n54<|im_end|>" in tokenizer.decode(first["input_ids"])
    assert learned_text(tokenizer, first) == "Sorry: 7 times 8 is 56.<|im_end|>"
    assert learned_text(tokenizer, tokenized[1]) == "我是 Ferret。<|im_end|>"


def test_without_the_weight_both_answers_are_learned(tokenizer, weighted):
    rows, _ = weighted
    plain = [{k: v for k, v in m.items() if k != "weight"} for m in rows[0]["messages"]]
    example = data.tokenize_messages(plain, tokenizer)
    assert learned_text(tokenizer, example) == "54<|im_end|>Sorry: 7 times 8 is 56.<|im_end|>"


def test_tool_call_learned_tool_result_masked_tools_described(tokenizer, weighted):
    _, tokenized = weighted
    tools = tokenized[2]
    text = tokenizer.decode(tools["input_ids"])
    assert "You have access to the following tools:" in text and '"get_weather"' in text
    learned = learned_text(tokenizer, tools)
    assert '"name": "get_weather"' in learned and "It is 3 °C in Oslo." in learned
    assert "temp_c" not in learned  # the tool's result is read, never learned


def test_chatglm3_loss_false_is_masked(tokenizer):
    rows = data.load(FILES / "chatglm3_tools.jsonl", verbose=False)
    example = data.tokenize_sft(rows.select([2]), tokenizer, verbose=False)[0]
    assert "这句不学" in tokenizer.decode(example["input_ids"])
    assert learned_text(tokenizer, example) == "我是 Ferret。<|im_end|>"


def test_inspect_shows_the_masked_turn(capsys):
    assert main(["data", "inspect", str(FILES / "openai_chat_weights.jsonl"), "-n", "1"]) == 0
    out = capsys.readouterr().out
    assert "[[Sorry: 7 times 8 is 56.<|im_end|>]]" in out
    assert "assistant\n{{54<|im_end|>}}" in out and "[[54" not in out
    assert "turn 2 (assistant, weight 0) is masked" in out


def test_coloured_mask_for_a_terminal(tokenizer, weighted):
    from ftkit.data.masks import show_mask

    rows, tokenized = weighted
    plain = [{k: v for k, v in m.items() if k != "weight"} for m in rows[0]["messages"]]
    shown = show_mask(tokenizer, tokenized[0], data.tokenize_messages(plain, tokenizer), colour=True)
    assert "\x1b[30;41m54<|im_end|>\x1b[0m" in shown  # red: an answer kept as context
    assert "\x1b[30;42mSorry: 7 times 8 is 56.<|im_end|>\x1b[0m" in shown  # green: learned


def test_inspect_shows_a_kto_false_label(capsys):
    assert main(["data", "inspect", str(FILES / "trl_unpaired_standard.jsonl"), "-n", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("label false: an undesirable answer") == 1 and '"label": false' in out
