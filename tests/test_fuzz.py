"""Fuzzing the parsers (SPEC §4 "never a traceback"): thousands of generated index documents, keys,
datastore URLs and endpoints go through the code that reads untrusted input, and only our own error
types ever come out. Then the CLI itself, as a subprocess, with the nastiest inputs: a documented
exit code, exactly one line on stderr, and with ``--json`` exactly one JSON object on stdout.
"""

from __future__ import annotations

import json
import unicodedata
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncops import index as idx
from syncops.errors import BadInput, CorruptIndex
from syncops.keys import KeyKind, classify, escape_key, unsafe_reason
from syncops.stores.base import DatastoreUrl
from syncops.validate import bucket_name_problem, endpoint_problem, paths_overlap
from tests.conftest import run_cli

FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example])

#: Every character, lone surrogates included (hypothesis leaves them out unless asked).
any_char = st.characters(exclude_categories=())
nasty_chars = st.sampled_from(list("\x00\t\n\r\x1b\x7f\x85\x9b\u2028\u2029\ud800\udfff\\/.:@%[]#?{}\"' é"))
texts = st.text(st.one_of(any_char, nasty_chars), max_size=12)

# -- index documents ------------------------------------------------------------------------------

offsets = st.sampled_from([timezone.utc, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12, minutes=-30))])
timestamps = st.one_of(
    st.datetimes(timezones=st.just(timezone.utc)).map(idx.format_timestamp),  # years 1 to 9999
    st.datetimes(timezones=offsets).map(lambda d: d.isoformat()),
    st.sampled_from(["2026-05-04T12:00:00.000Z", "2026-05-04", "20260504T120000Z", "Z", "", "2026-13-01T00:00:00Z"]),
    texts,
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3), max_leaves=6
)
entry_names = st.one_of(texts, st.sampled_from(["a", "data/x.bin", "../up", "_index/x", ".lock", "a//b", "d/"]))
good_sizes = st.integers(0, 2**40)
good_stamps = st.datetimes(min_value=datetime(1902, 1, 1), max_value=datetime(2446, 1, 1), timezones=offsets).map(
    idx.format_timestamp
)


@st.composite
def mostly(draw: Any, good: Any, bad: Any) -> Any:
    """A value from ``good``, one time in ten from ``bad``."""
    return draw(bad) if draw(st.integers(0, 9)) == 0 else draw(good)


sizes = mostly(good_sizes, st.one_of(st.integers(min_value=-5, max_value=2**66), scalars))
stamps = mostly(good_stamps, st.one_of(timestamps, scalars))


@st.composite
def entry_objects(draw: Any, name: str) -> Any:
    """Mostly entry-shaped objects, each field sometimes missing, of the wrong type or out of range."""
    shape = draw(st.integers(0, 39))
    if shape == 0:
        return draw(json_values)
    entry: dict[str, Any] = {"key": name if shape > 1 else draw(scalars), "size": draw(sizes)}
    if shape != 2:
        entry["lastModified"] = draw(stamps)
    if shape in (3, 4, 5):
        entry["localMtime"] = draw(stamps)
    if shape in (5, 6, 7):
        entry["sha256"] = draw(mostly(st.text("0123456789abcdef", min_size=64, max_size=64), scalars))
    if shape in (8, 9):
        entry["owner"] = draw(json_values)
    return entry


@st.composite
def index_documents(draw: Any) -> bytes:
    """JSON documents near the index format, some broken on purpose at the byte level."""
    kind = draw(st.integers(0, 19))
    if kind == 0:
        return draw(st.binary(max_size=200))
    if kind == 1:
        return draw(texts).encode("utf-8", "surrogatepass")
    document: dict[str, Any] = {
        "version": 1 if kind > 4 else draw(st.sampled_from([1.0, True, "1", 2, 0, None, [1]])),
        "lastPulled": draw(mostly(good_stamps, st.one_of(timestamps, scalars))),
    }
    names = draw(st.lists(entry_names, max_size=4))
    document["entries"] = {name: draw(entry_objects(name)) for name in names}
    if kind == 2:
        document["entries"] = draw(json_values)
    if kind == 3:
        document.update(draw(st.dictionaries(texts, json_values, max_size=2)))
    text = json.dumps(document, ensure_ascii=draw(st.booleans()))
    mutation = draw(st.integers(0, 19))
    if mutation == 0 and text:  # cut short
        text = text[: draw(st.integers(0, len(text) - 1))]
    elif mutation == 1:  # the first member again: a duplicated key
        text = text.replace("{", '{"version": 1, ', 1)
    elif mutation == 2:  # deep nesting in an unknown field
        depth = draw(st.integers(1, 3000))
        text = text[:-1] + ', "deep": ' + "[" * depth + "]" * depth + "}"
    return text.encode("utf-8", "surrogatepass")


