"""The post-deploy step of ``pulumi up`` (the dynamic provider), called directly as the Pulumi engine
would call it, against real S3 (SeaweedFS) and GCS (fake-gcs-server) buckets.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.cloud import storage
from pulumi.dynamic import CreateResult, UpdateResult
from pulumi.dynamic.dynamic import serialize_provider

from syncops.discover import discover
from syncops.errors import AccessDenied
from syncops.provision.post_deploy import DiscoveryProvider, PostDeployFailed
from syncops.stores import open_store
from tests import servers
from tests.conftest import Datastore, clean_environment
from tests.proxy import Fault, Proxy, Seen

CLOUDS = {"s3": "aws", "gcs": "gcp"}
DATA = {"data/models/a.json": b'{"a": 1}', "data/models/b.json": b"[2]", "readme.txt": b"hello"}


def props(ds: Datastore, prefix: str | None = None) -> dict[str, str]:
    return {"cloud": CLOUDS[ds.kind], "bucket": ds.bucket, "prefix": ds.prefix if prefix is None else prefix}


def outs_of(result: CreateResult | UpdateResult) -> dict[str, Any]:
    assert result.outs is not None
    return result.outs


@pytest.fixture(params=["s3", "gcs"])
def seeded(request: pytest.FixtureRequest, make_datastore: Callable[..., Datastore]) -> Datastore:
    """A bucket holding data but no index, as after ``aws s3 cp`` or a restore."""
    ds = make_datastore(request.param, prefix="env/dev")
    ds.seed({**DATA, "_catalog.db": b"internal"})
    return ds


def test_create_publishes_a_real_index_and_reports_it(seeded: Datastore) -> None:
    result = DiscoveryProvider().create(props(seeded))
    outs = outs_of(result)

    assert outs["index_status"] == "discovered"
    assert outs["index_entries"] == 3
    assert outs["index_written"] is True
    assert outs["datastore_url"] == seeded.url
    index = seeded.index()
    assert index is not None and index["version"] == 1
    assert sorted(index["entries"]) == sorted(DATA)
    assert index["entries"]["readme.txt"]["size"] == 5
    assert result.id


def test_second_run_finds_the_index_and_leaves_its_version_unchanged(seeded: Datastore) -> None:
    provider = DiscoveryProvider()
    provider.create(props(seeded))
    version = seeded.index_version()
    raw_before = seeded.raw.get(seeded.full(".datastore-index.json"))

    again = provider.update("id", props(seeded), props(seeded))
    second_create = provider.create(props(seeded))

    for outs in (again.outs, second_create.outs):
        assert outs is not None
        assert outs["index_status"] == "found"
        assert outs["index_written"] is False
        assert outs["index_entries"] == 3
    assert seeded.index_version() == version
    assert seeded.raw.get(seeded.full(".datastore-index.json")) == raw_before


def test_diff_reruns_only_when_bucket_or_prefix_changes(seeded: Datastore) -> None:
    provider = DiscoveryProvider()
    olds = {**props(seeded), "index_status": "discovered", "index_entries": 3}

    assert provider.diff("id", olds, props(seeded)).changes is False
    assert provider.diff("id", olds, props(seeded, prefix="env/prod")).changes is True
    assert provider.diff("id", olds, {**props(seeded), "bucket": "another-bucket"}).changes is True
    assert provider.diff("id", olds, {**props(seeded), "cloud": "gcp" if seeded.kind == "s3" else "aws"}).changes


def test_update_to_a_new_prefix_discovers_that_prefix(seeded: Datastore) -> None:
    provider = DiscoveryProvider()
    provider.create(props(seeded))
    seeded.raw.put("env/prod/models/c.json", b"{}")

    result = provider.update("id", props(seeded), props(seeded, prefix="env/prod"))

    assert result.outs is not None
    assert result.outs["prefix"] == "env/prod"
    assert result.outs["index_status"] == "discovered"
    assert result.outs["index_entries"] == 1
    published = seeded.raw.get("env/prod/.datastore-index.json")
    assert published is not None and list(json.loads(published)["entries"]) == ["models/c.json"]


def test_empty_bucket_reports_empty_and_writes_nothing(make_datastore: Callable[..., Datastore]) -> None:
    ds = make_datastore("s3")
    outs = outs_of(DiscoveryProvider().create(props(ds)))

    assert outs["index_status"] == "empty"
    assert outs["index_entries"] == 0
    assert ds.raw.keys() == []


def test_delete_never_deletes_data_or_the_index(seeded: Datastore) -> None:
    provider = DiscoveryProvider()
    outs = outs_of(provider.create(props(seeded)))
    keys = seeded.raw.keys()
    assert seeded.full(".datastore-index.json") in keys

    provider.delete("id", outs)

    assert seeded.raw.keys() == keys


def test_s3_access_denied_fails_with_syncops_message(
    make_datastore: Callable[..., Datastore], monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = make_datastore("s3")
    ds.seed(DATA)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(AccessDenied) as denied:
        discover(open_store(ds.url))

    with pytest.raises(PostDeployFailed) as failed:
        DiscoveryProvider().create(props(ds))

    assert str(denied.value) in str(failed.value)
    assert "syncops exit code 3" in str(failed.value)
    assert failed.value.exit_code == 3
    assert ds.index() is None


def test_gcs_access_denied_fails_with_syncops_message(
    make_datastore: Callable[..., Datastore], monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = make_datastore("gcs")
    ds.seed(DATA)
    with Proxy(ds.endpoint) as proxy:
        proxy.add_fault(Fault(lambda method, path: True, status=403, times=None))
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.endpoint)
        with pytest.raises(AccessDenied) as denied:
            discover(open_store(ds.url))

        with pytest.raises(PostDeployFailed) as failed:
            DiscoveryProvider().create(props(ds))

    assert str(denied.value) in str(failed.value)
    assert failed.value.exit_code == 3
    assert ds.index() is None


def test_provider_survives_serialization_into_a_fresh_process(
    make_datastore: Callable[..., Datastore], tmp_path: Path
) -> None:
    """Pulumi pickles the provider with dill and runs it in its own process: that round trip must work."""
    ds = make_datastore("s3")
    ds.seed(DATA)
    blob = tmp_path / "provider.b64"
    blob.write_text(serialize_provider(DiscoveryProvider()))
    script = (
        "import base64, json, sys, dill\n"
        "provider = dill.loads(base64.b64decode(open(sys.argv[1]).read()))\n"
        "print(json.dumps(provider.create(json.loads(sys.argv[2])).outs))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(blob), json.dumps(props(ds))],
        env={**os.environ, **ds.env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )

    assert proc.returncode == 0, proc.stderr
    outs = json.loads(proc.stdout)
    assert outs["index_status"] == "discovered" and outs["index_entries"] == 3
    assert ds.index() is not None
    assert len(base64.b64decode(blob.read_text())) < 1000, "the provider must be pickled by reference"


# -- the provider's settings reach the step (issue 13, item 3) -------------------------------------------

MACHINE_KEY, MACHINE_SECRET = "AKIAMACHINEDEFAULT", "the-machines-own-secret"


def machine_cannot_reach(monkeypatch: pytest.MonkeyPatch, **extra: str) -> None:
    """The deploying machine's own AWS identity is wrong for every test server: only settings the step
    is given can succeed."""
    for key in list(os.environ):
        if key.startswith(("AWS_", "GOOGLE_", "GCLOUD_", "CLOUDSDK_", "STORAGE_EMULATOR_HOST")):
            monkeypatch.delenv(key)
    for key, value in {**clean_environment(), "AWS_ACCESS_KEY_ID": MACHINE_KEY, **extra}.items():
        if key.startswith(("AWS_", "STORAGE_EMULATOR_HOST")):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", MACHINE_SECRET)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")


def signed_by(seen: Seen) -> tuple[str, str]:
    """(access key id, region) of a SigV4-signed request."""
    scope = seen.headers["authorization"].split("Credential=", 1)[1].split(",", 1)[0].split("/")
    return scope[0], scope[2]


def test_stack_endpoint_region_and_static_keys_reach_the_bucket_the_machine_cannot(
    make_datastore: Callable[..., Datastore], monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = make_datastore("s3", prefix="env/dev")
    ds.seed(DATA)
    with Proxy(ds.endpoint) as stack_endpoint, Proxy(ds.endpoint) as machine_endpoint:
        machine_cannot_reach(monkeypatch, AWS_ENDPOINT_URL=machine_endpoint.endpoint)
        with pytest.raises(PostDeployFailed) as denied:  # the machine's defaults alone are refused
            DiscoveryProvider().create(props(ds))
        assert denied.value.exit_code == 3
        machine_endpoint.reset_counts()
        configured = {
            **props(ds),
            "aws_endpoint": stack_endpoint.endpoint,
            "aws_region": "eu-west-3",
            "aws_access_key": servers.ACCESS_KEY,
            "aws_secret_key": servers.SECRET_KEY,
        }

        first = outs_of(DiscoveryProvider().create(configured))
        again = outs_of(DiscoveryProvider().create(configured))  # reads the index through the data plane

    assert (first["index_status"], first["index_entries"], again["index_status"]) == ("discovered", 3, "found")
    assert machine_endpoint.seen == []
    assert {signed_by(seen) for seen in stack_endpoint.seen} == {(servers.ACCESS_KEY, "eu-west-3")}
    assert {"GET", "PUT"} <= {seen.method for seen in stack_endpoint.seen}
    assert servers.SECRET_KEY not in json.dumps([first, again])


def test_a_stack_profile_outranks_the_machines_environment_keys(
    make_datastore: Callable[..., Datastore], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ds = make_datastore("s3")
    ds.seed(DATA)
    config_file = tmp_path / "aws-config"
    config_file.write_text(
        "[profile datastore-deployer]\n"
        f"aws_access_key_id = {servers.ACCESS_KEY}\naws_secret_access_key = {servers.SECRET_KEY}\n"
    )
    machine_cannot_reach(monkeypatch, AWS_CONFIG_FILE=str(config_file))
    with Proxy(ds.endpoint) as server:
        with pytest.raises(PostDeployFailed, match="syncops exit code 3"):
            DiscoveryProvider().create({**props(ds), "aws_endpoint": server.endpoint})

        outs = outs_of(
            DiscoveryProvider().create(
                {**props(ds), "aws_endpoint": server.endpoint, "aws_profile": "datastore-deployer"}
            )
        )

    assert outs["index_status"] == "discovered" and outs["index_entries"] == 3
    assert {signed_by(seen)[0] for seen in server.seen} == {MACHINE_KEY, servers.ACCESS_KEY}
    assert ds.index() is not None


def test_an_unknown_profile_fails_with_exit_2_naming_it(
    make_datastore: Callable[..., Datastore], monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = make_datastore("s3")
    with pytest.raises(PostDeployFailed) as failed:
        DiscoveryProvider().create({**props(ds), "aws_profile": "no-such-profile"})
    assert failed.value.exit_code == 2
    assert "AWS profile 'no-such-profile' is not in the AWS config files" in str(failed.value)


def test_assume_roles_are_assumed_in_order_each_hop_signed_by_the_one_before(
    seaweed_sts: servers.Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = f"syncops-{uuid.uuid4().hex[:12]}"
    raw = servers.s3_client(seaweed_sts.endpoint)
    raw.create_bucket(Bucket=bucket)
    raw.put_object(Bucket=bucket, Key="models/a.json", Body=b"{}")
    machine_cannot_reach(monkeypatch)
    deployer, writer = servers.STS_ROLES
    with Proxy(seaweed_sts.endpoint) as server:
        outs = outs_of(
            DiscoveryProvider().create(
                {
                    "cloud": "aws",
                    "bucket": bucket,
                    "prefix": "",
                    "aws_endpoint": server.endpoint,
                    "aws_sts_endpoint": server.endpoint,
                    "aws_access_key": servers.ACCESS_KEY,
                    "aws_secret_key": servers.SECRET_KEY,
                    "aws_assume_roles": [
                        {"role_arn": deployer, "session_name": "deploy"},
                        {"role_arn": writer, "session_name": "syncops-discovery", "duration_seconds": 3600},
                    ],
                }
            )
        )

    assert outs["index_status"] == "discovered" and outs["index_entries"] == 1
    hops = [seen for seen in server.seen if b"Action=AssumeRole" in seen.body]
    assert [parse_qs(seen.body.decode())["RoleArn"] for seen in hops] == [[deployer], [writer]]
    assert parse_qs(hops[1].body.decode())["DurationSeconds"] == ["3600"]
    first_hop_key, second_hop_key = (signed_by(seen)[0] for seen in hops)
    assert first_hop_key == servers.ACCESS_KEY and "x-amz-security-token" not in hops[0].headers
    assert second_hop_key != servers.ACCESS_KEY and "x-amz-security-token" in hops[1].headers
    s3_requests = [seen for seen in server.seen if seen not in hops]
    assert s3_requests and all("x-amz-security-token" in seen.headers for seen in s3_requests)
    (writer_key,) = {signed_by(seen)[0] for seen in s3_requests}
    assert writer_key not in (servers.ACCESS_KEY, MACHINE_KEY, second_hop_key)


def test_a_role_that_cannot_be_assumed_fails_with_exit_3_naming_the_role(
    seaweed_sts: servers.Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    machine_cannot_reach(monkeypatch)
    role = "arn:aws:iam::000000000000:role/NotTrusted"
    with pytest.raises(PostDeployFailed) as failed:
        DiscoveryProvider().create(
            {
                "cloud": "aws",
                "bucket": "any-bucket",
                "prefix": "",
                "aws_endpoint": seaweed_sts.endpoint,
                "aws_sts_endpoint": seaweed_sts.endpoint,
                "aws_access_key": servers.ACCESS_KEY,
                "aws_secret_key": servers.SECRET_KEY,
                "aws_assume_roles": [{"role_arn": role}],
            }
        )
    assert failed.value.exit_code == 3
    assert f"AssumeRole {role}" in str(failed.value)
    assert servers.SECRET_KEY not in str(failed.value)


def test_wrong_configured_keys_are_denied_without_showing_the_secret(
    make_datastore: Callable[..., Datastore],
) -> None:
    ds = make_datastore("s3")
    ds.seed(DATA)
    secret = "configured-but-wrong-secret"
    with pytest.raises(PostDeployFailed) as failed:
        DiscoveryProvider().create({**props(ds), "aws_access_key": servers.ACCESS_KEY, "aws_secret_key": secret})
    assert failed.value.exit_code == 3
    assert "access keys given to syncops explicitly" in str(failed.value)
    assert secret not in str(failed.value)


class _RecordingClient(storage.Client):
    projects: list[str | None] = []

    def __init__(self, project: Any = None, *args: Any, **kwargs: Any) -> None:
        _RecordingClient.projects.append(project)
        super().__init__(project, *args, **kwargs)


@pytest.fixture
def gcs_projects(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """The project every google-cloud-storage client is made with (the real client, recorded)."""
    monkeypatch.setattr(_RecordingClient, "projects", [])
    monkeypatch.setattr(storage, "Client", _RecordingClient)
    return _RecordingClient.projects


def test_gcp_project_and_access_token_reach_the_client_and_the_server(
    make_datastore: Callable[..., Datastore], monkeypatch: pytest.MonkeyPatch, gcs_projects: list[str | None]
) -> None:
    ds = make_datastore("gcs", prefix="env/dev")
    ds.seed(DATA)
    with Proxy(ds.endpoint) as server:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.endpoint)
        monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "the-machines-project")
        token = "ya29.configured-access-token"
        gcs_projects.clear()  # the test's own client made the bucket

        outs = outs_of(DiscoveryProvider().create({**props(ds), "gcp_project": "acme-data", "gcp_access_token": token}))

    assert outs["index_status"] == "discovered" and outs["index_entries"] == 3
    assert gcs_projects == ["acme-data"]
    assert {seen.headers.get("authorization") for seen in server.seen} == {f"Bearer {token}"}
    assert token not in json.dumps(outs)


class TokenEndpoint:
    """A loopback OAuth token endpoint: trades a service account's signed JWT for an access token."""

    def __init__(self, token: str) -> None:
        self.assertions: list[dict[str, Any]] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the base class's name
                form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
                claims = form["assertion"][0].split(".")[1]
                endpoint.assertions.append(json.loads(base64.urlsafe_b64decode(claims + "==")))
                body = json.dumps({"access_token": token, "expires_in": 3600, "token_type": "Bearer"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/token"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def service_account_key(token_uri: str) -> dict[str, str]:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {
        "type": "service_account",
        "project_id": "key-file-project",
        "private_key_id": "0123456789abcdef",
        "private_key": pem,
        "client_email": "datastore-deployer@key-file-project.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "token_uri": token_uri,
    }


@pytest.mark.parametrize("given_as", ["json", "path"])
def test_gcp_credentials_key_file_is_the_identity_the_server_sees(
    given_as: str,
    make_datastore: Callable[..., Datastore],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    gcs_projects: list[str | None],
) -> None:
    ds = make_datastore("gcs")
    ds.seed(DATA)
    token_endpoint = TokenEndpoint("ya29.service-account-token")
    key = service_account_key(token_endpoint.url)
    key_file = tmp_path / "deployer.json"
    key_file.write_text(json.dumps(key))
    try:
        with Proxy(ds.endpoint) as server:
            monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.endpoint)
            credentials = json.dumps(key) if given_as == "json" else str(key_file)
            gcs_projects.clear()  # the test's own client made the bucket
            outs = outs_of(DiscoveryProvider().create({**props(ds), "gcp_credentials": credentials}))
    finally:
        token_endpoint.close()

    assert outs["index_status"] == "discovered"
    assert [claims["iss"] for claims in token_endpoint.assertions] == [key["client_email"]]
    assert {seen.headers.get("authorization") for seen in server.seen} == {"Bearer ya29.service-account-token"}
    assert gcs_projects == ["key-file-project"]  # no gcp:project: the key file's own


def test_unusable_gcp_credentials_fail_with_exit_2_without_quoting_them(
    make_datastore: Callable[..., Datastore],
) -> None:
    ds = make_datastore("gcs")
    for credentials in ("not-a-key-and-not-a-file", '{"type": "service_account", "private_key": "-----SECRET'):
        with pytest.raises(PostDeployFailed) as failed:
            DiscoveryProvider().create({**props(ds), "gcp_credentials": credentials})
        assert failed.value.exit_code == 2
        assert "Google credentials" in str(failed.value)
        assert credentials not in str(failed.value) and "SECRET" not in str(failed.value)
    incomplete = json.dumps({"type": "service_account", "private_key": "-----SECRET KEY-----"})
    with pytest.raises(PostDeployFailed) as failed:
        DiscoveryProvider().create({**props(ds), "gcp_credentials": incomplete})
    assert failed.value.exit_code == 2 and "SECRET" not in str(failed.value)
