"""Preference alignment (stage ``dpo``) with TRL's ``DPOTrainer``.

Taught in lesson 08 (``notebooks/08_dpo.ipynb``). Data are preference pairs (seed 004's
RLHF/DPO format: ``prompt``, ``chosen``, ``rejected``, optional ``score`` and
``reject_reason``) read by :mod:`ftkit.data`. The loss pushes the policy's log-probability
of the chosen answer up against the rejected one, measured relative to a frozen reference:

    loss = -log sigmoid(beta * [(log pi(c) - log ref(c)) - (log pi(r) - log ref(r))])

The reference costs no second copy of the weights: with LoRA / QLoRA it is the same model
with the adapter switched off; with full / freeze its log-probabilities are computed once
before training (``precompute_ref_log_probs``) and the copy is never kept. The output folder
receives what every run writes (adapter or model, tokenizer, ``run_config.yaml``, Trainer
state, ``training_loss.png``, ``run_summary.json``) plus ``dpo_rewards.png``; the summary adds
``dpo_beta``, ``dpo_loss_type``, ``reward_accuracy``, ``reward_margin`` (last logged) and, with
evaluation data, ``eval_before`` / ``eval_after`` (:func:`preference_metrics` of the held-out
pairs before and after training). ``train_dpo`` is ``finetune`` with ``stage: dpo``.
"""

from __future__ import annotations

from trl import DPOConfig, DPOTrainer

from ..errors import FtkitError
from ..methods import lora_config, prepare_kbit
from ..plots.alignment import save_rewards_plot
from .recipe import (
    RunResult,
    Stage,
    StageData,
    build_arguments,
    has_training_data,
    run,
    split_train_eval,
)
from .sft import read
from .summary import last_logged

REWARDS_PLOT_FILE = "dpo_rewards.png"
PREFERENCE_COLUMNS = ("prompt", "chosen", "rejected")


def read_preferences(cfg, path: str, verbose: bool = True, **load_arguments):
    """One source of preference pairs; other data are refused with what the file holds instead."""
    dataset = read(cfg, path, verbose, **load_arguments)
    missing = [c for c in PREFERENCE_COLUMNS if c not in dataset.column_names]
    if missing:
        raise FtkitError(
            f"{path}: stage dpo needs preference pairs (prompt, chosen, rejected) but this file "
            f"holds {', '.join(dataset.column_names)} data, with no {', '.join(missing)}. Write one "
            'record per line like {"prompt": "...", "chosen": "better answer", "rejected": '
            '"worse answer"} (see data/preference.jsonl), or train this file with stage: sft.')
    return dataset.select_columns(list(PREFERENCE_COLUMNS))  # score/reject_reason: for people


def load_preferences(cfg, verbose: bool = True):
    """``(train, eval or None)``: preference pairs from ``train_file`` / ``val_file`` (or the
    registry's ``datasets`` / ``eval_datasets``)."""
    if not has_training_data(cfg):
        raise FtkitError("train_file is not set: stage dpo needs preference pairs, "
                         "e.g. train_file: data/preference.jsonl")
    return split_train_eval(cfg, lambda path, **kw: read_preferences(cfg, path, verbose, **kw))


class FtkitDPOTrainer(DPOTrainer):
    """``DPOTrainer`` that also bounds prompt and answer lengths separately.

    TRL 1.x keeps only ``max_length`` (prompt + answer, cut from the end); the config's
    ``max_prompt_length`` keeps the *last* tokens of the prompt (the question's end and the
    assistant header) and ``max_completion_length`` the *first* tokens of each answer.
    """

    activation_bytes = 0  # DPO's activations are predicted, not metered

    def __init__(self, *args, max_prompt_length=None, max_completion_length=None, **kwargs):
        self.max_prompt_length, self.max_completion_length = max_prompt_length, max_completion_length
        super().__init__(*args, **kwargs)

    @property
    def real_tokens(self) -> int:
        return int(getattr(self, "_total_train_tokens", 0))

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


