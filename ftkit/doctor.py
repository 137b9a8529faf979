"""The stop-token doctor: will the tuned model know when to stop? (lesson 13)

The most common complaint about a fine-tuned chat model is that it never stops, or runs
on into a made-up next turn. Four causes, each checked here before or after training:

1. the end-of-turn token (``<|im_end|>`` for ChatML) is not in the loss mask of every
   example: the answer was cut by ``max_seq_length``, or the collator masked it;
2. pad = eos and the collator masks labels *by token id* (``labels[input_ids == pad] =
   -100``, what ``DataCollatorForLanguageModeling`` does): every eos goes with the padding;
3. ``generation_config.eos_token_id`` does not hold the template's end-of-turn token, so
   ``generate`` does not stop where the template ends a turn;
4. the template used for training is not the one saved with the adapter, which ``chat``
   and ``merge`` use: the model is asked in a format it was not trained on.

``diagnose(path)`` takes a training config (any dialect) or a run's output folder;
:func:`check_labels`, :func:`check_generation_config` and :func:`check_saved_template`
take objects, for a notebook. Each finding says what to change. ``ftkit doctor`` prints them.
"""

from __future__ import annotations

from pathlib import Path

from . import data, models
from .data.templates import resolve_template
from .errors import FtkitError
from .eval.evaluate import data_file
from .eval.findings import Finding
from .eval.generation import end_of_turn
from .train import resolve_config
from .train.collate import make_collator

IGNORE_INDEX = -100
CONFIG_FILE = "run_config.yaml"


def _eot(tokenizer, template):
    found = end_of_turn(tokenizer, template)
    return (None, None) if found is None else found


def check_template_end(tokenizer, template: str | None = None) -> list[Finding]:
    token, _ = _eot(tokenizer, template)
    if token is not None:
        return []
    return [Finding(
        "template_without_end", "error",
        "the chat template closes an assistant turn with no token at all, so there is "
        "nothing the model could learn to stop on",
        "use a template that ends each answer with a token (ChatML's <|im_end|>, or "
        "eos_token in Alpaca/Vicuna): template: chatml")]


def check_labels(examples, tokenizer, template: str | None = None, collator=None,
                 batch_size: int = 8) -> list[Finding]:
    """Is the end-of-turn token the last learned token of every example?

    ``examples`` are tokenized rows (``input_ids``, ``labels``; ``truncated`` if known),
    e.g. ``ftkit.data.tokenize_sft(...)``. With ``collator`` they are batched through it
    first, as the Trainer would, so a collator that masks the end token is caught.
    """
    token, eot = _eot(tokenizer, template)
    if eot is None:
        return check_template_end(tokenizer, template)
    rows = list(examples)
    missing, masked, truncated = [], 0, 0
    for first in range(0, len(rows), batch_size):
        chunk = rows[first:first + batch_size]
        for offset, (ids, labels) in enumerate(_labelled(chunk, collator)):
            learned = [label for label in labels if label != IGNORE_INDEX]
            if learned and learned[-1] == eot:
                continue
            missing.append(first + offset)
            if _masked_alone(ids, labels, eot):
                masked += 1
            elif chunk[offset].get("truncated"):
                truncated += 1
    findings = []
    if missing:
        pad_is_eos = tokenizer.pad_token_id == eot or tokenizer.pad_token_id == tokenizer.eos_token_id
        where = ", ".join(str(i) for i in missing[:8]) + (" ..." if len(missing) > 8 else "")
        if masked and pad_is_eos:
            findings.append(Finding(
                "pad_eos_masked", "error",
                f"{masked} of {len(rows)} examples hold {token} but do not learn it: pad = "
                f"eos ({tokenizer.pad_token!r}) and the labels were masked by token id, so the "
                "end-of-turn token was masked with the padding. The model never learns to stop",
                "mask padding by position, not by id: pad labels with -100 in the collator "
                "(DataCollatorForSeq2Seq(label_pad_token_id=-100), ftkit's default), or give "
                "the tokenizer a pad token distinct from eos"))
        elif masked:
            findings.append(Finding(
                "end_token_masked", "error",
                f"{masked} of {len(rows)} examples hold {token} but do not learn it "
                f"(examples {where}): the model never learns to stop",
                "learn the end-of-turn token with the answer (ftkit.data.tokenize_sft does); "
                "check the collator does not overwrite labels"))
        if len(missing) - masked:
            reason = (f" ({truncated} were cut by max_seq_length)" if truncated else "")
            findings.append(Finding(
                "end_token_missing", "error",
                f"{len(missing) - masked} of {len(rows)} examples have no {token} in their "
                f"learned tokens{reason}: these answers teach the model to go on, not to stop",
                "raise max_seq_length (or max_output_length) above the longest example "
                "(ftkit data inspect shows lengths), or drop the overlong examples"))
    return findings


def _masked_alone(ids, labels, eot) -> bool:
    """The end token closes a learned answer but is itself masked: labels masked by token id."""
    return any(t == eot and labels[p] == IGNORE_INDEX and labels[p - 1] != IGNORE_INDEX
               for p, t in enumerate(ids) if p > 0)


def _labelled(chunk, collator):
    """(input_ids, labels) of each row, through the collator when one is given."""
    if collator is None:
        return [(list(r["input_ids"]), list(r["labels"])) for r in chunk]
    features = [{"input_ids": r["input_ids"], "labels": r["labels"],
                 "attention_mask": r.get("attention_mask", [1] * len(r["input_ids"]))} for r in chunk]
    try:
        batch = collator(features)
    except ValueError:  # a collator that makes its own labels cannot pad ragged ones
        batch = collator([{k: f[k] for k in ("input_ids", "attention_mask")} for f in features])
    return [(ids.tolist(), labels.tolist()) for ids, labels in zip(batch["input_ids"], batch["labels"])]


