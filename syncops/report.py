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
    #: Keys changed locally that this command did not carry (hydrate, status).
    local_changes: list[str] | None = None
    #: Keys changed on both sides: ``{"key", "local", "remote"}`` (what changed on each side).
    conflicts: list[dict[str, str]] | None = None
    #: The plan, for status and ``--dry-run``: keys to download and keys to upload.
    to_fetch: list[str] | None = None
    to_upload: list[str] | None = None
    #: Whether this report is a plan only (nothing was transferred or written).
    dry_run: bool | None = None
    #: seed: the source datastore, how objects were copied (``server-side`` or ``streamed``), how many
    #: were copied, and (``--dry-run``) the keys that would be.
    source: str | None = None
    copy_mode: str | None = None
    copied: int | None = None
    to_copy: list[str] | None = None
    problems: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: What the CLI exits with after printing the report (5 verify problems, 7 conflicts, 4 failed keys).
    exit_code: int = 0

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` object of SPEC §4; counters that do not apply to the command are left out."""
        out: dict[str, Any] = {"url": self.url, "status": self.status, "entries": self.entries}
        for name in (
            "source",
            "copy_mode",
            "copied",
            "to_copy",
            "index_written",
            "pulled",
            "skipped",
            "stale",
            "pushed",
            "bytes",
            "dry_run",
            "to_fetch",
            "to_upload",
            "local_changes",
            "conflicts",
        ):
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
