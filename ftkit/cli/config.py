"""``ftkit config``: read a config in any dialect and show what ftkit resolved it to.

The table names the source of each value: the file (and the key as written there), the
source tool's default where the file is silent, ftkit's default, or ``--set``.
"""

from __future__ import annotations

import json

from ..dialects import DIALECTS, read_config


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "config", help="resolve a config (any dialect) and print it with the source of each value",
        description="Read a config file (ftkit YAML/JSON, LLaMA-Factory YAML, Firefly JSON, ChatGLM3 "
                    "YAML, Baichuan2 or any .sh training script, seed-003 parameter group), validate "
                    "it, and print each resolved value with where it came from.",
    )
    parser.add_argument("config", nargs="?", help="path of the config file")
    parser.add_argument("--dialect", choices=DIALECTS, default=None,
                        help="force a dialect instead of detecting it")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a value (repeatable), e.g. --set learning_rate=1e-4")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object: config, sources, kept keys, notes")
    parser.add_argument("--all", action="store_true", help="list ftkit's own defaults too")
    parser.add_argument("--keys", action="store_true",
                        help="list every key a config may hold (ftkit's and TrainingArguments')")
    parser.set_defaults(run=run)


def run(args) -> int:
    from ..config import FIELDS, known_keys
    from ..errors import ConfigError

    if args.keys:
        for key in known_keys():
            print(key if key in FIELDS else f"{key}  (TrainingArguments, passed on as written)")
        return 0
    if args.config is None:
        raise ConfigError("ftkit config needs a CONFIG file (or --keys)")
    reading = read_config(args.config, args.dialect, args.overrides)
    if args.json:
        print(json.dumps(reading.to_dict(), ensure_ascii=False, indent=2))
        return 0
    print(f"# {args.config}: read as {reading.tool} ({reading.dialect} dialect)")
    rows = reading.rows(everything=args.all)
    width = max((len(key) for key, _, _ in rows), default=10)
    value_width = min(max((len(_show(value)) for _, value, _ in rows), default=10), 48)
    for key, value, source in rows:
        print(f"{key:<{width}}  {_show(value):<{value_width}}  {source}")
    if not args.all:
        print("# other fields: ftkit's defaults (--all lists them)")
    if reading.kept:
        print("# kept, not used: " + ", ".join(f"{k}={_show(v)}" for k, v in reading.kept.items()))
    for note in reading.notes:
        print(f"# note: {note}")
    return 0


def _show(value) -> str:
    if isinstance(value, list) and value and hasattr(value[0], "name"):
        return ",".join(item.name for item in value)  # DatasetSpecs: their names
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 48 else text[:45] + "..."
