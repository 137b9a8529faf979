"""``train_dpo(config)``: preference alignment with TRL's ``DPOTrainer`` (stage ``dpo``).

Taught in lesson 08 (``notebooks/08_dpo.ipynb``). Data are preference pairs (seed 004's
RLHF/DPO format: ``prompt``, ``chosen``, ``rejected``, optional ``score`` and
``reject_reason``) read by :mod:`ftkit.data`. The loss pushes the policy's log-probability
of the chosen answer up against the rejected one, measured relative to a frozen reference:

    loss = -log sigmoid(beta * [(log pi(c) - log ref(c)) - (log pi(r) - log ref(r))])

The reference costs no second copy of the weights: with LoRA / QLoRA it is the same model
with the adapter switched off; with full / freeze its log-probabilities are computed once
before training (``precompute_ref_log_probs``) and the copy is never kept. The output folder
receives what ``finetune`` writes (adapter or model, tokenizer, ``run_config.yaml``,
Trainer state, ``training_loss.png``, ``run_summary.json``) plus ``dpo_rewards.png``.
"""

from __future__ import annotations

from trl import DPOConfig, DPOTrainer

from ..errors import FtkitError
from . import distributed
from .callbacks import quiet_if_asked, standard_callbacks
from .run import (RunResult, _prepare_output_dir, common_arguments, data_path, predicted_bytes,
                  resolve_config, save_run)
from .summary import build_summary

REWARDS_PLOT_FILE = "dpo_rewards.png"
PREFERENCE_COLUMNS = ("prompt", "chosen", "rejected")


def load_preferences(cfg):
    """``(train, eval or None)``: preference pairs from ``train_file`` / ``val_file``."""
    if not cfg.train_file:
        raise FtkitError("train_file is not set: stage dpo needs preference pairs, "
                         "e.g. train_file: data/preference.jsonl")
    train = _preference_file(cfg, cfg.train_file)
    if cfg.max_samples:
        train = train.select(range(min(cfg.max_samples, len(train))))
    evaluation = _preference_file(cfg, cfg.val_file) if cfg.val_file else None
    if evaluation is None and cfg.val_size:
        split = train.train_test_split(test_size=cfg.val_size, seed=cfg.seed)
        train, evaluation = split["train"], split["test"]
    return train, evaluation


def _preference_file(cfg, name):
    from .. import data

    dataset = data.load(data_path(name), format=cfg.data_format, encoding=cfg.encoding)
    missing = [c for c in PREFERENCE_COLUMNS if c not in dataset.column_names]
    if missing:
        raise FtkitError(
            f"{name}: stage dpo needs preference pairs (prompt, chosen, rejected) but this file "
            f"holds {', '.join(dataset.column_names)} data, with no {', '.join(missing)}. Write one "
            'record per line like {"prompt": "...", "chosen": "better answer", "rejected": '
            '"worse answer"} (see data/preference.jsonl), or train this file with stage: sft.')
    return dataset.select_columns(list(PREFERENCE_COLUMNS))  # score/reject_reason: for people


def dpo_arguments(cfg) -> DPOConfig:
    """``DPOConfig``: every TrainingArguments field of the config plus the DPO ones."""
    args = common_arguments(cfg)
    args.update(
        beta=cfg.dpo_beta,
        loss_type=[t.strip() for t in cfg.dpo_loss_type.split(",")],  # "sigmoid,sft" mixes losses
        max_length=cfg.max_seq_length,
        # full / freeze: score the reference once before training instead of keeping a copy
        precompute_ref_log_probs=cfg.method in ("full", "freeze"),
        prediction_loss_only=True,  # else TRL recomputes the logits of every eval batch
    )
    try:
        return DPOConfig(**args)
    except (ValueError, TypeError, ImportError) as error:
        raise FtkitError(f"DPOConfig refused these settings: {error}") from None


class FtkitDPOTrainer(DPOTrainer):
    """``DPOTrainer`` that also bounds prompt and answer lengths separately.

    TRL 1.x keeps only ``max_length`` (prompt + answer, cut from the end); the config's
    ``max_prompt_length`` keeps the *last* tokens of the prompt (the question's end and the
    assistant header) and ``max_completion_length`` the *first* tokens of each answer.
    """

    def __init__(self, *args, max_prompt_length=None, max_completion_length=None, **kwargs):
        self.max_prompt_length, self.max_completion_length = max_prompt_length, max_completion_length
        super().__init__(*args, **kwargs)

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        dataset = super()._prepare_dataset(dataset, processing_class, args, dataset_name)
        prompt, answer = self.max_prompt_length, self.max_completion_length
        if not (prompt or answer) or "prompt_ids" not in dataset.column_names:
            return dataset

        def cut(example):
            if prompt:
                example["prompt_ids"] = example["prompt_ids"][-prompt:]
            if answer:
                example["chosen_ids"] = example["chosen_ids"][:answer]
                example["rejected_ids"] = example["rejected_ids"][:answer]
            return example

        return dataset.map(cut)


