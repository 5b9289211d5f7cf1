"""Discovery on S3 without an SDK (stores/s3_lean.py): the signatures are botocore's, the index is the
one the boto3 path publishes, with the same requests, and neither botocore nor obstore is loaded; what
that path does not read with certainty (a redirect, a TLS failure, a proxy setting) goes to boto3."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from syncops.stores.s3_lean import Signer, usable
from tests import wire
from tests.conftest import run_cli
from tests.proxy import Fault, Proxy

NOW = datetime(2026, 11, 27, 21, 5, 9, tzinfo=timezone.utc)
KEY, SECRET = "AKIDEXAMPLE0000", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


def botocore_authorization(
    method: str, url: str, headers: dict[str, str], token: str | None, region: str, data: bytes = b""
) -> str:
    """The Authorization header botocore's S3 signer gives the same request at :data:`NOW`."""
    from unittest import mock

    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method=method, url=url, headers=dict(headers), data=data)
    with mock.patch("botocore.auth.get_current_datetime", return_value=NOW.replace(tzinfo=None)):
        S3SigV4Auth(Credentials(KEY, SECRET, token), "s3", region).add_auth(request)
    return str(request.headers["Authorization"])


LISTINGS = {
    "first page": {"list-type": "2", "prefix": "", "max-keys": "1000", "encoding-type": "url"},
    "odd prefix": {"list-type": "2", "prefix": "a b/c+d=e&f/ünï~!'()*", "max-keys": "1000", "encoding-type": "url"},
    "continuation": {
        "list-type": "2",
        "prefix": "env/prod/",
        "max-keys": "1000",
        "encoding-type": "url",
        "continuation-token": "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=",
    },
}


@pytest.mark.parametrize("token", [None, "FwoGZXIvYXdzEFAKE/TOKEN+="], ids=["keys", "session token"])
@pytest.mark.parametrize("case", list(LISTINGS))
def test_a_listing_request_is_signed_as_botocore_signs_it(case: str, token: str | None):
    query = LISTINGS[case]
    signer = Signer(KEY, SECRET, token, "eu-west-3")
    path = "/my-bucket"
    ours = signer.headers("GET", "127.0.0.1:9000", path, query, NOW, payload=EMPTY)
    from urllib.parse import quote

    url = "http://127.0.0.1:9000/my-bucket?" + "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in query.items()
    )
    sent = {name: value for name, value in ours.items() if name not in ("authorization", "host")}
    assert ours["authorization"] == botocore_authorization("GET", url, sent, token, "eu-west-3")


EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize("condition", [{"if-none-match": "*"}, {"if-match": '"0123456789abcdef0123456789abcdef"'}])
def test_a_conditional_put_is_signed_as_botocore_signs_it(condition: dict[str, str]):
    body = b'{"version": 1, "entries": {}}'
    payload = hashlib.sha256(body).hexdigest()
    key = "env/prod/.datastore-index.json"
    ours = Signer(KEY, SECRET, None, "us-east-1").headers(
        "PUT",
        "s3.example:8333",
        f"/bkt/{key}",
        {},
        NOW,
        payload=payload,
        extra={"content-type": "application/json", **condition},
    )
    sent = {name: value for name, value in ours.items() if name not in ("authorization", "host")}
    theirs = botocore_authorization("PUT", f"http://s3.example:8333/bkt/{key}", sent, None, "us-east-1", body)
    assert ours["authorization"] == theirs


def test_the_lean_path_is_taken_only_where_it_is_exact(monkeypatch):
    monkeypatch.delenv("SYNCOPS_S3_LEAN", raising=False)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert usable("http://127.0.0.1:9000", "us-east-1", True)
    assert not usable(None, "us-east-1", True), "AWS's own endpoints stay with boto3"
    assert not usable("http://127.0.0.1:9000", None, True), "no region: boto3 finds one"
    assert not usable("http://127.0.0.1:9000", "us-east-1", False), "keys from a profile or role: boto3"
    assert not usable("ftp://127.0.0.1:9000", "us-east-1", True)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert not usable("http://127.0.0.1:9000", "us-east-1", True), "boto3 honours proxies, this path does not"
    monkeypatch.delenv("HTTPS_PROXY")
    monkeypatch.setenv("SYNCOPS_S3_LEAN", "off")
    assert not usable("http://127.0.0.1:9000", "us-east-1", True)


