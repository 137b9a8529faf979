"""``ftkit merge --adapter DIR -o OUT``: fold a LoRA adapter into its base model and save it."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "merge", help="merge a LoRA adapter into its base model",
        description="Merge a LoRA adapter (W + (alpha/r)·B·A) into the base weights; the output "
                    "folder loads as a plain model, without peft.")
    parser.add_argument("--adapter", required=True, help="folder of a trained LoRA adapter")
    parser.add_argument("-o", "--output", required=True, help="folder to write the merged model to")
    parser.add_argument("--model", default=None, help="base model (default: the adapter's own)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                        help="dtype of the saved weights")
    parser.set_defaults(run=run)


def run(args) -> int:
    from ..infer import merge_adapter

    out = merge_adapter(args.adapter, args.output, base=args.model, dtype=args.dtype)
    print(f"merged model saved to {out}")
    return 0
