"""Multi-task training: weight checks, mixing by weight (ftkit.data.mixing), reported drops,
per-task loss, loss re-weighting. Runs on the tiny random model (plumbing)."""

import json
import math

import pytest
import torch

from ftkit.data.mixing import check_task_weights, mix, mixture_probabilities, prepare_tasks
from ftkit.errors import FtkitError
from ftkit.paths import DATA_DIR
from ftkit.train.multitask import TaskWeights, token_losses, train_multitask

TASKS = ["sentiment", "summary", "translation"]


@pytest.mark.parametrize("weights, message", [
    ({"sentiment": 1, "sumary": 1, "translation": 1}, "did you mean 'summary'"),
    ({"sentiment": 1, "summary": 1}, "gives no weight to translation"),
    ({"sentiment": 1, "summary": -1, "translation": 1}, "finite numbers >= 0"),
    ({"sentiment": 1, "summary": float("nan"), "translation": 1}, "finite numbers >= 0"),
    ({"sentiment": 0, "summary": 0, "translation": 0}, "every weight is 0"),
])
def test_bad_weights_are_refused_with_a_clear_message(weights, message):
    with pytest.raises(FtkitError, match=message) as error:
        check_task_weights(weights, TASKS)
    assert error.value.exit_code == 2


def test_bad_weights_stop_a_run_before_any_training(tmp_path):
    with pytest.raises(FtkitError, match="translate.*did you mean 'translation'"):
        train_multitask(train_file=str(DATA_DIR / "multitask.jsonl"), output_dir=str(tmp_path),
                        mix_strategy="interleave", task_weights={"sentiment": 1, "summary": 1,
                                                                 "translate": 3}, verbose=False)


def test_weights_that_would_do_nothing_are_refused(tmp_path):
    with pytest.raises(FtkitError, match="do nothing with mix_strategy: concat"):
        train_multitask(train_file=str(DATA_DIR / "multitask.jsonl"), output_dir=str(tmp_path),
                        task_weights={"sentiment": 1, "summary": 1, "translation": 3}, verbose=False)


def test_data_without_task_field_is_refused(tmp_path):
    with pytest.raises(FtkitError, match="no 'task' field"):
        train_multitask(train_file=str(DATA_DIR / "identity.jsonl"), output_dir=str(tmp_path),
                        verbose=False)


def test_mixture_probabilities():
    sizes, ones = {"a": 90, "b": 10}, {"a": 1.0, "b": 1.0}
    assert mixture_probabilities(sizes, ones, "concat") == {"a": 0.9, "b": 0.1}
    assert mixture_probabilities(sizes, ones, "temperature", 1.0) == pytest.approx({"a": 0.9, "b": 0.1})
    flat = mixture_probabilities(sizes, ones, "temperature", 100.0)
    assert abs(flat["a"] - 0.5) < 0.02  # a high temperature approaches uniform
    assert mixture_probabilities(sizes, {"a": 1, "b": 3}, "interleave") == {"a": 0.25, "b": 0.75}


def test_mix_samples_by_weight_and_keeps_the_data_size():
    import datasets

    parts = {"big": datasets.Dataset.from_dict({"x": list(range(90)), "task_id": [0] * 90}),
             "small": datasets.Dataset.from_dict({"x": list(range(10)), "task_id": [1] * 10})}
    concat = mix(parts, {"big": 1, "small": 1}, "concat")
    assert len(concat) == 100 and sum(concat["task_id"]) == 10
    balanced = mix(parts, {"big": 1, "small": 1}, "interleave", seed=0)
    assert len(balanced) == 100 and 35 <= sum(balanced["task_id"]) <= 65  # about half now
    dropped = mix(parts, {"big": 1, "small": 0}, "interleave")
    assert sum(dropped["task_id"]) == 0  # weight 0 leaves the task out


def test_dynamic_weights_favour_the_task_that_learns_least():
    weights = TaskWeights(["fast", "slow"], {"fast": 1.0, "slow": 1.0}, "dynamic", momentum=0.0)
    weights.update(torch.tensor([2.0, 2.0]), torch.tensor([1.0, 1.0]))  # both start at 2.0
    weights.update(torch.tensor([0.5, 1.8]), torch.tensor([1.0, 1.0]))  # fast falls, slow barely
    fast, slow = weights.current().tolist()
    assert slow > 1.0 > fast and math.isclose(fast + slow, 2.0, rel_tol=1e-6)
    static = TaskWeights(["a", "b"], {"a": 1.0, "b": 3.0}, "static")
    static.update(torch.tensor([0.1, 5.0]), torch.tensor([1.0, 1.0]))
    assert static.current().tolist() == [1.0, 3.0]  # static weights never move


