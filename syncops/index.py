"""The datastore index, version 1: parse, validate, serialize and merge. No I/O.

The format is shared with the swamp ``@swamp/s3-datastore`` / ``@swamp/gcs-datastore`` extensions, so
unknown fields (top level and per entry) are kept verbatim when an index is rewritten, and the
serialization is deterministic: the same entries give the same bytes apart from ``lastPulled``.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from json.encoder import encode_basestring  # what json.dumps(str, ensure_ascii=False) uses
from typing import Any

from syncops.errors import CorruptIndex
from syncops.keys import KeyKind, classify, escape_key

VERSION = 1

#: Nesting an index may have. The format needs three levels (document, entries, entry); unknown
#: fields kept from other writers get room to nest, but not enough that rewriting them
#: (``json.dumps`` recurses, from a deeper stack than the parse did) can overflow the stack.
MAX_DEPTH = 64
#: The file modification times ext4 can hold, 1901-12-13T20:45:52Z to 2446-05-10T22:38:55Z: the
#: narrowest of the file systems a cache lives on (XFS, btrfs, tmpfs hold more). hydrate gives every
#: file the mtime of its entry's ``lastModified``; one outside this range would be silently clamped,
#: and the file would then look locally changed on every run.
MIN_MTIME = -(2**31)
MAX_MTIME = 2**34 - 2**31 - 1
#: Sizes beyond a signed 64-bit integer are not byte counts any store or file system gives.
MAX_SIZE = 2**63 - 1

#: Entry fields in the order they are written; anything else follows, sorted.
_KNOWN_ENTRY_FIELDS = ("key", "size", "lastModified", "localMtime", "sha256", "remoteVersion")
_KNOWN_ENTRY_SET = frozenset(_KNOWN_ENTRY_FIELDS)
#: What a ``sha256`` field must look like to be used as a content identity.
_SHA256 = re.compile(r"[0-9a-f]{64}")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@functools.lru_cache(maxsize=4096)
def format_timestamp(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds and ``Z``, as JavaScript's ``toISOString`` writes it.

    Cached: objects written together share a timestamp, so a million-object listing formats (and
    keeps in memory) each distinct moment once.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def timestamp_from_epoch(seconds: float) -> str:
    return format_timestamp(datetime.fromtimestamp(seconds, tz=timezone.utc))


def timestamp_from_millis(millis: int) -> str:
    """The timestamp of a whole number of milliseconds since the epoch (exact: no float on the way)."""
    return format_timestamp(_EPOCH + timedelta(milliseconds=millis))


def millis_of(text: str) -> int:
    """Milliseconds since the epoch of an index timestamp, exactly; ValueError when it does not parse."""
    return (parse_timestamp(text) - _EPOCH) // timedelta(milliseconds=1)


@functools.lru_cache(maxsize=1 << 16)
def _local_millis(text: str) -> int | None:
    """``millis_of`` for a base's ``localMtime``, None when unreadable; cached, because the planner
    asks several times per key and parsing dominates an up-to-date run."""
    try:
        return millis_of(text)
    except (ValueError, OverflowError):
        return None


def parse_timestamp(text: str) -> datetime:
    """Parse an index timestamp; raises ValueError for anything that is not ISO-8601."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment


def now_timestamp() -> str:
    return format_timestamp(datetime.now(timezone.utc))


@dataclass(slots=True)  # a million-entry index holds a million of these
class Entry:
    """One data object: its key relative to the prefix, byte size and last modification time.

    In a local index (the *base* of SPEC §3) an entry also records the local file as it was when
    it was last synced (``local_mtime``) and the object's version token (``version``: S3 ETag, GCS
    generation, a ``file://`` content digest), written as ``remoteVersion``; neither is ever
    published to the remote index.
    """

    key: str
    size: int
    last_modified: str
    local_mtime: str | None = None
    sha256: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    version: str | None = None

    def to_json(self, *, with_local: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, "size": self.size, "lastModified": self.last_modified}
        if self.local_mtime is not None:
            out["localMtime"] = self.local_mtime
        if self.sha256 is not None:
            out["sha256"] = self.sha256
        if with_local and self.version is not None:
            out["remoteVersion"] = self.version
        for name in sorted(self.extra):
            out.setdefault(name, self.extra[name])  # a malformed known field never hides a good one
        return out

    @property
    def last_modified_epoch(self) -> float:
        return parse_timestamp(self.last_modified).timestamp()

    @property
    def content_sha256(self) -> str | None:
        """The entry's ``sha256`` when it is a well-formed digest (lowercase hex), else None."""
        digest = self.sha256
        return digest if digest is not None and _SHA256.fullmatch(digest) else None

    @property
    def local_millis(self) -> int | None:
        """``localMtime`` in whole milliseconds, or None when absent or unreadable."""
        return None if self.local_mtime is None else _local_millis(self.local_mtime)


