"""What validation finds: the data error and the per-file report (taught in lesson 02).

Every problem names its place: ``line`` for JSONL / CSV / text files, ``index`` (and the
``line`` it starts on) for a record of a JSON array, ``field`` when one field is at fault.
"""

from __future__ import annotations

from dataclasses import dataclass, field as dc_field

from ..errors import FtkitError

# How many problems an exception message lists before it points at `ftkit data validate`.
MAX_LISTED = 40


def place(path, problem: dict) -> str:
    """``file:line`` (or ``file record 3 (line 7)``), the way editors and compilers say it."""
    where = str(path)
    if "index" in problem:
        where += f" record {problem['index']}"
        if "line" in problem:
            where += f" (line {problem['line']})"
    elif "line" in problem:
        where += f":{problem['line']}"
    return where


def describe(path, problem: dict) -> str:
    field = f" field '{problem['field']}':" if problem.get("field") else ""
    return f"{place(path, problem)}:{field} {problem['message']}"


def describe_all(path, problems: list[dict], limit: int = MAX_LISTED) -> str:
    lines = [describe(path, p) for p in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"... and {len(problems) - limit} more; "
                     f"`ftkit data validate {path} --json` lists them all")
    return "\n".join(lines)


class DataError(FtkitError):
    """A data file that cannot be used as it is; ``errors`` lists every problem found."""

    def __init__(self, message: str, path=None, errors: list[dict] | None = None):
        self.path = path
        self.errors = list(errors or [])
        if self.errors:
            message = f"{message}\n{describe_all(path, self.errors)}"
        super().__init__(message)


@dataclass
class Report:
    """The result of :func:`ftkit.data.validate`: the format found and every bad record."""

    path: str
    format: str | None
    records: int  # good records
    errors: list[dict] = dc_field(default_factory=list)
    total: int = 0  # records read, good or bad

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict:
        return {"path": self.path, "format": self.format, "records": self.records,
                "total": self.total, "ok": self.ok, "errors": list(self.errors)}

    def __str__(self) -> str:
        head = (f"{self.path}: format {self.format or 'unknown'}, {self.records} good record(s)"
                f" of {self.total}")
        if self.ok:
            return head + ", no problems"
        return f"{head}, {len(self.errors)} problem(s):\n{describe_all(self.path, self.errors)}"