@pytest.mark.slow
def test_token_losses_average_to_the_model_loss(default_model):
    model, tokenizer = default_model
    batch = tokenizer(["The capital of France is Paris.", "Ferrets are small."],
                      return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    with torch.no_grad():
        out = model(**batch, labels=labels)
    per_token, mask = token_losses(out.logits, labels)
    assert torch.allclose((per_token * mask).sum() / mask.sum(), out.loss, rtol=1e-4, atol=1e-4)  # fp32 sums in another order


def test_multitask_run_reports_loss_per_task(tiny_run, tmp_path):
    result = train_multitask(**dict(
        tiny_run, train_file=str(DATA_DIR / "multitask.jsonl"), output_dir=str(tmp_path), max_steps=2,
        per_device_train_batch_size=4, max_seq_length=128, logging_steps=1, save_strategy="no",
        mix_strategy="temperature", mix_temperature=2.0, task_loss_weighting="dynamic",
        task_weights={"sentiment": 1, "summary": 1, "translation": 2}, disable_tqdm=True,
        max_samples=8, verbose=False))
    summary = json.loads((tmp_path / "run_summary.json").read_text())
    assert set(summary["per_task_loss"]) == set(TASKS) and summary["per_task_loss_on"] == "train"
    assert all(0 < v < 20 for v in summary["per_task_loss"].values())
    assert summary["world_size"] == 1 and summary["mix_strategy"] == "temperature"
    assert summary["memory"]["predicted_bytes"] > 0
    assert sum(summary["task_counts"].values()) == 24  # 8 per task, the size of the data
    logged = [row for row in result.log_history if "loss" in row]
    assert any(key.startswith("loss/") for row in logged for key in row)
    assert any(key.startswith("task_weight/") for row in logged for key in row)
    for name in ("adapter_model.safetensors", "run_config.yaml"):
        assert (tmp_path / name).exists(), name


def test_held_out_rows_give_the_per_task_loss(tiny_run, tmp_path):
    result = train_multitask(**dict(
        tiny_run, train_file=str(DATA_DIR / "multitask.jsonl"), output_dir=str(tmp_path),
        max_steps=1, max_samples=4, val_size=0.2, mix_strategy="interleave", verbose=False))
    summary = result.summary
    assert summary["per_task_loss_on"] == "eval" and set(summary["per_task_loss"]) == set(TASKS)
    for task, loss in summary["per_task_loss"].items():  # from the final evaluation itself
        assert summary["final_eval"][f"eval_loss/{task}"] == loss


def test_examples_dropped_by_the_length_limit_are_reported_per_task(capsys):
    # Lesson 09's setting: at max_seq_length=48 most summary examples keep no answer token.
    from ftkit import models
    from ftkit.config import RunConfig

    cfg = RunConfig(train_file=str(DATA_DIR / "multitask.jsonl"), max_seq_length=48)
    train, _, tasks, _, counts = prepare_tasks(cfg, models.load_tokenizer())
    out = capsys.readouterr().out
    assert "task summary: tokenized 15 example(s): kept 1," in out
    assert "dropped 14 (no answer token left)" in out
    assert counts["summary"] == 1 and len(train) == sum(counts.values())


def test_shipped_multitask_config_is_recognised_as_multitask():
    from ftkit.dialects import load_config
    from ftkit.paths import CONFIGS_DIR
    from ftkit.train import multitask, stage_for

    assert multitask.is_multitask(load_config(CONFIGS_DIR / "multitask.yaml"))
    assert stage_for(load_config(CONFIGS_DIR / "multitask.yaml")) is multitask.STAGE
    assert not multitask.is_multitask(load_config(CONFIGS_DIR / "lora.yaml"))


def test_shipped_multitask_config_trains_from_the_command_line(tmp_path, tiny_model_dir):
    from ftkit.cli import main
    from ftkit.paths import CONFIGS_DIR

    sets = ["max_steps=1", f"output_dir={tmp_path}", "disable_tqdm=true", "plot_loss=false",
            f"model_name_or_path={tiny_model_dir}"]
    assert main(["train", str(CONFIGS_DIR / "multitask.yaml"), *[f"--set={s}" for s in sets]]) == 0
    summary = json.loads((tmp_path / "run_summary.json").read_text())
    assert summary["steps"] == 1 and set(summary["per_task_loss"]) == set(TASKS)
