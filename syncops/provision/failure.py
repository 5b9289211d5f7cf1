"""How the post-deploy step reports a failed discovery, and how ``syncops up`` reads it back.

The step runs inside the Pulumi engine, so its failure reaches ``syncops up`` only as a line of the
engine's error output. One format, written and parsed here, keeps both ends in step: a reworded
message must not silently turn an access-denied exit 3 into a generic exit 4. Pulumi-free, so
``syncops up`` can import it without the SDK.
"""

from __future__ import annotations

import re

_FORMAT = "syncops {operation} of {url} failed (syncops exit code {exit_code}): {message}"
_PATTERN = re.compile(r"syncops (discovery|seed) of (\S+) failed \(syncops exit code (\d+)\): ([^\n]*)")


class PostDeployFailed(Exception):
    """Discovery (or the seed before it) failed; the message is syncops's own, tagged with the exit code
    the CLI would use."""

    def __init__(self, url: str, message: str, exit_code: int, operation: str = "discovery") -> None:
        # One line: the engine's output is read line by line, and the whole message must come back.
        message = " ".join(message.split("\n"))
        super().__init__(_FORMAT.format(operation=operation, url=url, exit_code=exit_code, message=message))
        self.url = url
        self.message = message
        self.exit_code = exit_code
        self.operation = operation

    @classmethod
    def find(cls, text: str) -> PostDeployFailed | None:
        """The failure reported somewhere in ``text`` (e.g. the engine's error output), or None."""
        found = _PATTERN.search(text)
        if found is None:
            return None
        return cls(found.group(2), found.group(4), int(found.group(3)), found.group(1))