def preference_view(metrics: dict, prefix: str = "eval") -> dict:
    """Loss, reward accuracy and margins, and the policy's log-probability margin
    ``log pi(chosen) - log pi(rejected)`` (mean over pairs), from TRL's evaluation metrics."""
    def get(key):
        return metrics[f"{prefix}_{key}"]

    return {"loss": get("loss"), "reward_accuracy": get("rewards/accuracies"),
            "reward_margin": get("rewards/margins"),
            "logp_chosen": get("logps/chosen"), "logp_rejected": get("logps/rejected"),
            "logp_margin": get("logps/chosen") - get("logps/rejected")}


def preference_metrics(trainer, dataset=None) -> dict:
    """:func:`preference_view` of an evaluation on ``dataset`` (default: the eval set)."""
    return preference_view(trainer.evaluate(eval_dataset=dataset))


def save_dpo_rewards_plot(history, out) -> None:
    save_rewards_plot(history, out / REWARDS_PLOT_FILE)


class PreferenceStage(Stage):
    name = "dpo"
    loss_title = "DPO loss"

    def arguments(self, cfg, args: dict) -> DPOConfig:
        """``DPOConfig``: every TrainingArguments field of the config plus the DPO ones."""
        args.update(
            beta=cfg.dpo_beta,
            loss_type=[t.strip() for t in cfg.dpo_loss_type.split(",")],  # "sigmoid,sft" mixes losses
            max_length=cfg.max_seq_length,
            # full / freeze: score the reference once before training instead of keeping a copy
            precompute_ref_log_probs=cfg.method in ("full", "freeze"),
            prediction_loss_only=True,  # else TRL recomputes the logits of every eval batch
        )
        return build_arguments(DPOConfig, args)

    def data(self, cfg, tokenizer, verbose):
        return StageData(*load_preferences(cfg, verbose))

    def method(self, cfg, model):
        """LoRA / QLoRA: TRL adds the adapter (the reference = the adapter switched off)."""
        if cfg.method in ("lora", "qlora"):
            if cfg.method == "qlora":
                model = prepare_kbit(model, cfg)
            return model, {"peft_config": lora_config(cfg)}
        return super().method(cfg, model)  # full / freeze, in place

    def trainer(self, cfg, model, args, stage_data, tokenizer, callbacks, peft_config=None):
        return FtkitDPOTrainer(
            model=model, args=args, train_dataset=stage_data.train, eval_dataset=stage_data.eval,
            processing_class=tokenizer, peft_config=peft_config, callbacks=callbacks,
            max_prompt_length=cfg.max_prompt_length, max_completion_length=cfg.max_completion_length)

    def before_training(self, trainer, stage_data):
        return {"eval": preference_metrics(trainer)} if stage_data.eval is not None else {}

    def extras(self, cfg, trainer, stage_data, final_eval, before):
        history = trainer.state.log_history
        return {"dpo_beta": cfg.dpo_beta, "dpo_loss_type": cfg.dpo_loss_type,
                "reward_accuracy": last_logged(history, "rewards/accuracies", among="loss"),
                "reward_margin": last_logged(history, "rewards/margins", among="loss"),
                "eval_before": before.get("eval"),
                "eval_after": preference_view(final_eval) if final_eval else None}

    def memory_overrides(self, cfg):
        # TRL runs chosen and rejected answers as one batch of twice the rows; the reference
        # pass (adapters switched off, or log-probs computed before training) keeps nothing.
        return {"batch_size": 2 * cfg.per_device_train_batch_size}

    def plots(self):
        return [save_dpo_rewards_plot]

    def report(self, summary):
        return f", reward accuracy {summary['reward_accuracy']}"


STAGE = PreferenceStage()


def train_dpo(config=None, **kwargs) -> RunResult:
    """``finetune`` with ``stage: dpo`` (the name lesson 08 knows)."""
    return run(STAGE, config, **{**kwargs, "stage": "dpo"})
