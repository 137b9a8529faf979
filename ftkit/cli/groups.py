"""``ftkit groups``: create, list, show, edit and delete parameter groups (lesson 11).

    ftkit groups create NAME [--namespace NS] [--from CONFIG] [--set k=v ...]
    ftkit groups list [--namespace NS] [--json]
    ftkit groups show NAME [--namespace NS] [--json]
    ftkit groups edit NAME [--namespace NS] --set k=v ...
    ftkit groups delete NAME [--namespace NS] --yes
"""

from __future__ import annotations

import json
import sys

# Shown by `list`: the settings that tell groups apart at a glance.
SUMMARY_KEYS = ("stage", "method", "learning_rate", "lora_rank", "lora_alpha",
                "lr_scheduler_type", "per_device_train_batch_size", "num_train_epochs")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "groups", help="named parameter groups kept in namespaces",
        description="Parameter groups: named, validated run configs stored under "
                    "$FTKIT_HOME/groups/<namespace>/<name>.yaml. Use one with "
                    "`ftkit train --group NAME`.")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def add(name, help_text, with_name=True):
        sub = actions.add_parser(name, help=help_text, description=help_text)
        if with_name:
            sub.add_argument("name", metavar="NAME", help="group name: letters, digits, . _ -")
        sub.add_argument("--namespace", "-n", default=None,
                         help="namespace (default: 'default'; for list: all namespaces)")
        return sub

    create = add("create", "create a group from the defaults or from a config of any dialect")
    create.add_argument("--from", dest="from_config", metavar="CONFIG", default=None,
                        help="start from this config file (ftkit, Firefly, ChatGLM3, Baichuan2, "
                             "seed-003 group or LLaMA-Factory dialect)")
    create.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one canonical key, e.g. --set learning_rate=1e-4 (repeatable)")
    create.set_defaults(run=run_create)

    listing = add("list", "list groups", with_name=False)
    listing.add_argument("--json", action="store_true", help="print one JSON list")
    listing.set_defaults(run=run_list)

    show = add("show", "print a group's config (YAML, or JSON with --json)")
    show.add_argument("--json", action="store_true", help="print one JSON object of canonical keys")
    show.set_defaults(run=run_show)

    edit = add("edit", "change keys of a group (validated, written atomically)")
    edit.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                      required=True, help="the key to change, e.g. --set lora_rank=16 (repeatable)")
    edit.set_defaults(run=run_edit)

    delete = add("delete", "delete a group (cannot be undone)")
    delete.add_argument("--yes", "-y", action="store_true", help="confirm without asking")
    delete.set_defaults(run=run_delete)


def _namespace(args) -> str:
    from ..groups import DEFAULT_NAMESPACE

    return DEFAULT_NAMESPACE if args.namespace is None else args.namespace


def run_create(args) -> int:
    from ..groups import create_group, group_path

    namespace = _namespace(args)
    create_group(args.name, namespace, from_config=args.from_config, overrides=args.overrides)
    print(f"created {namespace}/{args.name}: {group_path(args.name, namespace)}")
    return 0


def run_list(args) -> int:
    from ..groups import list_groups, load_group

    rows = []
    for info in list_groups(args.namespace):  # None: every namespace
        config = load_group(info.name, info.namespace).to_dict()
        rows.append({"namespace": info.namespace, "name": info.name, "path": str(info.path),
                     "modified": info.modified, **{k: config[k] for k in SUMMARY_KEYS}})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        where = f"namespace {args.namespace!r}" if args.namespace else "any namespace"
        print(f"no groups in {where}: create one with `ftkit groups create NAME`")
        return 0
    columns = ("namespace", "name") + SUMMARY_KEYS
    table = [[str(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in table)) for i, c in enumerate(columns)]
    for line in [list(columns)] + table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())
    return 0


def run_show(args) -> int:
    from ..groups import group_path, load_group

    namespace = _namespace(args)
    config = load_group(args.name, namespace)
    if args.json:
        path = str(group_path(args.name, namespace))
        group = {"name": args.name, "namespace": namespace, "path": path}
        print(json.dumps({"group": group, **config.to_dict()}, indent=2))
    else:
        print(group_path(args.name, namespace).read_text(encoding="utf-8"), end="")
    return 0


def run_edit(args) -> int:
    from ..config import parse_overrides
    from ..groups import edit_group

    namespace = _namespace(args)
    config = edit_group(args.name, args.overrides, namespace)
    changed = ", ".join(f"{key}={getattr(config, key)!r}" for key in parse_overrides(args.overrides))
    print(f"edited {namespace}/{args.name}: {changed}")
    return 0


def run_delete(args) -> int:
    from ..groups import GroupError, delete_group, group_path

    namespace = _namespace(args)
    confirmed = args.yes
    if not confirmed:
        if not group_path(args.name, namespace).is_file():
            delete_group(args.name, namespace)  # raises "no group ..."
        if not sys.stdin.isatty():
            raise GroupError(f"deleting {namespace}/{args.name} cannot be undone: "
                             f"add --yes to confirm")
        answer = input(f"delete group {namespace}/{args.name}? This cannot be undone [y/N] ")
        confirmed = answer.strip().lower() in ("y", "yes")
        if not confirmed:
            print("kept")
            return 1
    path = delete_group(args.name, namespace, confirm=True)
    print(f"deleted {namespace}/{args.name} ({path})")
    return 0
