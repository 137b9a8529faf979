"""``ftkit chat``: one answer with --prompt, a small REPL without."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "chat", help="chat with a model (and optionally a trained adapter)",
        description="Chat with a model. Without --prompt, a REPL: type 'q' or Ctrl-D to leave.",
    )
    parser.add_argument("--model", default=None,
                        help="hub name, local folder or embedded short name (default: smollm2-135m-instruct; "
                             "with --adapter: the adapter's own base model)")
    parser.add_argument("--adapter", default=None, help="folder of a trained PEFT adapter (a run's output_dir)")
    parser.add_argument("--prompt", default=None, help="ask one question, print the answer, exit")
    parser.add_argument("--system", default=None, help="system message")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                        help="weights' dtype (default auto: bfloat16 on a GPU that has it, float16 on an "
                             "older one, float32 on a CPU)")
    parser.set_defaults(run=run)


def load_for_chat(model_name, adapter, dtype="auto"):
    from .. import models
    from ..infer import load_adapter

    if adapter is None:
        return models.load(model_name, dtype=dtype)
    return load_adapter(adapter, base=model_name, dtype=dtype)


def run(args) -> int:
    from ..infer import chat

    model, tokenizer = load_for_chat(args.model, args.adapter, args.dtype)
    if args.prompt is not None:
        print(chat(model, tokenizer, args.prompt, args.max_new_tokens, system=args.system))
        return 0
    history = []
    while True:
        try:
            text = input("you> ").strip()
        except EOFError:
            print()
            return 0
        if text in {"q", "quit", "exit"}:
            return 0
        if not text:
            continue
        history.append({"role": "user", "content": text})
        answer = chat(model, tokenizer, history, args.max_new_tokens, system=args.system)
        history.append({"role": "assistant", "content": answer})
        print(f"model> {answer}")