def check_pad(tokenizer, template: str | None = None) -> list[Finding]:
    """pad = eos is fine while eos is still learned; say so, so the learner knows to watch it."""
    _, eot = _eot(tokenizer, template)
    if tokenizer.pad_token_id is not None and tokenizer.pad_token_id in (eot, tokenizer.eos_token_id):
        return [Finding(
            "pad_is_eos", "info",
            f"pad = eos ({tokenizer.pad_token!r}): harmless while padding is masked by position "
            "(ftkit's collator), fatal with a collator that masks labels by token id",
            "nothing to change with ftkit's collator; with another one, check the end token "
            "is learned (ftkit doctor on the config)")]
    return []


def generation_eos_ids(generation_config) -> list[int]:
    eos = getattr(generation_config, "eos_token_id", None)
    if eos is None:
        return []
    return [int(e) for e in eos] if isinstance(eos, (list, tuple)) else [int(eos)]


def check_generation_config(generation_config, tokenizer, template: str | None = None) -> list[Finding]:
    """``generation_config.eos_token_id`` must hold the template's end-of-turn token."""
    token, eot = _eot(tokenizer, template)
    if eot is None:
        return []
    ids = generation_eos_ids(generation_config)
    if eot in ids:
        return []
    return [Finding(
        "generation_eos_mismatch", "error",
        f"generation_config.eos_token_id is {ids or None} but the template ends a turn with "
        f"{token} (id {eot}): generate() runs past the end of the answer into a made-up next turn",
        f"set model.generation_config.eos_token_id = {sorted(set(ids + [eot]))} and save it "
        "with the model (generation_config.json)")]


def check_saved_template(trained_with: str, saved: str | None, where: str) -> list[Finding]:
    """The template training rendered with must be the one chat and merge will render with."""
    if saved == trained_with:
        return []
    return [Finding(
        "template_mismatch", "error",
        f"training rendered conversations with one chat template, but the tokenizer saved in "
        f"{where} (which ftkit chat and ftkit merge load) carries "
        f"{'no template' if not saved else 'another one'}: the tuned model is asked in a format "
        "it was not trained on, and its end-of-turn token may never come",
        "install the training template before saving: ftkit.data.use_template(tokenizer, "
        "config.template), then tokenizer.save_pretrained(output_dir); or chat with the "
        "same template")]


def check_config(cfg, tokenizer=None, max_examples: int | None = None) -> list[Finding]:
    """Before training: the data through ftkit's tokenization and collator, and the base model's
    generation config."""
    from transformers import GenerationConfig

    tokenizer = tokenizer or models.load_tokenizer(cfg.model_name_or_path, cfg.trust_remote_code)
    template = cfg.template  # a name; None: the tokenizer's own
    resolve_template(tokenizer, template)  # a base model without a template: say so first
    findings = check_template_end(tokenizer, template)
    if findings:
        return findings
    if cfg.train_file:
        rows = data.load(data_file(cfg.train_file), format=cfg.data_format, verbose=False)
        if max_examples:
            rows = rows.select(range(min(max_examples, len(rows))))
        examples = [data.tokenize_messages(r["messages"], tokenizer, template, cfg.max_seq_length,
                                           cfg.max_input_length, cfg.max_output_length)
                    for r in rows if "messages" in r]
        findings += check_labels(examples, tokenizer, template, collator=make_collator(tokenizer))
    try:
        generation = GenerationConfig.from_pretrained(models.resolve(cfg.model_name_or_path))
    except OSError:
        generation = None
    if generation is not None:
        findings += check_generation_config(generation, tokenizer, template)
    return findings + check_pad(tokenizer, template)


def check_run_dir(run_dir) -> list[Finding]:
    """After training: the saved template and generation config against the training config."""
    from transformers import AutoTokenizer, GenerationConfig

    run_dir = Path(run_dir)
    cfg = resolve_config(run_dir / CONFIG_FILE)
    base_tokenizer = models.load_tokenizer(cfg.model_name_or_path, cfg.trust_remote_code)
    trained_with = resolve_template(base_tokenizer, cfg.template)
    findings = check_config(cfg, base_tokenizer)
    if (run_dir / "tokenizer_config.json").exists():
        saved = AutoTokenizer.from_pretrained(str(run_dir))
        findings += check_saved_template(trained_with, getattr(saved, "chat_template", None), str(run_dir))
    if (run_dir / "generation_config.json").exists():  # a full or merged model saves its own
        generation = GenerationConfig.from_pretrained(str(run_dir))
        findings = [f for f in findings if f.code != "generation_eos_mismatch"]
        findings += check_generation_config(generation, base_tokenizer, cfg.template)
    return findings


def diagnose(path) -> list[Finding]:
    """Findings for a config file (before training) or a run's output folder (after)."""
    path = Path(path)
    if path.is_dir():
        if not (path / CONFIG_FILE).exists():
            raise FtkitError(f"{path} is a folder without {CONFIG_FILE}: not a run's output_dir "
                             "(ftkit train writes one); pass a training config file instead")
        return check_run_dir(path)
    if not path.exists():
        raise FtkitError(f"{path}: no such config file or run folder")
    return check_config(resolve_config(path))
