"""benchmarks/RESULTS.md: each benchmark script rewrites its own ``## Section`` and no other."""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def write_section(text: str, section: str, results: Path = RESULTS) -> None:
    """Replace (or append) ``section`` of RESULTS.md with ``text``, leaving the others as they are."""
    old = results.read_text(encoding="utf-8") if results.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(section)}\n.*?(?=^## |\Z)", re.S | re.M)
    block = f"{section}\n\n{text.strip()}\n\n"
    new = pattern.sub(lambda _: block, old) if pattern.search(old) else old.rstrip() + "\n\n" + block
    results.write_text(new, encoding="utf-8")
