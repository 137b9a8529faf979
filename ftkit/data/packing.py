"""Packing: several examples in one row, without attending to each other (lesson 02).

Padding a batch to its longest example wastes compute on pad tokens. Packing instead
concatenates examples into one long row and restarts ``position_ids`` at 0 for each
example; transformers' attention reads those restarts as example boundaries (flash
attention's varlen kernels, and a block-diagonal mask for SDPA/eager), so no example sees
another. transformers' ``DataCollatorWithFlattening`` does exactly this; ftkit uses it.

A trap, measured in the lesson: with SDPA/eager attention transformers 5 builds that
block-diagonal mask only when the forward pass has no KV cache. A model whose config says
``use_cache=True`` (most chat models) creates one even in training, and then the packed
examples *do* attend to each other. :func:`prepare_model_for_packing` switches it off.
"""

from __future__ import annotations

from .tokenize import IGNORE_INDEX


def pad_to_longest(tokenizer, pad_to_multiple_of: int | None = None):
    """The alternative to packing: pad each batch to its longest example; padded labels are
    -100 and cost no loss (training, and evaluation of the answer loss, batch alike)."""
    from transformers import DataCollatorForSeq2Seq

    return DataCollatorForSeq2Seq(tokenizer, padding="longest", label_pad_token_id=IGNORE_INDEX,
                                  pad_to_multiple_of=pad_to_multiple_of, return_tensors="pt")


def packing_collator():
    """The collator that packs a batch into one row with per-example position ids. The
    first label of every example becomes -100: no example learns to predict its first
    token from the end of the one before."""
    from transformers import DataCollatorWithFlattening

    return DataCollatorWithFlattening(return_position_ids=True, separator_id=IGNORE_INDEX)


def prepare_model_for_packing(model):
    """Turn off the KV cache (training does not need it) so packed examples stay apart."""
    model.config.use_cache = False
    return model


def pack(examples: list[dict]) -> dict:
    """A batch of tokenized examples (``input_ids``, ``labels``) packed into one row:
    ``input_ids``, ``labels``, ``position_ids`` tensors of shape (1, total tokens)."""
    features = [{"input_ids": e["input_ids"], "labels": e["labels"]} for e in examples]
    return packing_collator()(features)


def padding_waste(lengths: list[int], batch_size: int) -> float:
    """The fraction of a padded batch that is padding (batches in the given order)."""
    padded = real = 0
    for i in range(0, len(lengths), batch_size):
        batch = lengths[i:i + batch_size]
        padded += max(batch) * len(batch)
        real += sum(batch)
    return 1 - real / padded if padded else 0.0
