"""bench/run.py's own plumbing, without servers or peers: job selection, sizes, and the report's rows.

The benchmark itself is not a test (``make bench`` runs it); this only keeps its flags and its
report from rotting between runs.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

RUNNER = Path(__file__).resolve().parent.parent / "bench" / "run.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("syncops_bench_run", RUNNER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_only_and_quick_choose_the_jobs_and_shrink_every_size(bench: ModuleType):
    args = bench.parse(["--only", "push,discovery", "--quick", "--tools", "syncops,s5cmd"])
    assert (args.jobs, args.tool_list, args.repeats, args.sizes.discovery) == (
        ("push", "discovery"),
        ("syncops", "s5cmd"),
        1,
        1000,
    )
    full = bench.parse([])
    assert full.jobs == bench.DEFAULT_JOBS and full.repeats == 3 and full.sizes.discovery == 20_000
    assert [d.label for d in full.sizes.large] == ["1 x 1 GiB", "4 x 256 MiB"]
    assert bench.parse(["--discovery-count", "100000"]).sizes.discovery == 100_000
    for bad in (["--only", "hydrate,nope"], ["--tools", "s5cmd"]):
        with pytest.raises(SystemExit):
            bench.parse(bad)


def test_the_report_shows_every_row_with_its_ratios_and_verdict(bench: ModuleType, monkeypatch):
    monkeypatch.setattr(bench, "versions", lambda: {})
    push = bench.Row("push", "2 x 4 KiB", bench.Dataset("p", 2, 4096))
    for tool, wall in (("syncops", 1.0), ("s5cmd", 2.0), ("rclone", 0.5)):
        push.record(tool, wall, 0.1, 30.0)
    gcs = bench.Row("gcs hydrate", "2 x 4 KiB", bench.Dataset("g", 2, 4096))
    gcs.record("syncops", 3.0, 0.1, math.nan)
    gcs.record("rclone", 1.0, 0.1, math.nan)
    text = bench.write_results([push, gcs], [], {}, 1, None, ["--quick"])
    assert "| push 2 x 4 KiB | 1.00 s | 2.00 s | 0.50 s | - | **0.50x** | **2.00x** |" in text
    assert "| gcs hydrate 2 x 4 KiB | 3.00 s | - | 1.00 s | - | - | **3.00x** |" in text
    assert "* push 2 x 4 KiB: 0.50x s5cmd's time (target 1.0x, ceiling 1.5x): met." in text
    assert "* gcs hydrate 2 x 4 KiB: 3.00x rclone's time (target 1.0x, ceiling 2.0x): NOT met." in text


def test_large_rows_are_set_against_a_durable_s5cmd_and_the_cpu_a_hash_of_every_byte_needs(
    bench: ModuleType, monkeypatch
):
    monkeypatch.setattr(bench, "versions", lambda: {})
    monkeypatch.setattr(bench.os, "cpu_count", lambda: 2)
    large = bench.Row("large", "1 x 1 GiB", bench.Dataset("one-huge", 1, bench.GiB))
    large.record("syncops", 2.2, 2.4, 200.0, 1.7)
    large.record("s5cmd", 1.2, 0.9, 18.0, 1.3)  # a slower run: not the one the floor uses
    large.record("s5cmd", 1.0, 0.8, 18.0, 1.1)
    large.record(bench.DURABLE_S5CMD, 1.5, 0.8, 18.0, 1.1)
    large.record("rclone", 1.1, 0.5, 70.0, 1.2)  # the least CPU for the download: 0.5 + 1.2 s
    text = bench.write_results([large], [], {}, 2, None, [], hash_rate=bench.GiB / 0.9)
    assert "| large 1 x 1 GiB | s5cmd+fsync | 1.50 s | 683 MiB/s | 1 | 0.80 s | 1.10 s | 18 MB | 1.50x |" in text
    assert "| large 1 x 1 GiB | syncops | 2.20 s | 465 MiB/s | 0 | 2.40 s | 1.70 s | 200 MB | 2.20x |" in text
    assert (
        "* large 1 x 1 GiB: s5cmd followed by an fsync of each file it wrote takes 1.50x s5cmd's time; "
        "the least CPU a peer's best run took (rclone: 0.50 s, and the server's 1.20 s) plus a sha256 of every "
        "byte (0.90 s at 1.19 GB/s) need at least 1.30 s on 2 cores, 1.30x s5cmd's time, even perfectly "
        "overlapped."
    ) in text


def test_the_durable_s5cmd_is_s5cmd_then_an_fsync_of_each_file_it_wrote(bench: ModuleType, tmp_path: Path):
    argv = bench.hydrate_command(bench.DURABLE_S5CMD, "b", tmp_path, "http://127.0.0.1:1")
    assert argv[:2] == ["sh", "-c"] and argv[3:] == ["sh", "http://127.0.0.1:1", "s3://b/*", str(tmp_path)]
    assert argv[2].endswith(' cp "$2" "$3/" && find "$3" -type f -exec sync -- {} +')
