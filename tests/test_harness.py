"""ftkit.eval.harness: multiple-choice scores from lm-evaluation-harness mean what lm-eval means.

Source of the definitions checked here: lm-eval 0.4.13, ``lm_eval/api/task.py``
(``ConfigurableTask.process_results``, ``output_type == "multiple_choice"``): ``acc`` is 1 when the
argmax of the choices' log-likelihoods is the gold index; ``acc_norm`` takes the argmax of each
log-likelihood divided by ``len(choice)`` (characters). ``lm_eval/api/model.py``
(``TemplateLM._encode_pair``): the continuation is the tokens of ``context + continuation``
after the tokens of ``context``; the default ``target_delimiter`` is one space.
"""

import json

import pytest
import torch

from ftkit.errors import FtkitError
from ftkit.eval.harness import GENERAL_MC, PROMPT, multiple_choice, task_config

ITEMS = [
    {"question": "What is the capital of France?", "choices": ["Paris", "Berlin", "Madrid"], "answer": 0},
    {"question": "How many legs does a spider have?", "choices": ["Six", "Eight", "A great many legs"], "answer": 1},
    {"question": "一年有几个月？", "choices": ["十二个月", "十个月"], "answer": 0},
]


def by_hand(model, tokenizer, item):
    context = PROMPT.format(question=item["question"])
    start = len(tokenizer(context).input_ids)
    scores = []
    for choice in item["choices"]:
        ids = tokenizer(context + " " + choice, return_tensors="pt").input_ids
        with torch.no_grad():
            logps = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
        scores.append(logps[start - 1:].gather(-1, ids[0, start:, None]).sum().item())
    return scores


def argmax(values):
    return max(range(len(values)), key=values.__getitem__)


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from ftkit import models

    return models.load(str(tiny_model_dir))


def test_scores_equal_log_likelihood_by_hand_and_acc_follows_lm_eval_definitions(tiny, tmp_path):
    model, tokenizer = tiny
    path = tmp_path / "mc.jsonl"
    path.write_text("".join(json.dumps(item, ensure_ascii=False) + "\n" for item in ITEMS), encoding="utf-8")
    result = multiple_choice(model, tokenizer, path, batch_size=2)
    assert len(result["scores"]) == len(ITEMS)
    hand = [by_hand(model, tokenizer, item) for item in ITEMS]
    for lm_eval_scores, own in zip(result["scores"], hand):
        assert lm_eval_scores == pytest.approx(own, rel=1e-4, abs=1e-4)
    acc = sum(argmax(s) == item["answer"] for s, item in zip(hand, ITEMS)) / len(ITEMS)
    acc_norm = sum(argmax([v / len(c) for v, c in zip(s, item["choices"])]) == item["answer"]
                   for s, item in zip(hand, ITEMS)) / len(ITEMS)
    assert result["acc"] == pytest.approx(acc) and result["acc_norm"] == pytest.approx(acc_norm)


def test_bundled_questions_are_well_formed():
    items = [json.loads(line) for line in GENERAL_MC.read_text(encoding="utf-8").splitlines()]
    assert len(items) == 16
    for item in items:
        assert set(item) == {"question", "choices", "answer"} and 0 <= item["answer"] < len(item["choices"])
    positions = [item["answer"] for item in items]
    assert all(positions.count(k) == 4 for k in range(4))  # the right answer is not always in one place


def test_task_config_is_a_local_multiple_choice_task_and_a_missing_file_is_named(tmp_path):
    config = task_config(GENERAL_MC)
    assert config["output_type"] == "multiple_choice" and config["dataset_path"] == "json"
    assert config["dataset_kwargs"]["data_files"]["test"] == str(GENERAL_MC.resolve())
    with pytest.raises(FtkitError, match="does not exist"):
        task_config(tmp_path / "missing.jsonl")
