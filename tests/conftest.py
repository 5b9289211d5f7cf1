"""Shared fixtures: real servers (session-wide), a fresh datastore per test on each backend, and a
runner for the ``syncops`` command as a user would run it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from tests import servers

BACKENDS = ("file", "s3", "gcs")

# Property tests judge behaviour, never speed: on a loaded 2-core machine, generating examples may
# be slow, and that must not fail a run.
settings.register_profile("syncops", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("syncops")

#: Variables that could point the code under test at a real account; never inherited.
_LEAKY_PREFIXES = ("AWS_", "GOOGLE_", "GCLOUD_", "CLOUDSDK_", "STORAGE_EMULATOR_HOST")


def clean_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_LEAKY_PREFIXES)}
    env.update(
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_DEFAULT_REGION="us-east-1",
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture(scope="session")
def seaweed() -> Iterator[servers.Server]:
    server = servers.start_seaweed()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def seaweed_sts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Server]:
    """A SeaweedFS with its STS on: the test identity may assume ``servers.STS_ROLES``, in a chain too."""
    config = tmp_path_factory.mktemp("seaweed-iam") / "iam.json"
    config.write_text(json.dumps(servers.sts_iam_config()))
    server = servers.start_seaweed(extra_args=(f"-s3.iam.config={config}",))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_gcs() -> Iterator[servers.Server]:
    server = servers.start_fake_gcs()
    yield server
    server.stop()


class RawBucket:
    """Direct access to the bucket behind a datastore, bypassing syncops, for seeding and checking."""

    def put(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    def get(self, key: str) -> bytes | None:
        raise NotImplementedError

    def version(self, key: str) -> str | None:
        """What changes whenever the object is rewritten (ETag+LastModified, generation, inode+mtime)."""
        raise NotImplementedError

    def keys(self) -> list[str]:
        raise NotImplementedError

    def listing(self) -> dict[str, tuple[int, datetime]]:
        """key -> (size, last modified) as the server lists it."""
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError


class S3Raw(RawBucket):
    def __init__(self, client: Any, bucket: str) -> None:
        self.client, self.bucket = client, bucket

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)

    def get(self, key: str) -> bytes | None:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return None

    def version(self, key: str) -> str | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except self.client.exceptions.ClientError:
            return None
        return f"{head['ETag']}@{head['LastModified'].isoformat()}"

    def keys(self) -> list[str]:
        return sorted(self.listing())

    def listing(self) -> dict[str, tuple[int, datetime]]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return {i["Key"]: (i["Size"], i["LastModified"]) for page in pages for i in page.get("Contents", ())}

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)


class GcsRaw(RawBucket):
    def __init__(self, client: Any, bucket: str) -> None:
        self.client, self.bucket = client, client.bucket(bucket)

    def put(self, key: str, data: bytes) -> None:
        self.bucket.blob(key).upload_from_string(data)

    def get(self, key: str) -> bytes | None:
        from google.api_core.exceptions import NotFound

        try:
            return self.bucket.blob(key).download_as_bytes()
        except NotFound:
            return None

    def version(self, key: str) -> str | None:
        blob = self.bucket.get_blob(key)
        return None if blob is None else str(blob.generation)

    def keys(self) -> list[str]:
        return sorted(self.listing())

    def listing(self) -> dict[str, tuple[int, datetime]]:
        return {b.name: (int(b.size), b.updated) for b in self.client.list_blobs(self.bucket)}

    def delete(self, key: str) -> None:
        self.bucket.blob(key).delete()


class LocalRaw(RawBucket):
    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, key: str, data: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def get(self, key: str) -> bytes | None:
        path = self.root / key
        return path.read_bytes() if path.is_file() else None

    def version(self, key: str) -> str | None:
        path = self.root / key
        if not path.is_file():
            return None
        stat = path.stat()
        return f"{stat.st_ino}@{stat.st_mtime_ns}"

    def keys(self) -> list[str]:
        return sorted(self.listing())

    def listing(self) -> dict[str, tuple[int, datetime]]:
        out = {}
        for path in self.root.rglob("*"):
            if path.is_file() and path.relative_to(self.root).as_posix() != "_control/syncops.flock":
                stat = path.stat()
                out[str(path.relative_to(self.root))] = (
                    stat.st_size,
                    datetime.fromtimestamp(stat.st_mtime, tz=timezone.utc),
                )
        return out

    def delete(self, key: str) -> None:
        (self.root / key).unlink()


@dataclass
class Datastore:
    """One fresh datastore on one backend: its URL, the env the CLI needs, and raw bucket access."""

    kind: str
    url: str
    prefix: str
    env: dict[str, str]
    raw: RawBucket
    bucket: str = ""
    endpoint: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def full(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def seed(self, files: dict[str, bytes]) -> None:
        for key, data in files.items():
            self.raw.put(self.full(key), data)

    def index(self) -> dict[str, Any] | None:
        data = self.raw.get(self.full(".datastore-index.json"))
        return None if data is None else json.loads(data)

    def index_version(self) -> str | None:
        return self.raw.version(self.full(".datastore-index.json"))

    def store(self) -> Any:
        from syncops.stores import open_store

        return open_store(self.url)


@pytest.fixture
def make_datastore(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Datastore]:
    """Factory: ``make_datastore("s3", prefix="env/prod")`` gives a fresh, empty datastore.

    The process environment is set to the one the CLI gets, so in-process calls see the same server.
    """
    counter = iter(range(1000))

    def make(kind: str, prefix: str = "") -> Datastore:
        env = clean_environment()
        name = f"syncops-{uuid.uuid4().hex[:12]}"
        suffix = f"/{prefix}" if prefix else ""
        if kind == "s3":
            server = request.getfixturevalue("seaweed")
            client = servers.s3_client(server.endpoint)
            client.create_bucket(Bucket=name)
            env.update(
                AWS_ACCESS_KEY_ID=servers.ACCESS_KEY,
                AWS_SECRET_ACCESS_KEY=servers.SECRET_KEY,
                AWS_ENDPOINT_URL=server.endpoint,
            )
            ds = Datastore(kind, f"s3://{name}{suffix}", prefix, env, S3Raw(client, name), name, server.endpoint)
        elif kind == "gcs":
            server = request.getfixturevalue("fake_gcs")
            client = servers.gcs_client(server.endpoint)
            client.create_bucket(name)
            env.update(STORAGE_EMULATOR_HOST=server.endpoint)
            ds = Datastore(kind, f"gs://{name}{suffix}", prefix, env, GcsRaw(client, name), name, server.endpoint)
        elif kind == "file":
            root = tmp_path / f"bucket-{next(counter)}"
            root.mkdir()
            data_root = root / prefix if prefix else root
            data_root.mkdir(parents=True, exist_ok=True)
            ds = Datastore(kind, f"file://{data_root}", "", env, LocalRaw(data_root), str(data_root))
        else:
            raise ValueError(kind)
        for key in list(os.environ):
            if key.startswith(_LEAKY_PREFIXES) and key not in env:
                monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        return ds

    return make


@pytest.fixture(params=BACKENDS)
def datastore(request: pytest.FixtureRequest, make_datastore: Callable[..., Datastore]) -> Datastore:
    """A fresh datastore on each backend in turn (file, s3, gcs)."""
    return make_datastore(request.param)


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.stdout)


def syncops_command() -> list[str]:
    """The installed `syncops` console script (or `python -m syncops`), as a user would run it."""
    script = Path(sys.executable).parent / "syncops"
    return [str(script)] if script.exists() else [sys.executable, "-m", "syncops"]


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> CliResult:
    """Run ``syncops ARGS`` as a separate process, as a user or CI hook would."""
    proc = subprocess.run(
        [*syncops_command(), *args],
        env=env if env is not None else clean_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def cli() -> Callable[..., CliResult]:
    return run_cli
