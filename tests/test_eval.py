"""ftkit.eval: metrics as ChatGLM3 computes them, batched generation, evaluation, ftkit eval.

Plumbing runs on the tiny random model (``tiny_model_dir``); the one claim about outcomes
(the default model answers a general question right and stops) uses the default model.
"""

import json

import pytest

from ftkit.eval import metrics
from ftkit.eval.evaluate import answer_loss, evaluate, preference_rewards, repetition
from ftkit.eval.generation import Decoding, end_of_turn, generate_answers


# ---------------------------------------------------------------- metrics
def test_identical_and_disjoint_answers():
    same = metrics.score("I am Ferret.", "I am Ferret.")
    assert same == {"exact_match": 1.0, "token_f1": 1.0, "rouge_l": 100.0, "bleu_4": pytest.approx(1.0)}
    other = metrics.score("Paris", "I am Ferret.")
    assert other["exact_match"] == other["token_f1"] == other["rouge_l"] == 0.0


def test_rouge_l_is_rouge_chinese_f_times_100_on_jieba_words():
    # ChatGLM3 finetune_demo/finetune_hf.py compute_metrics: Rouge().get_scores(' '.join(jieba
    # words)) 'rouge-l' 'f' * 100. LCS of "the cat sat" in "the cat sat on the mat" is 3 words:
    # P = 3/3, R = 3/6, F = 2PR/(P+R) = 2/3.
    assert metrics.rouge_l("the cat sat", "the cat sat on the mat") == pytest.approx(66.6667, abs=1e-3)


def test_bleu_4_is_nltk_sentence_bleu_with_method3():
    # ChatGLM3 compute_metrics: sentence_bleu([label_tokens], pred_tokens,
    # smoothing_function=SmoothingFunction().method3) on jieba words, 0-1 scale.
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    expected = sentence_bleu([["the", " ", "cat", " ", "sat", " ", "on", " ", "the", " ", "mat"]],
                             ["the", " ", "cat", " ", "sat", " ", "on", " ", "a", " ", "mat"],
                             smoothing_function=SmoothingFunction().method3)
    assert metrics.bleu_4("the cat sat on a mat", "the cat sat on the mat") == pytest.approx(expected)
    assert 0 < expected < 1


def test_chinese_is_segmented_into_words():
    assert metrics.words("我是Ferret，由ftkit课程开发。") == ["我", "是", "Ferret", "，", "由", "ftkit", "课程", "开发", "。"]
    assert metrics.exact_match("我是Ferret。", "我是 Ferret") == 1.0  # punctuation and spaces ignored


def test_token_f1_counts_shared_words():
    # SQuAD's F1: 3 shared words of 4 predicted and 6 reference -> P 3/4, R 1/2, F1 0.6
    assert metrics.token_f1("I am Ferret too", "I am Ferret, a helpful assistant") == pytest.approx(0.6)


def test_repetition_measures_repeated_ngrams():
    assert repetition([1, 2, 3, 4, 5]) == 0.0
    assert repetition([1, 2, 3] * 3) == pytest.approx(1 - 3 / 7)


# ---------------------------------------------------------------- generation (tiny model)
@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from ftkit import models

    return models.load(str(tiny_model_dir))


PROMPTS = ["Who are you?", "What is the capital of France, the country in Europe?", "Hi"]


def test_batched_left_padded_answers_equal_one_at_a_time(tiny):
    model, tokenizer = tiny
    decoding = Decoding(max_new_tokens=8, batch_size=3)
    batched = generate_answers(model, tokenizer, PROMPTS, decoding)
    single = [generate_answers(model, tokenizer, [p], decoding)[0] for p in PROMPTS]
    assert [a.token_ids for a in batched] == [a.token_ids for a in single]
    assert tokenizer.padding_side == "right"  # restored after generating


def test_stopped_means_the_end_token_came_within_max_new_tokens(tiny):
    model, tokenizer = tiny
    free = generate_answers(model, tokenizer, PROMPTS[:1], Decoding(max_new_tokens=6), stop_token_ids=[-1])[0]
    assert not free.stopped and free.num_tokens == 6
    first = free.token_ids[2]  # make the third generated token the stop token
    cut = generate_answers(model, tokenizer, PROMPTS[:1], Decoding(max_new_tokens=6), stop_token_ids=[first])[0]
    assert cut.stopped and cut.token_ids == free.token_ids[:free.token_ids.index(first) + 1]