def _model_and_peft_config(cfg, model, tokenizer, verbose):
    """The policy to train and the peft config TRL wraps it with (None for full / freeze)."""
    from peft import prepare_model_for_kbit_training

    from ..methods import apply_method, load_base_model, lora_config

    model = model if model is not None else load_base_model(cfg)
    if cfg.method in ("lora", "qlora"):
        if cfg.method == "qlora":
            model = prepare_model_for_kbit_training(
                model, use_gradient_checkpointing=cfg.gradient_checkpointing,
                gradient_checkpointing_kwargs={"use_reentrant": False})
        return model, lora_config(cfg)  # TRL adds it; the reference = adapter switched off
    model, _ = apply_method(model, cfg, tokenizer, verbose=verbose)  # full / freeze, in place
    return model, None


def train_dpo(config=None, *, model=None, tokenizer=None, callbacks=(), verbose: bool = True,
              **overrides) -> RunResult:
    """Align a model on preference pairs as ``config`` says (stage ``dpo``).

    Same arguments and result as :func:`ftkit.train.finetune`; the summary adds
    ``dpo_beta``, ``dpo_loss_type``, ``reward_accuracy``, ``reward_margin`` (last logged)
    and, when there is evaluation data, ``eval_before`` / ``eval_after`` (log-probability
    margin, reward accuracy and loss of the held-out pairs before and after training).
    """
    from transformers import set_seed

    from .. import models
    from ..methods import count_parameters

    cfg = resolve_config(config, {"stage": "dpo", **overrides})
    args = dpo_arguments(cfg)
    train_set, eval_set = load_preferences(cfg)
    out = _prepare_output_dir(cfg)
    tokenizer = tokenizer or models.load_tokenizer(cfg.model_name_or_path, cfg.trust_remote_code)
    set_seed(cfg.seed)
    model, peft_config = _model_and_peft_config(cfg, model, tokenizer, verbose)
    meter, extra = standard_callbacks("DPO loss")
    trainer = FtkitDPOTrainer(
        model=model, args=args, train_dataset=train_set, eval_dataset=eval_set,
        processing_class=tokenizer, peft_config=peft_config, callbacks=extra + list(callbacks),
        max_prompt_length=cfg.max_prompt_length, max_completion_length=cfg.max_completion_length)
    quiet_if_asked(trainer)
    params = count_parameters(trainer.model)
    if verbose and distributed.is_main_process():
        print(f"dpo/{cfg.method}: {params}")
    before = preference_metrics(trainer) if eval_set is not None else None
    output = trainer.train(resume_from_checkpoint=cfg.resume_from_checkpoint)
    after = preference_metrics(trainer) if eval_set is not None else None
    summary = _save(cfg, trainer, tokenizer, out, output, params, meter, before, after)
    if verbose and distributed.is_main_process():
        print(f"ftkit: DPO {summary['steps']} steps, loss {summary['first_loss']} -> "
              f"{summary['last_loss']}, reward accuracy {summary['reward_accuracy']}; saved to {out}")
    return RunResult(cfg, out, summary, trainer.model, tokenizer, trainer, params)


def preference_metrics(trainer, dataset=None) -> dict:
    """Loss, reward accuracy and margins, and the policy's log-probability margin
    ``log pi(chosen) - log pi(rejected)`` (mean over pairs) on ``dataset`` or the eval set."""
    metrics = trainer.evaluate(eval_dataset=dataset)  # TRL names its metrics eval_*
    get = lambda key: metrics[f"eval_{key}"]  # noqa: E731
    return {"loss": get("loss"), "reward_accuracy": get("rewards/accuracies"),
            "reward_margin": get("rewards/margins"),
            "logp_chosen": get("logps/chosen"), "logp_rejected": get("logps/rejected"),
            "logp_margin": get("logps/chosen") - get("logps/rejected")}


def _last_logged(history, key):
    values = [row[key] for row in history if key in row and "loss" in row]
    return values[-1] if values else None


def _save_rewards_plot(history, out) -> None:
    from ..plots.alignment import save_rewards_plot

    save_rewards_plot(history, out / REWARDS_PLOT_FILE)


def _save(cfg, trainer, tokenizer, out, output, params, meter, before, after) -> dict:
    """Write what finetune writes (rank 0 only) and return the summary."""
    trainer.save_model(str(out))  # Trainer saves on the main process only
    history = trainer.state.log_history
    # TRL runs chosen and rejected answers as one batch of twice the rows; the reference
    # pass (adapters switched off, or log-probs computed before training) keeps nothing.
    # Measured: weights, gradients and optimizer state; DPO's activations are not metered.
    memory = {"predicted_bytes": predicted_bytes(cfg, trainer.model,
                                                 batch_size=2 * cfg.per_device_train_batch_size),
              "measured_bytes": meter.measured_bytes(0), "measured_parts": dict(meter.parts)}
    tokens = int(getattr(trainer, "_total_train_tokens", 0))
    summary = build_summary(cfg, trainer, output.metrics, params, tokens, memory, False)
    summary.update(dpo_beta=cfg.dpo_beta, dpo_loss_type=cfg.dpo_loss_type,
                   reward_accuracy=_last_logged(history, "rewards/accuracies"),
                   reward_margin=_last_logged(history, "rewards/margins"),
                   eval_before=before, eval_after=after)
    save_run(cfg, trainer, tokenizer, out, summary, extra_plots=[_save_rewards_plot])
    return summary
