"""Benchmark: syncops against s5cmd, rclone and the AWS CLI, end to end, on loopback servers.

Not a unit test: ``make bench`` runs it. Every row is a command a user runs against a real server
(SeaweedFS for S3, fake-gcs-server for GCS), timed as a whole process, best of N, tools interleaved
so a slow spell of this shared machine hits every tool alike. Ratios are against s5cmd (and rclone)
in the same run, because absolute times here vary by 2x between runs. The jobs (``--only``):

* ``hydrate``    2,000 x 4 KiB, 200 x 1 MiB, 10 x 64 MiB into an empty directory;
* ``push``       2,000 x 4 KiB and 4 x 256 MiB from a directory into an empty bucket;
* ``discovery``  an unindexed bucket of N real objects (``--discovery-count``, default 20,000): time and
                 peak RSS of ``syncops discover`` against ``s5cmd ls`` and ``rclone lsf -R``;
* ``large``      single large objects: 1 x 1 GiB and 4 x 256 MiB hydrated;
* ``gcs``        1,000 x 4 KiB hydrated from fake-gcs-server, against rclone;
* ``rehydrate``  the second hydrate of 2,000 x 4 KiB with nothing changed, against each peer's second run;
* ``fixed``      each tool's start-up plus one GET;
* ``scale``      (not by default) discovery memory on a *simulated* listing of 10k / 100k / 1M objects.

``--quick`` shrinks every size (and runs once) so one row can be tried in seconds. Writes
``bench/results.md`` and ``bench/results.png``; all data lives under ``bench/work`` and is deleted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from tests import servers  # noqa: E402

BIN = Path(sys.executable).parent
WORK = HERE / "work"
KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
INDEX = ".datastore-index.json"

TOOLS = ("syncops", "s5cmd", "rclone", "aws")
#: A yardstick, not a peer (large objects only): s5cmd's download, then an fsync of each file it wrote,
#: i.e. what s5cmd would take if it made its files durable before calling them done, as syncops does.
DURABLE_S5CMD = "s5cmd+fsync"
#: Process ids of the servers running now, whose CPU each timed run also reports.
SERVER_PIDS: list[int] = []
JOBS = ("hydrate", "push", "discovery", "large", "gcs", "rehydrate", "fixed", "scale")
DEFAULT_JOBS = ("hydrate", "push", "discovery", "large", "gcs", "rehydrate", "fixed")


@dataclass(frozen=True)
class Dataset:
    name: str
    count: int
    size: int

    @property
    def total(self) -> int:
        return self.count * self.size

    @property
    def label(self) -> str:
        if self.size >= GiB and self.size % GiB == 0:
            unit = f"{self.size // GiB} GiB"
        elif self.size >= MiB:
            unit = f"{self.size // MiB} MiB"
        else:
            unit = f"{self.size // KiB} KiB"
        return f"{self.count:,} x {unit}"

    def keys(self) -> list[str]:
        width = len(str(self.count))
        return [f"data/{i % 20:02d}/object-{i:0{width}d}.bin" for i in range(self.count)]


@dataclass(frozen=True)
class Sizes:
    """Every size of one run; ``quick()`` is the same shape, small enough to try a row in seconds."""

    hydrate: tuple[Dataset, ...] = (
        Dataset("small", 2000, 4 * KiB),
        Dataset("medium", 200, 1 * MiB),
        Dataset("large", 10, 64 * MiB),
    )
    push: tuple[Dataset, ...] = (Dataset("push-small", 2000, 4 * KiB), Dataset("push-large", 4, 256 * MiB))
    large: tuple[Dataset, ...] = (Dataset("one-huge", 1, 1 * GiB), Dataset("four-big", 4, 256 * MiB))
    gcs: Dataset = Dataset("gcs-small", 1000, 4 * KiB)
    rehydrate: Dataset = Dataset("rehydrate", 2000, 4 * KiB)
    discovery: int = 20_000
    scale: tuple[int, ...] = (10_000, 100_000, 1_000_000)

    @classmethod
    def quick(cls, discovery: int | None) -> Sizes:
        return cls(
            hydrate=(Dataset("small", 200, 4 * KiB), Dataset("medium", 20, 1 * MiB), Dataset("large", 2, 16 * MiB)),
            push=(Dataset("push-small", 200, 4 * KiB), Dataset("push-large", 2, 16 * MiB)),
            large=(Dataset("one-huge", 1, 32 * MiB), Dataset("four-big", 2, 16 * MiB)),
            gcs=Dataset("gcs-small", 100, 4 * KiB),
            rehydrate=Dataset("rehydrate", 200, 4 * KiB),
            discovery=discovery or 1000,
            scale=(10_000,),
        )


@dataclass
class Timing:
    tool: str
    runs: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)  # peak RSS of the process, MB
    server: list[float] = field(default_factory=list)  # CPU seconds the server spent during the run

    @property
    def best(self) -> float:
        return min(self.runs)

    @property
    def best_cpu(self) -> float:
        return self.cpu[self.runs.index(self.best)]

    @property
    def peak_rss(self) -> float:
        return max(self.rss)

    @property
    def best_server(self) -> float:
        return self.server[self.runs.index(self.best)]


@dataclass
class Row:
    """One job of the summary: the same work done by each tool."""

    job: str  # hydrate, push, discovery, large, gcs, rehydrate
    label: str  # what was moved, e.g. "2,000 x 4 KiB"
    dataset: Dataset | None
    timings: dict[str, Timing] = field(default_factory=dict)
    note: str = ""

    @property
    def title(self) -> str:
        return f"{self.job} {self.label}"

    def ratio(self, peer: str) -> float | None:
        ours, theirs = self.timings.get("syncops"), self.timings.get(peer)
        if ours is None or theirs is None or not ours.runs or not theirs.runs:
            return None
        return ours.best / theirs.best

    def record(self, tool: str, wall: float, cpu: float, rss: float, server: float = math.nan) -> None:
        timing = self.timings.setdefault(tool, Timing(tool))
        timing.runs.append(wall)
        timing.cpu.append(cpu)
        timing.rss.append(rss)
        timing.server.append(server)
        print(
            f"  {self.title:>32}  {tool:8} {wall:7.2f} s  (cpu {cpu:6.2f} s, server cpu {server:5.2f} s, "
            f"peak RSS {rss:6.0f} MB)",
            flush=True,
        )


# -- running a tool -------------------------------------------------------------------------------------


#: GNU time measures a child forked from its own small process: a child forked from this Python process
#: would carry the parent's ~70 MB high-water mark into its own ``ru_maxrss`` (Linux keeps it across exec).
GNU_TIME = Path("/usr/bin/time")


def measure(
    argv: Sequence[str], env: dict[str, str], *, stdout: Path | None = None
) -> tuple[float, float, float, float]:
    """Wall seconds, CPU seconds (user + system), peak RSS (MB; NaN without GNU time) of one command, and
    the CPU seconds the running servers spent meanwhile (the server shares the machine's cores)."""
    with tempfile.TemporaryDirectory() as scratch, open(stdout or os.devnull, "wb") as out:
        usage = Path(scratch) / "usage"
        launcher = [str(GNU_TIME), "-f", "%U %S %M", "-o", str(usage)] if GNU_TIME.exists() else []
        err = Path(scratch) / "stderr"
        with open(err, "wb") as errors:
            server_before = server_cpu()
            start = time.perf_counter()
            proc = subprocess.run([*launcher, *argv], env=env, stdout=out, stderr=errors, stdin=subprocess.DEVNULL)
            wall = time.perf_counter() - start
            server = server_cpu() - server_before
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}:\n{err.read_text(errors='replace')[-3000:]}")
        if launcher:
            user, system, peak_kib = usage.read_text().split()[-3:]
            return wall, float(user) + float(system), int(peak_kib) / 1024, server
    return wall, float("nan"), float("nan"), server