@settings(FUZZ, max_examples=1500)
@given(index_documents())
def test_any_document_is_an_index_or_a_corrupt_index_and_nothing_else(document: bytes):
    try:
        parsed = idx.parse(document, where="s3://bkt/.datastore-index.json")
    except CorruptIndex as exc:
        assert str(exc).startswith("s3://bkt/.datastore-index.json: ")
        return
    # What the engine does next with a parsed index must not fail either: rewrite it (push, local
    # base), take every entry's mtime (hydrate), sort data from suspicious entries (verify).
    again = idx.parse(idx.serialize(parsed))
    assert again.entries == parsed.entries and again.extra == parsed.extra
    idx.parse(b"".join(idx.stream(parsed, with_local=False)))
    for entry in parsed.entries.values():
        moment = datetime.fromtimestamp(entry.last_modified_epoch, tz=timezone.utc)
        idx.format_timestamp(moment)
    parsed.split()


# -- keys -----------------------------------------------------------------------------------------

keys = st.one_of(
    texts,
    st.lists(st.one_of(texts, st.sampled_from(["", ".", "..", "a", "_index", ".lock"])), max_size=4).map("/".join),
)


@settings(FUZZ, max_examples=1500)
@given(keys, keys, st.integers(0, 3))
def test_key_rules_take_any_key(a: str, b: str, size: int):
    kind = classify(a, size)
    reason = unsafe_reason(a)
    assert (kind is KeyKind.UNSAFE) == (reason is not None and kind is not KeyKind.DIRECTORY_MARKER)
    shown = escape_key(a)
    shown.encode("utf-8")  # printable anywhere: no lone surrogate left
    assert len(shown.splitlines()) == 1
    assert not any(unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") for ch in shown)
    assert (escape_key(a) == escape_key(b)) == (a == b)


# -- datastore URLs and endpoints ---------------------------------------------------------------------

valid_buckets = st.sampled_from(["bucket", "a.b-c", "my-data-01", "x" * 63, "a_b", "dir--x-s3"])
urls = st.one_of(
    texts,
    st.builds(
        lambda scheme, sep, host, path: f"{scheme}{sep}{host}{path}",
        st.sampled_from(["s3", "gs", "file", "S3", "Gs", "FILE", "http", "", "s3:", "1s3"]),
        st.sampled_from(["://", "://", ":/", ":", ":///", "://localhost/"]),
        st.one_of(valid_buckets, texts, st.sampled_from(["[", "[::1]", "u:p@bucket", "bucket:80", "", "Bucket"])),
        st.one_of(st.just(""), texts.map(lambda t: "/" + t), st.sampled_from(["/", "//", "/a/../b", "/%00", "/.."])),
    ),
)


@settings(FUZZ, max_examples=2000)
@given(urls)
def test_any_url_is_a_datastore_or_bad_input_and_nothing_else(text: str):
    try:
        url = DatastoreUrl.parse(text)
    except BadInput as exc:
        assert len(str(exc).splitlines()) == 1 and str(exc).startswith("bad datastore URL ")
        return
    shown = str(url)
    assert not any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in shown)
    if url.scheme == "file":
        assert url.bucket.startswith("/") and url.bucket.strip("/")
        return
    assert bucket_name_problem(url.scheme, url.bucket) is None
    assert DatastoreUrl.parse(shown) == url  # what syncops prints is the same datastore


endpoints = st.one_of(
    texts,
    st.builds(
        lambda scheme, user, host, port, rest: f"{scheme}://{user}{host}{port}{rest}",
        st.sampled_from(["http", "https", "HTTP", "ftp", ""]),
        st.sampled_from(["", "u:p@", "u@", "u:p@ss@", "%zz@", ":@"]),
        st.one_of(st.sampled_from(["127.0.0.1", "[::1]", "[::1", "host", "a b", "999.1.1.1", "h_1", ""]), texts),
        st.one_of(st.sampled_from(["", ":9000", ":0", ":65536", ":", ":99999", ":-1", ":1.5"]), texts),
        st.sampled_from(["", "/", "/x", "?q", "#f", "\n"]),
    ),
)


