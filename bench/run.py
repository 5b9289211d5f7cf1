"""Benchmark: ``syncops hydrate`` against s5cmd, rclone and ``aws s3 sync`` on a loopback SeaweedFS.

Not a unit test: ``make bench`` runs it. One run makes three datasets (2,000 x 4 KiB, 200 x 1 MiB,
10 x 64 MiB), times every tool best-of-N into a fresh empty directory, times discovery of an
unindexed bucket, measures discovery memory at 10k / 100k / 1M listed objects, and writes
``bench/results.md`` and ``bench/results.png``. Ratios are against s5cmd in the same run, because
absolute times on a shared 2-core machine vary by 2x between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
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


@dataclass(frozen=True)
class Dataset:
    name: str
    count: int
    size: int

    @property
    def bucket(self) -> str:
        return f"bench-{self.name}"

    @property
    def total(self) -> int:
        return self.count * self.size

    @property
    def label(self) -> str:
        unit = f"{self.size // MiB} MiB" if self.size >= MiB else f"{self.size // KiB} KiB"
        return f"{self.count:,} x {unit}"


DATASETS = (Dataset("small", 2000, 4 * KiB), Dataset("medium", 200, 1 * MiB), Dataset("large", 10, 64 * MiB))
TOOLS = ("syncops", "s5cmd", "rclone", "aws")


@dataclass
class Timing:
    tool: str
    dataset: str
    runs: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    @property
    def best(self) -> float:
        return min(self.runs)

    @property
    def best_cpu(self) -> float:
        return self.cpu[self.runs.index(self.best)]


def tool_env(endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
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
    return env


def command(tool: str, bucket: str, target: Path, endpoint: str) -> list[str]:
    """Each tool as a user runs it; concurrency left at each tool's default except rclone's."""
    if tool == "syncops":
        return [str(BIN / "syncops"), "hydrate", f"s3://{bucket}", str(target), "--endpoint-url", endpoint]
    if tool == "s5cmd":
        return [str(BIN / "s5cmd"), "--endpoint-url", endpoint, "cp", f"s3://{bucket}/*", f"{target}/"]
    if tool == "rclone":
        remote = f":s3,provider=Other,env_auth=true,endpoint='{endpoint}',force_path_style=true:{bucket}"
        return [str(BIN / "rclone"), "copy", remote, str(target), "--transfers", "32", "--checkers", "32"]
    if tool == "aws":
        return [str(BIN / "aws"), "s3", "sync", f"s3://{bucket}", str(target), "--endpoint-url", endpoint, "--quiet"]
    raise ValueError(tool)


def one_object_command(tool: str, bucket: str, target: Path, endpoint: str) -> list[str]:
    """Each tool's fixed cost: start-up plus one small GET (syncops: hydrate of an up-to-date cache)."""
    index = ".datastore-index.json"
    if tool == "syncops":
        return command(tool, bucket, target, endpoint)
    if tool == "s5cmd":
        return [str(BIN / "s5cmd"), "--endpoint-url", endpoint, "cp", f"s3://{bucket}/{index}", f"{target}/"]
    if tool == "rclone":
        remote = f":s3,provider=Other,env_auth=true,endpoint='{endpoint}',force_path_style=true:{bucket}/{index}"
        return [str(BIN / "rclone"), "copyto", remote, str(target / index)]
    if tool == "aws":
        argv = [str(BIN / "aws"), "s3", "cp", f"s3://{bucket}/{index}", f"{target}/", "--endpoint-url", endpoint]
        return [*argv, "--quiet"]
    raise ValueError(tool)


def bench_fixed_cost(endpoint: str, repeats: int, tools: tuple[str, ...]) -> dict[str, float]:
    """Best time of each tool's start-up + one GET, to tell fixed cost from transfer speed."""
    env = tool_env(endpoint)
    bucket = DATASETS[-1].bucket
    target = fresh(WORK / "target" / "fixed")
    timed(command("syncops", bucket, target, endpoint), env)  # now up to date: later runs fetch nothing
    best: dict[str, float] = {}
    for _ in range(repeats):
        for tool in tools:
            wall, _cpu = timed(one_object_command(tool, bucket, target, endpoint), env)
            best[tool] = min(best.get(tool, wall), wall)
    for tool, wall in best.items():
        print(f"  start-up + one GET  {tool:8} {wall:6.2f} s", flush=True)
    shutil.rmtree(target, ignore_errors=True)
    return best


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and child CPU seconds (user + system) of one command; fails loudly."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def check_target(target: Path, dataset: Dataset) -> None:
    files = [p for p in target.rglob("*") if p.is_file() and p.name != ".datastore-index.json"]
    sizes = {p.stat().st_size for p in files}
    if len(files) != dataset.count or sizes != {dataset.size}:
        raise RuntimeError(f"{target}: {len(files)} files of sizes {sorted(sizes)[:5]}, expected {dataset.label}")


