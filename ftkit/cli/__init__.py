"""The ``ftkit`` command: one subcommand per module in this package.

Each subcommand module has ``register(subparsers)``, which adds its parser and sets
``run`` (a function of the parsed arguments returning an exit status). Errors in input
are :class:`ftkit.errors.FtkitError`: printed as one message, exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import FtkitError
from . import chat, config, data, doctor, eval, groups, merge, train, vram

# In the order `ftkit --help` lists them.
SUBCOMMANDS = [config, vram, data, train, chat, merge, groups, eval, doctor]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ftkit",
        description="Fine-tuning kit: configs, memory estimates, data, training and chat.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in SUBCOMMANDS:
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args) or 0
    except FtkitError as error:
        print(f"ftkit {args.command}: error: {error}", file=sys.stderr)
        return error.exit_code
    except BrokenPipeError:  # `ftkit ... | head` closed the pipe: not an error
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
