"""The storage contract every backend implements, and the datastore URL.

discover / hydrate / push / verify speak only this contract and the error types of
:mod:`syncops.errors`; each backend is a short translation of one SDK.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol, TypeVar, runtime_checkable
from urllib.parse import unquote, urlsplit

from syncops.errors import BadInput, Unavailable
from syncops.validate import bucket_name_problem, file_root_problem, shown, surrogate_problem, text_problem

T = TypeVar("T")


@dataclass(frozen=True)
class DatastoreUrl:
    """``s3://bucket[/prefix]``, ``gs://bucket[/prefix]`` or ``file:///absolute/path``."""

    scheme: str
    bucket: str
    prefix: str = ""

    @classmethod
    def parse(cls, text: str) -> DatastoreUrl:
        """Parse and check a datastore URL; :class:`BadInput` (exit 2) names what is wrong.

        Checked before ``urlsplit`` sees the text, which would silently delete tabs and newlines
        (and so target another bucket); bucket names are held to the provider's rules here, so a
        name no bucket can have is a usage error, not a "does not exist" from the server.
        """
        problem = text_problem(text)
        if problem is not None:
            raise BadInput(f"bad datastore URL {shown(text)}: {problem}")
        try:
            parts = urlsplit(text)
        except ValueError as exc:
            raise BadInput(f"bad datastore URL {shown(text)}: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme in ("s3", "gs"):
            bucket = parts.netloc
            if not bucket:
                raise BadInput(f"bad datastore URL {shown(text)}: no bucket name (expected {scheme}://bucket[/prefix])")
            if "@" in bucket:
                raise BadInput(f"bad datastore URL {shown(text)}: credentials (user:password@) do not belong in it")
            problem = surrogate_problem(text)
            if problem is not None:
                raise BadInput(f"bad datastore URL {shown(text)}: {problem}")
            problem = bucket_name_problem(scheme, bucket)
            if problem is not None:
                provider = "an S3" if scheme == "s3" else "a GCS"
                raise BadInput(
                    f"bad datastore URL {shown(text)}: {shown(bucket)} is not {provider} bucket name: {problem}"
                )
            if parts.query or parts.fragment:
                raise BadInput(f"bad datastore URL {shown(text)}: query strings and fragments are not allowed")
            prefix = parts.path.strip("/")
            if prefix != prefix.strip():
                raise BadInput(f"bad datastore URL {shown(text)}: the prefix starts or ends with whitespace")
            if "//" in prefix or any(seg in (".", "..") for seg in prefix.split("/") if prefix):
                raise BadInput(f"bad datastore URL {shown(text)}: the prefix has empty, '.' or '..' segments")
            return cls(scheme, bucket, prefix)
        if scheme == "file":
            if parts.netloc not in ("", "localhost"):
                raise BadInput(f"bad datastore URL {shown(text)}: use file:///absolute/path (no host)")
            if parts.query or parts.fragment:
                raise BadInput(f"bad datastore URL {shown(text)}: query strings and fragments are not allowed")
            path = unquote(parts.path)
            if not path.startswith("/"):
                raise BadInput(f"bad datastore URL {shown(text)}: the path must be absolute")
            problem = file_root_problem(path)
            if problem is not None:
                raise BadInput(f"bad datastore URL {shown(text)}: {problem}")
            return cls("file", str(Path(path)), "")
        raise BadInput(
            f"bad datastore URL {shown(text)}: expected s3://bucket[/prefix], gs://bucket[/prefix] "
            "or file:///absolute/path"
        )

    @classmethod
    def for_bucket(cls, scheme: str, bucket: str, prefix: str = "") -> DatastoreUrl:
        """The datastore at ``bucket``/``prefix`` on ``scheme`` (``s3`` or ``gs``), checked as :meth:`parse`
        checks a URL, so code that knows a bucket rather than a URL (the Pulumi program) formats exactly the
        URLs every command accepts."""
        if scheme not in ("s3", "gs"):
            raise BadInput(f"bad datastore scheme {scheme!r}: expected s3 or gs")
        path = prefix.strip("/")
        return cls.parse(f"{scheme}://{bucket}/{path}" if path else f"{scheme}://{bucket}")

    def object_url(self, key: str) -> str:
        """The full URL of one object, for messages."""
        if self.scheme == "file":
            return f"file://{self.bucket.rstrip('/')}/{key}"
        return f"{self.scheme}://{self.bucket}/{self.full_key(key)}"

    def full_key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def __str__(self) -> str:
        if self.scheme == "file":
            return f"file://{self.bucket}"
        return f"{self.scheme}://{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")


