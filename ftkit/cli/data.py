"""``ftkit data validate|inspect|convert``: check, look at and convert data files (lesson 02).

``validate`` exits 0 for a clean file and 2 when any record is bad (``--json`` prints one
object: format, records, errors); ``inspect`` renders a few examples with the model's chat
template, its loss mask and token-length statistics; ``convert`` writes another format.
"""

from __future__ import annotations

import json
import sys


def _format_help() -> str:
    from ..data.formats import FORMATS

    return "auto (default) or one of: " + ", ".join(FORMATS) + "; with --dataset-dir, the " \
           "dataset_info.json entry decides"


def register(subparsers) -> None:
    parser = subparsers.add_parser("data", help="validate, inspect or convert a data file",
                                   description=__doc__.split("\n\n")[0])
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def common(sub):
        sub.add_argument("path", help="data file: .jsonl, .json, .csv, .parquet or .txt; with "
                         "--dataset-dir, a dataset name from its dataset_info.json")
        sub.add_argument("--format", default="auto", help=_format_help())
        sub.add_argument("--encoding", default="utf-8", help="text encoding, e.g. gbk (default utf-8)")
        sub.add_argument("--dataset-dir", default=None,
                         help="LLaMA-Factory dataset folder: read PATH as a name in its dataset_info.json")

    validate = actions.add_parser("validate", help="check every record; exit 2 if any is bad")
    common(validate)
    validate.add_argument("--json", action="store_true", help="print one JSON object")
    validate.set_defaults(run=run_validate)

    inspect = actions.add_parser("inspect", help="rendered examples, loss masks, token lengths")
    common(inspect)
    inspect.add_argument("--model", default=None, help="model whose tokenizer/template to use")
    inspect.add_argument("--template", default=None, help="named template for a base model")
    inspect.add_argument("-n", "--num-examples", type=int, default=2)
    inspect.add_argument("--max-seq-length", type=int, default=512)
    inspect.set_defaults(run=run_inspect)

    convert = actions.add_parser("convert", help="write the data in another format")
    common(convert)
    convert.add_argument("--to", required=True, help="target format (as --format)")
    convert.add_argument("-o", "--output", required=True,
                         help="output file; .jsonl, .json, .csv or .parquet picks the container")
    convert.set_defaults(run=run_convert)


def _source(args) -> dict:
    """``load``/``validate`` arguments: a file, or a dataset_info.json entry by name."""
    if args.dataset_dir is None:
        return {"path": args.path, "format": args.format, "encoding": args.encoding}
    from ..data.llamafactory import resolve

    return {**resolve(args.path, args.dataset_dir).load_arguments(), "encoding": args.encoding}


def run_validate(args) -> int:
    from ..data import validate

    report = validate(**_source(args))
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=1))
    else:
        print(report, file=sys.stdout if report.ok else sys.stderr)
    return 0 if report.ok else 2


def run_inspect(args) -> int:
    import os

    from .. import models
    from ..data import load
    from ..data.masks import legend, show_mask
    from ..data.stats import length_stats, suggest_max_seq_length, token_lengths
    from ..data.tokenize import tokenize_messages, tokenize_sft, tokenize_text

    dataset = load(**_source(args))
    if "messages" not in dataset.column_names and "text" not in dataset.column_names:
        for row in dataset.select(range(min(args.num_examples, len(dataset)))):
            if row.get("label") is False:
                print("--- label false: an undesirable answer (KTO learns to avoid it; SFT would imitate it)")
            print(json.dumps(row, ensure_ascii=False, indent=1))
        return 0
    tokenizer = models.load_tokenizer(args.model)
    tokenized = tokenize_sft(dataset, tokenizer, args.max_seq_length, args.template)
    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    for i, row in enumerate(dataset.select(range(min(args.num_examples, len(dataset))))):
        messages = row.get("messages")
        if messages is None:
            example, unweighted = tokenize_text(row["text"], tokenizer, args.max_seq_length), None
        else:
            limits = (tokenizer, args.template, args.max_seq_length)
            example = tokenize_messages(messages, *limits, tools=row.get("tools"))
            plain = [{k: v for k, v in m.items() if k != "weight"} for m in messages]
            unweighted = tokenize_messages(plain, *limits, tools=row.get("tools"))
            print(f"--- example {i}: rendered with the chat template (tool descriptions included)")
            print(tokenizer.decode(example["input_ids"]))
        print(f"--- example {i}: {legend(colour)}")
        print(show_mask(tokenizer, example, unweighted, colour))
        for turn, message in enumerate(messages or []):
            if message["role"] == "assistant" and message.get("weight") == 0:
                print(f"    turn {turn} (assistant, weight 0) is masked: kept as context, not learned")
    lengths = token_lengths(tokenized)
    print("--- token lengths:", json.dumps(length_stats(lengths)))
    print(f"suggested max_seq_length (99% of examples whole): {suggest_max_seq_length(lengths)}")
    return 0


def run_convert(args) -> int:
    from ..data import convert

    source = _source(args)
    out = convert(source.pop("path"), args.to, args.output, **source)
    print(f"wrote {out}")
    return 0
