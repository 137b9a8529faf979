"""Every stage goes through one recipe, so each behaves the same on what the recipe owns:
out-of-memory advice, the resume error, a resumed run equal to an uninterrupted one, the
final evaluation, early stopping and best-model selection. Shown per stage on the tiny
random model (plumbing, not learning)."""

import json

import pytest
import torch
import transformers

from ftkit.errors import FtkitError
from ftkit.paths import DATA_DIR
from ftkit.train import StopAfterSteps, finetune
from ftkit.train.oom import OutOfMemory

STAGE_FIELDS = {
    "sft": dict(train_file=str(DATA_DIR / "identity.jsonl"), lora_dropout=0.1),
    "pt": dict(stage="pt", train_file=str(DATA_DIR / "pretrain_text.jsonl")),
    "dpo": dict(stage="dpo", train_file=str(DATA_DIR / "preference.jsonl")),
    # dynamic task weights: their running state is saved with each checkpoint and resumed
    "multitask": dict(train_file=str(DATA_DIR / "multitask.jsonl"), max_samples=4,
                      mix_strategy="interleave", task_loss_weighting="dynamic",
                      task_weights={"sentiment": 1, "summary": 1, "translation": 2}),
}
STAGES = list(STAGE_FIELDS)


@pytest.fixture(params=STAGES)
def stage_run(request, tiny_run):
    """(stage name, quiet tiny-model fields of that stage)."""
    return request.param, dict(tiny_run, **STAGE_FIELDS[request.param], verbose=False)


def test_out_of_memory_names_the_prediction_and_remedies(stage_run, monkeypatch):
    stage, fields = stage_run

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(transformers.Trainer, "training_step", out_of_memory)
    with pytest.raises(OutOfMemory) as error:
        finetune(None, **fields)
    message = str(error.value)
    assert "out of memory while training (OutOfMemoryError: CUDA out of memory" in message
    assert "calculator predicts" in message and "gradient_checkpointing=true" in message
    assert error.value.exit_code == 2


def test_resume_without_a_checkpoint_says_where_checkpoints_are(stage_run):
    stage, fields = stage_run
    with pytest.raises(FtkitError, match=r"cannot resume: .*checkpoint-N folders in .*run"):
        finetune(None, **dict(fields, resume_from_checkpoint=True, overwrite_output_dir=False))


def test_resumed_run_has_the_curves_of_an_uninterrupted_one_and_a_final_evaluation(stage_run, tmp_path):
    stage, fields = stage_run
    # 3 steps, a checkpoint and an evaluation at step 2: the schedule misses the last step,
    # so the recipe evaluates the final model itself.
    common = dict(fields, max_steps=3, val_size=0.25, eval_strategy="steps", eval_steps=2,
                  save_strategy="steps", save_steps=2, lr_scheduler_type="cosine")
    whole = finetune(None, **dict(common, output_dir=str(tmp_path / "whole")))
    finetune(None, **dict(common, output_dir=str(tmp_path / "cut")), callbacks=[StopAfterSteps(2)])
    resumed = finetune(None, **dict(common, output_dir=str(tmp_path / "cut"),
                                    resume_from_checkpoint=True, overwrite_output_dir=False))

    curves = whole.summary["curves"]
    assert [step for step, _ in curves["train"]] == [1, 2, 3]
    assert [step for step, _ in curves["eval"]] == [2, 3]  # 3: the final evaluation
    assert resumed.summary["curves"] == curves  # steps 1-2 from the checkpoint, 3 recomputed
    assert resumed.summary["final_eval"]["eval_loss"] == whole.summary["final_eval"]["eval_loss"]
    final = whole.summary["final_eval"]
    assert final["eval_loss"] == whole.summary["eval_loss"] == curves["eval"][-1][1]
    on_disk = json.loads((tmp_path / "whole" / "run_summary.json").read_text())
    assert on_disk["final_eval"] == json.loads(json.dumps(final))
    assert on_disk["stopped_early"] is False and on_disk["stage"] == fields.get("stage", "sft")


def test_early_stopping_ends_the_run_and_the_best_model_is_loaded(stage_run):
    stage, fields = stage_run
    # A threshold no change can pass: the second evaluation "does not improve", and patience 1
    # stops the run there, at step 2 of 6. greater_is_better makes the *higher* eval loss the
    # best: on these runs the loss falls, so the best checkpoint is the first, not the last,
    # and the final model must be loaded back from it.
    result = finetune(None, **dict(
        fields, max_steps=6, val_size=0.25, eval_strategy="steps", eval_steps=1,
        save_strategy="steps", save_steps=1, load_best_model_at_end=True,
        metric_for_best_model="loss", greater_is_better=True,
        early_stopping_patience=1, early_stopping_threshold=100.0, learning_rate=0.5))
    summary = result.summary
    assert summary["stopped_early"] is True and summary["steps"] == 2
    assert summary["metric_for_best_model"] == "loss"
    scheduled = {step: loss for step, loss in summary["curves"]["eval"][:2]}
    assert list(scheduled) == [1, 2]
    best_step = max(scheduled, key=scheduled.get)
    assert summary["best_step"] == best_step and summary["best_checkpoint"] == f"checkpoint-{best_step}"
    assert summary["best_metric"] == pytest.approx(scheduled[best_step])
    assert summary["loaded_best_model"] is True
    # The final model is the best checkpoint: evaluated again, it gives the best step's loss.
    assert summary["final_eval"]["eval_loss"] == pytest.approx(scheduled[best_step], rel=1e-5)
    assert summary["eval_loss"] == pytest.approx(scheduled[best_step], rel=1e-5)
    if best_step != 2:  # reloaded: the final evaluation is a third row, at the last step
        assert [step for step, _ in summary["curves"]["eval"]] == [1, 2, 2]
    if stage == "sft":
        assert best_step == 1  # the reload path is taken at least here
