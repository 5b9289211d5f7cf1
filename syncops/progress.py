"""Transfer progress: a rich progress bar on a terminal, nothing otherwise.

The engine only calls :class:`Progress`; whether anything is drawn is the CLI's choice, so CI logs
and ``--json`` runs stay clean.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Protocol


class Progress(Protocol):
    def start(self, description: str, files: int, total_bytes: int) -> None: ...

    def advance(self, nbytes: int) -> None: ...

    def stop(self) -> None: ...


class NoProgress:
    def start(self, description: str, files: int, total_bytes: int) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        pass

    def stop(self) -> None:
        pass


class RichProgress:
    """A bar on stderr, shown only for transfers worth watching (many files or many bytes)."""

    MIN_FILES = 20
    MIN_BYTES = 16 * 1024 * 1024

    def __init__(self) -> None:
        self._bar: Any = None
        self._task: Any = None
        self._lock = threading.Lock()

    def start(self, description: str, files: int, total_bytes: int) -> None:
        if files < self.MIN_FILES and total_bytes < self.MIN_BYTES:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
        from rich.progress import Progress as Bar

        self._bar = Bar(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task(f"{description} {files} files", total=total_bytes)

    def advance(self, nbytes: int) -> None:
        if self._bar is not None:
            with self._lock:
                self._bar.advance(self._task, nbytes)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def for_stderr(enabled: bool = True) -> Progress:
    """A bar when stderr is a terminal, otherwise nothing."""
    if enabled and sys.stderr.isatty():
        return RichProgress()
    return NoProgress()
