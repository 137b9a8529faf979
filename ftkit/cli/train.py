"""``ftkit train CONFIG | --group NAME [--namespace NS] [--set key=value ...]``: one run.

CONFIG may be in any dialect ftkit reads (ftkit YAML/JSON, Firefly JSON, ChatGLM3 YAML,
Baichuan2 flags, a parameter group, LLaMA-Factory YAML). ``--group`` trains a stored parameter
group instead (see ``ftkit groups``). Bad values exit with status 2 and a message naming the
field.
"""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="fine-tune a model as a config file says",
        description="Fine-tune a model as CONFIG says; writes the adapter or model, the resolved "
                    "config, Trainer's state, a loss plot and run_summary.json to output_dir.")
    parser.add_argument("config", metavar="CONFIG", nargs="?", help="config file in any supported dialect")
    parser.add_argument("--group", default=None, metavar="NAME",
                        help="train a stored parameter group instead of a config file")
    parser.add_argument("--namespace", default=None, metavar="NS",
                        help="the group's namespace (default: default)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one field, e.g. --set max_steps=10 (repeatable)")
    parser.add_argument("--dialect", default=None,
                        help="the config's dialect when detection should not guess")
    parser.set_defaults(run=run)


def run(args) -> int:
    from ..config import load_config
    from ..errors import ConfigError
    from ..groups import DEFAULT_NAMESPACE, load_group
    from ..train import finetune

    if (args.config is None) == (args.group is None):
        raise ConfigError("ftkit train needs a CONFIG file or --group NAME (one of them, not both)")
    if args.group is None and args.namespace is not None:
        raise ConfigError("--namespace goes with --group NAME")
    if args.group is not None:
        cfg = load_group(args.group, args.namespace or DEFAULT_NAMESPACE, overrides=args.overrides)
    else:
        cfg = load_config(args.config, dialect=args.dialect, overrides=args.overrides)
    from ..train.distributed import is_main_process

    result = finetune(cfg)
    if is_main_process():  # under torchrun, one line, not one per process
        print(f"summary: {result.output_dir / 'run_summary.json'}")
    return 0
