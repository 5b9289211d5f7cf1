"""Input checked up front (SPEC §4 exit 2): datastore URLs, bucket names, S3 endpoints and local
directories are refused with one clear line before any request is made, never read as some other
bucket (urlsplit drops tabs and newlines), never a "does not exist" from a server, never a panic in
the Rust S3 client.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from syncops.errors import BadInput
from syncops.stores.base import DatastoreUrl
from syncops.validate import bucket_name_problem, endpoint_problem, paths_overlap
from tests import wire
from tests.conftest import clean_environment, run_cli
from tests.expect import FAKE_AWS, assert_one_line_error
from tests.proxy import Proxy

# -- datastore URLs and bucket names ------------------------------------------------------------

BAD_URLS = {
    # urlsplit would delete the tab / newline and target "prod-data" / "bucket"
    "tab-in-bucket": ("s3://prod\t-data", "control character '\\t'"),
    "newline-in-bucket": ("gs://bucket\n/x", "control character '\\n'"),
    "escape-in-prefix": ("s3://bucket/pre\x1b[31mfix", "control character '\\x1b'"),
    "line-separator": ("s3://bucket/a\u2028b", "control character '\\u2028'"),
    "leading-space": (" s3://bucket", "leading or trailing whitespace"),
    "uppercase": ("s3://Bucket-Upper", "not an S3 bucket name"),
    "too-short": ("s3://ab", "3-63 characters"),
    "too-long": ("s3://" + "a" * 64, "3-63 characters"),
    "underscore-s3": ("s3://my_bucket", "not an S3 bucket name"),
    "double-dot": ("s3://my..bucket", "no '..'"),
    "ip-shaped": ("s3://192.168.1.10", "may not look like an IP address"),
    "port": ("s3://bucket:9000", "not an S3 bucket name"),
    "goog-prefix": ("gs://goog-data", "may not start with 'goog'"),
    "google-inside": ("gs://my-google-data", "contain 'google'"),
    "gcs-long-part": ("gs://" + "a" * 64 + ".example", "each dot-separated part 1-63"),
    "gcs-dash-end": ("gs://bucket-", "not a GCS bucket name"),
    "bad-ipv6": ("s3://[bucket", "Invalid IPv6 URL"),
    "file-root": ("file:///", "the file system root cannot be a datastore"),
    "file-root-dotdot": ("file:///tmp/..", "the file system root cannot be a datastore"),
    "file-nul": ("file:///tmp/a%00b", "control character '\\x00'"),
    "file-query": ("file:///tmp/x?y=1", "query strings and fragments are not allowed"),
}


@pytest.mark.parametrize("case", sorted(BAD_URLS))
def test_a_bad_datastore_url_is_refused_with_exit_2(case: str):
    url, needle = BAD_URLS[case]
    with pytest.raises(BadInput, match="bad datastore URL"):
        DatastoreUrl.parse(url)
    as_json = sorted(BAD_URLS).index(case) % 2 == 0  # half of the cases with --json
    result = run_cli("discover", url, *(["--json"] if as_json else []))
    assert_one_line_error(result, 2, needle, as_json=as_json)


@pytest.mark.parametrize(
    "url",
    [
        "s3://a.b-c",
        "s3://abc",
        "s3://" + "a" * 63,
        "s3://dir-bucket--usw2-az1--x-s3",  # a directory bucket: addressed like any bucket
        "s3://my-ap-abcdefghijklmnop-s3alias",  # an access point alias, usable as a bucket name
        "gs://a_b",
        "gs://" + ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 30]),  # 222 characters with dots
        "file:///tmp/x",
        "file://localhost/srv/data",
    ],
)
def test_names_the_providers_allow_are_accepted(url: str):
    assert str(DatastoreUrl.parse(url)).rstrip("/") == url.replace("localhost", "").rstrip("/")


def test_creating_a_bucket_applies_the_rules_that_only_matter_then():
    assert bucket_name_problem("s3", "data-s3alias") is None
    assert "reserved" in (bucket_name_problem("s3", "data-s3alias", creating=True) or "")
    assert bucket_name_problem("s3", "a-.b") is None
    assert bucket_name_problem("s3", "a-.b", creating=True) == "no '..', '.-' or '-.'"
    assert bucket_name_problem("gs", "a" * 64) is not None
    assert bucket_name_problem("gs", ".".join(["a" * 63] * 3) + "." + "b" * 31) is not None  # 223 characters


@pytest.mark.parametrize("backend", ["s3", "gcs"])
def test_a_bucket_name_no_provider_allows_never_reaches_the_server(make_datastore, backend: str):
    """Before: a request, then "bucket does not exist" (exit 4). Now: exit 2 and no request at all."""
    ds = make_datastore(backend)
    bad = "s3://Not_A_Bucket/env" if backend == "s3" else "gs://Not_A_Bucket/env"
    with Proxy(ds.endpoint) as proxy:
        result = run_cli("discover", bad, "--json", env=wire.proxied_env(backend, ds.env, proxy))
        assert_one_line_error(result, 2, "bucket name", as_json=True)
        assert proxy.seen == []


# -- endpoints ------------------------------------------------------------------------------------

BAD_ENDPOINTS = {
    "port-too-big": ("http://127.0.0.1:99999", "port 99999 is outside 1-65535"),
    "port-zero": ("http://127.0.0.1:0", "port 0 is outside 1-65535"),
    "unclosed-ipv6": ("http://[::1", "expected host[:port]"),
    "bad-ipv6": ("http://[not:an:address]:9000", "is not an IPv6 address"),
    "no-host": ("http://", "no host name"),
    "no-host-path": ("http:///x", "no path, query or fragment"),
    "no-scheme": ("127.0.0.1:9000", "expected http://host[:port]"),
    "ftp": ("ftp://host", "expected http://host[:port]"),
    "uppercase-scheme": ("HTTP://host", "expected http://host[:port]"),
    "path": ("http://host:9000/s3", "no path, query or fragment"),
    "query": ("http://host:9000?x=1", "no path, query or fragment"),
    "space": ("http://a b:9000", "is not a host name"),
    "newline": ("http://host:9000\n", "control character"),
    "bad-ipv4": ("http://999.1.1.1:9000", "is not an IPv4 address"),
    "empty-port": ("http://host:", "expected host[:port]"),
    "raw-at-in-password": ("http://user:p@ss@host:9000", "must be percent-encoded"),
}


@pytest.mark.parametrize("case", sorted(BAD_ENDPOINTS))
def test_a_malformed_endpoint_is_refused_before_any_client_is_made(case: str, tmp_path: Path):
    """Each of these reached the Rust S3 client before, where most made it panic (a traceback)."""
    endpoint, needle = BAD_ENDPOINTS[case]
    assert endpoint_problem(endpoint) is not None
    env = {**clean_environment(), **FAKE_AWS}
    result = run_cli("hydrate", "s3://some-bucket", str(tmp_path / "cache"), "--endpoint-url", endpoint, env=env)
    assert_one_line_error(result, 2, needle, as_json=False)
    assert "bad S3 endpoint --endpoint-url=" in result.stderr


@pytest.mark.parametrize("variable", ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"])
def test_a_malformed_endpoint_from_the_environment_is_named(variable: str):
    env = {**clean_environment(), **FAKE_AWS, variable: "http://127.0.0.1:99999"}
    result = run_cli("discover", "s3://some-bucket", "--json", env=env)
    assert_one_line_error(result, 2, f"bad S3 endpoint {variable}='http://127.0.0.1:99999'", as_json=True)
    # Only s3:// datastores use it: a file:// run with the same environment is not bothered.
    assert run_cli("discover", "file:///nonexistent-syncops-dir", env=env).code == 4


@pytest.mark.parametrize(
    "emulator,needle",
    [
        ("127.0.0.1:4443", "expected http://host[:port]"),  # the library wants the scheme too
        ("http://127.0.0.1:70000", "port 70000 is outside 1-65535"),
        ("http://host:4443\t", "control character"),
    ],
)
def test_a_malformed_gcs_emulator_url_is_refused_before_any_client_is_made(emulator: str, needle: str):
    env = {**clean_environment(), "STORAGE_EMULATOR_HOST": emulator}
    result = run_cli("discover", "gs://some-bucket", "--json", env=env)
    assert_one_line_error(result, 2, needle, as_json=True)
    assert "bad GCS emulator STORAGE_EMULATOR_HOST=" in result.stderr


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:9000",
        "http://127.0.0.1:9000/",
        "https://s3.eu-west-1.amazonaws.com",
        "http://[::1]:9000",
        "http://minio_1:9000",
        "http://user:p%40ss@host.example:8333",
        "http://localhost.:9000",
    ],
)
def test_well_formed_endpoints_are_accepted(endpoint: str):
    assert endpoint_problem(endpoint) is None


# -- local directories ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "a,b,overlap",
    [
        ("/", "/srv/cache", True),
        ("//", "/srv/cache", True),
        ("/srv/data", "/srv/data", True),
        ("/srv/data", "/srv/data/cache", True),
        ("/srv/data/cache/", "/srv/data", True),
        ("/srv/./data", "/srv/data/x", True),
        ("/srv/x/../data", "/srv/data", True),
        ("/srv/data", "/srv/database", False),
        ("/srv/data", "/srv/cache", False),
        ("/a", "/b", False),
    ],
)
def test_paths_overlap(a: str, b: str, overlap: bool):
    assert paths_overlap(a, b) is overlap
    assert paths_overlap(b, a) is overlap


def test_paths_overlap_wants_absolute_paths():
    with pytest.raises(ValueError):
        paths_overlap("relative", "/srv")


@pytest.mark.parametrize("command", ["hydrate", "push", "bootstrap"])
def test_a_directory_of_root_is_refused_as_overlapping(tmp_path: Path, command: str):
    """DIR "/" contains every datastore; the old string-prefix check compared against "//"."""
    # The datastore does not exist: should the check ever fail, the run stops at "does not exist".
    result = run_cli(command, f"file://{tmp_path}/absent", "/", "--json")
    assert_one_line_error(result, 2, "overlap", as_json=True)
