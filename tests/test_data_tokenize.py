"""Tokenization: the loss mask covers exactly the assistant tokens (with their end-of-turn
token), truncation is counted, named templates, packing keeps examples apart."""

from pathlib import Path

import pytest

from ftkit import data, models
from ftkit.data.tokenize import IGNORE_INDEX, tokenize_messages

DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.fixture(scope="module")
def tokenizer():
    return models.load_tokenizer()


def learned_ids(example):
    return [t for t, label in zip(example["input_ids"], example["labels"]) if label != IGNORE_INDEX]


def runs(example):
    """(start, end) of each contiguous block of learned tokens."""
    on = [label != IGNORE_INDEX for label in example["labels"]] + [False]
    return [(i, j) for i in range(len(on) - 1) if on[i] and (i == 0 or not on[i - 1])
            for j in [next(k for k in range(i, len(on)) if not on[k])]]


@pytest.mark.parametrize("name", ["identity.jsonl", "conversations_sharegpt.jsonl", "multitask.jsonl"])
def test_mask_covers_exactly_the_assistant_turns(tokenizer, name):
    dataset = data.load(DATA / name, verbose=False)
    tokenized = data.tokenize_sft(dataset, tokenizer, max_seq_length=1024, verbose=False)
    assert len(tokenized) == len(dataset)
    for row, example in zip(dataset, tokenized):
        answers = [m["content"] for m in row["messages"] if m["role"] == "assistant"]
        # the learned tokens are, in order, each answer followed by the end-of-turn token ...
        expected = [t for a in answers for t in tokenizer(a + "<|im_end|>", add_special_tokens=False)["input_ids"]]
        assert learned_ids(example) == expected
        # ... each in its own block right after the "<|im_start|>assistant\n" header ...
        header = tokenizer("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
        blocks = runs(example)
        assert len(blocks) == len(answers)
        for start, _ in blocks:
            assert example["input_ids"][start - len(header):start] == header
        # ... and the input is exactly what the chat template gives (as infer.chat renders).
        assert example["input_ids"] == tokenizer.apply_chat_template(row["messages"], tokenize=True)["input_ids"]
        assert example["attention_mask"] == [1] * len(example["input_ids"])
    if name == "multitask.jsonl":
        assert tokenized["task"] == dataset["task"]


def test_default_system_message_is_kept(tokenizer):
    example = tokenize_messages([{"role": "user", "content": "Who are you?"},
                                 {"role": "assistant", "content": "I am Ferret."}], tokenizer)
    assert "named SmolLM" in tokenizer.decode(example["input_ids"])
    assert tokenizer.decode(learned_ids(example)) == "I am Ferret.<|im_end|>"


def test_truncation_is_counted_and_empty_answers_dropped(tokenizer, capsys):
    dataset = data.load(DATA / "identity.jsonl", verbose=False)
    lengths = data.token_lengths(data.tokenize_sft(dataset, tokenizer, verbose=False))
    cut = 36
    tokenized = data.tokenize_sft(dataset, tokenizer, max_seq_length=cut)
    out = capsys.readouterr().out
    truncated = sum(n > cut for n in lengths)
    assert f"truncated {truncated} (max_seq_length={cut})" in out
    assert max(data.token_lengths(tokenized)) <= cut
    dropped = len(dataset) - len(tokenized)
    assert f"dropped {dropped}" in out and 0 < dropped <= truncated


def test_chatglm3_input_and_output_limits(tokenizer):
    messages = [{"role": "user", "content": "word " * 50}, {"role": "assistant", "content": "answer " * 30}]
    full = tokenize_messages(messages, tokenizer, max_seq_length=None)
    short = tokenize_messages(messages, tokenizer, max_seq_length=None, max_input_length=20, max_output_length=10)
    assert short["truncated"] and not full["truncated"]
    assert len(short["input_ids"]) == 20 + 10 + 1  # + the newline after the answer
    assert learned_ids(short) == learned_ids(full)[:10]
    assert short["input_ids"][:20] == full["input_ids"][len(full["input_ids"]) - len(learned_ids(full)) - 1 - 20:][:20]


def test_named_template_for_a_base_model(tokenizer):
    messages = [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "hi"}]
    example = tokenize_messages(messages, tokenizer, template="alpaca")
    text = tokenizer.decode(example["input_ids"])
    assert "### Instruction:\nSay hi" in text and "<|im_start|>" not in text.replace(tokenizer.eos_token, "")
    assert tokenizer.decode(learned_ids(example)) == "hi" + tokenizer.eos_token
    with pytest.raises(data.DataError, match="unknown chat template"):
        tokenize_messages(messages, tokenizer, template="nonsense")


def test_preference_data_is_refused(tokenizer):
    with pytest.raises(data.DataError, match="DPO"):
        data.tokenize_sft(data.load(DATA / "preference.jsonl", verbose=False), tokenizer)


def test_length_statistics():
    lengths = [10, 20, 30, 40, 100]
    assert data.length_stats(lengths)["p50"] == 30
    assert data.suggest_max_seq_length(lengths, coverage=0.8) == 40
    assert data.suggest_max_seq_length(lengths, coverage=1.0) == 104


@pytest.mark.slow
def test_packing_keeps_examples_apart(tokenizer):
    import torch

    model = data.prepare_model_for_packing(models.load_model())
    tokenized = data.tokenize_sft(data.load(DATA / "identity.jsonl", verbose=False), tokenizer, verbose=False)
    examples = [tokenized[i] for i in range(3)]
    batch = data.pack(examples)
    assert batch["position_ids"][0].tolist() == [p for e in examples for p in range(len(e["input_ids"]))]
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits[0]
        alone = torch.cat([model(input_ids=torch.tensor([e["input_ids"]])).logits[0] for e in examples])
    assert torch.allclose(packed, alone, atol=1e-3)
