"""``ftkit doctor CONFIG|RUN_DIR``: will the tuned model stop? Checks before and after training."""

from __future__ import annotations

import json

from ..eval.findings import format_findings, has_errors


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "doctor", help="check the stop token, padding, template and generation config",
        description="Before training (a config) or after (a run's output folder): the end-of-turn "
                    "token is learned in every example, pad = eos does not mask it, "
                    "generation_config stops on it, and the saved template is the trained one. "
                    "Exit status 1 when something is wrong.")
    parser.add_argument("path", metavar="CONFIG|RUN_DIR", help="a training config or a run's output_dir")
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    parser.set_defaults(run=run)


def run(args) -> int:
    from ..doctor import diagnose  # imports the trainer: seconds that `ftkit --help` need not pay

    findings = diagnose(args.path)
    if args.json:
        print(json.dumps([f.to_dict() for f in findings], ensure_ascii=False))
    else:
        print(format_findings(findings, f"ftkit doctor {args.path}"))
    return 1 if has_errors(findings) else 0
