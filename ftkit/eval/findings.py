"""A finding of a doctor: what is wrong, why it matters, what to change (lesson 13)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Finding:
    """``code`` is stable (tests and scripts match on it); the rest is for people."""

    code: str
    severity: str  # "error": the run or model is broken; "warning": probably wrong; "info"
    message: str  # what was seen, with the numbers
    advice: str  # what to change

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"[{self.severity}] {self.code}: {self.message}\n    what to try: {self.advice}"


def format_findings(findings: list[Finding], title: str = "") -> str:
    """Findings as text; says so plainly when there is none."""
    head = f"{title}\n" if title else ""
    if not findings:
        return head + "no problem found"
    return head + "\n".join(str(f) for f in findings)


def has_errors(findings: list[Finding]) -> bool:
    return any(f.severity in ("error", "warning") for f in findings)
