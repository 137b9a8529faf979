"""The ceiling: this machine's matrix-multiply throughput, and training FLOP/s as a fraction of it.

Run: ``python benchmarks/matmul_ceiling.py [--json]``. Times ``torch.matmul`` on the shapes one
training step of the default model multiplies (a batch of tokens times each linear layer of
SmolLM2-135M: q/o 576x576, k/v 576x192, gate/up 576x1536, down 1536x576, lm_head 576x49152)
in float32 and bfloat16, and reports GFLOP/s weighted by each shape's share of the FLOPs.

FLOPs of one trained token (N = parameters used in matmuls; with tied embeddings that is
the whole count, the lm_head being the embedding matrix; N_A = the LoRA adapter's parameters):

* full fine-tuning: ``6 N`` (forward 2N, gradient of activations 2N, of weights 2N);
* LoRA: ``4 N + 6 N_A`` (forward 2N; gradient of activations 2N through the frozen weights;
  the adapter's own forward 2N_A and its two gradients 4N_A; no weight gradient of the base),
  plus ``2 N`` when gradient checkpointing runs the forward twice.

Attention scores (``4 L T d`` per token forward for context T) are left out: under 2% at the
benchmark's lengths (T < 128). Used by ``benchmarks/throughput.py --ceiling``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

HIDDEN, FFN, KV, VOCAB, LAYERS = 576, 1536, 192, 49152, 30
# (rows of the weight, columns, how many per model)
LINEARS = [(HIDDEN, HIDDEN, 2 * LAYERS), (HIDDEN, KV, 2 * LAYERS), (HIDDEN, FFN, 2 * LAYERS),
           (FFN, HIDDEN, LAYERS), (HIDDEN, VOCAB, 1)]


def matmul_gflops(dtype, tokens: int = 512, repeats: int = 21) -> dict:
    """GFLOP/s of ``(tokens x k) @ (k x n)`` for every linear shape, weighted by FLOPs.

    ``gflops`` uses each shape's median time (what a long run sees on a shared machine),
    ``peak_gflops`` its best time (the machine when nobody else computes).
    """
    shapes = {}
    total_flops = median_seconds = best_seconds = 0.0
    for k, n, count in LINEARS:
        a = torch.randn(tokens, k, dtype=dtype)
        b = torch.randn(k, n, dtype=dtype)
        torch.matmul(a, b)  # warm-up: first call picks the kernel
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            torch.matmul(a, b)
            times.append(time.perf_counter() - start)
        median, best = statistics.median(times), min(times)
        flops = 2.0 * tokens * k * n
        shapes[f"{tokens}x{k}x{n}"] = round(flops / median / 1e9, 1)
        total_flops += flops * count
        median_seconds += median * count
        best_seconds += best * count
    return {"gflops": round(total_flops / median_seconds / 1e9, 1),
            "peak_gflops": round(total_flops / best_seconds / 1e9, 1), "by_shape": shapes}


def ceiling(tokens: int = 512, repeats: int = 21) -> dict:
    """Model-shaped matmul GFLOP/s in float32 and bfloat16 on this CPU (torch's threads)."""
    fp32 = matmul_gflops(torch.float32, tokens, repeats)
    bf16 = matmul_gflops(torch.bfloat16, tokens, repeats)
    return {"fp32_gflops": fp32["gflops"], "bf16_gflops": bf16["gflops"],
            "fp32_peak_gflops": fp32["peak_gflops"], "bf16_peak_gflops": bf16["peak_gflops"],
            "fp32_by_shape": fp32["by_shape"], "bf16_by_shape": bf16["by_shape"],
            "threads": torch.get_num_threads(), "tokens_per_matmul": tokens}


def lora_flops_per_token(params: int, adapter_params: int, checkpointing: bool = False) -> float:
    """``4 N + 6 N_A`` (+ ``2 N`` with gradient checkpointing): see the module docstring."""
    return 4.0 * params + 6.0 * adapter_params + (2.0 * params if checkpointing else 0.0)


def full_flops_per_token(params: int, checkpointing: bool = False) -> float:
    return 6.0 * params + (2.0 * params if checkpointing else 0.0)


def training_flops_fraction(result: dict, ceiling_result: dict, params: int = 134_515_008) -> dict:
    """Each pipeline's useful training FLOP/s (real tokens only) over the matching ceiling.

    Padding is work done but not useful, so the naive pipeline's fraction is low by design;
    recomputed forwards (checkpointing) are counted as work done, since they are the price of
    that choice.
    """
    fractions = {}
    for name, run in result["pipelines"].items():
        per_token = lora_flops_per_token(params, run["trainable_params"], run.get("checkpointing", False))
        achieved = run["tokens_per_second"] * per_token / 1e9
        peak = ceiling_result["bf16_gflops" if run.get("bf16") else "fp32_gflops"]
        fractions[name] = {"gflops": round(achieved, 2), "of_ceiling": round(achieved / peak, 4),
                           "ceiling": "bf16" if run.get("bf16") else "fp32"}
    return fractions


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--tokens", type=int, default=512, help="rows of each matmul (batch x length)")
    args = parser.parse_args(argv)
    result = ceiling(args.tokens)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"matmul, model shapes, {args.tokens} tokens, {result['threads']} threads: "
              f"fp32 {result['fp32_gflops']} GFLOP/s (peak {result['fp32_peak_gflops']}), "
              f"bf16 {result['bf16_gflops']} GFLOP/s (peak {result['bf16_peak_gflops']}) [medians]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
