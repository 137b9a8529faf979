"""``ftkit eval --model M [--adapter DIR] --data FILE [--base] [--json]``: score held-out data."""

from __future__ import annotations

import json

from .. import data
from ..errors import FtkitError
from ..eval import Decoding, evaluate
from .chat import load_for_chat


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval", help="evaluate a model (and adapter) on held-out data",
        description="Answer loss and perplexity on assistant tokens, generation metrics "
                    "(exact match, token F1, ROUGE-L, BLEU-4), stop rate and repetition; reward "
                    "accuracy for preference data. With --base, the base model side by side.")
    parser.add_argument("--model", default=None, help="model name or folder (default: the "
                        "adapter's base, else smollm2-135m-instruct)")
    parser.add_argument("--adapter", default=None, help="folder of a trained PEFT adapter")
    parser.add_argument("--data", required=True, help="held-out data file, any supported format")
    parser.add_argument("--base", action="store_true",
                        help="also score the base model (the adapter switched off)")
    parser.add_argument("--forgetting", action="store_true",
                        help="also compare perplexity on general text and general questions")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--limit", type=int, default=None, help="score only the first N rows")
    parser.add_argument("--no-generate", action="store_true", help="losses only, no generation")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def run(args) -> int:
    if args.base and not args.adapter:
        raise FtkitError("--base compares the adapter's model with its base: pass --adapter DIR")
    rows = data.load(args.data, verbose=False)
    if args.limit:
        rows = rows.select(range(min(args.limit, len(rows))))
    model, tokenizer = load_for_chat(args.model, args.adapter)
    decoding = Decoding(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    report = evaluate(model, tokenizer, rows, compare_base=args.base, decoding=decoding,
                      generate=not args.no_generate, with_forgetting=args.forgetting)
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
        return 0
    for row in report.rows:
        if "prompt" in row:
            print(f"Q: {row['prompt']}\n  reference: {row['reference']}")
            for name in report.summary:
                flags = row[f"{name}_scores"]
                mark = "" if flags["stopped"] else "  [did not stop]"
                print(f"  {name:<9}: {row[name]}{mark}")
    print(report.table())
    if report.decoding:
        print("decoding: " + ", ".join(f"{k}={v}" for k, v in report.decoding.items()))
    if report.forgetting:
        print("forgetting: " + json.dumps({k: report.forgetting[k] for k in
                                          ("perplexity", "general_accuracy")}))
    return 0
