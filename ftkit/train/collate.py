"""Batches without wasted compute: dynamic padding, or padding-free packing.

Taught in lesson 02 (choosing ``max_seq_length``; padding and packing).
``padding='max_length'`` pads every example to ``max_seq_length``; most of the matrix
multiplies then work on pad tokens. ftkit pads each batch only to its longest example
(``DataCollatorForSeq2Seq``), and with ``packing: true`` concatenates the batch into one row
with restarting ``position_ids`` (``DataCollatorWithFlattening``): no pad at all,
and the attention mask built from those positions keeps examples from seeing each other.
"""

from __future__ import annotations

from ..config import PROMPT_METHODS
from ..data import packing_collator, pad_to_longest

MODEL_INPUTS = ("input_ids", "attention_mask", "labels")


class ModelInputsCollator:
    """Keep only what the model takes (drop ``length``, ``task``, ``messages``...), then batch."""

    def __init__(self, inner, keys=MODEL_INPUTS):
        self.inner, self.keys = inner, keys

    def __call__(self, features):
        return self.inner([{k: f[k] for k in self.keys if k in f} for f in features])


def padding_collator(tokenizer, pad_to_multiple_of: int | None = None) -> ModelInputsCollator:
    """Pad to the longest example of the batch; pad labels with -100 so they cost no loss."""
    return ModelInputsCollator(pad_to_longest(tokenizer, pad_to_multiple_of))


def make_collator(tokenizer, packing: bool = False) -> ModelInputsCollator:
    """Padding per batch, or with ``packing`` one row per batch (``ftkit.data.packing_collator``:
    ``position_ids`` restarting at 0 for each example, no padding)."""
    if not packing:
        return padding_collator(tokenizer)
    # The attention mask must be absent: transformers then derives a block-diagonal mask
    # from the restarting position_ids (examples cannot attend to each other).
    return ModelInputsCollator(packing_collator(), keys=("input_ids", "labels"))


def packing_allowed(cfg, verbose: bool = True) -> bool:
    """``cfg.packing``, except for prompt methods (said when ``verbose``): their virtual tokens
    go in front of each row, and a packed row holds several examples."""
    if cfg.packing and cfg.method in PROMPT_METHODS:
        if verbose:
            print(f"ftkit: packing is off for method {cfg.method}: its virtual tokens go in front "
                  "of each row, and a packed row holds several examples. Padding per batch instead.")
        return False
    return cfg.packing


def real_tokens(batch) -> int:
    """Tokens that are not padding: the attention mask's ones, or every token when packed."""
    mask = batch.get("attention_mask")
    return int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())