def server_cpu() -> float:
    """CPU seconds (user + system) the running servers have used so far; NaN where /proc cannot say."""
    total = 0.0
    for pid in SERVER_PIDS:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            return math.nan
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def sha256_rate() -> float:
    """Bytes per second one core hashes with SHA-256 here (best of three passes over 256 MiB)."""
    import hashlib

    block = os.urandom(8 * MiB)
    best = math.inf
    for _ in range(3):
        digest = hashlib.sha256()
        start = time.perf_counter()
        for _ in range(32):
            digest.update(block)
        best = min(best, time.perf_counter() - start)
    return 32 * len(block) / best


def run_quietly(argv: Sequence[str], env: dict[str, str]) -> None:
    proc = subprocess.run(list(argv), env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")


def tool_env(endpoint: str, gcs_endpoint: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_", "GOOGLE_", "STORAGE_"))}
    env.update(
        AWS_ACCESS_KEY_ID=servers.ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=servers.SECRET_KEY,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        RCLONE_CONFIG=os.devnull,
    )
    if gcs_endpoint:
        env["STORAGE_EMULATOR_HOST"] = gcs_endpoint
    return env


def syncops(*args: str) -> list[str]:
    return [str(BIN / "syncops"), *args]


def s5cmd(endpoint: str, *args: str) -> list[str]:
    return [str(BIN / "s5cmd"), "--endpoint-url", endpoint, *args]


def rclone_s3(endpoint: str, path: str) -> str:
    return f":s3,provider=Other,env_auth=true,endpoint='{endpoint}',force_path_style=true:{path}"


def rclone_gcs(endpoint: str, path: str) -> str:
    """rclone's gcs backend against the emulator: the JSON API's base path, no credentials."""
    return f":gcs,anonymous=true,endpoint='{endpoint}/storage/v1/':{path}"


RCLONE_FLAGS = ("--transfers", "32", "--checkers", "32")


def hydrate_command(tool: str, bucket: str, target: Path, endpoint: str) -> list[str]:
    """Each tool's download of a whole bucket, as a user runs it; concurrency at each tool's default
    except rclone's (raised to syncops's 32)."""
    if tool == "syncops":
        return syncops("hydrate", f"s3://{bucket}", str(target), "--endpoint-url", endpoint)
    if tool == "s5cmd":
        return s5cmd(endpoint, "cp", f"s3://{bucket}/*", f"{target}/")
    if tool == "rclone":
        return [str(BIN / "rclone"), "copy", rclone_s3(endpoint, bucket), str(target), *RCLONE_FLAGS]
    if tool == "aws":
        return [str(BIN / "aws"), "s3", "sync", f"s3://{bucket}", str(target), "--endpoint-url", endpoint, "--quiet"]
    if tool == DURABLE_S5CMD:
        s5 = shlex.quote(str(BIN / "s5cmd"))
        script = f'{s5} --endpoint-url "$1" cp "$2" "$3/" && find "$3" -type f -exec sync -- {{}} +'
        return ["sh", "-c", script, "sh", endpoint, f"s3://{bucket}/*", str(target)]
    raise ValueError(tool)


def resync_command(tool: str, bucket: str, target: Path, endpoint: str) -> list[str]:
    """Each tool's way to bring a directory up to date (s5cmd: ``sync``; the others sync anyway)."""
    if tool == "s5cmd":
        return s5cmd(endpoint, "sync", f"s3://{bucket}/*", f"{target}/")
    return hydrate_command(tool, bucket, target, endpoint)


def push_command(tool: str, source: Path, bucket: str, endpoint: str) -> list[str]:
    if tool == "syncops":
        return syncops("push", f"s3://{bucket}", str(source), "--endpoint-url", endpoint)
    if tool == "s5cmd":
        return s5cmd(endpoint, "cp", f"{source}/*", f"s3://{bucket}/")
    if tool == "rclone":
        return [str(BIN / "rclone"), "copy", str(source), rclone_s3(endpoint, bucket), *RCLONE_FLAGS]
    if tool == "aws":
        return [str(BIN / "aws"), "s3", "sync", str(source), f"s3://{bucket}", "--endpoint-url", endpoint, "--quiet"]
    raise ValueError(tool)


def one_object_command(tool: str, bucket: str, target: Path, endpoint: str) -> list[str]:
    """Each tool's fixed cost: start-up plus one small GET (syncops: hydrate of an up-to-date cache)."""
    if tool == "syncops":
        return hydrate_command(tool, bucket, target, endpoint)
    if tool == "s5cmd":
        return s5cmd(endpoint, "cp", f"s3://{bucket}/{INDEX}", f"{target}/")
    if tool == "rclone":
        return [str(BIN / "rclone"), "copyto", rclone_s3(endpoint, f"{bucket}/{INDEX}"), str(target / INDEX)]
    if tool == "aws":
        argv = [str(BIN / "aws"), "s3", "cp", f"s3://{bucket}/{INDEX}", f"{target}/", "--endpoint-url", endpoint]
        return [*argv, "--quiet"]
    raise ValueError(tool)


# -- data -----------------------------------------------------------------------------------------------


def fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def make_files(dataset: Dataset) -> Path:
    """The dataset as local files of random bytes (not compressible, not deduplicated)."""
    root = fresh(WORK / "source" / dataset.name)
    for key in dataset.keys():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as out:
            left = dataset.size
            while left:
                chunk = min(left, 16 * MiB)
                out.write(os.urandom(chunk))
                left -= chunk
    return root


def seed_s3(endpoint: str, bucket: str, dataset: Dataset) -> None:
    """Create ``bucket`` and fill it with the dataset (written locally, then copied up by s5cmd)."""
    servers.s3_client(endpoint).create_bucket(Bucket=bucket)
    source = make_files(dataset)
    run_quietly(s5cmd(endpoint, "cp", f"{source}/*", f"s3://{bucket}/"), tool_env(endpoint))
    shutil.rmtree(source, ignore_errors=True)


def seed_many(endpoint: str, bucket: str, count: int) -> None:
    """``count`` small objects fast: one local file, copied to every key by one ``s5cmd run``."""
    servers.s3_client(endpoint).create_bucket(Bucket=bucket)
    one = WORK / "one-object"
    one.write_bytes(os.urandom(100))
    commands = WORK / "seed-commands.txt"
    width = len(str(count))
    with open(commands, "w") as out:
        for i in range(count):
            out.write(f"cp {one} s3://{bucket}/data/{i % 100:02d}/object-{i:0{width}d}.bin\n")
    run_quietly(s5cmd(endpoint, "--numworkers", "32", "run", str(commands)), tool_env(endpoint))
    commands.unlink()
    one.unlink()


def count_objects(endpoint: str, bucket: str) -> tuple[int, set[int]]:
    """Data objects in ``bucket`` (the index left out) and their sizes."""
    pages = servers.s3_client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=bucket)
    items = [i for page in pages for i in page.get("Contents", ()) if i["Key"] != INDEX]
    return len(items), {i["Size"] for i in items}


def drop_bucket(endpoint: str, bucket: str) -> None:
    """Delete a bucket and everything in it (SeaweedFS drops the bucket's collection whole)."""
    client = servers.s3_client(endpoint)
    try:
        client.delete_bucket(Bucket=bucket)
    except Exception:
        run_quietly(s5cmd(endpoint, "rm", f"s3://{bucket}/*"), tool_env(endpoint))
        client.delete_bucket(Bucket=bucket)


def check_target(target: Path, dataset: Dataset) -> None:
    files = [p for p in target.rglob("*") if p.is_file() and p.name != INDEX]
    sizes = {p.stat().st_size for p in files}
    if len(files) != dataset.count or sizes != {dataset.size}:
        raise RuntimeError(f"{target}: {len(files)} files of sizes {sorted(sizes)[:5]}, expected {dataset.label}")


def settle() -> None:
    """Write back dirty pages so one run's writeback does not bill the next run's fsyncs."""
    os.sync()


def interleaved(repeats: int, tools: Iterable[str], run: Callable[[str, int], None]) -> None:
    for attempt in range(repeats):
        for tool in tools:  # interleaved, so a slow spell of the machine hits every tool alike
            settle()
            run(tool, attempt)


# -- the jobs -------------------------------------------------------------------------------------------


def bench_hydrate(
    job: str, endpoint: str, datasets: Sequence[Dataset], repeats: int, tools: Sequence[str]
) -> list[Row]:
    return [hydrate_row(job, endpoint, dataset, repeats, tools) for dataset in datasets]


def hydrate_row(job: str, endpoint: str, dataset: Dataset, repeats: int, tools: Sequence[str]) -> Row:
    """Each tool downloads the whole bucket into a fresh empty directory."""
    env = tool_env(endpoint)
    bucket = f"bench-{dataset.name}"
    print(f"seeding {dataset.label} ...", flush=True)
    seed_s3(endpoint, bucket, dataset)
    # The index exists before timing starts, as it does for every peer after the first.
    run_quietly(syncops("discover", f"s3://{bucket}", "--endpoint-url", endpoint), env)
    row = Row(job, dataset.label, dataset)

    def one(tool: str, attempt: int) -> None:
        target = fresh(WORK / "target" / f"{dataset.name}-{tool}")
        row.record(tool, *measure(hydrate_command(tool, bucket, target, endpoint), env))
        check_target(target, dataset)
        shutil.rmtree(target, ignore_errors=True)

    interleaved(repeats, tools, one)
    drop_bucket(endpoint, bucket)
    return row


def bench_push(endpoint: str, datasets: Sequence[Dataset], repeats: int, tools: Sequence[str]) -> list[Row]:
    return [push_row(endpoint, dataset, repeats, tools) for dataset in datasets]


def push_row(endpoint: str, dataset: Dataset, repeats: int, tools: Sequence[str]) -> Row:
    """Each tool uploads a directory into a fresh empty bucket (syncops: no base in the directory)."""
    env = tool_env(endpoint)
    client = servers.s3_client(endpoint)
    print(f"writing {dataset.label} locally ...", flush=True)
    source = make_files(dataset)
    row = Row("push", dataset.label, dataset)

    def one(tool: str, attempt: int) -> None:
        for state in source.iterdir():  # push's base and state files: every run starts from none
            if state.name != "data":
                shutil.rmtree(state) if state.is_dir() else state.unlink()
        bucket = f"bench-{dataset.name}-{tool}-{attempt}"
        client.create_bucket(Bucket=bucket)
        row.record(tool, *measure(push_command(tool, source, bucket, endpoint), env))
        count, sizes = count_objects(endpoint, bucket)
        if count != dataset.count or sizes != {dataset.size}:
            raise RuntimeError(f"push by {tool}: {count} objects of sizes {sorted(sizes)[:5]} in {bucket}")
        drop_bucket(endpoint, bucket)

    interleaved(repeats, tools, one)
    shutil.rmtree(source, ignore_errors=True)
    return row


def bench_discovery(endpoint: str, count: int, repeats: int, tools: Sequence[str]) -> Row:
    """An unindexed bucket of ``count`` real objects: ``syncops discover`` lists, builds and publishes
    the index; the peers list (``s5cmd ls``, ``rclone lsf -R``), output to a file."""
    env = tool_env(endpoint)
    client = servers.s3_client(endpoint)
    bucket = "bench-discovery"
    print(f"seeding {count:,} objects ...", flush=True)
    started = time.perf_counter()
    seed_many(endpoint, bucket, count)
    print(f"  seeded in {time.perf_counter() - started:.1f} s", flush=True)
    row = Row("discovery", f"{count:,} objects", None)
    listing = WORK / "listing.txt"
    argv = {
        "syncops": syncops("discover", f"s3://{bucket}", "--endpoint-url", endpoint, "--json"),
        "s5cmd": s5cmd(endpoint, "ls", f"s3://{bucket}/*"),
        "rclone": [str(BIN / "rclone"), "lsf", "-R", "--files-only", rclone_s3(endpoint, bucket)],
    }

    def one(tool: str, attempt: int) -> None:
        client.delete_object(Bucket=bucket, Key=INDEX)
        row.record(tool, *measure(argv[tool], env, stdout=listing))
        text = listing.read_text()
        found = json.loads(text)["entries"] if tool == "syncops" else len(text.splitlines())
        if found != count:
            raise RuntimeError(f"discovery by {tool}: {found} objects, expected {count}")
        listing.unlink()

    interleaved(repeats, [t for t in tools if t in argv], one)
    drop_bucket(endpoint, bucket)
    return row


def bench_gcs(gcs_endpoint: str, dataset: Dataset, repeats: int, tools: Sequence[str]) -> Row:
    """Hydrate from fake-gcs-server: syncops (STORAGE_EMULATOR_HOST) against rclone's gcs backend."""
    env = tool_env("", gcs_endpoint)
    bucket = f"bench-{dataset.name}"
    print(f"seeding {dataset.label} on fake-gcs-server ...", flush=True)
    servers.gcs_client(gcs_endpoint).create_bucket(bucket)
    source = make_files(dataset)
    run_quietly([str(BIN / "rclone"), "copy", str(source), rclone_gcs(gcs_endpoint, bucket), *RCLONE_FLAGS], env)
    shutil.rmtree(source, ignore_errors=True)
    run_quietly(syncops("discover", f"gs://{bucket}"), env)
    row = Row("gcs hydrate", dataset.label, dataset)
    argv = {
        "syncops": lambda target: syncops("hydrate", f"gs://{bucket}", str(target)),
        "rclone": lambda target: [
            str(BIN / "rclone"),
            "copy",
            rclone_gcs(gcs_endpoint, bucket),
            str(target),
            *RCLONE_FLAGS,
        ],
    }

    def one(tool: str, attempt: int) -> None:
        target = fresh(WORK / "target" / f"gcs-{tool}")
        row.record(tool, *measure(argv[tool](target), env))
        check_target(target, dataset)
        shutil.rmtree(target, ignore_errors=True)

    interleaved(repeats, [t for t in tools if t in argv], one)
    return row


def bench_rehydrate(endpoint: str, dataset: Dataset, repeats: int, tools: Sequence[str]) -> Row:
    """The second run with nothing changed: each tool's own first run fills its directory (untimed),
    then its second runs are timed (s5cmd: ``sync``, since its ``cp`` downloads everything again)."""
    env = tool_env(endpoint)
    bucket = f"bench-{dataset.name}"
    print(f"seeding {dataset.label} ...", flush=True)
    seed_s3(endpoint, bucket, dataset)
    run_quietly(syncops("discover", f"s3://{bucket}", "--endpoint-url", endpoint), env)
    targets = {tool: fresh(WORK / "target" / f"rehydrate-{tool}") for tool in tools}
    for tool, target in targets.items():
        run_quietly(resync_command(tool, bucket, target, endpoint), env)
        check_target(target, dataset)
    row = Row("rehydrate", f"{dataset.label}, up to date", dataset)

    def one(tool: str, attempt: int) -> None:
        before = {p: p.stat().st_mtime_ns for p in targets[tool].rglob("*.bin")}
        row.record(tool, *measure(resync_command(tool, bucket, targets[tool], endpoint), env))
        after = {p: p.stat().st_mtime_ns for p in targets[tool].rglob("*.bin")}
        if after != before:
            changed = sum(1 for p in after if after[p] != before.get(p))
            row.note += f" {tool} rewrote {changed} files on an up-to-date run."

    interleaved(repeats, tools, one)
    for target in targets.values():
        shutil.rmtree(target, ignore_errors=True)
    return row


def bench_fixed_cost(endpoint: str, bucket: str, repeats: int, tools: Sequence[str]) -> dict[str, float]:
    """Best time of each tool's start-up + one GET, to tell fixed cost from transfer speed."""
    env = tool_env(endpoint)
    target = fresh(WORK / "target" / "fixed")
    run_quietly(hydrate_command("syncops", bucket, target, endpoint), env)  # now up to date
    best: dict[str, float] = {}
    for _ in range(repeats):
        for tool in tools:
            wall = measure(one_object_command(tool, bucket, target, endpoint), env)[0]
            best[tool] = min(best.get(tool, wall), wall)
    for tool, wall in best.items():
        print(f"  start-up + one GET  {tool:8} {wall:6.2f} s", flush=True)
    shutil.rmtree(target, ignore_errors=True)
    return best


def bench_scale(counts: Sequence[int]) -> list[dict[str, float]]:
    """Discovery of a *generated* listing (no server) in a fresh process each: memory only."""
    rows = []
    for count in counts:
        proc = subprocess.run(
            [sys.executable, str(HERE / "scale.py"), str(count)], capture_output=True, text=True, check=True
        )
        row = json.loads(proc.stdout)
        rows.append(row)
        print(f"  simulated listing {count:>9,}: {row['seconds']:6.2f} s, peak RSS {row['peak_rss_mb']:6.1f} MB")
    return rows


# -- the report -----------------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    def first_line(argv: list[str]) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        except OSError:
            return "?"
        text = (out.stdout or out.stderr).strip().splitlines()
        return text[0] if text else "?"

    return {
        "syncops": first_line(syncops("--version")),
        "s5cmd": first_line([str(BIN / "s5cmd"), "version"]),
        "rclone": first_line([str(BIN / "rclone"), "version"]),
        "aws": first_line([str(BIN / "aws"), "--version"]),
    }


#: Issue 12's targets per job: (goal, ceiling) as syncops's time over the peer's, and which peer.
TARGETS: dict[str, tuple[str, float, float]] = {
    "hydrate": ("s5cmd", 1.0, 1.5),
    "push": ("s5cmd", 1.0, 1.5),
    "discovery": ("s5cmd", 1.0, 1.5),
    "large": ("s5cmd", 1.0, 1.3),
    "gcs hydrate": ("rclone", 1.0, 2.0),
}


def ratio_cell(value: float | None, bold: bool = False) -> str:
    if value is None:
        return "-"
    text = f"{value:.2f}x"
    return f"**{text}**" if bold else text


def verdicts(rows: Sequence[Row]) -> list[str]:
    lines = []
    for row in rows:
        if row.job == "rehydrate":
            ours = row.timings.get("syncops")
            others = [t for tool, t in row.timings.items() if tool != "syncops"]
            if ours and others:
                fastest = min(others, key=lambda t: t.best)
                met = ours.best < fastest.best
                lines.append(
                    f"* {row.title}: {ours.best:.2f} s against the fastest peer's {fastest.best:.2f} s "
                    f"({fastest.tool}); target: below every peer: {'met' if met else 'NOT met'}."
                )
            continue
        if row.job not in TARGETS:
            continue
        peer, goal, ceiling = TARGETS[row.job]
        ratio = row.ratio(peer)
        if ratio is None:
            continue
        verdict = "met" if ratio <= goal else ("within the ceiling" if ratio <= ceiling else "NOT met")
        line = f"* {row.title}: {ratio:.2f}x {peer}'s time (target {goal:.1f}x, ceiling {ceiling:.1f}x): {verdict}"
        if row.job == "discovery" and "s5cmd" in row.timings and "syncops" in row.timings:
            ours, theirs = row.timings["syncops"].peak_rss, row.timings["s5cmd"].peak_rss
            if not (math.isnan(ours) or math.isnan(theirs)):
                met = "met" if ours <= theirs else "NOT met"
                line += f"; peak RSS {ours:.0f} MB vs s5cmd's {theirs:.0f} MB (target: at most s5cmd's): {met}"
        lines.append(line + ".")
    return lines


def floors(rows: Sequence[Row], hash_rate: float | None) -> list[str]:
    """For each large-object row: s5cmd's time once its files are made durable (measured), and the least
    time a tool that also hashes every byte could take on these cores: the least CPU a peer's best run
    needed for the download (its own and the server's) plus the hash, perfectly spread over the cores."""
    lines = []
    cores = os.cpu_count() or 1
    for row in rows:
        s5cmd, durable = row.timings.get("s5cmd"), row.timings.get(DURABLE_S5CMD)
        if row.job != "large" or s5cmd is None or row.dataset is None:
            continue
        parts = []
        if durable is not None:
            parts.append(
                f"s5cmd followed by an fsync of each file it wrote takes {durable.best / s5cmd.best:.2f}x "
                "s5cmd's time"
            )
        peers = [
            t
            for tool, t in row.timings.items()
            if tool in ("s5cmd", "rclone") and not math.isnan(t.best_server) and not math.isnan(t.best_cpu)
        ]
        if hash_rate and peers:
            lean = min(peers, key=lambda t: t.best_cpu + t.best_server)
            hashing = row.dataset.total / hash_rate
            least = (lean.best_cpu + lean.best_server + hashing) / cores
            parts.append(
                f"the least CPU a peer's best run took ({lean.tool}: {lean.best_cpu:.2f} s, and the server's "
                f"{lean.best_server:.2f} s) plus a sha256 of every byte ({hashing:.2f} s at {hash_rate / 1e9:.2f} "
                f"GB/s) need at least {least:.2f} s on {cores} cores, {least / s5cmd.best:.2f}x s5cmd's time, "
                "even perfectly overlapped"
            )
        if parts:
            lines.append(f"* {row.title}: " + "; ".join(parts) + ".")
    return lines


def write_results(
    rows: Sequence[Row],
    scale: Sequence[dict[str, float]],
    fixed: dict[str, float],
    repeats: int,
    png: Path | None,
    argv: Sequence[str],
    hash_rate: float | None = None,
) -> str:
    lines = [
        "# syncops performance",
        "",
        f"One run of `{' '.join(['python bench/run.py', *argv])}` "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}) on this machine: {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, SeaweedFS `weed mini` and "
        "fake-gcs-server on loopback (sharing the same cores). Every figure is a whole command as a user runs it "
        f"against the server, best of {repeats}, tools interleaved; ratios are syncops's best time over the peer's "
        "in the same run (below 1.0: syncops is faster). syncops's modules are byte-compiled first, as a "
        "`pip install` leaves them (the AWS CLI's already are).",
        "",
        "## Summary",
        "",
        "| job | syncops | s5cmd | rclone | aws | syncops ÷ s5cmd | syncops ÷ rclone |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        cells = [f"{row.timings[t].best:.2f} s" if t in row.timings else "-" for t in TOOLS]
        lines.append(
            f"| {row.title} | " + " | ".join(cells) + f" | {ratio_cell(row.ratio('s5cmd'), True)} "
            f"| {ratio_cell(row.ratio('rclone'), True)} |"
        )
    lines += ["", "Targets (issue 12):", "", *verdicts(rows), ""]
    floor_lines = floors(rows, hash_rate)
    if floor_lines:
        lines += [
            "Large objects, against what keeping SPEC §3's promises costs on this machine (s5cmd neither "
            "hashes nor fsyncs what it downloads):",
            "",
            *floor_lines,
            "",
        ]
    if png is not None:
        lines += [f"![syncops's time relative to s5cmd and rclone, per job]({png.name})", ""]
    lines += [
        "## Every row",
        "",
        "| job | tool | best time | throughput | objects/s | CPU (best run) | server CPU (same run) | peak RSS "
        "| time vs s5cmd |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        base = row.timings.get("s5cmd")
        for tool in (*TOOLS, DURABLE_S5CMD):
            t = row.timings.get(tool)
            if t is None:
                continue
            data = row.dataset
            throughput = f"{data.total / MiB / t.best:,.0f} MiB/s" if data and row.job != "rehydrate" else "-"
            rate = f"{data.count / t.best:,.0f}" if data and row.job != "rehydrate" else "-"
            ratio = f"{t.best / base.best:.2f}x" if base else "-"
            lines.append(
                f"| {row.title} | {tool} | {t.best:.2f} s | {throughput} | {rate} | {t.best_cpu:.2f} s "
                f"| {'-' if math.isnan(t.best_server) else f'{t.best_server:.2f} s'} "
                f"| {'-' if math.isnan(t.peak_rss) else f'{t.peak_rss:.0f} MB'} | {ratio} |"
            )
    notes = [f"* {row.title}:{row.note}" for row in rows if row.note]
    if notes:
        lines += ["", *notes]
    lines.append("")
    if fixed:
        lines += [
            "## Fixed cost per run",
            "",
            "Each tool's start-up plus one small GET (s5cmd, rclone, aws: copy the index object; syncops: hydrate "
            "of an up-to-date cache, which is one GET):",
            "",
            "| tool | start-up + one GET |",
            "| --- | ---: |",
            *(f"| {tool} | {fixed[tool]:.2f} s |" for tool in TOOLS if tool in fixed),
            "",
        ]
    if scale:
        lines += [
            "## Discovery memory on a simulated listing (not end to end)",
            "",
            "A store whose `list()` yields generated objects (no server, no HTTP), through the real `discover()`; "
            "fresh process per size, peak RSS is the process's `VmHWM`. A bound on the engine's own memory only: "
            "the end-to-end discovery row above is what a user sees.",
            "",
            "| listed objects | time | peak RSS | index bytes |",
            "| ---: | ---: | ---: | ---: |",
        ]
        for s in scale:
            lines.append(
                f"| {int(s['count']):,} | {s['seconds']:.2f} s | {s['peak_rss_mb']:.0f} MB "
                f"| {int(s['index_bytes']) / MiB:,.1f} MiB |"
            )
        lines.append("")
    lines += ["## Versions and commands", ""]
    lines += [f"* {name}: `{version}`" for name, version in versions().items()]
    lines += [
        "",
        "All against the same endpoint, credentials from the environment; concurrency at each tool's default "
        "except rclone's, raised to syncops's 32:",
        "",
        "* hydrate: `syncops hydrate s3://BUCKET DIR`, `s5cmd cp 's3://BUCKET/*' DIR/`, "
        "`rclone copy :s3,...:BUCKET DIR --transfers 32 --checkers 32`, `aws s3 sync s3://BUCKET DIR`;",
        "* push into an empty bucket: `syncops push s3://BUCKET DIR` (no base in DIR), "
        "`s5cmd cp 'DIR/*' s3://BUCKET/`, "
        "`rclone copy DIR :s3,...:BUCKET`, `aws s3 sync DIR s3://BUCKET`;",
        "* discovery of an unindexed bucket: `syncops discover s3://BUCKET --json` (list, build, publish create-only), "
        "`s5cmd ls 's3://BUCKET/*'`, `rclone lsf -R --files-only :s3,...:BUCKET` (listings written to a file); "
        "peak RSS is GNU time's `%M` for that process alone;",
        "* GCS: `syncops hydrate gs://BUCKET DIR` with `STORAGE_EMULATOR_HOST`, "
        "`rclone copy :gcs,anonymous=true,endpoint='http://HOST:PORT/storage/v1/':BUCKET DIR`;",
        "* rehydrate (nothing changed since the tool's own first run): syncops `hydrate`, `s5cmd sync`, "
        "`rclone copy`, `aws s3 sync`;",
        f"* large objects, also `{DURABLE_S5CMD}`: `s5cmd cp`, then `find DIR -type f -exec sync -- {{}} +` "
        "(coreutils `sync FILE…` fsyncs each file): a yardstick for what making the files durable costs, not a peer.",
        "",
        "syncops fsyncs every file before renaming it into place; the other tools do not. `os.sync()` runs before "
        "each timed run so no run pays for the previous one's writeback.",
        "",
    ]
    return "\n".join(lines)


def draw_chart(rows: Sequence[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in rows if r.ratio("s5cmd") is not None or r.ratio("rclone") is not None]
    if not shown:
        return
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(shown) + 1.6), dpi=120)
    height = 0.38
    for offset, peer, color in ((-height / 2, "s5cmd", "#2b6cb0"), (height / 2, "rclone", "#90cdf4")):
        ys = [i + offset for i, r in enumerate(shown) if r.ratio(peer) is not None]
        xs = [r.ratio(peer) or 0.0 for r in shown if r.ratio(peer) is not None]
        bars = ax.barh(ys, xs, height, label=f"syncops ÷ {peer}", color=color, edgecolor="#2d3748", linewidth=0.5)
        ax.bar_label(bars, labels=[f"{x:.2f}" for x in xs], fontsize=8, padding=2)
    ax.axvline(1.0, color="#2d3748", linewidth=0.8, linestyle="--")
    ax.set_yticks(range(len(shown)))
    ax.set_yticklabels([r.title for r in shown], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("syncops's time relative to the peer's (below 1: syncops is faster)")
    ax.set_title("syncops vs s5cmd and rclone, end to end on loopback servers (best of N)")
    ax.legend(frameon=False, loc="lower right")
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# -- main -----------------------------------------------------------------------------------------------


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--only", default=",".join(DEFAULT_JOBS), help="comma-separated jobs of: " + ",".join(JOBS))
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma-separated subset of " + ",".join(TOOLS))
    parser.add_argument("--repeats", type=int, default=None, help="runs per tool (best is kept); default 3, 1 quick")
    parser.add_argument("--quick", action="store_true", help="small sizes, one run: try a row in seconds")
    parser.add_argument("--discovery-count", type=int, default=None, help="objects for discovery (default 20000)")
    parser.add_argument("--output", type=Path, default=HERE / "results.md")
    args = parser.parse_args(argv)
    args.jobs = tuple(j for j in args.only.split(",") if j)
    unknown = set(args.jobs) - set(JOBS)
    if unknown:
        parser.error(f"unknown job(s) {', '.join(sorted(unknown))}; choose from {', '.join(JOBS)}")
    args.tool_list = tuple(t for t in TOOLS if t in args.tools.split(","))
    if "syncops" not in args.tool_list:
        parser.error("--tools must include syncops")
    args.sizes = Sizes.quick(args.discovery_count) if args.quick else Sizes(discovery=args.discovery_count or 20_000)
    args.repeats = args.repeats or (1 if args.quick else 3)
    return args


def disk_needed(args: argparse.Namespace) -> int:
    """Bytes the run holds at its peak (server copy + local source or target), with a margin."""
    sizes: Sizes = args.sizes
    peak = 0
    if "hydrate" in args.jobs:
        peak = max(peak, sum(d.total for d in sizes.hydrate) + max(d.total for d in sizes.hydrate))
    if "push" in args.jobs:
        peak = max(peak, 2 * max(d.total for d in sizes.push))
    if "large" in args.jobs:
        peak = max(peak, sum(d.total for d in sizes.large) + max(d.total for d in sizes.large))
    return int(peak * 1.5) + 1 * GiB


def compile_package() -> None:
    """Byte-compile syncops as ``pip install`` does, so no run pays for compiling its source (an editable
    install under ``PYTHONDONTWRITEBYTECODE`` would otherwise compile every module on every start)."""
    import compileall

    if not compileall.compile_dir(ROOT / "syncops", quiet=1):
        sys.exit("could not byte-compile syncops")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse(argv)
    tools: tuple[str, ...] = args.tool_list
    for tool in tools:
        if not (BIN / tool).exists():
            sys.exit(f"{tool} is not installed in {BIN}: run `make bench` (installs the 'bench' extra)")
    need, free = disk_needed(args), shutil.disk_usage(tempfile.gettempdir()).free
    if need > min(free, shutil.disk_usage(HERE).free):
        sys.exit(f"this run needs about {need / GiB:.1f} GiB of free disk; {free / GiB:.1f} GiB is free")
    sizes: Sizes = args.sizes
    compile_package()
    hash_rate = sha256_rate() if "large" in args.jobs else None
    rows: list[Row] = []
    fixed: dict[str, float] = {}
    fresh(WORK)
    s3_jobs = {"hydrate", "push", "discovery", "large", "rehydrate", "fixed"} & set(args.jobs)
    try:
        if s3_jobs:
            print("starting SeaweedFS on loopback ...", flush=True)
            seaweed = servers.start_seaweed()
            SERVER_PIDS[:] = [seaweed.process.pid]
            try:
                endpoint = seaweed.endpoint
                if "hydrate" in args.jobs:
                    print(f"hydrate, best of {args.repeats}", flush=True)
                    rows += bench_hydrate("hydrate", endpoint, sizes.hydrate, args.repeats, tools)
                if "push" in args.jobs:
                    print(f"push into an empty bucket, best of {args.repeats}", flush=True)
                    rows += bench_push(endpoint, sizes.push, args.repeats, tools)
                if "discovery" in args.jobs:
                    print(f"discovery of an unindexed bucket, best of {args.repeats}", flush=True)
                    rows.append(bench_discovery(endpoint, sizes.discovery, args.repeats, tools))
                if "large" in args.jobs:
                    print(f"large objects, best of {args.repeats}", flush=True)
                    peers = tuple(t for t in tools if t in ("syncops", "s5cmd", "rclone"))
                    peers += (DURABLE_S5CMD,) if "s5cmd" in peers else ()
                    rows += bench_hydrate("large", endpoint, sizes.large, args.repeats, peers)
                if "rehydrate" in args.jobs:
                    print(f"up-to-date rehydrate, best of {args.repeats}", flush=True)
                    rows.append(bench_rehydrate(endpoint, sizes.rehydrate, args.repeats, tools))
                if "fixed" in args.jobs:
                    print("start-up + one GET", flush=True)
                    bucket = "bench-fixed"
                    seed_s3(endpoint, bucket, Dataset("fixed", 1, 4 * KiB))
                    run_quietly(syncops("discover", f"s3://{bucket}", "--endpoint-url", endpoint), tool_env(endpoint))
                    fixed = bench_fixed_cost(endpoint, bucket, args.repeats, tools)
            finally:
                SERVER_PIDS.clear()
                seaweed.stop()
        if "gcs" in args.jobs:
            print("starting fake-gcs-server on loopback ...", flush=True)
            gcs = servers.start_fake_gcs()
            SERVER_PIDS[:] = [gcs.process.pid]
            try:
                print(f"GCS hydrate, best of {args.repeats}", flush=True)
                rows.append(bench_gcs(gcs.endpoint, sizes.gcs, args.repeats, tools))
            finally:
                SERVER_PIDS.clear()
                gcs.stop()
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
    scale: list[dict[str, float]] = []
    if "scale" in args.jobs:
        print("discovery memory on a simulated listing", flush=True)
        scale = bench_scale(sizes.scale)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    png = args.output.with_suffix(".png")
    draw_chart(rows, png)
    shown_argv = list(argv if argv is not None else sys.argv[1:])
    args.output.write_text(
        write_results(rows, scale, fixed, args.repeats, png if png.exists() else None, shown_argv, hash_rate)
    )
    print(f"wrote {args.output} and {png}")


if __name__ == "__main__":
    main()
