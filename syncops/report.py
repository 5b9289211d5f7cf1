"""What a command did, in one object: rendered as ``--json`` or as lines for a person."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Report:
    url: str
    status: str
    entries: int
    index_written: bool | None = None
    pulled: int | None = None
    skipped: int | None = None
    stale: int | None = None
    pushed: int | None = None
    bytes: int | None = None
    problems: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` object of SPEC §4; counters that do not apply to the command are left out."""
        out: dict[str, Any] = {"url": self.url, "status": self.status, "entries": self.entries}
        for name in ("index_written", "pulled", "skipped", "stale", "pushed", "bytes"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        out["problems"] = list(self.problems)
        out["warnings"] = list(self.warnings)
        return out


def human_size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
