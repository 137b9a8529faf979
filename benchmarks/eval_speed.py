"""Evaluation speed: 50 held-out examples with generation on the default model (issue 14).

Run: ``python benchmarks/eval_speed.py [--examples 50] [--batch-size 16] [--write]``.
Times ``ftkit.eval.evaluate`` end to end (answer loss on the assistant tokens, then
generated answers, greedy, ``max_new_tokens`` 64, batched with left padding and the KV
cache on, then the four metrics) on the first examples of ``data/prompt_completion.jsonl``.
For comparison it times the same answers one prompt at a time (``batch_size=1``, what a
loop over ``ftkit.infer.chat`` does) on a few examples and scales that up. Model loading
is outside the clock. The machine is shared: the load average before and after is
recorded next to the figures, and only the ratio means much on a busy machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ftkit import data, models  # noqa: E402
from ftkit.eval import Decoding, evaluate  # noqa: E402
from ftkit.paths import DATA_DIR  # noqa: E402

HELD_OUT = DATA_DIR / "prompt_completion.jsonl"
SECTION = "## Evaluation speed"


def timed(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--single", type=int, default=5, help="examples timed one at a time")
    parser.add_argument("--write", action="store_true", help="write benchmarks/RESULTS.md")
    args = parser.parse_args(argv)

    import torch

    model, tokenizer = models.load()
    rows = list(data.load(HELD_OUT, verbose=False).select(range(args.examples)))
    load_before = os.getloadavg()[0]
    decoding = Decoding(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    report, seconds = timed(lambda: evaluate(model, tokenizer, rows, decoding=decoding))
    single = Decoding(max_new_tokens=args.max_new_tokens, batch_size=1)
    _, single_seconds = timed(lambda: evaluate(model, tokenizer, rows[:args.single], decoding=single))
    load_after = os.getloadavg()[0]
    summary = report.summary["tuned"]
    per_example_single = single_seconds / args.single
    lines = [
        f"{args.examples} held-out examples of `data/prompt_completion.jsonl`, default model "
        f"(SmolLM2-135M-Instruct, fp32), `ftkit.eval.evaluate`: answer loss, then greedy answers "
        f"(max_new_tokens {args.max_new_tokens}, left padding, KV cache on), then exact match, "
        "token F1, ROUGE-L and BLEU-4. Model loading not timed.",
        "",
        "| way | examples | seconds | seconds per example |",
        "|---|---|---|---|",
        f"| batched, batch {args.batch_size} | {args.examples} | {seconds:.1f} | {seconds / args.examples:.2f} |",
        f"| one at a time (batch 1) | {args.single} | {single_seconds:.1f} | {per_example_single:.2f} |",
        "",
        f"Batched is {per_example_single / (seconds / args.examples):.1f}x faster per example. "
        f"Generated {summary['mean_answer_tokens']:.1f} tokens per answer on average "
        f"(stop rate {summary['stop_rate']:.2f}); ROUGE-L {summary['rouge_l']:.1f}, "
        f"BLEU-4 {summary['bleu_4']:.3f}, answer loss {summary['answer_loss']:.3f}.",
        "",
        f"Machine: {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
        f"{platform.processor() or platform.machine()}; load average {load_before:.1f} before, "
        f"{load_after:.1f} after (the machine is shared: a load above the CPU count means "
        f"other jobs ran at the same time). Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        from results import write_section

        write_section(text, SECTION)
    return 0


if __name__ == "__main__":
    sys.exit(main())
