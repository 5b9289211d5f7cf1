"""An index serialized to a temporary file while its listing streams in (``syncops discover``).

A discovery that only publishes the index (and reports how many entries it has) never needs the
entries again once they are written out: S3 and GCS list keys in sorted order, which is the order
the index is serialized in, so each listed object becomes its line of the index as it arrives and
memory stays flat whatever the bucket holds (at 100,000 objects the entries held in memory were
~45 MB, at a million ~450 MB). The bytes are those :func:`syncops.index.serialize` gives for the same
entries (one formatter, :func:`syncops.index.listed_entry_text`).

Two things a stream cannot know until its end are handled without holding the entries:

* a namespace marker (``a/.namespace.json``) may come after objects of its subtree (``a/-x`` sorts
  before it): the subtrees found are left out when the file is assembled, line by line;
* a listing that is not in order (or names a key twice) cannot be written as it comes: the entries
  written so far are read back into memory and the rest is kept there, as a listing always was.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from datetime import datetime
from typing import BinaryIO

from syncops import index as idx
from syncops.keys import in_namespace

#: Bytes of the temp file handed to a store per chunk when the body is read as a stream.
CHUNK = 256 * 1024
#: Reads the key at the start of a line (the namespace pruning of :meth:`IndexWriter.finish`).
_DECODER = json.JSONDecoder()


class IndexFile:
    """A serialized index on disk: re-iterable as chunks (a retried write reads it again), and
    openable as a seekable file of known size (what an SDK upload wants, without a copy)."""

    def __init__(self, file: BinaryIO, size: int) -> None:
        file.flush()  # open() reads through another handle, which sees only what reached the file
        self._file = file
        self.size = size

    def __iter__(self) -> Iterator[bytes]:
        self._file.seek(0)
        while True:
            chunk = self._file.read(CHUNK)
            if not chunk:
                return
            yield chunk

    def open(self) -> BinaryIO:
        """A new handle on the same bytes, at its start: closing it leaves this file readable."""
        handle = os.fdopen(os.dup(self._file.fileno()), "rb")
        handle.seek(0)
        return handle

    def read_all(self) -> bytes:
        return b"".join(self)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> IndexFile:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class IndexWriter:
    """Entries in, one line each, while they arrive in key order; :meth:`finish` assembles the index.

    ``entries`` is None while the stream is in order. From the first key that is not greater than
    the one before, it holds every entry (those read back from the file, then the rest), and
    :meth:`finish` serializes them as :func:`syncops.index.iter_serialized` does.
    """

    def __init__(self) -> None:
        self._lines: BinaryIO | None = tempfile.TemporaryFile()  # noqa: SIM115 (closed by finish/close)
        self._last: str | None = None
        self.count = 0
        self.entries: dict[str, idx.Entry] | None = None

    def add(self, key: str, size: int, modified: datetime) -> None:
        if self.entries is not None:
            self.entries[key] = idx.Entry(key=key, size=size, last_modified=idx.format_timestamp(modified))
            return
        if self._last is not None and key <= self._last:
            self.entries = self._read_back()
            self.add(key, size, modified)
            return
        assert self._lines is not None
        self._lines.write(idx.listed_entry_text(key, size, idx.format_timestamp(modified)).encode("utf-8") + b"\n")
        self._last = key
        self.count += 1

    def _read_back(self) -> dict[str, idx.Entry]:
        """The entries written so far, as objects (the listing turned out not to be in order)."""
        assert self._lines is not None
        self._lines.seek(0)
        entries = {}
        for line in self._lines:
            entry = json.loads(b"{" + line + b"}")
            ((key, raw),) = entry.items()
            entries[key] = idx.Entry(key=key, size=raw["size"], last_modified=raw["lastModified"])
        self._lines.close()
        self._lines = None
        return entries

    def finish(self, last_pulled: str, namespaces: set[str]) -> IndexFile:
        """The whole index, without the entries under ``namespaces``; :attr:`count` is then its size."""
        out = tempfile.TemporaryFile()  # noqa: SIM115 (owned by the IndexFile returned)
        try:
            if self.entries is not None:
                kept = {k: e for k, e in self.entries.items() if not in_namespace(k, namespaces)}
                index = idx.Index(entries=kept, last_pulled=last_pulled)
                for piece in idx.iter_serialized(index, with_local=False):
                    out.write(piece.encode("utf-8"))
                self.count = len(kept)
                return IndexFile(out, out.tell())
            assert self._lines is not None
            out.write(idx.header_text(last_pulled).encode("utf-8"))
            self._lines.seek(0)
            kept_count = 0
            for line in self._lines:
                if namespaces and in_namespace(_DECODER.raw_decode(line.decode("utf-8"))[0], namespaces):
                    continue
                out.write(b"\n    " if kept_count == 0 else b",\n    ")
                out.write(line[:-1])
                kept_count += 1
            out.write(idx.FOOTER.encode("utf-8") if kept_count else idx.EMPTY_FOOTER.encode("utf-8"))
            self.count = kept_count
            return IndexFile(out, out.tell())
        except BaseException:
            out.close()
            raise
        finally:
            self.close()

    def close(self) -> None:
        if self._lines is not None:
            self._lines.close()
            self._lines = None