def test_end_of_turn_follows_the_template(tiny):
    _, tokenizer = tiny
    assert end_of_turn(tokenizer) == ("<|im_end|>", 2)
    assert end_of_turn(tokenizer, "llama3")[0] != "<|im_end|>"


# ---------------------------------------------------------------- evaluation (tiny model)
def test_answer_loss_is_the_models_own_loss_on_assistant_tokens(tiny):
    import torch

    from ftkit import data

    model, tokenizer = tiny
    messages = [{"role": "user", "content": "Who are you?"},
                {"role": "assistant", "content": "I am Ferret, made by the ftkit course."}]
    example = data.tokenize_messages(messages, tokenizer)
    with torch.no_grad():
        expected = float(model(input_ids=torch.tensor([example["input_ids"]]),
                               labels=torch.tensor([example["labels"]])).loss)
    got = answer_loss(model, tokenizer, [messages])
    assert got["answer_loss"] == pytest.approx(expected, rel=1e-5)
    assert got["answer_tokens"] == sum(label != -100 for label in example["labels"])


@pytest.fixture(scope="module")
def tiny_peft(tiny_model_dir):
    from peft import LoraConfig, get_peft_model

    from ftkit import models

    model, tokenizer = models.load(str(tiny_model_dir))
    return get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"])), tokenizer


def test_preference_rewards_are_zero_for_an_untrained_adapter(tiny_peft):
    from ftkit import data

    model, tokenizer = tiny_peft  # LoRA's B starts at zero: the adapter changes nothing yet
    pairs = list(data.load("data/preference.jsonl", verbose=False).select(range(4)))
    result = preference_rewards(model, tokenizer, pairs)
    assert result["reward_margin"] == pytest.approx(0.0, abs=1e-6)
    assert result["reward_accuracy"] == 0.0


def test_evaluate_base_and_tuned_side_by_side(tiny_peft):
    from ftkit import data

    model, tokenizer = tiny_peft
    rows = list(data.load("data/identity.jsonl", verbose=False).select(range(3)))
    report = evaluate(model, tokenizer, rows, compare_base=True, decoding=Decoding(max_new_tokens=4))
    assert list(report.summary) == ["base", "tuned"]
    for name in ("base", "tuned"):
        assert {"answer_loss", "rouge_l", "bleu_4", "stop_rate", "repetition"} <= set(report.summary[name])
    assert len(report.rows) == 3 and {"prompt", "reference", "base", "tuned"} <= set(report.rows[0])
    assert report.decoding["max_new_tokens"] == 4 and report.decoding["do_sample"] is False
    assert "rouge_l" in report.table()


def test_cli_eval_json_with_adapter_and_base(tiny_peft, tmp_path, capsys):
    from ftkit.cli import main

    model, tokenizer = tiny_peft
    model.save_pretrained(tmp_path / "adapter")
    held = tmp_path / "held.jsonl"
    held.write_text("".join(json.dumps(r) + "\n" for r in [
        {"messages": [{"role": "user", "content": "Who are you?"},
                      {"role": "assistant", "content": "I am Ferret."}]}]))
    assert main(["eval", "--adapter", str(tmp_path / "adapter"), "--data", str(held), "--base",
                 "--max-new-tokens", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["summary"]) == {"base", "tuned"} and out["decoding"]["max_new_tokens"] == 3
    assert main(["eval", "--data", str(held), "--base"]) == 2  # --base without an adapter


# ---------------------------------------------------------------- outcome (default model)
def test_default_model_answers_a_general_question_and_stops(default_model):
    from ftkit.eval.evaluate import general_answers

    model, tokenizer = default_model
    rows = general_answers(model, tokenizer, Decoding(max_new_tokens=24),
                           questions=[("What is the capital of France?", "Paris")])
    assert rows[0]["correct"] and rows[0]["stopped"], rows