@settings(FUZZ, max_examples=1500)
@given(endpoints)
def test_an_endpoint_is_well_formed_or_refused_with_a_reason(text: str):
    problem = endpoint_problem(text)
    if problem is not None:
        assert isinstance(problem, str) and problem
        return
    parts = urlsplit(text)  # what the SDKs parse it with: no surprise left for them
    assert parts.scheme in ("http", "https") and parts.hostname
    assert parts.port is None or 0 < parts.port < 65536
    assert parts.path in ("", "/") and not parts.query and not parts.fragment


@settings(FUZZ, max_examples=500)
@given(
    st.lists(st.sampled_from(["a", "b", ".", "..", ""]), max_size=4),
    st.lists(st.sampled_from(["a", "b", "."]), max_size=4),
)
def test_paths_overlap_is_symmetric_and_the_root_overlaps_everything(left: list[str], right: list[str]):
    a, b = "/" + "/".join(left), "/" + "/".join(right)
    assert paths_overlap(a, b) == paths_overlap(b, a)
    assert paths_overlap(a, a) and paths_overlap("/", b)


# -- the command line, with the nastiest inputs -------------------------------------------------------

PASSWORD = "hunter2-nasty-Pa55"


def nasty_commands(tmp_path: Path) -> dict[str, list[str]]:
    store = tmp_path / "store"
    store.mkdir()
    (store / "a.txt").write_bytes(b"a")
    deep = tmp_path / "deep"
    deep.mkdir()
    (deep / ".datastore-index.json").write_bytes(
        b'{"version": 1, "entries": {}, "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    )
    twice = tmp_path / "twice"
    twice.mkdir()
    (twice / ".datastore-index.json").write_bytes(
        b'{"version": 1, "entries": {"\\u001b[2J\\u2028": {}, "\\u001b[2J\\u2028": {}}}'
    )
    cache = str(tmp_path / "cache")
    return {
        "terminal-escape-in-url": ["discover", "s3://bucket\x1b]0;pwned\x07/x"],
        "line-separator-in-url": ["discover", "gs://b\u2028ucket"],
        "huge-bucket-name": ["discover", "s3://" + "a" * 5000],
        "not-utf8-argument": ["discover", "s3://\udcff\udcfe-bucket/x"],
        "password-in-url": ["verify", f"s3://user:{PASSWORD}@bucket"],
        "file-root": ["hydrate", "file:///", cache],
        "dotted-root-and-dir-root": ["push", "file:///tmp/%2e%2e", "/"],
        "dir-root": ["bootstrap", f"file://{tmp_path}/absent", "/"],  # absent: nothing to write if it slipped
        "nul-in-path": ["discover", "file:///tmp/x%00y"],
        "unparseable-endpoint": ["discover", "s3://bucket", "--endpoint-url", "http://[::1"],
        "index-nested-too-deep": ["hydrate", f"file://{deep}", cache],
        "index-duplicate-escape-keys": ["discover", f"file://{twice}"],
        "usage-missing-dir": ["hydrate", f"file://{store}"],
        "usage-bad-concurrency": ["hydrate", f"file://{store}", cache, "--concurrency", "-1"],
        "usage-unknown-command": ["frobnicate\x1b[2J"],
    }


DOCUMENTED_EXIT_CODES = {2, 3, 4, 5, 6, 7}


@pytest.mark.parametrize("as_json", [False, True], ids=["human", "json"])
def test_the_nastiest_inputs_end_in_one_line_and_a_documented_exit_code(tmp_path: Path, as_json: bool):
    for case, args in nasty_commands(tmp_path).items():
        result = run_cli(*args, *(["--json"] if as_json else []))
        assert result.code in DOCUMENTED_EXIT_CODES, (case, result.code, result.stderr)
        assert "Traceback" not in result.stderr, case
        lines = result.stderr.splitlines()
        assert len(lines) == 1, (case, result.stderr)
        assert not any(unicodedata.category(ch) == "Cc" for ch in lines[0]), (case, lines[0])
        assert PASSWORD not in result.stdout + result.stderr, case
        if as_json:
            assert len(result.stdout.splitlines()) == 1, (case, result.stdout)
            payload = json.loads(result.stdout)
            assert (payload["status"], payload["exit_code"]) == ("error", result.code), case
        else:
            assert result.stdout == "", case