#: Runs the CLI in-process and reports which SDKs it loaded (stdout: the report, then one line of JSON).
LOADED = (
    "import sys, json\n"
    "from syncops.cli import main\n"
    "try:\n"
    "    main(sys.argv[1:])\n"
    "except SystemExit as done:\n"
    "    code = done.code\n"
    "print(json.dumps({'code': code, 'botocore': 'botocore' in sys.modules, 'obstore': 'obstore' in sys.modules}))\n"
)


def discover_in_process(url: str, env: dict[str, str]) -> tuple[dict, dict]:
    proc = subprocess.run(
        [sys.executable, "-c", LOADED, "discover", url, "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    report, loaded = proc.stdout.strip().splitlines()
    return json.loads(report), json.loads(loaded)


KEYS = ["data/a b+c=d.txt", "data/ünïcødé/é.bin", "data/x~y!z'(1).csv", *(f"many/{i:04d}" for i in range(2100))]


def test_discovery_publishes_the_boto3_index_with_the_same_requests_and_no_sdk(make_datastore, tmp_path: Path):
    ds = make_datastore("s3", prefix="env/prod")
    for key in KEYS:
        ds.raw.put(f"env/prod/{key}", b"" if key.startswith("many/") else key.encode())
    indexes, requests = {}, {}
    for lean in ("on", "off"):
        with Proxy(ds.endpoint) as proxy:
            env = {**ds.env, "AWS_ENDPOINT_URL": proxy.endpoint, "SYNCOPS_S3_LEAN": lean}
            report, loaded = discover_in_process(ds.url, env)
            requests[lean] = [(wire.request_kind("s3", s.method, s.path), s.status) for s in proxy.seen]
        assert loaded["code"] == 0 and report["status"] == "discovered" and report["entries"] == len(KEYS)
        index = json.loads(ds.raw.get("env/prod/.datastore-index.json"))
        indexes[lean] = {**index, "lastPulled": None}
        ds.raw.delete("env/prod/.datastore-index.json")
        if lean == "on":
            assert loaded == {"code": 0, "botocore": False, "obstore": False}
        else:
            assert loaded["botocore"] is True
    assert indexes["on"] == indexes["off"]
    assert sorted(indexes["on"]["entries"]) == sorted(KEYS)
    assert requests["on"] == requests["off"]
    # the index GET (404), three listing pages, one create-only PUT whose body went whole the first time
    assert [kind for kind, _ in requests["on"]].count(wire.LIST) == 3
    assert [status for kind, status in requests["on"] if kind == wire.INDEX_PUT] == [200]


def test_a_throttled_page_is_retried_and_the_listing_is_whole(make_datastore):
    ds = make_datastore("s3")
    for i in range(1500):
        ds.raw.put(f"k/{i:04d}", b"")
    with Proxy(ds.endpoint) as proxy:
        proxy.add_fault(
            Fault(
                match=lambda method, path: (
                    wire.request_kind("s3", method, path) == wire.LIST and "continuation" in path
                ),
                status=503,
                times=2,
                reply_body=b"<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>",
            )
        )
        report, loaded = discover_in_process(ds.url, {**ds.env, "AWS_ENDPOINT_URL": proxy.endpoint})
        pages = [s.status for s in proxy.seen if wire.request_kind("s3", s.method, s.path) == wire.LIST]
    assert loaded == {"code": 0, "botocore": False, "obstore": False}
    assert report["entries"] == 1500
    assert pages == [200, 503, 503, 200]


def test_an_index_whose_bytes_disagree_with_their_etag_is_read_again_and_used_exact(make_datastore):
    """The index GET through the lean path is checked against its ETag (an MD5: a single-part PUT); one
    byte flipped on the wire is caught, the index is read again on the download path and used as it is."""
    ds = make_datastore("s3")
    ds.raw.put("a.txt", b"a")
    assert run_cli("discover", ds.url, env=ds.env).code == 0
    published = ds.raw.get(".datastore-index.json")
    flips = {"left": 1}

    def flip(method: str, path: str, status: int, body: bytes) -> bytes:
        if wire.request_kind("s3", method, path) != wire.INDEX_GET or status != 200 or not flips["left"]:
            return body
        flips["left"] -= 1
        return bytes([body[0] ^ 0xFF]) + body[1:]

    with Proxy(ds.endpoint) as proxy:
        proxy.state.rewrites.append(flip)
        report, loaded = discover_in_process(ds.url, {**ds.env, "AWS_ENDPOINT_URL": proxy.endpoint})
        gets = [s.status for s in proxy.seen if wire.request_kind("s3", s.method, s.path) == wire.INDEX_GET]
    assert loaded["code"] == 0 and report["status"] == "found" and report["entries"] == 1
    assert flips["left"] == 0 and gets == [200, 200]
    assert ds.raw.get(".datastore-index.json") == published  # nothing written


def discover_with_listing_answer(ds, status: int, body: bytes, headers: dict[str, str] | None = None):
    """``syncops discover`` with every listing request answered ``status`` and ``body`` at the proxy:
    the result, and the user agent of each listing request sent (``syncops`` or boto3's)."""
    ds.raw.put("a.txt", b"a")
    is_list = lambda method, path: wire.request_kind("s3", method, path) == wire.LIST  # noqa: E731
    with Proxy(ds.endpoint) as proxy:
        proxy.add_fault(Fault(match=is_list, status=status, times=None, reply_body=body, reply_headers=headers))
        result = run_cli("discover", ds.url, env={**ds.env, "AWS_ENDPOINT_URL": proxy.endpoint})
        agents = [
            s.headers.get("user-agent", "").split("/")[0].lower() for s in proxy.seen if is_list(s.method, s.path)
        ]
    return result, agents


def test_a_redirect_is_one_request_and_one_line_naming_the_region(make_datastore):
    """For an explicit endpoint botocore's redirector follows nothing: the lean path reports it at once."""
    redirect = b"<Error><Code>PermanentRedirect</Code><Message>elsewhere</Message></Error>"
    result, agents = discover_with_listing_answer(
        make_datastore("s3"), 301, redirect, {"x-amz-bucket-region": "ap-south-2"}
    )
    assert result.code == 2, result.stderr
    assert "is in region 'ap-south-2'" in result.stderr and "AWS_REGION=ap-south-2" in result.stderr
    assert agents == ["syncops"]


def test_an_answer_it_does_not_read_goes_to_boto3_which_reports_it(make_datastore):
    """Another 4xx is not interpreted by the lean path: boto3 sends that request again and reports it."""
    ds = make_datastore("s3")
    refusal = b"<Error><Code>InvalidArgument</Code><Message>no such thing</Message></Error>"
    result, agents = discover_with_listing_answer(ds, 400, refusal)
    assert result.code == 4, result.stderr
    assert "ListObjectsV2" in result.stderr and "InvalidArgument" in result.stderr and "no such thing" in result.stderr
    assert agents == ["syncops", "boto3"], "one lean request, then boto3's (not retried: a 400)"
    assert ds.raw.get(".datastore-index.json") is None


def test_wrong_keys_exit_3_with_one_request_and_the_usual_message(make_datastore):
    ds = make_datastore("s3")
    ds.raw.put("a.txt", b"a")
    with Proxy(ds.endpoint) as proxy:
        env = {**ds.env, "AWS_ENDPOINT_URL": proxy.endpoint, "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
        report, loaded = discover_in_process(ds.url, env)
        statuses = [s.status for s in proxy.seen]
    assert loaded["code"] == 3
    assert statuses == [403], "the index GET is denied once; nothing is retried or sent again"
    assert "credentials from environment" in report["error"] and "s3:GetObject" in report["error"]


def self_signed(where: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1, its own CA, and its key (openssl, one day)."""
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", str(key),
         "-out", str(cert), "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_an_https_endpoint_is_verified_against_aws_ca_bundle_and_a_refused_one_goes_to_the_sdks(
    make_datastore, tmp_path: Path
):
    """As boto3 does, the lean path trusts exactly ``AWS_CA_BUNDLE`` when it is set; a certificate it
    refuses is not read as an answer: the request goes the way it went before (the index GET through
    obstore's data plane), which tries with its own CAs and fails: exit 4 naming the TLS refusal,
    nothing sent."""
    import ssl

    cert, key = self_signed(tmp_path)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    ds = make_datastore("s3")
    ds.raw.put("a.txt", b"a")
    with Proxy(ds.endpoint, tls=server) as proxy:
        env = {**ds.env, "AWS_ENDPOINT_URL": proxy.endpoint, "AWS_MAX_ATTEMPTS": "2"}
        refused, loaded_refused = discover_in_process(ds.url, env)
        assert proxy.seen == [], "no request got past a refused certificate"
        report, loaded = discover_in_process(ds.url, {**env, "AWS_CA_BUNDLE": str(cert)})
    assert loaded_refused["code"] == 4 and loaded_refused["obstore"] is True, refused
    assert refused["error"].startswith(f"GetObject {ds.url}/_index/_meta.json"), refused["error"]
    assert "TLS: the server's certificate was not accepted" in refused["error"], "the reason, not just 'error sending'"
    assert loaded == {"code": 0, "botocore": False, "obstore": False}
    assert report["status"] == "discovered" and report["entries"] == 1
