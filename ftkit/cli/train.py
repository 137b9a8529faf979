"""``ftkit train CONFIG | --group NAME [--namespace NS] [--set key=value ...] [--rehearse [--steps N]]``.

CONFIG may be in any dialect ftkit reads (ftkit YAML/JSON, LLaMA-Factory YAML, Firefly JSON,
ChatGLM3 YAML, Baichuan2 or other ``.sh`` training scripts, a parameter group). ``--group``
trains a stored parameter group instead (see ``ftkit groups``). ``--rehearse`` runs the
config for a few steps on the embedded default model and a sample of its data, then prints
what the real run needs on a GPU. Bad values exit with status 2 and a message naming the field.
"""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="fine-tune a model as a config file says (or rehearse it on the CPU)",
        description="Fine-tune a model as CONFIG says; writes the adapter or model, the resolved "
                    "config, Trainer's state, a loss plot and run_summary.json to output_dir. "
                    "With --rehearse: a few steps on the default model and a sample of the "
                    "config's data, then the GPU memory the real run needs.")
    parser.add_argument("config", metavar="CONFIG", nargs="?", help="config file in any supported dialect")
    parser.add_argument("--group", default=None, metavar="NAME",
                        help="train a stored parameter group instead of a config file")
    parser.add_argument("--namespace", default=None, metavar="NS",
                        help="the group's namespace (default: default)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one field, e.g. --set max_steps=10 (repeatable)")
    parser.add_argument("--dialect", default=None,
                        help="the config's dialect when detection should not guess")
    parser.add_argument("--rehearse", action="store_true",
                        help="run the config small on the CPU with the default model, then estimate the GPU run")
    parser.add_argument("--steps", type=int, default=2, metavar="N",
                        help="steps of a rehearsal (default 2)")
    parser.add_argument("--model", default=None, metavar="M",
                        help="the small model a rehearsal runs on (default: the embedded default model)")
    parser.set_defaults(run=run)


def run(args) -> int:
    from .. import precision
    from ..dialects import read_config
    from ..errors import ConfigError
    from ..groups import DEFAULT_NAMESPACE, load_group

    if (args.config is None) == (args.group is None):
        raise ConfigError("ftkit train needs a CONFIG file or --group NAME (one of them, not both)")
    if args.group is None and args.namespace is not None:
        raise ConfigError("--namespace goes with --group NAME")
    if args.rehearse:
        if args.config is None:
            raise ConfigError("--rehearse goes with a CONFIG file")
        from ..rehearse import rehearse

        rehearse(args.config, overrides=args.overrides, steps=args.steps,
                 **({"model": args.model} if args.model else {}))
        return 0
    if args.model is not None or args.steps != 2:
        raise ConfigError("--model and --steps go with --rehearse; to train another model, "
                          "--set model_name_or_path=M")
    if args.group is not None:
        cfg = load_group(args.group, args.namespace or DEFAULT_NAMESPACE, overrides=args.overrides)
    else:
        reading = read_config(args.config, dialect=args.dialect, overrides=args.overrides)
        # Neither bf16 nor fp16 said: the precision this machine's GPU has (none on a CPU).
        cfg = precision.for_training(reading.config, reading.sources)
        if cfg.dataset_names and not cfg.datasets:
            raise ConfigError(f"{args.config}: dataset names {', '.join(cfg.dataset_names)} are not "
                              "resolved: set dataset_dir to the folder holding dataset_info.json")
    from ..train import finetune
    from ..train.distributed import is_main_process

    result = finetune(cfg)
    if is_main_process():  # under torchrun, one line, not one per process
        print(f"summary: {result.output_dir / 'run_summary.json'}")
    return 0