def seed(client: object, dataset: Dataset) -> None:
    """Fill the bucket with random bytes (not compressible, not deduplicated), 16 puts at a time."""
    client.create_bucket(Bucket=dataset.bucket)  # type: ignore[attr-defined]
    width = len(str(dataset.count))

    def put(i: int) -> None:
        key = f"data/{i % 20:02d}/object-{i:0{width}d}.bin"
        client.put_object(Bucket=dataset.bucket, Key=key, Body=os.urandom(dataset.size))  # type: ignore[attr-defined]

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(dataset.count)))


def fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def drop_caches() -> None:
    """Write back dirty pages so one run's writeback does not bill the next run's fsyncs."""
    os.sync()


def bench_transfers(endpoint: str, repeats: int, tools: tuple[str, ...]) -> list[Timing]:
    env = tool_env(endpoint)
    timings: list[Timing] = []
    for dataset in DATASETS:
        # The index exists before timing starts, as it does for every peer after the first.
        timed([str(BIN / "syncops"), "discover", f"s3://{dataset.bucket}", "--endpoint-url", endpoint], env)
        per_tool = {tool: Timing(tool, dataset.name) for tool in tools}
        for attempt in range(repeats):
            for tool in tools:  # interleaved, so a slow spell of the machine hits every tool alike
                target = fresh(WORK / "target" / f"{dataset.name}-{tool}")
                drop_caches()
                wall, cpu = timed(command(tool, dataset.bucket, target, endpoint), env)
                check_target(target, dataset)
                per_tool[tool].runs.append(wall)
                per_tool[tool].cpu.append(cpu)
                print(
                    f"  {dataset.label:>14}  {tool:8} run {attempt + 1}: {wall:6.2f} s  (cpu {cpu:5.2f} s)", flush=True
                )
                shutil.rmtree(target, ignore_errors=True)
        timings.extend(per_tool.values())
    return timings


def bench_discovery(client: object, endpoint: str, repeats: int) -> Timing:
    """``syncops discover`` on a bucket holding the small dataset's 2,000 objects and no index."""
    env = tool_env(endpoint)
    bucket = DATASETS[0].bucket
    timing = Timing("syncops discover", "small")
    for attempt in range(repeats):
        client.delete_object(Bucket=bucket, Key=".datastore-index.json")  # type: ignore[attr-defined]
        argv = [str(BIN / "syncops"), "discover", f"s3://{bucket}", "--endpoint-url", endpoint, "--json"]
        wall, cpu = timed(argv, env)
        timing.runs.append(wall)
        timing.cpu.append(cpu)
        print(f"  discover unindexed 2,000 objects run {attempt + 1}: {wall:6.2f} s (cpu {cpu:5.2f} s)", flush=True)
    return timing


def bench_scale(counts: tuple[int, ...]) -> list[dict[str, float]]:
    """Discovery of a generated listing in a fresh process each, for a clean peak-RSS figure."""
    rows = []
    for count in counts:
        proc = subprocess.run(
            [sys.executable, str(HERE / "scale.py"), str(count)], capture_output=True, text=True, check=True
        )
        row = json.loads(proc.stdout)
        rows.append(row)
        print(f"  discover {count:>9,} listed objects: {row['seconds']:6.2f} s, peak RSS {row['peak_rss_mb']:6.1f} MB")
    return rows


def versions() -> dict[str, str]:
    def first_line(argv: list[str]) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        except OSError:
            return "?"
        text = (out.stdout or out.stderr).strip().splitlines()
        return text[0] if text else "?"

    return {
        "syncops": first_line([str(BIN / "syncops"), "--version"]),
        "s5cmd": first_line([str(BIN / "s5cmd"), "version"]),
        "rclone": first_line([str(BIN / "rclone"), "version"]),
        "aws": first_line([str(BIN / "aws"), "--version"]),
    }


