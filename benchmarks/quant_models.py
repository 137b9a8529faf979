"""The model-level quantization table of lesson 10, as a script.

Run: ``python benchmarks/quant_models.py [--model M] [--variants fp32 nf4 ...] [--limit N]
[--json out.json] [--write]``. Loads the model once per variant (fp32, bf16, LLM.int8, NF4,
FP4, the 4-bit ones with and without double quantization) through ``ftkit.quant.footprint``
and reports: bytes (``get_memory_footprint()`` and ftkit's own count, which adds the block
scales), perplexity on ``data/heldout_text.jsonl``, greedy tokens/s and the answer to one
question. Speed depends on the machine and its load: compare the ratios within one run.
``--write`` replaces the ``## Quantization`` section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

from results import write_section  # benchmarks/results.py

SECTION = "## Quantization"
QUESTION = "What is the capital of France?"


def markdown(rows: list[dict], header: str) -> str:
    fp32 = next((row for row in rows if row["variant"] == "fp32"), rows[0])
    lines = [header, "",
             "| variant | footprint (MB) | counted incl. scales (MB) | vs fp32 | perplexity | ppl vs fp32 | tokens/s | answer |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for row in rows:
        lines.append(
            f"| {row['variant']} | {row['footprint'] / 1e6:.1f} | {row['bytes_counted'] / 1e6:.1f} "
            f"| {row['bytes_counted'] / fp32['bytes_counted']:.3f} | {row['perplexity']:.3f} "
            f"| {row['perplexity'] / fp32['perplexity'] - 1:+.1%} | {row['tokens_per_s']:.1f} "
            f"| {row['answer_1'].replace('|', '/')[:40]} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    from ftkit.quant import footprint

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model name or folder (default: the embedded model)")
    parser.add_argument("--variants", nargs="+", default=list(footprint.VARIANTS), choices=list(footprint.VARIANTS))
    parser.add_argument("--limit", type=int, default=None, help="use only the first N held-out texts")
    parser.add_argument("--new-tokens", type=int, default=16, help="tokens timed per variant")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--write", action="store_true", help=f"replace '{SECTION}' in RESULTS.md")
    args = parser.parse_args(argv)

    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    texts = footprint.load_texts(limit=args.limit)
    load_before = os.getloadavg()[0]
    rows = footprint.compare_variants(args.variants, texts, [QUESTION], model_name=args.model,
                                      new_tokens=args.new_tokens, answer_tokens=12)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = (f"`python benchmarks/quant_models.py` — {args.model or 'smollm2-135m-instruct'}, "
              f"{len(texts)} held-out texts, {platform.machine()} CPU x{os.cpu_count()}, "
              f"load average {load_before:.1f} at start, {stamp}. Perplexity is deterministic; "
              f"tokens/s is a timing on a shared machine (compare within the table). "
              f"The 'fp32' weights are themselves the dequantized Q4_1 GGUF the model ships as.")
    text = markdown(rows, header)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2, ensure_ascii=False), encoding="utf-8")
    if args.write:
        write_section(text, SECTION)
    return 0


if __name__ == "__main__":
    sys.exit(main())
