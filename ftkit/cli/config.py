"""``ftkit config``: read a config in any dialect and print what ftkit resolved it to."""

from __future__ import annotations

import json


def register(subparsers) -> None:
    from ..dialects import DIALECTS

    parser = subparsers.add_parser(
        "config", help="resolve a config (any dialect) and print it",
        description="Read a config file (ftkit YAML/JSON, Firefly JSON, ChatGLM3 YAML, Baichuan2 "
                    "command line, seed-003 parameter group, LLaMA-Factory YAML), validate it, and "
                    "print the resolved canonical config.",
    )
    parser.add_argument("config", help="path of the config file")
    parser.add_argument("--dialect", choices=DIALECTS, default=None,
                        help="force a dialect instead of detecting it")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a value (repeatable), e.g. --set learning_rate=1e-4")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def run(args) -> int:
    from ..config import load_config

    config = load_config(args.config, args.dialect, args.overrides)
    if args.json:
        print(json.dumps(config.to_dict(), ensure_ascii=False, indent=2))
        return 0
    print(f"# {args.config}: read as the {config.dialect} dialect")
    print(config.to_yaml(), end="")
    if config.kept:
        print("# kept, not acted on by ftkit: " + ", ".join(sorted(config.kept)))
    return 0
