"""``ftkit vram``: will it fit? The memory of a fine-tuning run, per component (lesson 01)."""

from __future__ import annotations

import json

CARDS_GB = (8, 12, 16, 24, 40, 48, 80)


def register(subparsers) -> None:
    from ..vram.estimate import METHODS, OPTIMIZERS

    parser = subparsers.add_parser(
        "vram", help="estimate the GPU memory of a fine-tuning run",
        description="Estimate the GPU memory (per GPU) of training or running a model, component "
                    "by component. --model takes a bundled preset (e.g. llama-2-7b), a config.json, "
                    "a model folder or a hub name.",
    )
    parser.add_argument("--model", default="smollm2-135m", help="preset, config.json, folder or hub name")
    parser.add_argument("--method", default="lora", choices=METHODS)
    parser.add_argument("--bits", type=int, default=None, help="4 or 8: quantize the base (qlora, inference)")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--optim", default="adamw_torch", choices=OPTIMIZERS)
    parser.add_argument("--lora-rank", type=int, default=8)
    parser.add_argument("--lora-targets", default="all-linear",
                        help="comma-separated module names (q_proj,v_proj) or all-linear")
    parser.add_argument("--num-virtual-tokens", type=int, default=20)
    parser.add_argument("--freeze-trainable-layers", type=int, default=2)
    parser.add_argument("--gpus", type=int, default=1)
    parser.add_argument("--zero", type=int, default=0, help="DeepSpeed ZeRO stage 0-3")
    parser.add_argument("--offload", action="store_true", help="ZeRO offload to CPU memory")
    parser.add_argument("--dtype", default="bfloat16", help="compute dtype: bfloat16, float16, float32")
    parser.add_argument("--pure-bf16", action="store_true", help="keep weights and states in 16 bits")
    parser.add_argument("--attn", default="sdpa", choices=("sdpa", "eager", "flash_attention_2"))
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def _gib(n: int) -> str:
    return f"{n / 1024**3:8.2f} GiB"


def table(estimate) -> str:
    """The readable report: components in GiB, the total and which cards it fits on."""
    s = estimate.settings
    lines = [f"{s['method']} on {s['model_type']} ({estimate.params_total:,} params, "
             f"{estimate.params_trainable:,} trainable), batch {s['batch_size']} x {s['seq_len']} tokens",
             ""]
    for name, value in estimate.bytes.items():
        lines.append(f"  {name:<18}{_gib(value)}")
    lines.append(f"  {'total':<18}{_gib(estimate.total_bytes)}")
    if estimate.cpu_bytes:
        lines.append(f"  {'(offloaded to CPU)':<18}{_gib(estimate.cpu_bytes)}")
    fits = [f"{gb} GB" for gb in CARDS_GB if estimate.fits(gb)]
    lines.append("")
    lines.append("fits on: " + (", ".join(fits) if fits else "none of 8-80 GB: use more GPUs, ZeRO, "
                                "QLoRA or gradient checkpointing") + " (per GPU)")
    return "\n".join(lines)


def run(args) -> int:
    from ..vram import estimate

    result = estimate(
        args.model, args.method, batch_size=args.batch_size, seq_len=args.seq_len,
        gradient_checkpointing=args.gradient_checkpointing, optim=args.optim,
        lora_rank=args.lora_rank, lora_targets=args.lora_targets, bits=args.bits,
        num_virtual_tokens=args.num_virtual_tokens, dtype=args.dtype, pure_bf16=args.pure_bf16,
        attn=args.attn, gpus=args.gpus, zero=args.zero, offload=args.offload,
        freeze_trainable_layers=args.freeze_trainable_layers,
    )
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(table(result))
    return 0
