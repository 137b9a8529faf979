"""Data for fine-tuning: formats, validation, conversion, templates, tokenization with
assistant-only labels, packing and length statistics. Taught in lesson 02
(``notebooks/02_data_formats.ipynb``).

>>> from ftkit import data
>>> ds = data.load("data/identity.jsonl")            # canonical: {"messages": [...]}
>>> dpo = data.load("dpo_en_demo.json", format="sharegpt", ranking=True,   # a dataset_info entry
...                 columns={"messages": "conversations", "chosen": "chosen", "rejected": "rejected"})
>>> report = data.validate("data/identity.jsonl")    # every bad record, with its place
>>> train = data.tokenize_sft(ds, tokenizer, max_seq_length=256)   # input_ids, labels, ...
"""

from .convert import convert, convert_records, from_canonical, to_canonical, write_records
from .formats import FORMATS, Format, canonical_name, detect_record, spec_format
from .llamafactory import resolve as resolve_dataset_info
from .loading import load, load_dataset_info
from .packing import pack, packing_collator, pad_to_longest, prepare_model_for_packing
from .report import DataError, Report
from .stats import length_stats, suggest_max_seq_length, token_lengths
from .templates import TEMPLATES, render, use_template
from .tokenize import IGNORE_INDEX, answer_spans, tokenize_messages, tokenize_sft
from .validate import check_record, validate

__all__ = [
    "FORMATS", "Format", "DataError", "Report", "load", "load_dataset_info",
    "resolve_dataset_info", "spec_format", "validate", "check_record",
    "canonical_name", "detect_record", "convert", "convert_records", "to_canonical",
    "from_canonical", "write_records", "TEMPLATES", "render", "use_template", "IGNORE_INDEX",
    "answer_spans", "tokenize_messages", "tokenize_sft", "pack", "packing_collator", "pad_to_longest",
    "prepare_model_for_packing", "length_stats", "suggest_max_seq_length", "token_lengths",
]
