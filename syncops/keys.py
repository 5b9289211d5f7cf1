"""Which keys are data: the internal-file filter, directory markers, namespaces and key safety.

Pure functions, no I/O. Every listing, index and local walk goes through :func:`classify`, so the
rules of SPEC §2 live in exactly one place.
"""

from __future__ import annotations

import enum
import posixpath
import re
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

INDEX_KEY = ".datastore-index.json"
NAMESPACE_MARKER = ".namespace.json"

#: Internal files that only count at the datastore root.
ROOT_INTERNAL_FILES = frozenset({INDEX_KEY, ".push-queue.json", ".datastore.lock", ".datastore-sync-state.json"})
#: Internal trees at the datastore root.
ROOT_INTERNAL_DIRS = ("_index/", "_control/")
#: Internal files at any depth, by basename.
ANY_DEPTH_INTERNAL_FILES = frozenset({".lock", NAMESPACE_MARKER, "_catalog.db"})
ANY_DEPTH_INTERNAL_PREFIX = "_catalog.db-"


#: Checked on every listed object: one regex scan each, not a Python loop per character.
#: C0 controls, DEL and the C1 controls (U+0080-U+009F: NEL, and CSI, which terminals act on).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_SURROGATE = re.compile("[\ud800-\udfff]")
#: The common case in one C-level match: segments of letters, digits and ``_-+=,@~`` (dots too, but
#: never first, so no segment is ``.`` or ``..``), none empty. Anything else takes the full checks.
_PLAIN_KEY = re.compile(r"[\w\-+=,@~][\w.\-+=,@~]*(?:/[\w\-+=,@~][\w.\-+=,@~]*)*", re.ASCII)


T = TypeVar("T")
X = TypeVar("X")


class KeyKind(enum.Enum):
    DATA = "data"
    INTERNAL = "internal"
    DIRECTORY_MARKER = "directory-marker"
    UNSAFE = "unsafe"


def is_internal(key: str) -> bool:
    """True for the datastore's own bookkeeping files (never indexed, hydrated or pushed)."""
    if key in ROOT_INTERNAL_FILES or key.startswith(ROOT_INTERNAL_DIRS):
        return True
    base = key.rsplit("/", 1)[-1]
    return base in ANY_DEPTH_INTERNAL_FILES or base.startswith(ANY_DEPTH_INTERNAL_PREFIX)


def unsafe_reason(key: str) -> str | None:
    """Why a key must never become a local path or an index entry, or None when it is safe.

    The rules protect the target directory: a key is turned into a path by joining its segments
    under the target, so anything that could climb out of it, alias another key or confuse a
    filesystem (absolute paths, ``..``/``.`` segments, backslashes, NUL and control characters,
    empty segments) is refused before any path is built.
    """
    if _PLAIN_KEY.fullmatch(key):
        return None
    if key == "":
        return "empty key"
    if key.startswith("/"):
        return "absolute path"
    if "\\" in key:
        return "backslash"
    if _CONTROL.search(key):
        return "NUL or control character"
    if _SURROGATE.search(key):
        return "not valid UTF-8"
    for segment in key.split("/"):
        if segment == "":
            return "empty path segment"
        if segment == "..":
            return "'..' segment"
        if segment == ".":
            return "'.' segment"
    return None


def escape_key(key: str) -> str:
    """Show a key with control characters and backslashes escaped, safe to print on one line.

    U+2028/U+2029 are escaped too: ``str.splitlines`` and some terminals end a line at them.
    """
    out = []
    for ch in key:
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif 0xD800 <= code <= 0xDFFF or code in (0x2028, 0x2029):  # not text; line separators
            out.append(f"\\u{code:04x}")
        elif code < 0x20 or 0x7F <= code <= 0x9F:
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t", "\0": "\\0"}.get(ch, f"\\x{code:02x}"))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def classify(key: str, size: int = 0) -> KeyKind:
    """Sort a key (relative to the datastore prefix) into data, internal, marker or unsafe."""
    if key.endswith("/") and size == 0 and unsafe_reason(key.rstrip("/")) is None:
        return KeyKind.DIRECTORY_MARKER
    if unsafe_reason(key) is not None:
        return KeyKind.UNSAFE
    if is_internal(key):
        return KeyKind.INTERNAL
    return KeyKind.DATA


def namespace_root(key: str) -> str | None:
    """The subtree a ``.namespace.json`` key marks as a datastore of its own, with trailing slash.

    A marker at the datastore's own root marks the datastore itself and returns None.
    """
    directory, _, base = key.rpartition("/")
    if base != NAMESPACE_MARKER or not directory:
        return None
    return directory + "/"


def in_namespace(key: str, roots: set[str]) -> bool:
    """True when ``key`` lies inside any of the namespace subtrees ``roots``."""
    if not roots:
        return False
    directory = posixpath.dirname(key)
    while directory:
        if directory + "/" in roots:
            return True
        directory = posixpath.dirname(directory)
    return False


def data_items(
    items: Iterable[tuple[str, int, X]], unsafe: list[str], namespaces: set[str]
) -> Iterator[tuple[str, int, X]]:
    """The data items of a stream, in its order: internal files and directory markers dropped, unsafe
    keys appended to ``unsafe``, the roots of namespace subtrees added to ``namespaces`` (their
    objects are still yielded: a marker can come after objects of its subtree, so the caller prunes
    them once the stream has ended)."""
    for key, size, item in items:
        root = namespace_root(key)
        if root is not None and unsafe_reason(key) is None:
            namespaces.add(root)
        kind = classify(key, size)
        if kind is KeyKind.DATA:
            yield key, size, item
        elif kind is KeyKind.UNSAFE:
            unsafe.append(key)


def select_data(
    items: Iterable[tuple[str, int, X]], make: Callable[[str, int, X], T], unsafe: list[str]
) -> tuple[dict[str, T], list[str]]:
    """Keep the data keys of a listing or a local walk, as ``make(key, size, item)``.

    Internal files and directory markers are dropped, unsafe keys appended to ``unsafe``, and
    every subtree holding its own ``.namespace.json`` pruned. Items are consumed as a stream and
    ``make`` runs for data keys only. Namespace markers can come after objects of their subtree in
    listing order, so subtrees are pruned at the end. Returns the kept values and the namespaces.
    """
    namespaces: set[str] = set()
    kept = {key: make(key, size, item) for key, size, item in data_items(items, unsafe, namespaces)}
    if namespaces:
        kept = {k: v for k, v in kept.items() if not in_namespace(k, namespaces)}
    return kept, sorted(namespaces)