def target_verdicts(by: dict[tuple[str, str], Timing]) -> list[str]:
    """One line per target of issue 6, met or not, from this run's best times."""
    lines = []
    limits = {"small": (1.0, 1.5), "medium": (1.2, 1.2), "large": (1.2, 1.2)}
    for dataset in DATASETS:
        ours, base, aws = (by.get((dataset.name, tool)) for tool in ("syncops", "s5cmd", "aws"))
        if ours is None or base is None:
            continue
        ratio = ours.best / base.best
        goal, ceiling = limits[dataset.name]
        verdict = "met" if ratio <= goal else ("within the ceiling" if ratio <= ceiling else "not met")
        line = f"* {dataset.label}: {ratio:.2f}x s5cmd's time (target {goal:.1f}x"
        line += f", ceiling {ceiling:.1f}x): {verdict}" if ceiling != goal else f"): {verdict}"
        if aws is not None:
            line += f"; {'faster' if ours.best < aws.best else 'NOT faster'} than `aws s3 sync`"
        lines.append(line + ".")
    return [*lines, ""] if lines else []


def write_results(
    timings: list[Timing],
    discovery: Timing | None,
    scale: list[dict[str, float]],
    repeats: int,
    png: Path | None,
    fixed: dict[str, float],
) -> str:
    by = {(t.dataset, t.tool): t for t in timings}
    lines = [
        "# syncops performance",
        "",
        f"One run of `make bench` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}) on this machine: "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, SeaweedFS `weed mini` on loopback "
        "(sharing the same 2 cores). Each figure is the best of "
        f"{repeats} runs into a fresh empty directory, tools interleaved; ratios are against s5cmd in the same "
        "run (time ratio: below 1.0 is faster than s5cmd).",
        "",
        "| dataset | tool | best time | throughput | files/s | CPU (best run) | time vs s5cmd |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for dataset in DATASETS:
        base = by.get((dataset.name, "s5cmd"))
        for tool in TOOLS:
            t = by.get((dataset.name, tool))
            if t is None:
                continue
            ratio = f"{t.best / base.best:.2f}x" if base else "-"
            if tool == "syncops":
                ratio = f"**{ratio}**"
            lines.append(
                f"| {dataset.label} | {tool} | {t.best:.2f} s | {dataset.total / MiB / t.best:,.0f} MiB/s "
                f"| {dataset.count / t.best:,.0f} | {t.best_cpu:.2f} s | {ratio} |"
            )
    lines += [
        "",
        "Targets: small files at most 1.0x s5cmd's time (never above 1.5x); 1 MiB and 64 MiB files within 1.2x of "
        "s5cmd's throughput; faster than `aws s3 sync` everywhere.",
        "",
        *target_verdicts(by),
    ]
    if png is not None:
        lines += [f"![hydrate time relative to s5cmd]({png.name})", ""]
    if fixed:
        lines += [
            "## Fixed cost per run",
            "",
            "Each tool's start-up plus one small GET (s5cmd, rclone, aws: copy the index object; syncops: hydrate "
            "of an up-to-date cache, which is one GET). Subtracting it from the times above leaves the transfer "
            "itself:",
            "",
            "| tool | start-up + one GET |" + "".join(f" {d.label}: transfer vs s5cmd |" for d in DATASETS),
            "| --- | ---: |" + " ---: |" * len(DATASETS),
        ]
        for tool in TOOLS:
            if tool not in fixed:
                continue
            cells = []
            for dataset in DATASETS:
                t, base = by.get((dataset.name, tool)), by.get((dataset.name, "s5cmd"))
                if t is None or base is None or "s5cmd" not in fixed:
                    cells.append("-")
                    continue
                net, base_net = t.best - fixed[tool], base.best - fixed["s5cmd"]
                cells.append(f"{net / base_net:.2f}x" if net > 0 and base_net > 0 else "-")
            lines.append(f"| {tool} | {fixed[tool]:.2f} s | " + " | ".join(cells) + " |")
        lines.append("")
    if discovery is not None:
        lines += [
            "## Discovery of an unindexed bucket",
            "",
            f"`syncops discover` on a bucket holding {DATASETS[0].count:,} objects and no index (list, build, "
            f"publish create-only): best {discovery.best:.2f} s, CPU {discovery.best_cpu:.2f} s, whole command "
            "including interpreter start-up.",
            "",
        ]
    if scale:
        lines += [
            "## Discovery at scale (memory)",
            "",
            "A storage backend whose `list()` yields the objects from a generator (no server), through the real "
            "`discover()`: listing streamed, index built once and published as a stream of chunks. Fresh process "
            "per size; peak RSS is the process's high-water mark (`VmHWM`), interpreter included.",
            "",
            "| listed objects | time | peak RSS | index bytes |",
            "| ---: | ---: | ---: | ---: |",
        ]
        for row in scale:
            lines.append(
                f"| {int(row['count']):,} | {row['seconds']:.2f} s | {row['peak_rss_mb']:.0f} MB "
                f"| {int(row['index_bytes']) / MiB:,.1f} MiB |"
            )
        lines.append("")
    lines += ["## Versions and flags", ""]
    for name, version in versions().items():
        lines.append(f"* {name}: `{version}`")
    lines += [
        "",
        "Commands (all against the same endpoint, credentials from the environment):",
        "",
        "* `syncops hydrate s3://BUCKET DIR --endpoint-url URL` (default concurrency 32)",
        "* `s5cmd --endpoint-url URL cp 's3://BUCKET/*' DIR/` (its default 256 workers)",
        "* `rclone copy :s3,provider=Other,...:BUCKET DIR --transfers 32 --checkers 32`",
        "* `aws s3 sync s3://BUCKET DIR --endpoint-url URL` (its default 10 concurrent requests)",
        "",
        "syncops fsyncs every file before renaming it into place; the other tools do not. "
        "`os.sync()` runs before each timed run so no run pays for the previous one's writeback.",
        "",
    ]
    return "\n".join(lines)


def draw_chart(timings: list[Timing], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by = {(t.dataset, t.tool): t for t in timings}
    tools = [tool for tool in TOOLS if any((d.name, tool) in by for d in DATASETS)]
    colors = {"syncops": "#2b6cb0", "s5cmd": "#718096", "rclone": "#a0aec0", "aws": "#cbd5e0"}
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=120)
    width = 0.8 / len(tools)
    for i, tool in enumerate(tools):
        xs, ys, labels = [], [], []
        for j, dataset in enumerate(DATASETS):
            t, base = by.get((dataset.name, tool)), by.get((dataset.name, "s5cmd"))
            if t is None or base is None:
                continue
            xs.append(j + (i - (len(tools) - 1) / 2) * width)
            ys.append(t.best / base.best)
            labels.append(f"{t.best / base.best:.2f}")
        bars = ax.bar(xs, ys, width, label=tool, color=colors.get(tool), edgecolor="#2d3748", linewidth=0.5)
        ax.bar_label(bars, labels=labels, fontsize=8, padding=2)
    ax.axhline(1.0, color="#2d3748", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(DATASETS)))
    ax.set_xticklabels([d.label for d in DATASETS])
    ax.set_ylabel("hydrate time relative to s5cmd (lower is faster)")
    ax.set_title("Hydrating a local directory from S3 (SeaweedFS, loopback, best of N)")
    ax.legend(frameon=False, ncols=len(tools), loc="upper left")
    ax.set_ylim(0, max(1.5, ax.get_ylim()[1] * 1.1))
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    global DATASETS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma-separated subset of " + ",".join(TOOLS))
    parser.add_argument("--datasets", default="small,medium,large")
    parser.add_argument("--scale", default="10000,100000,1000000", help="listing sizes for the memory run ('' skips)")
    parser.add_argument("--output", type=Path, default=HERE / "results.md")
    args = parser.parse_args()
    tools = tuple(t for t in args.tools.split(",") if t)
    DATASETS = tuple(d for d in DATASETS if d.name in args.datasets.split(","))

    for tool in tools:
        if not (BIN / ("syncops" if tool == "syncops" else tool)).exists():
            sys.exit(f"{tool} is not installed in {BIN}: run `make bench` (installs the 'bench' extra)")
    fresh(WORK)
    print("starting SeaweedFS on loopback ...", flush=True)
    server = servers.start_seaweed()
    try:
        client = servers.s3_client(server.endpoint)
        for dataset in DATASETS:
            print(f"seeding {dataset.label} ...", flush=True)
            seed(client, dataset)
        print("hydrate, best of", args.repeats, flush=True)
        timings = bench_transfers(server.endpoint, args.repeats, tools)
        discovery = bench_discovery(client, server.endpoint, args.repeats) if "small" in args.datasets else None
        fixed = bench_fixed_cost(server.endpoint, args.repeats, tools)
    finally:
        server.stop()
        shutil.rmtree(WORK, ignore_errors=True)
    print("discovery at scale", flush=True)
    scale = bench_scale(tuple(int(n) for n in args.scale.split(",") if n))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    png = args.output.with_suffix(".png")
    draw_chart(timings, png)
    args.output.write_text(write_results(timings, discovery, scale, args.repeats, png, fixed))
    print(f"wrote {args.output} and {png}")


if __name__ == "__main__":
    main()
