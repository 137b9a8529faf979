"""Continued pre-training (stage ``pt``): plain text, the loss on every token.

LLaMA-Factory's ``stage: pt`` (seed 004): before teaching a model to chat about a domain,
let it read the domain. The data are documents (``{"text": ...}`` per record, or a ``.txt``
file of lines); each becomes ``input_ids`` with ``labels`` equal to them, closed by EOS, so
the model learns to predict every next token. ``packing: true`` puts several documents in
one row without letting them attend to each other, as in SFT.

The stage is SFT's with other data: the same trainer, collators, method and recipe. The
summary adds ``eval_perplexity`` = exp(final eval loss) when there is evaluation data.
"""

from __future__ import annotations

import math

from ..errors import FtkitError
from . import collate
from .recipe import StageData, has_training_data, split_train_eval
from .sft import SupervisedStage, read, tokenize

TEXT_COLUMN = "text"


def read_text(cfg, path: str, verbose: bool = True, **load_arguments):
    """A source of plain-text documents; chat or preference data are refused with the reason."""
    dataset = read(cfg, path, verbose, **load_arguments)
    if TEXT_COLUMN not in dataset.column_names:
        raise FtkitError(
            f"{path}: stage pt trains on plain text (one {{\"text\": \"...\"}} per record, or a "
            f".txt file), but this file holds {', '.join(dataset.column_names)} data. Train chat "
            "or instruction data with stage: sft, preference pairs with stage: dpo.")
    return dataset.select_columns([TEXT_COLUMN])


def prepare_texts(cfg, tokenizer, verbose: bool = True):
    """``(train, eval or None)``: every token learned, EOS closing each document."""
    if not has_training_data(cfg):
        raise FtkitError("train_file is not set: stage pt needs plain text, "
                         "e.g. train_file: data/pretrain_text.jsonl")
    train, evaluation = split_train_eval(cfg, lambda path, **kw: read_text(cfg, path, verbose, **kw))
    return tuple(tokenize(cfg, tokenizer, part, verbose) if part is not None else None
                 for part in (train, evaluation))


class PretrainingStage(SupervisedStage):
    name = "pt"
    loss_title = "language-modelling loss"

    def data(self, cfg, tokenizer, verbose):
        train, evaluation = prepare_texts(cfg, tokenizer, verbose)
        return StageData(train, evaluation, packing=collate.packing_allowed(cfg, verbose))

    def extras(self, cfg, trainer, data, final_eval, before):
        if not final_eval:
            return {}
        return {"eval_perplexity": math.exp(final_eval["eval_loss"])}

    def report(self, summary):
        return f", eval perplexity {summary['eval_perplexity']:.2f}" if "eval_perplexity" in summary else ""


STAGE = PretrainingStage()
