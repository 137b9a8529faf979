"""How long the course takes: every lesson under ``pytest --nbval-lax``, one at a time.

Run: ``python benchmarks/course_runtime.py [NOTEBOOK ...] [--json out.json] [--write]``.
Each notebook runs in its own pytest process (as ``make test`` runs it), timed by the wall
clock, so a lesson's figure includes its kernel start and model loads. The targets: the whole
suite within 15 minutes on a 2-core CPU, each training lesson within 3. ``--write`` replaces
the ``## Course runtime`` section of ``benchmarks/RESULTS.md`` with the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from results import write_section  # benchmarks/results.py

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Course runtime"


def run_notebook(path: Path, timeout: int = 1800) -> dict:
    """One ``pytest --nbval-lax`` run of ``path``: seconds, pass/fail and the load average."""
    load = os.getloadavg()[0]
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-q", "-p", "no:cacheprovider",
                               str(path)], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        passed, tail = proc.returncode == 0, proc.stdout.strip().splitlines()[-1:]
    except subprocess.TimeoutExpired:
        passed, tail = False, [f"timed out after {timeout} s"]
    return {"notebook": str(path.relative_to(ROOT)) if path.is_absolute() else str(path),
            "seconds": round(time.perf_counter() - start, 1), "passed": passed,
            "pytest": tail[0] if tail else "", "load_average": round(load, 2)}


def markdown_table(rows: list[dict]) -> str:
    lines = ["| lesson | minutes | nbval |", "|---|---:|---|"]
    for row in rows:
        lines.append(f"| {row['notebook']} | {row['seconds'] / 60:.1f} | "
                     f"{'pass' if row['passed'] else 'FAIL'} |")
    total = sum(row["seconds"] for row in rows) / 60
    lines.append(f"| **all {len(rows)}** | **{total:.1f}** | |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", help="default: notebooks/*.ipynb")
    parser.add_argument("--json", metavar="PATH", help="write the rows as JSON here")
    parser.add_argument("--write", action="store_true", help=f"replace '{SECTION}' in RESULTS.md")
    args = parser.parse_args(argv)
    paths = [Path(p) for p in args.notebooks] or sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
    rows = []
    for path in paths:
        rows.append(run_notebook(path))
        print(f"{rows[-1]['notebook']}: {rows[-1]['seconds']:.0f} s, "
              f"{'pass' if rows[-1]['passed'] else 'FAIL'} (load {rows[-1]['load_average']})", flush=True)
    table = markdown_table(rows)
    print(table)
    stamp = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
             "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
             "command": "python benchmarks/course_runtime.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    if args.json:
        Path(args.json).write_text(json.dumps({**stamp, "rows": rows}, indent=1) + "\n", encoding="utf-8")
    if args.write:
        note = (f"`{stamp['command']}` on {stamp['machine']}, {stamp['date']}; load average at "
                f"each start: {', '.join(str(r['load_average']) for r in rows)}.")
        write_section(note + "\n\n" + table, SECTION)
    return 0 if all(row["passed"] for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