@dataclass(frozen=True)
class ObjectInfo:
    """One listed object; ``key`` is relative to the datastore prefix and may be unsafe."""

    key: str
    size: int
    last_modified: datetime


@dataclass(frozen=True)
class Fetched:
    """What a download brought: the byte count and the version token of the object read."""

    size: int
    token: str


@dataclass(frozen=True)
class Head:
    """An object's metadata without its bytes; ``md5`` (hex) when the store knows the content's MD5,
    ``last_modified`` when it reports one (what swamp measures a lock's age from)."""

    size: int
    token: str
    md5: str | None = None
    last_modified: datetime | None = None


class UploadBody(Protocol):
    """A seekable upload body of known size (:class:`syncops.localfs.HashingReader`)."""

    @property
    def size(self) -> int: ...

    def read(self, count: int | None = -1) -> bytes: ...

    def seek(self, offset: int, whence: int = 0) -> int: ...

    def tell(self) -> int: ...


@dataclass(frozen=True)
class Blob:
    """A whole small object (the index, a shard, the lock) and its version token: S3 ETag, GCS
    generation, local MD5; ``last_modified`` is the object's time as the store reports it (S3
    ``LastModified``, GCS ``updated``, the file's mtime), which decides whether a lock is stale."""

    data: bytes
    token: str
    last_modified: datetime | None = None


@runtime_checkable
class FileBody(Protocol):
    """A body already in a file (:class:`syncops.indexfile.IndexFile`): iterable as chunks like any
    stream, and openable as a seekable file of known size, so an SDK upload reads it without a copy."""

    size: int

    def open(self) -> BinaryIO: ...

    def __iter__(self) -> Iterator[bytes]: ...


def spooled(data: bytes | Iterable[bytes]) -> tuple[BinaryIO, int]:
    """A stream of chunks as a seekable file (memory up to 8 MiB, then a temp file) and its size; bytes
    as a file over them.

    SDK uploads need a length and a body they can rewind to retry; this gives them both without
    holding a big index in memory a second time. A :class:`FileBody` is opened, not copied.
    """
    import tempfile

    if isinstance(data, FileBody):
        return data.open(), data.size
    if isinstance(data, bytes):
        return io.BytesIO(data), len(data)  # already in memory: no second copy, no spill to disk
    spool = tempfile.SpooledTemporaryFile(max_size=8 << 20)
    for chunk in data:
        spool.write(chunk)
    size = spool.tell()
    spool.seek(0)
    return spool, size  # type: ignore[return-value]


class PageTokens:
    """The continuation tokens of one listing, checked page by page before the next page is asked for.

    A page that says more objects follow but carries no token, or hands back a token an earlier
    page already gave, is a server (or a proxy) that cannot be trusted to list everything. botocore's
    paginator ends quietly on a missing token and only notices a token repeated by the very next
    page; google-api-core's iterator asks again with the same token, or with none, forever. Either
    way discovery would publish a short index, or never finish: a remote failure instead (exit 4).
    """

    def __init__(self, where: str) -> None:
        self.where = where
        self.page = 0
        self._seen: dict[str, int] = {}

    def next(self, more: bool, token: str | None) -> str | None:
        """The token to ask for the next page with, None after the last page; :class:`Unavailable` for a lie."""
        self.page += 1
        if not more:
            return None
        if not token:
            raise Unavailable(
                f"listing {self.where}: page {self.page} says more objects follow but carries no continuation "
                "token; stopped rather than use an incomplete listing"
            )
        first = self._seen.get(token)
        if first is not None:
            raise Unavailable(
                f"listing {self.where}: page {self.page} repeats the continuation token of page {first}; "
                "stopped rather than list in a loop or use an incomplete listing"
            )
        self._seen[token] = self.page
        return token


def read_ahead(items: Iterator[T], *, name: str = "syncops-read-ahead") -> Iterator[T]:
    """``items``, produced one ahead in a thread: the next listing page is asked for (and parsed)
    while the caller works through the one before, so a listing takes the server's time or the
    caller's, whichever is longer, rather than both added up.

    At most one item waits in hand besides the one the caller holds: memory stays that of a page or
    two. An exception of ``items`` is raised to the caller where it happened in the sequence. When
    the caller stops early, the thread stops before producing another item.
    """
    import queue
    import threading

    handoff: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if not _offer(handoff, (True, item), stop):
                    return
        except BaseException as exc:  # handed over and raised in the caller's thread
            _offer(handoff, (False, exc), stop)
            return
        _offer(handoff, (False, None), stop)

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            ok, value = handoff.get()
            if ok:
                yield value
            elif value is None:
                return
            else:
                raise value
    finally:
        stop.set()


