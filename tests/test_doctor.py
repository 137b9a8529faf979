"""The stop-token doctor (ftkit.doctor) and the run doctor (ftkit.eval.run_doctor).

Each finding is caused on purpose and must be caught; the healthy setup must pass. Only
the default model's tokenizer is needed (no weights), so these tests are fast.
"""

import math

import pytest

from ftkit import data, doctor
from ftkit.config import RunConfig
from ftkit.eval import run_doctor
from ftkit.train.collate import padding_collator

IDENTITY = "data/identity.jsonl"


@pytest.fixture(scope="module")
def tokenizer():
    from ftkit import models

    return models.load_tokenizer()


@pytest.fixture(scope="module")
def examples(tokenizer):
    rows = data.load(IDENTITY, verbose=False).select(range(12))
    return [data.tokenize_messages(r["messages"], tokenizer) for r in rows]


def codes(findings):
    return {f.code for f in findings}


# ---------------------------------------------------------------- stop-token doctor
def test_end_of_turn_of_chatml_is_im_end(tokenizer):
    assert doctor.end_of_turn(tokenizer) == ("<|im_end|>", tokenizer.convert_tokens_to_ids("<|im_end|>"))


def test_ftkit_collator_learns_the_end_token(tokenizer, examples):
    assert doctor.check_labels(examples, tokenizer, collator=padding_collator(tokenizer)) == []


def test_pad_eos_masked_by_a_collator_is_caught(tokenizer, examples):
    # transformers' DataCollatorForLanguageModeling sets labels[input_ids == pad_token_id] = -100;
    # with pad = eos = <|im_end|> (SmolLM2's own setting) every end-of-turn token goes with it.
    from transformers import DataCollatorForLanguageModeling

    assert tokenizer.pad_token_id == tokenizer.eos_token_id
    found = doctor.check_labels(examples, tokenizer,
                                collator=DataCollatorForLanguageModeling(tokenizer, mlm=False))
    assert codes(found) == {"pad_eos_masked"}
    assert "mask padding by position" in found[0].advice


def test_labels_without_end_token_are_caught(tokenizer, examples):
    # the last answer word, <|im_end|> and the newline cut off, as truncation does
    cut = [dict(e, input_ids=e["input_ids"][:-3], labels=e["labels"][:-3]) for e in examples]
    assert codes(doctor.check_labels(cut, tokenizer)) == {"end_token_missing"}


def test_end_token_masked_alone_with_a_distinct_pad_is_caught(tokenizer, examples):
    import copy

    distinct = copy.deepcopy(tokenizer)
    distinct.pad_token = "<|endoftext|>"
    eot = doctor.end_of_turn(tokenizer)[1]
    masked = [dict(e, labels=[-100 if t == eot else label for t, label in zip(e["input_ids"], e["labels"])])
              for e in examples]
    assert codes(doctor.check_labels(masked, distinct)) == {"end_token_masked"}
    assert codes(doctor.check_labels(masked, tokenizer)) == {"pad_eos_masked"}


def test_truncated_answers_are_caught_from_a_config(tokenizer):
    # SmolLM2's default system message alone is ~20 tokens: at 40 the answers are cut.
    cfg = RunConfig(train_file=IDENTITY, max_seq_length=40)
    found = doctor.check_config(cfg, tokenizer)
    missing = [f for f in found if f.code == "end_token_missing"]
    assert missing and "max_seq_length" in missing[0].advice
    assert "cut by max_seq_length" in missing[0].message


def test_healthy_config_has_only_the_pad_note(tokenizer):
    found = doctor.check_config(RunConfig(train_file=IDENTITY), tokenizer)
    assert codes(found) == {"pad_is_eos"}
    assert all(f.severity == "info" for f in found)


def test_template_without_end_token_is_caught(tokenizer):
    import copy

    plain = copy.deepcopy(tokenizer)
    plain.chat_template = ("{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\\n' }}"
                           "{% endfor %}{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}")
    assert codes(doctor.check_template_end(plain)) == {"template_without_end"}


def test_generation_config_without_the_end_token_is_caught(tokenizer):
    from transformers import GenerationConfig

    eot = doctor.end_of_turn(tokenizer)[1]
    assert doctor.check_generation_config(GenerationConfig(eos_token_id=[eot, 0]), tokenizer) == []
    found = doctor.check_generation_config(GenerationConfig(eos_token_id=0), tokenizer)
    assert codes(found) == {"generation_eos_mismatch"}
    assert str(sorted({0, eot})) in found[0].advice


