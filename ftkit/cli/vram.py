"""``ftkit vram``: will it fit? The memory of a fine-tuning run, per component and at its peak (lesson 01)."""

from __future__ import annotations

import json

from ..units import gib


def register(subparsers) -> None:
    from ..vram import METHODS, OPTIMIZERS
    from ..vram.settings import ATTENTION_KERNELS, LOSS_KERNELS

    parser = subparsers.add_parser(
        "vram", help="estimate the GPU memory of a fine-tuning run",
        description="Estimate the GPU memory (per GPU) of training or running a model, component "
                    "by component and at the peak of a step. --model takes a bundled preset (e.g. "
                    "llama-2-7b), a config.json (any architecture), a model folder or a hub name.",
    )
    add = parser.add_argument
    add("--model", default="smollm2-135m", help="preset, config.json, folder or hub name")
    add("--method", default="lora", choices=METHODS)
    add("--bits", type=int, default=None, help="4 or 8: quantize the base (qlora, inference)")
    add("--batch-size", type=int, default=1)
    add("--seq-len", type=int, default=512)
    add("--gradient-checkpointing", action="store_true")
    add("--gradient-accumulation-steps", type=int, default=1)
    add("--optim", default="adamw_torch", choices=OPTIMIZERS)
    add("--lora-rank", type=int, default=8)
    add("--lora-targets", default="all-linear",
        help="comma-separated module names (q_proj,v_proj) or all-linear")
    add("--lora-dropout", type=float, default=0.05)
    add("--modules-to-save", default="", help="also train full copies, e.g. embed_tokens,lm_head")
    add("--num-virtual-tokens", type=int, default=20)
    add("--freeze-trainable-layers", type=int, default=2)
    add("--gpus", type=int, default=1)
    add("--zero", type=int, default=0, help="DeepSpeed ZeRO stage 0-3")
    add("--offload", action="store_true", help="ZeRO offload to CPU memory")
    add("--dtype", default="bfloat16", help="compute dtype: bfloat16, float16, float32")
    add("--pure-bf16", action="store_true", help="keep weights and states in 16 bits")
    add("--attn", default="sdpa", choices=ATTENTION_KERNELS)
    add("--loss", default="eager", choices=LOSS_KERNELS,
        help="eager (float32 logits), chunked (torchtune), fused_linear (Liger)")
    add("--compile", action="store_true", help="torch.compile (recomputes pointwise results)")
    add("--optimizer-in-backward", action="store_true", help="step each parameter during backward")
    add("--activation-offload", action="store_true", help="checkpointed inputs in CPU memory")
    add("--packing", action="store_true", help="examples packed into full rows")
    add("--no-quantize-experts", action="store_true",
        help="leave fused MoE expert weights 16-bit (stock transformers 5 loading)")
    add("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def table(estimate) -> str:
    """The readable report: components, their sum, the phases of a step, the peak, the cards."""
    s = estimate.settings
    gpus = s.get("gpus", 1)
    active = ""
    if estimate.params_active and estimate.params_active != estimate.params_total:
        active = f", {estimate.params_active:,} active per token"
    lines = [f"{s['method']} on {s['model_type']} ({estimate.params_total:,} params{active}, "
             f"{estimate.params_trainable:,} trainable), batch {s['batch_size']} x {s['seq_len']} tokens"
             + (f", {gpus} GPUs: every figure is per GPU" if gpus > 1 else ""), ""]
    for name, value in estimate.bytes.items():
        lines.append(f"  {name:<22}{gib(value)}")
    lines.append(f"  {'sum of components':<22}{gib(estimate.total_bytes)}   (an upper bound)")
    lines += ["", "phases of one step (live bytes):"]
    for name, value in estimate.phases.items():
        mark = "  <- peak" if name == estimate.peak_phase else ""
        lines.append(f"  {name:<22}{gib(value)}{mark}")
    lines.append(f"  {'peak':<22}{gib(estimate.peak_bytes)}   (max_memory_allocated)")
    lines.append(f"  {'+ allocator cache':<22}{gib(estimate.predict('reserved'))}   (max_memory_reserved)")
    lines.append(f"  {'+ CUDA context':<22}{gib(estimate.predict('device'))}   (nvidia-smi)")
    if estimate.paged_bytes:
        lines.append(f"  {'(paged states)':<22}{gib(estimate.paged_bytes)}   (unified memory, in the line above)")
    if gpus > 1:
        lines.append(f"  {'all GPUs together':<22}{gib(estimate.predict('device') * gpus)}")
    if estimate.cpu_bytes:
        lines.append(f"  {'(offloaded to CPU)':<22}{gib(estimate.cpu_bytes)}")
    fits = [f"{gb} GB" for gb in estimate.fitting_cards()]
    lines.append("")
    lines.append("fits on: " + (", ".join(fits) if fits else "none of the cards up to 141 GB: use more "
                                "GPUs, ZeRO, QLoRA or gradient checkpointing") + " (per GPU)")
    return "\n".join(lines)


def run(args) -> int:
    from ..vram import estimate

    result = estimate(
        args.model, args.method, batch_size=args.batch_size, seq_len=args.seq_len,
        gradient_checkpointing=args.gradient_checkpointing,
        gradient_accumulation_steps=args.gradient_accumulation_steps, optim=args.optim,
        lora_rank=args.lora_rank, lora_targets=args.lora_targets, lora_dropout=args.lora_dropout,
        modules_to_save=args.modules_to_save, bits=args.bits,
        num_virtual_tokens=args.num_virtual_tokens, dtype=args.dtype, pure_bf16=args.pure_bf16,
        attn=args.attn, loss=args.loss, compile=args.compile,
        optimizer_in_backward=args.optimizer_in_backward, activation_offload=args.activation_offload,
        packing=args.packing, quantize_experts=not args.no_quantize_experts, gpus=args.gpus,
        zero=args.zero, offload=args.offload, freeze_trainable_layers=args.freeze_trainable_layers,
    )
    print(json.dumps(result.to_dict()) if args.json else table(result))
    return 0