def _offer(handoff: Any, entry: tuple[bool, Any], stop: Any) -> bool:
    """Put ``entry`` once there is room; False when the caller stopped meanwhile."""
    import queue

    while not stop.is_set():
        try:
            handoff.put(entry, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


class ObjectStore(Protocol):
    """What a backend offers; every method raises only :mod:`syncops.errors` types."""

    url: DatastoreUrl

    def get(self, key: str) -> Blob:
        """Read a whole object; :class:`NotFound` when it does not exist."""
        ...

    def put(
        self, key: str, data: bytes | Iterable[bytes], *, if_absent: bool = False, if_token: str | None = None
    ) -> str:
        """Write an object, optionally create-only or only over version ``if_token``.

        ``data`` is the whole object or a stream of chunks (a big index is never built whole);
        a stream is read once per call, so a caller that may call again passes a re-iterable one.

        Returns the new version token. :class:`PreconditionFailed` when the condition does not hold,
        :class:`ConditionUnsupported` when the backend refuses the condition itself.
        """
        ...

    def list(self) -> Iterator[ObjectInfo]:
        """Every object under the prefix, streamed page by page (never a whole listing in memory)."""
        ...

    def download(
        self, key: str, out: BinaryIO, *, checked_by_caller: bool = False, size_hint: int | None = None
    ) -> Fetched:
        """Stream one object into ``out``; :class:`NotFound` when gone.

        Where the store gives a checksum of the body (GCS crc32c/md5, an S3 single-part ETag), the
        bytes are checked against it while they stream; a mismatch is retried as a broken body.
        ``checked_by_caller``: the caller checks the bytes against a sha256 of its own, so a checksum
        that costs a hash pass of its own (the S3 ETag's MD5) may be skipped.
        ``size_hint``: the size the caller expects (its index's); a large object may then be read in
        parallel ranges of one pinned version. ``out`` still receives the bytes in order, once.
        """
        ...

    def head(self, key: str) -> Head:
        """An object's size, version token and (where known) MD5; :class:`NotFound` when absent."""
        ...

    def upload(self, key: str, body: UploadBody, *, if_absent: bool = False, if_token: str | None = None) -> str:
        """Write a data object from ``body``, create-only or only over version ``if_token``.

        Returns the new version token; :class:`PreconditionFailed` when the condition does not hold
        (including an ``if_token`` object that no longer exists).
        """
        ...

    def delete(self, key: str, *, if_token: str) -> None:
        """Delete ``key`` only while it is at version ``if_token``.

        Used for one thing only: releasing syncops's own ``.datastore.lock`` (SPEC §2: the only delete
        syncops ever makes), after a read confirmed the lock still carries its nonce. S3 sends
        ``If-Match`` (a server that refuses the condition as unsupported gets the plain delete the
        read already vouched for, as swamp does), GCS ``ifGenerationMatch``, ``file://`` compares
        under its flock. :class:`PreconditionFailed` when the object changed; when it is gone,
        :class:`NotFound` (file://, GCS) or :class:`PreconditionFailed` (S3 answers a conditional
        delete of a missing key with 412): callers treat both alike.
        """
        ...

    def credential_source(self) -> str:
        """Where credentials come from (environment, profile, instance role, anonymous), no secrets."""
        ...

    def close(self) -> None: ...

    def can_copy_from(self, source: ObjectStore) -> bool:
        """True when :meth:`copy_from` can copy objects of ``source`` server-side (the same provider and
        server, reached with the same settings), so no object byte passes through this machine."""
        ...

    def copy_from(
        self, source: ObjectStore, key: str, *, size: int, if_absent: bool = False, if_token: str | None = None
    ) -> str:
        """Copy ``key`` of ``source`` to ``key`` here, server-side (S3 CopyObject, or UploadPartCopy for
        objects too big for one copy; GCS rewrite, repeated until done), create-only or only over
        version ``if_token``. ``size`` is the object's byte count (it picks the copy method).

        Returns the new version token. :class:`NotFound` when the source object is gone,
        :class:`PreconditionFailed` when the condition does not hold here.
        """
        ...