def _run_dir(path, tokenizer, template, saved_template=None, generation_eos=None):
    """A run's output folder as ftkit train leaves it: config, tokenizer (and generation config)."""
    import copy

    cfg = RunConfig(train_file=IDENTITY, template=template, output_dir=str(path))
    path.mkdir(parents=True, exist_ok=True)
    cfg.to_yaml(path / "run_config.yaml")
    saved = copy.deepcopy(tokenizer)
    data.use_template(saved, saved_template)
    saved.save_pretrained(str(path))
    if generation_eos is not None:
        from transformers import GenerationConfig

        GenerationConfig(eos_token_id=generation_eos).save_pretrained(str(path))
    return path


def test_template_mismatch_in_a_run_dir_is_caught(tmp_path, tokenizer):
    # trained with Alpaca, but the tokenizer saved with the adapter still carries ChatML
    broken = _run_dir(tmp_path / "broken", tokenizer, template="alpaca", saved_template=None)
    assert "template_mismatch" in codes(doctor.diagnose(broken))
    fixed = _run_dir(tmp_path / "fixed", tokenizer, template="alpaca", saved_template="alpaca")
    assert "template_mismatch" not in codes(doctor.diagnose(fixed))


def test_saved_generation_config_without_end_token_is_caught(tmp_path, tokenizer):
    broken = _run_dir(tmp_path / "gen", tokenizer, template=None, generation_eos=0)
    assert "generation_eos_mismatch" in codes(doctor.diagnose(broken))
    fixed = _run_dir(tmp_path / "gen_ok", tokenizer, template=None, generation_eos=[2])
    assert codes(doctor.diagnose(fixed)) == {"pad_is_eos"}


def test_cli_doctor_exit_status(tmp_path):
    from ftkit.cli import main

    good = tmp_path / "good.yaml"
    RunConfig(train_file=IDENTITY).to_yaml(good)
    bad = tmp_path / "bad.yaml"
    RunConfig(train_file=IDENTITY, max_seq_length=40).to_yaml(bad)
    assert main(["doctor", str(good)]) == 0
    assert main(["doctor", str(bad)]) == 1
    assert main(["doctor", str(tmp_path / "nothing.yaml")]) == 2


# ---------------------------------------------------------------- run doctor
def history(losses, grad_norms=None, evals=()):
    rows = [{"step": i + 1, "loss": v, **({"grad_norm": grad_norms[i]} if grad_norms else {})}
            for i, v in enumerate(losses)]
    rows += [{"step": s, "eval_loss": v} for s, v in evals]
    return sorted(rows, key=lambda r: r["step"])


def falling(n=20, start=3.0, end=1.0):
    return [start + (end - start) * i / (n - 1) for i in range(n)]


def test_healthy_run_has_no_finding():
    assert run_doctor.diagnose(history(falling(), [1.0] * 20, [(5, 2.5), (10, 2.0), (20, 1.6)])) == []


def test_nan_loss_is_caught():
    losses = falling()[:8] + [math.nan] * 4
    found = run_doctor.diagnose(history(losses))
    assert "nan" in codes(found) and "step 9" in next(f for f in found if f.code == "nan").message


def test_spike_is_caught():
    losses = falling()
    losses[12] = 8.0
    found = run_doctor.diagnose(history(losses))
    assert codes(found) == {"spike"} and "step 13" in found[0].message


def test_plateau_is_caught():
    assert codes(run_doctor.diagnose(history([2.5 + 0.01 * (-1) ** i for i in range(20)]))) == {"plateau"}


def test_diverging_loss_is_caught():
    assert "diverging" in codes(run_doctor.diagnose(history(falling(start=2.0, end=9.0))))


def test_grad_norm_out_of_range_is_caught():
    assert "grad_norm_high" in codes(run_doctor.diagnose(history(falling(), [1.0] * 10 + [500.0] * 10)))
    assert "grad_norm_zero" in codes(run_doctor.diagnose(history(falling(), [0.0] * 20)))


def test_overfitting_curve_is_caught_with_the_early_stopping_step():
    evals = [(4, 2.4), (8, 2.1), (12, 2.2), (16, 2.4), (20, 2.7)]
    log = history(falling(), evals=evals)
    found = run_doctor.diagnose(log)
    assert codes(found) == {"overfitting"}
    assert "stopped at step 8" in found[0].message
    assert run_doctor.best_eval_step(log) == 8


def test_eval_rising_with_train_rising_is_not_called_overfitting():
    evals = [(4, 2.0), (8, 1.9), (12, 2.3), (16, 2.6), (20, 2.9)]
    assert "overfitting" not in codes(run_doctor.diagnose(history(falling(start=2, end=4), evals=evals)))


def test_run_summary_carries_the_run_doctor(tiny_run):
    from ftkit.train import finetune, read_summary

    result = finetune(None, **tiny_run, verbose=False)
    expected = [f.to_dict() for f in run_doctor.diagnose(result.log_history)]
    assert result.summary["doctor"] == expected
    assert read_summary(result.output_dir)["doctor"] == expected
