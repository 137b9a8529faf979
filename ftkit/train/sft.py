"""Supervised fine-tuning (stage ``sft``): chat examples, the loss on the assistant's tokens.

Taught in lessons 03-07. Data come from :mod:`ftkit.data` (any chat/instruction format,
tokenized with assistant-only labels by :func:`ftkit.data.tokenize_sft`, which reports what
it truncated and dropped); batches are padded per batch or packed (:mod:`.collate`); the
trainer is :class:`~ftkit.train.recipe.FtkitTrainer`. Everything else is the recipe's.
"""

from __future__ import annotations

from .. import data
from ..errors import ConfigError
from . import collate
from .recipe import FtkitTrainer, Stage, StageData, has_training_data, split_train_eval

LENGTH_COLUMN = "length"  # read by group_by_length without decoding the examples


def read(cfg, path: str, verbose: bool = True, **load_arguments):
    """One data source of the config, in the canonical shape (``messages`` or ``text``)."""
    return data.load(path, **{"format": cfg.data_format, **load_arguments},
                     encoding=cfg.encoding, verbose=verbose)


def tokenize(cfg, tokenizer, dataset, verbose: bool = True):
    """Token ids and assistant-only labels (every token for ``text`` rows), with a length column."""
    tokenized = data.tokenize_sft(dataset, tokenizer, cfg.max_seq_length, template=cfg.template,
                                  max_input_length=cfg.max_input_length,
                                  max_output_length=cfg.max_output_length, verbose=verbose)
    if LENGTH_COLUMN not in tokenized.column_names:
        tokenized = tokenized.add_column(LENGTH_COLUMN, [len(ids) for ids in tokenized["input_ids"]])
    return tokenized


def prepare_datasets(cfg, tokenizer, verbose: bool = True):
    """``(train, eval or None)`` of a config, tokenized with assistant-only labels."""
    if not has_training_data(cfg):
        raise ConfigError("train_file is not set: name a data file, e.g. data/identity.jsonl")
    train, evaluation = split_train_eval(cfg, lambda path, **kw: read(cfg, path, verbose, **kw))
    return tuple(tokenize(cfg, tokenizer, part, verbose) if part is not None else None
                 for part in (train, evaluation))


class SupervisedStage(Stage):
    name = "sft"

    def arguments(self, cfg, args: dict):
        if collate.packing_allowed(cfg, verbose=False):
            args["train_sampling_strategy"] = "random"  # one packed row per batch: lengths irrelevant
        return super().arguments(cfg, args)

    def data(self, cfg, tokenizer, verbose):
        train, evaluation = prepare_datasets(cfg, tokenizer, verbose)
        return StageData(train, evaluation, packing=collate.packing_allowed(cfg, verbose))

    def trainer(self, cfg, model, args, stage_data, tokenizer, callbacks, **kwargs):
        if stage_data.packing:  # with a KV cache, SDPA would let packed examples attend to each other
            data.prepare_model_for_packing(model)
        return FtkitTrainer(
            model=model, args=args, train_dataset=stage_data.train, eval_dataset=stage_data.eval,
            data_collator=collate.make_collator(tokenizer, stage_data.packing),
            processing_class=tokenizer, callbacks=callbacks, **kwargs)


STAGE = SupervisedStage()
