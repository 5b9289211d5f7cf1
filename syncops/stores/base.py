"""The storage contract every backend implements, and the datastore URL.

discover / hydrate / push / verify speak only this contract and the error types of
:mod:`syncops.errors`; each backend is a short translation of one SDK.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import unquote, urlsplit

from syncops.errors import BadInput


@dataclass(frozen=True)
class DatastoreUrl:
    """``s3://bucket[/prefix]``, ``gs://bucket[/prefix]`` or ``file:///absolute/path``."""

    scheme: str
    bucket: str
    prefix: str = ""

    @classmethod
    def parse(cls, text: str) -> DatastoreUrl:
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        if scheme in ("s3", "gs"):
            bucket = parts.netloc
            if not bucket:
                raise BadInput(f"bad datastore URL {text!r}: no bucket name (expected {scheme}://bucket[/prefix])")
            if parts.query or parts.fragment:
                raise BadInput(f"bad datastore URL {text!r}: query strings and fragments are not allowed")
            prefix = parts.path.strip("/")
            if "//" in prefix or any(seg in (".", "..") for seg in prefix.split("/") if prefix):
                raise BadInput(f"bad datastore URL {text!r}: the prefix has empty, '.' or '..' segments")
            return cls(scheme, bucket, prefix)
        if scheme == "file":
            if parts.netloc not in ("", "localhost"):
                raise BadInput(f"bad datastore URL {text!r}: use file:///absolute/path (no host)")
            path = unquote(parts.path)
            if not path.startswith("/"):
                raise BadInput(f"bad datastore URL {text!r}: the path must be absolute")
            return cls("file", str(Path(path)), "")
        raise BadInput(
            f"bad datastore URL {text!r}: expected s3://bucket[/prefix], gs://bucket[/prefix] or file:///absolute/path"
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
    """An object's metadata without its bytes; ``md5`` (hex) when the store knows the content's MD5."""

    size: int
    token: str
    md5: str | None = None


class UploadBody(Protocol):
    """A seekable upload body of known size (:class:`syncops.localfs.HashingReader`)."""

    @property
    def size(self) -> int: ...

    def read(self, count: int | None = -1) -> bytes: ...

    def seek(self, offset: int, whence: int = 0) -> int: ...

    def tell(self) -> int: ...


@dataclass(frozen=True)
class Blob:
    """A whole small object (the index) and its version token: S3 ETag, GCS generation, local MD5."""

    data: bytes
    token: str


def spooled(data: bytes | Iterable[bytes]) -> tuple[BinaryIO, int]:
    """A stream of chunks as a seekable file (memory up to 8 MiB, then a temp file) and its size.

    SDK uploads need a length and a body they can rewind to retry; this gives them both without
    holding a big index in memory a second time.
    """
    import tempfile

    spool = tempfile.SpooledTemporaryFile(max_size=8 << 20)
    for chunk in [data] if isinstance(data, bytes) else data:
        spool.write(chunk)
    size = spool.tell()
    spool.seek(0)
    return spool, size  # type: ignore[return-value]


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

    def download(self, key: str, out: BinaryIO) -> Fetched:
        """Stream one object into ``out``; :class:`NotFound` when gone.

        Where the store gives a checksum of the body (GCS crc32c/md5, an S3 single-part ETag), the
        bytes are checked against it while they stream; a mismatch is retried as a broken body.
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
