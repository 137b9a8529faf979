"""The training, runs and chat panels driven from code: set values, click, read what they show."""

import html
import json

import pytest

from ftkit import groups
from ftkit.config import RunConfig
from ftkit.paths import DATA_DIR
from ftkit.widgets.chat_panel import ChatPanel
from ftkit.widgets.runs_view import (
    Run,
    RunsView,
    best_run,
    evaluation_table,
    recorder,
    settings_table,
)
from ftkit.widgets.training_panel import FIELDS, TrainingPanel

SEED_003_FIELDS = {"Scheduler", "Optimizer", "FP16", "LoRA_Alpha", "LoRA_R", "LoRA_Dropout", "Int4/8",
                   "LearningRate", "Epochs", "BlockSize", "BatchSize", "WarmupRatio", "WeightDecay",
                   "GradAccSteps", "TrainerType"}


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("FTKIT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def panel(tmp_path):
    return TrainingPanel(output_root=tmp_path / "runs")


def test_every_seed_003_field_has_a_control_with_help(panel):
    labels = {spec.label for spec in FIELDS}
    assert SEED_003_FIELDS <= labels
    assert {"Method", "Model", "Dataset"} <= labels
    for spec in FIELDS:
        assert spec.help and panel.fields[spec.key or spec.label].tooltip == spec.help


def test_the_defaults_validate_and_show_as_yaml(panel, tmp_path):
    assert panel.problems == {} and not panel.train_button.disabled
    expected = RunConfig(output_dir=str(tmp_path / "runs" / "run"), kept={"TrainerType": "Standard"})
    assert panel.config == expected
    assert "learning_rate: 0.0002" in panel.yaml_view.value


def test_changing_a_field_changes_the_config_and_yaml(panel):
    panel.fields["learning_rate"].value = 1e-3
    panel.fields["lora_rank"].value = 16
    panel.fields["lr_scheduler_type"].value = "cosine"
    assert (panel.config.learning_rate, panel.config.lora_rank) == (1e-3, 16)
    assert panel.config.lr_scheduler_type == "cosine"
    assert "lora_rank: 16" in panel.yaml_view.value and "lr_scheduler_type: cosine" in panel.yaml_view.value


def test_a_bad_value_is_marked_at_its_field_not_raised(panel):
    panel.fields["num_train_epochs"].value = 0
    assert set(panel.problems) == {"num_train_epochs"}
    assert "greater than 0" in panel.errors["num_train_epochs"].value
    assert "ftkit-invalid" in panel.fields["num_train_epochs"]._dom_classes
    assert panel.config is None and panel.train_button.disabled
    assert "invalid" in panel.yaml_view.value and "Epochs" in panel.yaml_view.value
    assert panel.errors["learning_rate"].value == ""

    panel.fields["num_train_epochs"].value = 2
    assert panel.problems == {} and panel.errors["num_train_epochs"].value == ""
    assert "ftkit-invalid" not in panel.fields["num_train_epochs"]._dom_classes
    assert panel.config.num_train_epochs == 2 and not panel.train_button.disabled


def test_a_rule_across_fields_marks_both_fields(panel):
    panel.fields["quantization_bit"].value = 4  # Int4 with method lora
    assert set(panel.problems) == {"method", "quantization_bit"}
    assert "qlora" in panel.errors["quantization_bit"].value
    panel.fields["method"].value = "qlora"
    assert panel.problems == {} and panel.config.quantization_bit == 4


def test_a_missing_dataset_is_marked(panel, tmp_path):
    panel.fields["train_file"].value = str(tmp_path / "nope.jsonl")
    assert "no such file" in panel.problems["train_file"]
    panel.fields["train_file"].value = str(DATA_DIR / "identity.jsonl")
    assert panel.problems == {}


def test_train_with_a_bad_config_says_so(panel):
    panel.fields["warmup_ratio"].value = 1.5
    panel.train_button.click()  # disabled in a browser; from code it must not raise either
    assert "fix the marked fields" in panel.status.value
    assert panel.runs.runs == []


def test_save_load_and_delete_a_group_from_the_panel(panel, tmp_path):
    panel.fields["learning_rate"].value = 5e-4
    panel.fields["lora_rank"].value = 4
    panel.group_name.value = "small-r4"
    panel.save_button.click()
    assert "saved default/small-r4" in panel.status.value
    stored = groups.load_group("small-r4")
    assert (stored.learning_rate, stored.lora_rank) == (5e-4, 4)
    assert panel.group_name.options == ("small-r4",)

    fresh = TrainingPanel(output_root=tmp_path / "runs")
    fresh.group_name.value = "small-r4"
    fresh.load_button.click()
    assert fresh.fields["lora_rank"].value == 4 and fresh.config.learning_rate == 5e-4
    assert fresh.run_name.value == "small-r4"

    fresh.delete_button.click()  # first click only asks
    assert groups.exists("small-r4") and "cannot be undone" in fresh.status.value
    assert fresh.confirm_button.layout.display is None
    fresh.confirm_button.click()
    assert not groups.exists("small-r4") and "deleted" in fresh.status.value


def test_group_errors_land_in_the_status_line(panel):
    panel.group_name.value = "../escape"
    panel.save_button.click()
    assert "not allowed" in panel.status.value
    panel.group_name.value = "missing"
    panel.load_button.click()
    assert "no group default/missing" in panel.status.value
    panel.fields["lora_dropout"].value = 0.9
    panel.fields["num_train_epochs"].value = -1
    panel.group_name.value = "broken"
    panel.save_button.click()
    assert "invalid" in panel.status.value and not groups.exists("broken")


def test_a_loaded_group_is_never_clamped_by_a_slider(panel):
    groups.save_group("wide", RunConfig(lora_rank=512, learning_rate=5e-7, max_seq_length=16384))
    panel.load_group("wide")
    assert panel.fields["lora_rank"].value == 512
    assert panel.config.lora_rank == 512 and panel.config.learning_rate == pytest.approx(5e-7)
    assert panel.config.max_seq_length == 16384


def test_the_vram_estimate_follows_the_fields(panel):
    from ftkit.vram import estimate_for_config

    first = panel.vram_view.value
    assert "GiB" in first and "ftkit-vram-total" in first
    panel.fields["per_device_train_batch_size"].value = 64
    assert panel.vram_view.value != first
    total = estimate_for_config(panel.config).total_bytes
    assert f"{total / 2**30:.2f} GiB" in panel.vram_view.value


def fake_run(name, losses, **fields):
    return Run(name, RunConfig(**fields), list(range(1, len(losses) + 1)), list(losses), status="done")


def test_runs_view_overlays_runs_and_names_the_best():
    view = RunsView()
    assert "no runs yet" in view.table.value
    view.add(fake_run("a", [3.0, 2.0, 1.5, 1.4], learning_rate=1e-4))
    view.add(fake_run("b", [3.0, 1.0, 0.5, 0.4], learning_rate=1e-3))
    assert view.best().name == "b"
    assert "b ★" in view.table.value and "a ★" not in view.table.value
    assert "learning_rate" in view.table.value and "0.001" in view.table.value
    fig = view.figure()
    assert [line.get_label() for line in fig.axes[0].lines] == ["a", "b"]
    assert view.plot.value[:4] == b"\x89PNG"  # the overlay drawn into the widget


def test_with_held_out_data_the_best_run_is_chosen_by_eval_loss():
    # "b" memorises (lowest training loss) but does worst on the held-out rows.
    a = fake_run("a", [3.0, 2.0, 1.5, 1.4], learning_rate=1e-4)
    b = fake_run("b", [3.0, 1.0, 0.5, 0.4], learning_rate=1e-3)
    a.eval_steps, a.eval_losses = [2, 4], [2.2, 1.9]
    b.eval_steps, b.eval_losses = [2, 4], [2.0, 2.6]
    view = RunsView([a, b])
    assert view.best().name == "a"
    assert best_run(view.runs) == (a, "eval loss")
    assert "a ★" in view.table.value and "<th>eval loss</th>" in view.table.value and "2.600" in view.table.value
    labels = [line.get_label() for line in view.figure().axes[0].lines]
    assert labels == ["a", "a eval", "b", "b eval"]
    b.summary = {"eval_loss": 1.5}  # the final evaluation outranks the last logged one
    assert view.best().name == "b"


def test_the_recorder_keeps_eval_losses_apart_from_training_losses():
    run = Run("r", RunConfig())
    callback, state = recorder(run), type("State", (), {"global_step": 3})()
    callback.on_log(None, state, None, logs={"loss": 2.0, "learning_rate": 1e-3})
    callback.on_log(None, state, None, logs={"eval_loss": 2.5})
    assert (run.losses, run.eval_losses, run.eval_steps) == ([2.0], [2.5], [3])


def test_settings_table_shows_only_what_differs_plus_the_basics():
    table = settings_table([fake_run("a", [1.0], lora_rank=4, seed=1),
                            fake_run("b", [1.0], lora_rank=4, seed=2)])
    assert "<th>seed</th>" in table and "<th>lora_rank</th>" in table
    assert "<th>weight_decay</th>" not in table


def test_a_run_reads_back_from_trainer_state(tmp_path):
    state = {"log_history": [{"step": 1, "loss": 2.5, "learning_rate": 1e-4}, {"step": 2, "loss": 2.0, "learning_rate": 5e-5},
                             {"step": 2, "train_runtime": 1.0}]}
    (tmp_path / "trainer_state.json").write_text(json.dumps(state))
    run = Run.from_output_dir(tmp_path, name="old")
    assert (run.name, run.steps, run.losses, run.status) == ("old", [1, 2], [2.5, 2.0], "done")
    assert run.learning_rates == [1e-4, 5e-5]


def test_recorder_logs_losses_and_moves_the_progress_bar():
    import ipywidgets as widgets
    from transformers import TrainerControl, TrainerState, TrainingArguments

    run, seen, progress = Run("r", RunConfig()), [], widgets.IntProgress()
    callback = recorder(run, seen.append, progress)
    state, args = TrainerState(max_steps=4), TrainingArguments(output_dir="unused", report_to=[])
    callback.on_train_begin(args, state, TrainerControl())
    assert (progress.max, progress.value) == (4, 0)
    state.global_step = 2
    callback.on_step_end(args, state, TrainerControl())
    callback.on_log(args, state, TrainerControl(), logs={"loss": 1.25, "learning_rate": 1e-4})
    callback.on_log(args, state, TrainerControl(), logs={"train_runtime": 3.0})
    assert progress.value == 2 and (run.steps, run.losses) == ([2], [1.25]) and seen == [run]
    assert run.learning_rates == [1e-4]


def test_chat_panel_reports_a_wrong_adapter_folder(tmp_path):
    chat = ChatPanel(adapter=tmp_path)
    assert chat.ask("Hello") is None
    assert "adapter_config.json" in chat.status.value



def test_every_panel_shows_itself_as_its_widget(panel, tiny_model_dir):
    from transformers import AutoTokenizer

    from ftkit.widgets.data_explorer import DataExplorer
    from ftkit.widgets.panel import Panel
    from ftkit.widgets.vram_panel import VramPanel

    explorer = DataExplorer(AutoTokenizer.from_pretrained(tiny_model_dir),
                            files=[DATA_DIR / "identity.jsonl"])
    for shown in [panel, panel.runs, ChatPanel(), explorer, VramPanel()]:
        assert isinstance(shown, Panel)
        view = shown._repr_mimebundle_()["application/vnd.jupyter.widget-view+json"]
        assert view["model_id"] == shown.widget.model_id, type(shown).__name__
    assert "Ferret" in explorer.stored.value and "learned" in explorer.mask.value

@pytest.mark.slow
def test_train_button_runs_and_the_chat_panel_compares(panel):
    """A real 4-step LoRA run through the panel, then base vs tuned in the chat panel."""
    from peft import PeftModel

    from ftkit.infer import chat
    from ftkit.models import load

    panel.fields["train_file"].value = str(DATA_DIR / "identity.jsonl")
    panel.fields["max_steps"].value = 4
    panel.fields["max_seq_length"].value = 64
    panel.fields["learning_rate"].value = 1e-3
    panel.base = panel.base.model_copy(update={"logging_steps": 1, "save_strategy": "no"})
    panel.update()
    panel.train_button.click()
    run = panel.runs.runs[-1]
    assert run.status == "done", panel.status.value
    assert run.steps == [1, 2, 3, 4] and len(run.losses) == 4
    assert panel.progress.value == panel.progress.max == 4
    assert "final loss" in panel.status.value and panel.run_name.value == "run_2"
    assert "eval loss" not in panel.status.value  # no held-out data, no evaluation claimed
    assert "run ★" in panel.runs.table.value

    chat_panel = ChatPanel(adapter=run.output_dir)
    question = "What is the capital of France?"
    base, tuned = chat_panel.ask(question)
    model, tokenizer = load()
    assert base == chat(model, tokenizer, question, 48)  # adapter off == the plain base model
    # The tuned column is the run's adapter: a fresh PeftModel of the saved folder says the same.
    tuned_model = PeftModel.from_pretrained(model, str(run.output_dir)).eval()
    assert tuned.strip() and tuned == chat(tuned_model, tokenizer, question, 48)
    assert html.escape(base) in chat_panel.base_answer.value
    assert html.escape(tuned) in chat_panel.tuned_answer.value
    # Each column says whether the answer stopped and how much of it repeats.
    base_answer, _ = chat_panel.answers
    assert base_answer.stopped and "stopped; repeated 3-grams" in chat_panel.base_answer.value
    assert "repeated 3-grams" in chat_panel.tuned_answer.value


def test_chat_answers_carry_stop_and_repetition_flags():
    from ftkit.eval.generation import Answer
    from ftkit.widgets.chat_panel import answer_html, flags

    looping = Answer("a b c a b c", [1, 2, 3, 1, 2, 3], stopped=False)
    assert flags(looping, 48) == "did not stop within 48 tokens; repeated 3-grams 25%"
    assert "color:#b00020" in answer_html(looping, 48, "ftkit-tuned-answer")  # shown in red
    assert flags(Answer("Paris.", [5, 6, 7], stopped=True), 48) == "stopped; repeated 3-grams 0%"


def test_the_evaluation_table_of_a_finished_run():
    summary = {"eval_loss": 1.0, "best_metric": 0.9, "best_step": 4, "stopped_early": True,
               "doctor": [{"code": "overfitting", "severity": "warning", "message": "eval loss rose.",
                           "advice": "train fewer epochs"}]}
    table = evaluation_table(summary)
    assert "1.0000" in table and "2.72" in table  # perplexity = e ** eval loss
    assert "0.9000 at step 4" in table and "<td>yes</td>" in table
    assert "doctor: overfitting (warning)" in table and "train fewer epochs" in table
    assert "no problem found" in evaluation_table({"eval_loss": 2.0, "doctor": []})
    assert evaluation_table({"eval_loss": None, "doctor": []}) == ""  # nothing evaluated, no table


def test_fp16_replaces_a_bf16_base_instead_of_conflicting(tmp_path):
    bf16_panel = TrainingPanel(RunConfig(bf16=True), output_root=tmp_path / "runs")
    bf16_panel.fields["fp16"].value = True
    assert bf16_panel.problems == {} and (bf16_panel.config.fp16, bf16_panel.config.bf16) == (True, False)
    bf16_panel.fields["fp16"].value = False
    assert (bf16_panel.config.fp16, bf16_panel.config.bf16) == (False, True)  # the base's bf16 again


def test_chat_panel_switches_adapters_on_one_base(tiny_model_dir, tiny_run, tmp_path):
    """Two adapters of one base: the second is loaded beside the first and switched to; the base
    is not loaded again, and each adapter answers as it does loaded alone."""
    from ftkit.train import finetune
    from ftkit.widgets.chat_panel import adapter_name, compare, load_pair

    folders = []
    for rate in (1e-3, 5e-2):
        run = finetune(None, **{**tiny_run, "learning_rate": rate, "output_dir": str(tmp_path / f"lr{rate}")},
                       verbose=False)
        folders.append(str(run.output_dir))
    chat = ChatPanel(str(tiny_model_dir), adapter=folders[0], adapters=folders)
    _, first = chat.ask("Who are you?")
    model = chat.model
    chat.adapter.value = folders[1]
    _, second = chat.ask("Who are you?")
    assert chat.model is model and set(model.peft_config) == {adapter_name(f) for f in folders}
    assert model.active_adapter == adapter_name(folders[1])
    for folder, answer in zip(folders, (first, second)):
        alone, tokenizer = load_pair(str(tiny_model_dir), folder)
        assert compare(alone, tokenizer, "Who are you?")[1].text == answer
    chat.adapter.value = folders[0]
    assert chat.ask("Who are you?")[1] == first  # and back
