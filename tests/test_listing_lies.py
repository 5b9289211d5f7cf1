"""Listings that lie (SPEC §3 discover 2): a page that promises more objects without a continuation
token, or hands back a token an earlier page already gave, is a remote failure (exit 4) with a clear
message. It is never a short listing that discovery publishes as the index, and never a listing that
asks for the same pages forever.

The lies are told by rewriting real listing pages from SeaweedFS and fake-gcs-server in the loopback
proxy: page ``n`` of the listing says "more follows" with the ``n``-th token of a script. botocore's
paginator would end quietly on the missing token (and loop on A, B, A); google-api-core's iterator
would ask again with an empty or repeated token forever.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import wire
from tests.conftest import run_cli
from tests.expect import data_files
from tests.proxy import Proxy

FILES = {"data/a.txt": b"alpha", "data/b.txt": b"bravo", "top.csv": b"x,y\n"}

#: Marks "more follows, but no token at all" in a script (S3 only: GCS has no such flag).
NO_TOKEN = None

#: case -> (backends, tokens of pages 1, 2, ..., the page that lies, what the message says)
CASES: dict[str, tuple[tuple[str, ...], list[str | None], str]] = {
    "truncated-without-token": (("s3",), [NO_TOKEN], "page 1 says more objects follow but carries no continuation"),
    "empty-token": (("s3", "gcs"), [""], "page 1 says more objects follow but carries no continuation"),
    "token-repeated-by-the-next-page": (
        ("s3", "gcs"),
        ["tok-A", "tok-A"],
        "page 2 repeats the continuation token of page 1",
    ),
    "token-repeated-later": (
        ("s3", "gcs"),
        ["tok-A", "tok-B", "tok-A"],
        "page 3 repeats the continuation token of page 1",
    ),
}

_S3_TOKEN = re.compile(rb"<NextContinuationToken>.*?</NextContinuationToken>")


def lying_pages(backend: str, script: list[str | None]) -> Callable[[str, str, int, bytes], bytes]:
    """A proxy rewrite giving listing page ``n`` the ``n``-th token of ``script`` and "more follows"."""
    pages = iter(script)

    def rewrite(method: str, path: str, status: int, body: bytes) -> bytes:
        if status != 200 or wire.request_kind(backend, method, path) != wire.LIST:
            return body
        token = next(pages)
        if backend == "s3":
            body = _S3_TOKEN.sub(b"", body).replace(
                b"<IsTruncated>false</IsTruncated>", b"<IsTruncated>true</IsTruncated>"
            )
            if token is not NO_TOKEN:
                body = body.replace(
                    b"<IsTruncated>true</IsTruncated>",
                    b"<IsTruncated>true</IsTruncated><NextContinuationToken>%s</NextContinuationToken>"
                    % token.encode(),
                )
            return body
        page = json.loads(body)
        page["nextPageToken"] = token
        return json.dumps(page).encode()

    return rewrite


@pytest.mark.parametrize(
    "backend,case", [(backend, case) for case, (backends, _, _) in CASES.items() for backend in backends]
)
def test_a_listing_that_lies_exits_4_and_publishes_nothing(make_datastore, tmp_path: Path, backend: str, case: str):
    _, script, said = CASES[case]
    ds = make_datastore(backend, prefix="env")
    ds.seed(FILES)
    target = tmp_path / "cache"
    with Proxy(ds.endpoint) as proxy:
        proxy.state.rewrites.append(lying_pages(backend, script))
        result = run_cli("bootstrap", ds.url, str(target), "--json", env=wire.proxied_env(backend, ds.env, proxy))

        assert result.code == 4, (result.stdout, result.stderr)
        # Stopped at the lying page: the listing is never asked for again (no loop), and nothing written.
        assert wire.count(backend, proxy, wire.LIST) == len(script)
        assert wire.count(backend, proxy, wire.INDEX_PUT) == 0
        assert wire.count(backend, proxy, wire.OBJECT_GET) == 0
    report = result.json
    assert (report["status"], report["exit_code"]) == ("error", 4)
    scheme = "s3" if backend == "s3" else "gs"
    assert f"listing {scheme}://{ds.bucket}/env/: {said}" in report["error"]
    assert len(result.stderr.splitlines()) == 1 and said in result.stderr
    assert "Traceback" not in result.stderr
    assert ds.index() is None, "no index was published from the short listing"
    assert not target.exists() or data_files(target) == {}


@pytest.mark.parametrize("backend", ["s3", "gcs"])
def test_verify_refuses_a_lying_listing_too(make_datastore, backend: str):
    """verify compares the index with a listing: a lying one is an error, not "objects missing"."""
    ds = make_datastore(backend)
    ds.seed(FILES)
    assert run_cli("discover", ds.url, env=ds.env).code == 0
    version = ds.index_version()
    with Proxy(ds.endpoint) as proxy:
        proxy.state.rewrites.append(lying_pages(backend, ["tok-A", "tok-A"]))
        result = run_cli("verify", ds.url, "--repair", "--json", env=wire.proxied_env(backend, ds.env, proxy))
        assert result.code == 4, (result.stdout, result.stderr)
        assert wire.count(backend, proxy, wire.INDEX_PUT) == 0
    assert "repeats the continuation token" in result.json["error"]
    assert ds.index_version() == version