@dataclass
class Index:
    """The whole index: entries keyed by their relative key, plus ``lastPulled``."""

    entries: dict[str, Entry] = field(default_factory=dict)
    last_pulled: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.entries)

    def split(self) -> tuple[list[Entry], list[tuple[str, KeyKind]]]:
        """The entries safe to hydrate (data keys only, in key order) and the ones a crafted or buggy
        index holds that are not data (internal files, unsafe keys), in one pass over the keys."""
        data: list[Entry] = []
        suspicious: list[tuple[str, KeyKind]] = []
        for key in sorted(self.entries):
            entry = self.entries[key]
            kind = classify(key, entry.size)
            if kind is KeyKind.DATA:
                data.append(entry)
            else:
                suspicious.append((key, kind))
        return data, suspicious


def _shown(value: Any) -> str:
    """A JSON value, short, for a message."""
    text = json.dumps(value, ensure_ascii=True)
    return text if len(text) <= 40 else text[:37] + "..."


def _depth(value: Any) -> int:
    """How deeply a parsed JSON value nests (a scalar is 0), counted without recursion."""
    deepest = 0
    pending = [(value, 1)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            break
        pending.extend((child, level + 1) for child in children)
    return deepest


@functools.lru_cache(maxsize=65536)  # objects written together share a timestamp
def _epoch_seconds(text: str) -> float | None:
    try:
        return parse_timestamp(text).timestamp()
    except (ValueError, OverflowError):
        return None


def _check_timestamp(text: str, name: str, where: str) -> None:
    """An ISO-8601 timestamp whose moment a file's mtime can hold, or :class:`CorruptIndex`."""
    seconds = _epoch_seconds(text)
    if seconds is None:
        raise CorruptIndex(f"{where}: entry {escape_key(name)} has lastModified {text!r}, not ISO-8601")
    if not MIN_MTIME <= seconds <= MAX_MTIME:
        raise CorruptIndex(
            f"{where}: entry {escape_key(name)} has lastModified {text!r}, outside the range a file's "
            "modification time can hold (1901-12-13 to 2446-05-10)"
        )


def _entry_from_json(name: str, raw: Any, where: str) -> Entry:
    if not isinstance(raw, dict):
        raise CorruptIndex(f"{where}: entry {escape_key(name)} is not an object")
    key = raw.get("key")
    if key != name:
        raise CorruptIndex(f"{where}: entry {escape_key(name)} has key field {_shown(key)}, not its own name")
    size = raw.get("size")
    if type(size) is not int or not 0 <= size <= MAX_SIZE:
        raise CorruptIndex(f"{where}: entry {escape_key(name)} has size {_shown(size)}, not a byte count")
    last_modified = raw.get("lastModified")
    if not isinstance(last_modified, str):
        raise CorruptIndex(f"{where}: entry {escape_key(name)} has no lastModified timestamp")
    _check_timestamp(last_modified, name, where)
    # Optional fields of another type than ours are kept verbatim (as unknown fields), never dropped.
    extra = {k: v for k, v in raw.items() if k not in _KNOWN_ENTRY_SET} if len(raw) > 3 + _optional(raw) else {}
    if extra and _depth(extra) + 2 > MAX_DEPTH:
        raise CorruptIndex(f"{where}: entry {escape_key(name)} nests deeper than {MAX_DEPTH} levels")
    local_mtime, sha256, version = raw.get("localMtime"), raw.get("sha256"), raw.get("remoteVersion")
    if local_mtime is not None and not isinstance(local_mtime, str):
        extra["localMtime"], local_mtime = local_mtime, None
    if sha256 is not None and not isinstance(sha256, str):
        extra["sha256"], sha256 = sha256, None
    if version is not None and not isinstance(version, str):
        extra["remoteVersion"], version = version, None
    return Entry(
        key=name,
        size=size,
        last_modified=last_modified,
        local_mtime=local_mtime,
        sha256=sha256,
        extra=extra,
        version=version,
    )


def _optional(raw: dict[str, Any]) -> int:
    """How many of the optional known fields an entry object names (its unknown fields are the rest)."""
    return ("localMtime" in raw) + ("sha256" in raw) + ("remoteVersion" in raw)


#: ``\uD800``-``\uDFFF`` escapes: only these can put lone surrogates (not Unicode, not writable as
#: UTF-8) into a document decoded strictly; a valid pair is fine, so a hit is checked further.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _refuse_duplicates(where: str) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    """``object_pairs_hook`` refusing a JSON object that names a key twice.

    ``json.loads`` keeps the last value of a duplicated key; another reader may keep the first, so
    two tools would disagree about what the index says. Refused instead, naming the key.
    """

    def build(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        built = dict(pairs)
        if len(built) != len(pairs):
            seen: set[str] = set()
            for name, _ in pairs:
                if name in seen:
                    raise CorruptIndex(f"{where}: the key {escape_key(name)} appears twice in one JSON object")
                seen.add(name)
        return built

    return build


def _lone_surrogates(text: str, raw: dict[str, Any]) -> bool:
    """True when the parsed document holds a lone surrogate (it could never be written back as UTF-8)."""
    if _SURROGATE_ESCAPE.search(text) is None:
        return False
    try:
        json.dumps(raw, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def load_object(data: bytes | str, where: str) -> dict[str, Any]:
    """A JSON document whose top level is an object (every index-like file syncops reads: the index,
    swamp's ``_meta.json`` and shards); :class:`CorruptIndex` naming ``where`` otherwise.

    Defensive, since the document comes from a bucket anyone with write access may have written:
    text that is not strict UTF-8, duplicated keys, nesting too deep for the parser and lone
    surrogates are refused here, rather than failing later with an exception nobody translated.
    """
    try:
        # Strict UTF-8 (a byte-order mark is tolerated): json.loads would also take UTF-16/32 and,
        # with "surrogatepass", encoded lone surrogates that could never be written back.
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise CorruptIndex(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if _SURROGATE.search(text):
        raise CorruptIndex(f"{where}: holds a lone UTF-16 surrogate, which is not Unicode text")
    try:
        raw = json.loads(text, object_pairs_hook=_refuse_duplicates(where))
    except RecursionError:
        raise CorruptIndex(f"{where}: nested too deeply to read (an index nests 3 levels)") from None
    except ValueError as exc:
        raise CorruptIndex(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise CorruptIndex(f"{where}: top level is not a JSON object")
    if _lone_surrogates(text, raw):
        raise CorruptIndex(f"{where}: holds a lone UTF-16 surrogate escape (\\udXXX), which is not Unicode text")
    return raw


def parse(data: bytes | str, where: str = ".datastore-index.json") -> Index:
    """Parse and validate an index; raises :class:`CorruptIndex` naming ``where`` on any defect."""
    raw = load_object(data, where)
    version = raw.get("version")
    if type(version) is not int or version != VERSION:
        raise CorruptIndex(f"{where}: version is {_shown(version)}, syncops reads version {VERSION}")
    entries = raw.get("entries")
    if not isinstance(entries, dict):
        raise CorruptIndex(f"{where}: 'entries' is missing or not an object")
    last_pulled = raw.get("lastPulled")
    if last_pulled is not None and not isinstance(last_pulled, str):
        raise CorruptIndex(f"{where}: 'lastPulled' is not a timestamp string")
    extra = {k: v for k, v in raw.items() if k not in ("version", "lastPulled", "entries")}
    if extra and _depth(extra) > MAX_DEPTH:
        raise CorruptIndex(f"{where}: nests deeper than {MAX_DEPTH} levels")
    parsed = {name: _entry_from_json(name, value, where) for name, value in entries.items()}
    return Index(entries=parsed, last_pulled=last_pulled, extra=extra)


def _entry_text(entry: Entry, with_local: bool) -> str:
    """``json.dumps(entry.to_json(), ensure_ascii=False)``, byte for byte, without the dict.

    Entries with unknown fields (rare: kept from other writers) take the general path.
    """
    if entry.extra or type(entry.size) is not int:
        return json.dumps(entry.to_json(with_local=with_local), ensure_ascii=False)
    text = _listed_fields(entry.key, entry.size, entry.last_modified)
    if entry.local_mtime is not None:
        text += ', "localMtime": ' + encode_basestring(entry.local_mtime)
    if entry.sha256 is not None:
        text += ', "sha256": ' + encode_basestring(entry.sha256)
    if with_local and entry.version is not None:
        text += ', "remoteVersion": ' + encode_basestring(entry.version)
    return text + "}"


def _listed_fields(key: str, size: int, last_modified: str) -> str:
    return f'{{"key": {encode_basestring(key)}, "size": {size}, "lastModified": {encode_basestring(last_modified)}'


def listed_entry_text(key: str, size: int, last_modified: str) -> str:
    """The line of a listed object in a published index (``"key": {...}``, no separator): what
    :func:`iter_serialized` writes for an entry with only these three fields, byte for byte."""
    return encode_basestring(key) + ": " + _listed_fields(key, size, last_modified) + "}"


#: How :func:`iter_serialized` ends an index with entries, and one without.
FOOTER = "\n  }\n}\n"
EMPTY_FOOTER = "}\n}\n"


def header_text(last_pulled: str | None, extra: Mapping[str, Any] | None = None) -> str:
    """Everything :func:`iter_serialized` writes before the first entry."""
    extra = extra or {}
    text = f'{{\n  "version": {VERSION},\n  "lastPulled": {json.dumps(last_pulled)}'
    for name in sorted(extra):
        text += f",\n  {json.dumps(name)}: {json.dumps(extra[name], sort_keys=True)}"
    return text + ',\n  "entries": {'


def iter_serialized(index: Index, *, with_local: bool = True) -> Iterator[str]:
    """Serialize in chunks (one per entry), so a big index is never built twice in memory.

    Deterministic: entries sorted by key, fields in a fixed order, two-space indentation.
    """
    yield header_text(index.last_pulled, index.extra)
    first = True
    for key in sorted(index.entries):
        yield (
            ("\n    " if first else ",\n    ")
            + encode_basestring(key)
            + ": "
            + _entry_text(index.entries[key], with_local)
        )
        first = False
    yield FOOTER if not first else EMPTY_FOOTER


def serialize(index: Index, *, with_local: bool = True) -> bytes:
    return "".join(iter_serialized(index, with_local=with_local)).encode("utf-8")


#: Serialized text is handed to a store in pieces of about this many characters.
STREAM_CHUNK = 64 * 1024


class Serialized:
    """An index as a stream of UTF-8 chunks, re-iterable (a retried write serializes it again).

    What discovery and push hand to ``ObjectStore.put``: a million-entry index is written without
    ever existing whole in memory, neither as text nor as bytes.
    """

    def __init__(self, index: Index, *, with_local: bool = True) -> None:
        self.index = index
        self.with_local = with_local

    def __iter__(self) -> Iterator[bytes]:
        pending: list[str] = []
        size = 0
        for piece in iter_serialized(self.index, with_local=self.with_local):
            pending.append(piece)
            size += len(piece)
            if size >= STREAM_CHUNK:
                yield "".join(pending).encode("utf-8")
                pending, size = [], 0
        if pending:
            yield "".join(pending).encode("utf-8")


def stream(index: Index, *, with_local: bool = True) -> Serialized:
    return Serialized(index, with_local=with_local)


def build(entries: Iterable[Entry], last_pulled: str | None = None) -> Index:
    return Index(entries={e.key: e for e in entries}, last_pulled=last_pulled or now_timestamp())


def merge(base: Index, changes: Mapping[str, Entry], *, last_pulled: str | None = None) -> Index:
    """``base`` ∪ ``changes``: a changed key takes the new entry, every other base entry is kept.

    Unknown fields of an entry that is rewritten are carried over, as SPEC §2 requires.
    """
    merged = dict(base.entries)
    for key, entry in changes.items():
        previous = merged.get(key)
        if previous is not None:
            entry = replace(entry, extra={**previous.extra, **entry.extra})
        merged[key] = entry
    return Index(entries=merged, last_pulled=last_pulled or base.last_pulled, extra=dict(base.extra))
