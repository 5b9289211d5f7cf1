"""The index model and key rules (SPEC §2), without any server."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from syncops import index as idx
from syncops.discover import entries_from_listing
from syncops.errors import BadInput, CorruptIndex
from syncops.keys import KeyKind, classify, escape_key, is_internal, unsafe_reason
from syncops.stores.base import DatastoreUrl, ObjectInfo

SPEC_EXAMPLE = b"""{
  "version": 1,
  "lastPulled": "2026-05-04T12:00:00.000Z",
  "entries": {
    "data/models/a.json": {"key": "data/models/a.json", "size": 512, "lastModified": "2026-05-04T11:59:00.000Z"}
  }
}"""


def test_spec_example_parses_and_serializes_to_the_same_json():
    parsed = idx.parse(SPEC_EXAMPLE)
    assert parsed.last_pulled == "2026-05-04T12:00:00.000Z"
    entry = parsed.entries["data/models/a.json"]
    assert (entry.key, entry.size, entry.last_modified) == ("data/models/a.json", 512, "2026-05-04T11:59:00.000Z")
    assert json.loads(idx.serialize(parsed)) == json.loads(SPEC_EXAMPLE)


def test_unknown_fields_are_kept_when_rewritten():
    raw = {
        "version": 1,
        "lastPulled": "2026-05-04T12:00:00.000Z",
        "writer": {"tool": "swamp"},
        "entries": {
            "a": {"key": "a", "size": 1, "lastModified": "2026-05-04T11:59:00.000Z", "sha256": "ab", "owner": "x"}
        },
    }
    parsed = idx.parse(json.dumps(raw))
    merged = idx.merge(parsed, {"a": idx.Entry("a", 2, "2026-05-05T00:00:00.000Z")})
    out = json.loads(idx.serialize(merged))
    assert out["writer"] == {"tool": "swamp"}
    assert out["entries"]["a"] == {"key": "a", "size": 2, "lastModified": "2026-05-05T00:00:00.000Z", "owner": "x"}
    assert json.loads(idx.serialize(parsed)) == raw


def test_serialization_is_deterministic_and_sorted():
    entries = [idx.Entry(k, i, "2026-01-01T00:00:00.000Z") for i, k in enumerate(["b/z", "a", "b/a", "B"])]
    one = idx.serialize(idx.build(entries, "2026-01-01T00:00:00.000Z"))
    two = idx.serialize(idx.build(reversed(entries), "2026-01-01T00:00:00.000Z"))
    assert one == two
    assert list(json.loads(one)["entries"]) == ["B", "a", "b/a", "b/z"]


def test_the_base_version_token_is_left_out_of_the_remote_serialization_and_nothing_else():
    entry = idx.Entry(
        "a", 1, "2026-01-01T00:00:00.000Z", local_mtime="2026-01-01T00:00:00.000Z", sha256="0" * 64, version='"e1"'
    )
    index = idx.build([entry], "2026-01-01T00:00:00.000Z")
    remote = json.loads(idx.serialize(index, with_local=False))["entries"]["a"]
    assert remote == {
        "key": "a", "size": 1, "lastModified": "2026-01-01T00:00:00.000Z",
        "localMtime": "2026-01-01T00:00:00.000Z", "sha256": "0" * 64,
    }  # fmt: skip
    assert json.loads(idx.serialize(index))["entries"]["a"]["remoteVersion"] == '"e1"'


def test_optional_fields_of_another_type_are_kept_verbatim():
    text = json.dumps(
        {"version": 1, "lastPulled": None, "entries": {"a": {
            "key": "a", "size": 1, "lastModified": "2026-01-01T00:00:00.000Z", "sha256": 7, "localMtime": ["x"],
        }}}
    )  # fmt: skip
    entry = idx.parse(text).entries["a"]
    assert (entry.sha256, entry.content_sha256, entry.local_millis) == (None, None, None)
    assert json.loads(idx.serialize(idx.parse(text)))["entries"]["a"] == json.loads(text)["entries"]["a"]


def test_only_a_lowercase_hex_digest_is_a_content_identity():
    good = "ab" * 32
    for value, expected in ((good, good), (good.upper(), None), (good[:-1], None), ("", None), (good + "0", None)):
        assert idx.Entry("a", 1, "2026-01-01T00:00:00.000Z", sha256=value).content_sha256 == expected


def test_millisecond_timestamps_convert_exactly():
    for millis in (0, 1, 999, 1_764_239_123_123, 253_402_300_799_999):
        assert idx.millis_of(idx.timestamp_from_millis(millis)) == millis


def test_empty_index_serializes_to_valid_json():
    assert json.loads(idx.serialize(idx.build([], "2026-01-01T00:00:00.000Z")))["entries"] == {}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (b'{"version": 2, "entries": {}}', "version is 2"),
        (b'{"version": 1}', "'entries' is missing"),
        (b'{"version": 1, "entries": []}', "'entries' is missing or not an object"),
        (b'{"version": 1, "entries": {"a": {"key": "b", "size": 1, "lastModified": "2026-01-01T00:00:00Z"}}}', "key"),
        (b'{"version": 1, "entries": {"a": {"key": "a", "size": -1, "lastModified": "2026-01-01T00:00:00Z"}}}', "size"),
        (
            b'{"version": 1, "entries": {"a": {"key": "a", "size": true, "lastModified": "2026-01-01T00:00:00Z"}}}',
            "size",
        ),
        (b'{"version": 1, "entries": {"a": {"key": "a", "size": 1, "lastModified": "yesterday"}}}', "ISO-8601"),
        (b'{"version": 1, "entries": {"a": {"key": "a", "size": 1}}}', "lastModified"),
    ],
)
def test_corrupt_documents_are_refused_with_the_object_named(document, message):
    with pytest.raises(CorruptIndex) as caught:
        idx.parse(document, where="s3://b/p/.datastore-index.json")
    assert "s3://b/p/.datastore-index.json" in str(caught.value)
    assert message in str(caught.value)


def test_timestamps_have_milliseconds_and_z():
    moment = datetime(2026, 5, 4, 11, 59, 0, 123456, tzinfo=timezone.utc)
    assert idx.format_timestamp(moment) == "2026-05-04T11:59:00.123Z"
    assert idx.parse_timestamp("2026-05-04T11:59:00.123Z") == moment.replace(microsecond=123000)


def test_merge_keeps_every_base_entry_and_takes_changes():
    base = idx.build([idx.Entry(k, 1, "2026-01-01T00:00:00.000Z") for k in ("a", "b")])
    merged = idx.merge(base, {"b": idx.Entry("b", 9, "2026-02-01T00:00:00.000Z"), "c": idx.Entry("c", 3, "x")})
    assert sorted(merged.entries) == ["a", "b", "c"]
    assert merged.entries["b"].size == 9
    assert sorted(base.entries) == ["a", "b"]


@pytest.mark.parametrize(
    "key",
    [
        ".datastore-index.json",
        ".push-queue.json",
        ".datastore.lock",
        ".datastore-sync-state.json",
        "_index/by-name/a",
        "_control/lease",
        ".namespace.json",
        "data/.lock",
        "deep/er/.lock",
        "db/_catalog.db",
        "db/_catalog.db-wal",
        "db/_catalog.db-shm",
        "db/_catalog.db-journal",
        "team/.namespace.json",
    ],
)
def test_internal_files(key):
    assert is_internal(key)
    assert classify(key, 10) is KeyKind.INTERNAL


@pytest.mark.parametrize(
    "key",
    ["data/.datastore-index.json", "data/_index/x", "x/_control/y", "data/.push-queue.json", "a.lock", "_catalog.dbx"],
)
def test_root_only_names_are_data_below_the_root(key):
    assert classify(key, 1) is KeyKind.DATA


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("/etc/passwd", "absolute path"),
        ("../escape", "'..' segment"),
        ("a/../../b", "'..' segment"),
        ("a\\b", "backslash"),
        ("a\x00b", "NUL or control character"),
        ("a\nb", "NUL or control character"),
        ("a//b", "empty path segment"),
        ("a/./b", "'.' segment"),
        ("", "empty key"),
    ],
)
def test_unsafe_keys(key, reason):
    assert unsafe_reason(key) == reason
    assert classify(key, 1) is KeyKind.UNSAFE


def test_escape_key_shows_control_characters():
    assert escape_key("a\x00b\nc\\d") == '"a\\0b\\nc\\\\d"'


def test_directory_markers_are_not_data():
    assert classify("models/", 0) is KeyKind.DIRECTORY_MARKER
    assert classify("models/", 5) is KeyKind.UNSAFE


def test_listing_drops_internal_markers_namespaces_and_unsafe_keys():
    when = datetime(2026, 1, 1, tzinfo=timezone.utc)
    listing = [
        ObjectInfo(k, 0 if k.endswith("/") else 3, when)
        for k in [
            "ns/-early",
            "a",
            "ns/.namespace.json",
            "ns/deep/x",
            "nsx/y",
            "d/",
            "../bad",
            ".lock",
            ".namespace.json",
        ]
    ]
    result = entries_from_listing(listing)
    assert sorted(result.entries) == ["a", "nsx/y"]
    assert result.namespaces == ["ns/"]
    assert result.warnings == ["unsafe key skipped: \"../bad\" ('..' segment)"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("s3://bucket", DatastoreUrl("s3", "bucket", "")),
        ("s3://bucket/env/prod/", DatastoreUrl("s3", "bucket", "env/prod")),
        ("gs://bkt/p", DatastoreUrl("gs", "bkt", "p")),
        ("file:///tmp/x", DatastoreUrl("file", "/tmp/x", "")),
    ],
)
def test_datastore_urls(text, expected):
    assert DatastoreUrl.parse(text) == expected


@pytest.mark.parametrize(
    ("scheme", "bucket", "prefix", "text"),
    [
        ("s3", "bucket", "", "s3://bucket"),
        ("s3", "bucket", "/env/prod/", "s3://bucket/env/prod"),
        ("gs", "bkt", "p", "gs://bkt/p"),
    ],
)
def test_datastore_url_for_a_bucket_is_the_url_parse_accepts(scheme, bucket, prefix, text):
    url = DatastoreUrl.for_bucket(scheme, bucket, prefix)
    assert str(url) == text
    assert DatastoreUrl.parse(str(url)) == url


@pytest.mark.parametrize(("scheme", "prefix"), [("file", ""), ("http", ""), ("s3", "env/../prod")])
def test_datastore_url_for_a_bucket_refuses_what_parse_refuses(scheme, prefix):
    with pytest.raises(BadInput):
        DatastoreUrl.for_bucket(scheme, "bucket", prefix)


# -- defensive parsing: documents written by anyone with write access to the bucket ---------------

STAMP = "2026-05-04T11:59:00.000Z"


def _document(entries: str = "", top: str = "") -> bytes:
    return f'{{"version": 1, "lastPulled": "{STAMP}"{top}, "entries": {{{entries}}}}}'.encode()


def _entry(name: str = "a", **fields: object) -> str:
    body = {"key": name, "size": 1, "lastModified": STAMP, **fields}
    return f"{json.dumps(name)}: {json.dumps(body)}"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b'{"version": true, "entries": {}}', "version is true, syncops reads version 1"),
        (b'{"version": 1.0, "entries": {}}', "version is 1.0, syncops reads version 1"),
        (b'{"version": "1", "entries": {}}', 'version is "1", syncops reads version 1'),
        # duplicated keys, at every level: json.loads would keep the last, another reader the first
        (b'{"version": 1, "version": 1, "entries": {}}', 'the key "version" appears twice'),
        (_document(_entry("a") + ", " + _entry("a")), 'the key "a" appears twice'),
        (
            _document('"a": {"key": "a", "size": 1, "size": 2, "lastModified": "' + STAMP + '"}'),
            'key "size" appears twice',
        ),
        (_document(_entry("a", owner={"x": 1}).replace('{"x": 1}', '{"x": 1, "x": 2}')), 'key "x" appears twice'),
        (_document('"new\\nline": {}, "new\\nline": {}'), 'the key "new\\nline" appears twice'),
        # nesting: too deep for the parser, or too deep to be written back
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply to read"),
        (b'{"version": 1, "entries": {}, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
        (_document(top=', "writer": ' + "[" * 200 + "]" * 200), "nests deeper than 64 levels"),
        (_document(_entry("a", owner=json.loads("[" * 70 + "]" * 70))), 'entry "a" nests deeper than 64 levels'),
        # timestamps that parse but no file's mtime can hold (hydrate sets it from lastModified)
        (_document(_entry("a", lastModified="0001-01-01T00:00:00.000Z")), "outside the range a file's modification"),
        (_document(_entry("a", lastModified="9999-12-31T23:59:59.999Z")), "outside the range"),
        (_document(_entry("a", lastModified="1901-12-13T20:45:51.000Z")), "outside the range"),
        (_document(_entry("a", lastModified="2446-05-10T22:38:56.000Z")), "outside the range"),
        (_document(_entry("a", lastModified="0001-01-01T00:00:00+01:00")), "lastModified"),
        (_document(_entry("a", size=2**63)), "not a byte count"),
        (_document(_entry("a", size=1.0)), "not a byte count"),
        # a lone surrogate is not text: the index could never be written back as UTF-8
        (
            _document('"\\ud800": {"key": "\\ud800", "size": 1, "lastModified": "' + STAMP + '"}'),
            "lone UTF-16 surrogate",
        ),
        (_document(_entry("a", owner="x\\udfffy").replace("\\\\udfff", "\\udfff")), "lone UTF-16 surrogate"),
    ],
)
def test_hostile_documents_are_corrupt_indexes_naming_the_object(document: bytes, message: str):
    with pytest.raises(CorruptIndex) as caught:
        idx.parse(document, where="gs://bkt/p/.datastore-index.json")
    text = str(caught.value)
    assert text.startswith("gs://bkt/p/.datastore-index.json: ")
    assert message in text
    assert "\n" not in text and len(text) < 400


@pytest.mark.parametrize(
    "stamp",
    ["1901-12-13T20:45:52.000Z", "1970-01-01T00:00:00.000Z", "2446-05-10T22:38:55.000Z", "2026-05-04T12:00:00+02:00"],
)
def test_timestamps_a_file_can_hold_are_accepted(stamp: str):
    assert idx.parse(_document(_entry("a", lastModified=stamp))).entries["a"].last_modified == stamp


def test_valid_surrogate_pairs_and_moderate_nesting_are_fine():
    document = _document(
        '"\\ud83d\\ude00.txt": {"key": "\\ud83d\\ude00.txt", "size": 1, "lastModified": "' + STAMP + '"}',
        top=', "writer": ' + "[" * 60 + "]" * 60,
    )
    parsed = idx.parse(document)
    assert list(parsed.entries) == ["\U0001f600.txt"]
    assert idx.parse(idx.serialize(parsed)).entries == parsed.entries
