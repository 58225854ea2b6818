"""The s3dedup benchmark suite: one command, a table and JSON.

    python benchmarks/run.py [--scale S] [--runs N] [--json FILE] [--strict] [--cluster]
    python benchmarks/run.py --endpoint URL [--pid PID]     # another (running) S3 server

Starts its own ``s3dedup serve`` (data in a temporary directory, or ``--data``) unless
``--endpoint`` is given (credentials: $AWS_ACCESS_KEY_ID / $AWS_SECRET_ACCESS_KEY; ``--pid``
the server's process, for CPU time and RSS). Each run measures, sizes multiplied by --scale:

* single-stream PUT of 1 GiB of new data, PUT of the same bytes again (every chunk known),
  GET of 1 GiB, CopyObject of the 1 GiB object;
* 8 concurrent PUTs of 256 MiB, then 8 concurrent GETs (aggregate MB/s);
* 4 KiB PUT / GET / HEAD / DELETE: ops/s, p50 and p99 latency, at 16 and 64 clients;
* the server's CPU seconds per GB (utime + stime of /proc/PID/stat) of those PUTs and GET;
* boto3 end-to-end: put_object and get_object of 1 GiB (payload signed, checksums as boto3
  sends them by default);
* the ceilings of benchmarks/ceilings.py: MD5 and BLAKE3 MB/s, parallel durable writes of
  256 KiB files, and a do-nothing aiohttp S3 endpoint driven by the same load generator;
* with ``--cluster``: a gateway (``--replicas 2``) and three storage nodes on loopback
  (benchmarks/cluster.py) get the same single-stream PUT of new data, PUT of known data and
  GET in every run, right after the embedded server; their ratios are to the embedded
  figures of the same run.

After the runs, a bucket of 1,000,000 keys: the server is stopped, the keys are written into
its index directly (with ``--endpoint``: PUT over HTTP, slow), the server restarted, and pages
of 1000 (ListObjectsV2) timed over HTTP. The peak RSS is the server's VmHWM before that.

Work floors (benchmarks/ceilings.py, measured in every run): what PUT of new and of known data
and GET cannot do without on this machine — MD5, FastCDC and BLAKE3 of every byte, the
do-nothing endpoint's and the load generator's own CPU, a durable write or a cached read —
in CPU s/GB, and the most the machine's CPUs allow at that cost, as a ratio to the same
ceiling as the target. A target above its bound cannot be reached here by any server that
does that work.

Every figure is the median of the runs with min-max; its ratio to its ceiling is the median of
the per-run ratios (each from one run's ceiling). Targets are checked and printed. Exits 0
when the run completed (--strict: and every target was met). MB/s are 10^6 bytes per second.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_memory import (  # noqa: E402
    LocalServer,
    NoSampler,
    RssSampler,
    cpu_seconds,
    free_port,
    log,
    proc_status,
)
from benchmarks.ceilings import (  # noqa: E402
    FLOOR_PARTS,
    NoopServer,
    local_ceilings,
    measure_endpoint,
    small_ops,
    work_floors,
)
from benchmarks.cluster import LocalCluster  # noqa: E402
from benchmarks.loadgen import MiB, S3LoadClient, S3LoadError, content, content_bytes  # noqa: E402

GiB = 1024 * MiB
BUCKET = "bench"
LIST_BUCKET = "zz-bench-list"
OPS = ("put", "get", "head", "delete")
CLIENTS = (16, 64)

# figure -> (unit, the ceiling figure it is divided by, or None)
FIGURES: dict[str, tuple[str, str | None]] = {
    "put_1g_new_mb_s": ("MB/s", "put_ceiling_mb_s"),
    "put_1g_known_mb_s": ("MB/s", "put_ceiling_mb_s"),
    "get_1g_mb_s": ("MB/s", "get_1g_mb_s"),
    "put_8x256m_mb_s": ("MB/s", "put_8x256m_mb_s"),
    "get_8x256m_mb_s": ("MB/s", "get_8x256m_mb_s"),
    **{
        f"{op}_4k_c{c}_{fig}": (unit, f"{op}_4k_c{c}_{fig}")
        for c in CLIENTS
        for op in OPS
        for fig, unit in (("ops_s", "ops/s"), ("p50_ms", "ms"), ("p99_ms", "ms"))
    },
    "copy_1g_ms": ("ms", None),
    "list_page_ms": ("ms", None),
    "cpu_s_per_gb_put_new": ("s/GB", None),
    "cpu_s_per_gb_put_known": ("s/GB", None),
    "cpu_s_per_gb_get": ("s/GB", None),
    "boto3_put_1g_mb_s": ("MB/s", "put_1g_mb_s"),
    "boto3_get_1g_mb_s": ("MB/s", "get_1g_mb_s"),
    # --cluster: ratios to the embedded server's figure of the same run
    "cluster_put_1g_new_mb_s": ("MB/s", "embedded_put_1g_new_mb_s"),
    "cluster_put_1g_known_mb_s": ("MB/s", "embedded_put_1g_known_mb_s"),
    "cluster_get_1g_mb_s": ("MB/s", "embedded_get_1g_mb_s"),
    "cluster_cpu_s_per_gb_put_new": ("s/GB", None),
    "cluster_cpu_s_per_gb_get": ("s/GB", None),
}
CLUSTER_SINGLE = ("put_1g_new_mb_s", "put_1g_known_mb_s", "get_1g_mb_s")
CEILINGS = {
    "md5_mb_s": "MB/s",
    "blake3_mb_s": "MB/s",
    "chunker_mb_s": "MB/s",
    "durable_writes_mb_s": "MB/s",
    "durable_writes_cpu_s_gb": "s/GB",
    "durable_append_cpu_s_gb": "s/GB",
    "cached_read_cpu_s_gb": "s/GB",
    "put_ceiling_mb_s": "MB/s",  # min(MD5, do-nothing single-stream PUT)
    "put_1g_mb_s": "MB/s",  # the do-nothing endpoint from here on
    "get_1g_mb_s": "MB/s",
    "put_8x256m_mb_s": "MB/s",
    "get_8x256m_mb_s": "MB/s",
    **{f"{op}_4k_c{c}_ops_s": "ops/s" for c in CLIENTS for op in OPS},
    # the work floors (benchmarks/ceilings.py): CPU s/GB of what the figure cannot do without,
    # and the most CPUs / floor allows
    **{f"{op}_1g_{who}_cpu_s_gb": "s/GB" for op in ("put", "get") for who in ("server", "client")},
    **{f"floor_{name}_cpu_s_gb": "s/GB" for name in FLOOR_PARTS},
    **{f"bound_{name}_mb_s": "MB/s" for name in FLOOR_PARTS},
}


# single-stream throughput targets: the least ratio to the figure's ceiling (see FIGURES)
SINGLE_STREAM_TARGETS = {"put_1g_new_mb_s": 0.70, "put_1g_known_mb_s": 0.85, "get_1g_mb_s": 0.50}


@dataclass
class Bound:
    """A throughput target next to the most this machine allows for the work it needs."""

    describe: str
    figure: str  # one of SINGLE_STREAM_TARGETS; its ceiling is the one FIGURES gives it
    floor: str  # a FLOOR_PARTS name: floor_X_cpu_s_gb and bound_X_mb_s


BOUNDS = [
    Bound("PUT new, a file per chunk", "put_1g_new_mb_s", "put_new_files"),
    Bound("PUT new, appended (packs)", "put_1g_new_mb_s", "put_new"),
    Bound("PUT known", "put_1g_known_mb_s", "put_known"),
    Bound("GET", "get_1g_mb_s", "get"),
]


@dataclass
class Sizes:
    big: int
    concurrent: int
    small_count: int
    list_keys: int

    @classmethod
    def at(cls, scale: float) -> Sizes:
        return cls(
            big=max(MiB, int(GiB * scale)),
            concurrent=max(MiB, int(256 * MiB * scale)),
            small_count=max(128, int(5000 * scale)),
            list_keys=max(2000, int(1_000_000 * scale)),
        )


@dataclass
class Target:
    name: str
    describe: str
    check: Callable[[dict[str, Any]], tuple[float | None, bool | None]]


def _ratio(
    figure: str, limit: float
) -> Callable[[dict[str, Any]], tuple[float | None, bool | None]]:
    def check(rep: dict[str, Any]) -> tuple[float | None, bool | None]:
        r = rep["figures"].get(figure, {}).get("ratio")
        return (r, None) if r is None else (r, r >= limit)

    return check


def _below(
    figure: str, limit: float
) -> Callable[[dict[str, Any]], tuple[float | None, bool | None]]:
    def check(rep: dict[str, Any]) -> tuple[float | None, bool | None]:
        v = rep["figures"].get(figure, {}).get("median")
        return (v, None) if v is None else (v, v < limit)

    return check


def _at_least(a: str, b: str) -> Callable[[dict[str, Any]], tuple[float | None, bool | None]]:
    def check(rep: dict[str, Any]) -> tuple[float | None, bool | None]:
        va = rep["figures"].get(a, {}).get("median")
        vb = rep["figures"].get(b, {}).get("median")
        if va is None or not vb:
            return None, None
        return va / vb, va >= vb

    return check


TARGETS = [
    Target(
        "put_new",
        "PUT new data >= 70% of min(MD5, do-nothing PUT)",
        _ratio("put_1g_new_mb_s", SINGLE_STREAM_TARGETS["put_1g_new_mb_s"]),
    ),
    Target(
        "put_known",
        "PUT known data >= 85% of it",
        _ratio("put_1g_known_mb_s", SINGLE_STREAM_TARGETS["put_1g_known_mb_s"]),
    ),
    Target(
        "get",
        "GET >= 50% of do-nothing GET",
        _ratio("get_1g_mb_s", SINGLE_STREAM_TARGETS["get_1g_mb_s"]),
    ),
    Target(
        "put_concurrent",
        "8x256 MiB PUT >= single-stream PUT",
        _at_least("put_8x256m_mb_s", "put_1g_new_mb_s"),
    ),
    Target(
        "get_concurrent",
        "8x256 MiB GET >= single-stream GET",
        _at_least("get_8x256m_mb_s", "get_1g_mb_s"),
    ),
    Target("put_4k_c64", "4 KiB PUT at 64 >= 45% of do-nothing", _ratio("put_4k_c64_ops_s", 0.45)),
    Target("get_4k_c64", "4 KiB GET at 64 >= 60% of do-nothing", _ratio("get_4k_c64_ops_s", 0.60)),
    *[
        Target(
            f"{op}_4k_c64_p99",
            f"4 KiB {op.upper()} at 64: p99 < 50 ms",
            _below(f"{op}_4k_c64_p99_ms", 50),
        )
        for op in OPS
    ],
    Target("list_page", "ListObjectsV2 page (1M keys) < 20 ms", _below("list_page_ms", 20)),
    Target("copy_1g", "CopyObject of 1 GiB < 50 ms", _below("copy_1g_ms", 50)),
    Target(
        "cluster_put_new",
        "Cluster PUT new data >= 60% of embedded",
        _ratio("cluster_put_1g_new_mb_s", 0.60),
    ),
    Target(
        "cluster_put_known",
        "Cluster PUT known data >= 60% of embedded",
        _ratio("cluster_put_1g_known_mb_s", 0.60),
    ),
    Target("cluster_get", "Cluster GET >= 70% of embedded", _ratio("cluster_get_1g_mb_s", 0.70)),
]


@dataclass
class Bench:
    client: S3LoadClient
    endpoint: str
    access_key: str
    secret_key: str
    region: str
    pid: int | None
    sizes: Sizes
    gc: bool
    runs: list[dict[str, float]] = field(default_factory=list)

    def cpu(self) -> float:
        return cpu_seconds(self.pid) if self.pid else 0.0

    async def timed(self, run: Awaitable[Any]) -> tuple[float, float]:
        """(wall seconds, server CPU seconds) of ``run``."""
        c0 = self.cpu()
        t0 = time.perf_counter()
        await run
        return time.perf_counter() - t0, self.cpu() - c0

    async def copy(self, src: str, dst: str) -> None:
        headers = {"x-amz-copy-source": f"/{BUCKET}/{src}"}
        async with self.client.request("PUT", BUCKET, dst, headers=headers) as resp:
            data = await resp.read()
            if resp.status != 200 or b"<Error>" in data:
                raise S3LoadError("PUT", f"/{BUCKET}/{dst} (copy)", resp.status, data)

    async def one_run(self, n: int) -> dict[str, float]:
        c, big, conc = self.client, self.sizes.big, self.sizes.concurrent
        r: dict[str, float] = {}
        gb = big / 1e9
        seed = 1000 + n + random.randrange(1 << 40)  # new data, also against a kept --data
        s, cpu = await self.timed(c.put(BUCKET, f"r{n}/new", content(big, seed), big))
        r["put_1g_new_mb_s"], r["cpu_s_per_gb_put_new"] = big / s / 1e6, cpu / gb
        s, cpu = await self.timed(c.put(BUCKET, f"r{n}/known", content(big, seed), big))
        r["put_1g_known_mb_s"], r["cpu_s_per_gb_put_known"] = big / s / 1e6, cpu / gb
        s, cpu = await self.timed(c.get(BUCKET, f"r{n}/new"))
        r["get_1g_mb_s"], r["cpu_s_per_gb_get"] = big / s / 1e6, cpu / gb
        s, _ = await self.timed(self.copy(f"r{n}/new", f"r{n}/copy"))
        r["copy_1g_ms"] = s * 1e3
        keys = [f"r{n}/conc{i}" for i in range(8)]
        s, _ = await self.timed(
            asyncio.gather(
                *(c.put(BUCKET, k, content(conc, seed + 1 + i), conc) for i, k in enumerate(keys))
            )
        )
        r["put_8x256m_mb_s"] = 8 * conc / s / 1e6
        s, _ = await self.timed(asyncio.gather(*(c.get(BUCKET, k) for k in keys)))
        r["get_8x256m_mb_s"] = 8 * conc / s / 1e6
        for clients in CLIENTS:
            ops = await small_ops(
                c, BUCKET, f"r{n}/small{clients}", clients, self.sizes.small_count
            )
            for op, figs in ops.items():
                for name, value in figs.items():
                    r[f"{op}_4k_c{clients}_{name}"] = value
        await asyncio.gather(
            *(c.delete(BUCKET, k) for k in [*keys, f"r{n}/new", f"r{n}/known", f"r{n}/copy"])
        )
        r.update(await asyncio.to_thread(self.boto3_run, n))
        if self.gc:
            await c.admin_gc(0)
        return r

    async def single_stream(self, n: int) -> dict[str, float]:
        """PUT of new data, PUT of the same bytes, GET: the cluster's figures of run ``n``
        (prefixed ``cluster_``), then the objects are deleted and collected."""
        c, big = self.client, self.sizes.big
        gb = big / 1e9
        r: dict[str, float] = {}
        seed = 7000 + n + random.randrange(1 << 40)
        s, cpu = await self.timed(c.put(BUCKET, f"c{n}/new", content(big, seed), big))
        r["cluster_put_1g_new_mb_s"], r["cluster_cpu_s_per_gb_put_new"] = big / s / 1e6, cpu / gb
        s, _ = await self.timed(c.put(BUCKET, f"c{n}/known", content(big, seed), big))
        r["cluster_put_1g_known_mb_s"] = big / s / 1e6
        s, cpu = await self.timed(c.get(BUCKET, f"c{n}/new"))
        r["cluster_get_1g_mb_s"], r["cluster_cpu_s_per_gb_get"] = big / s / 1e6, cpu / gb
        await asyncio.gather(*(c.delete(BUCKET, f"c{n}/{k}") for k in ("new", "known")))
        await c.admin_gc(0)
        return r

    def boto3_run(self, n: int) -> dict[str, float]:
        import boto3
        from botocore.config import Config

        s3 = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )
        body = content_bytes(self.sizes.big, 5000 + n + random.randrange(1 << 40))
        key = f"r{n}/boto3"
        t0 = time.perf_counter()
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        t1 = time.perf_counter()
        stream = s3.get_object(Bucket=BUCKET, Key=key)["Body"]
        got = 0
        while chunk := stream.read(MiB):
            got += len(chunk)
        t2 = time.perf_counter()
        if got != len(body):
            raise RuntimeError(f"boto3 GET returned {got} bytes, expected {len(body)}")
        s3.delete_object(Bucket=BUCKET, Key=key)
        return {
            "boto3_put_1g_mb_s": len(body) / (t1 - t0) / 1e6,
            "boto3_get_1g_mb_s": len(body) / (t2 - t1) / 1e6,
        }


# -- the million-key bucket -------------------------------------------------------------------


def list_key(i: int) -> str:
    return f"dir{i % 1000:04d}/file{i:07d}"


def fill_index(data: Path, count: int) -> None:
    """Write ``count`` empty objects into LIST_BUCKET straight into the (closed) server's
    index, the way tests/test_listing_scale.py does."""
    from dedup.index import Index, Txn, object_key
    from dedup.records import ObjectRecord

    now = int(time.time() * 1000)
    value = ObjectRecord(
        size=0, etag="d41d8cd98f00b204e9800998ecf8427e", mtime_ms=now, inline=b""
    ).encode()
    keys = sorted(object_key(LIST_BUCKET, list_key(i)) for i in range(count))
    idx = Index(data / "index")
    try:
        for lo in range(0, count, 250_000):

            def put(txn: Txn, lo: int = lo) -> None:
                cur = txn.txn.cursor(db=txn.dbs["objects"])
                cur.putmulti(((k, value) for k in keys[lo : lo + 250_000]), append=False)

            idx.write_sync(put)
    finally:
        idx.close()


async def fill_http(client: S3LoadClient, count: int) -> None:
    it = iter(range(count))

    async def worker() -> None:
        for i in it:
            await client.put(LIST_BUCKET, list_key(i), b"")

    await asyncio.gather(*(worker() for _ in range(64)))


async def time_pages(client: S3LoadClient, count: int, runs: int) -> list[float]:
    """Seconds of ListObjectsV2 pages of 1000: per run, the first page and pages starting
    after two random keys."""
    rng = random.Random(1)
    out = []
    for _ in range(runs):
        starts = ["", *sorted(list_key(rng.randrange(count)) for _ in range(2))]
        for after in starts:
            params = {"list-type": "2", "max-keys": "1000"}
            if after:
                params["start-after"] = after
            t0 = time.perf_counter()
            _, _, data = await client.call("GET", LIST_BUCKET, params=params)
            out.append(time.perf_counter() - t0)
            if data.count(b"<Key>") != min(1000, count):
                raise RuntimeError(f"a page of {data.count(b'<Key>')} keys")
    return out


# -- reporting --------------------------------------------------------------------------------


def summarize(values: list[float]) -> dict[str, Any]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": [round(v, 3) for v in values],
    }


def build_report(
    runs: list[dict[str, float]],
    ceilings: list[dict[str, float]],
    pages: list[float],
    meta: dict[str, Any],
) -> dict[str, Any]:
    figures: dict[str, dict[str, Any]] = {}
    for name, (unit, ceiling) in FIGURES.items():
        if name == "list_page_ms":
            values = [p * 1e3 for p in pages]
        else:
            values = [r[name] for r in runs if name in r]
        if not values:
            continue
        fig = {"unit": unit, "ceiling": ceiling, **summarize(values), "ratio": None}
        if ceiling is not None:
            ratios = [
                r[name] / c[ceiling] for r, c in zip(runs, ceilings, strict=True) if c.get(ceiling)
            ]
            fig["ratio"] = statistics.median(ratios) if ratios else None
        figures[name] = fig
    ceiling_figs = {
        name: {"unit": unit, **summarize([c[name] for c in ceilings])}
        for name, unit in CEILINGS.items()
        if all(name in c for c in ceilings) and ceilings
    }
    report: dict[str, Any] = {**meta, "figures": figures, "ceilings": ceiling_figs}
    targets = []
    for t in TARGETS:
        value, ok = t.check(report)
        targets.append({"name": t.name, "describe": t.describe, "value": value, "pass": ok})
    report["targets"] = targets
    report["targets_met"] = all(t["pass"] is not False for t in targets)
    report["bounds"] = bounds(runs, ceilings)
    return report


def bounds(runs: list[dict[str, float]], ceilings: list[dict[str, float]]) -> list[dict[str, Any]]:
    """Per :data:`BOUNDS` line, medians over the runs: the work floor (CPU s/GB), the bound as
    a ratio to the target's ceiling, the ratio reached, and reached / bound (the efficiency)."""
    out: list[dict[str, Any]] = []
    for b in BOUNDS:
        ceiling = FIGURES[b.figure][1]
        assert ceiling is not None
        pairs = [
            (r[b.figure], c)
            for r, c in zip(runs, ceilings, strict=True)
            if b.figure in r and f"bound_{b.floor}_mb_s" in c and c.get(ceiling)
        ]
        if not pairs:
            continue
        out.append(
            {
                "describe": b.describe,
                "target": SINGLE_STREAM_TARGETS[b.figure],
                "floor_cpu_s_gb": statistics.median(
                    c[f"floor_{b.floor}_cpu_s_gb"] for _, c in pairs
                ),
                "bound_ratio": statistics.median(
                    c[f"bound_{b.floor}_mb_s"] / c[ceiling] for _, c in pairs
                ),
                "reached_ratio": statistics.median(v / c[ceiling] for v, c in pairs),
                "efficiency": statistics.median(v / c[f"bound_{b.floor}_mb_s"] for v, c in pairs),
            }
        )
    return out


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def table(report: dict[str, Any]) -> str:
    lines = [
        f"{'figure':<24} {'unit':>6} {'median':>8} {'min-max':>15} {'ratio':>6}  ceiling",
    ]
    for name, f in report["figures"].items():
        ratio = "-" if f["ratio"] is None else f"{f['ratio']:.2f}"
        rng = f"{_num(f['min'])}-{_num(f['max'])}"
        head = f"{name:<24} {f['unit']:>6} {_num(f['median']):>8} {rng:>15}"
        lines.append(f"{head} {ratio:>6}  {f['ceiling'] or ''}")
    lines.append("")
    lines.append(f"{'ceiling':<24} {'unit':>6} {'median':>8} {'min-max':>15}")
    for name, f in report["ceilings"].items():
        rng = f"{_num(f['min'])}-{_num(f['max'])}"
        lines.append(f"{name:<24} {f['unit']:>6} {_num(f['median']):>8} {rng:>15}")
    lines.append("")
    for key in ("peak_rss_mib", "list_server_peak_rss_mib"):
        if report.get(key) is not None:
            lines.append(f"{key}: {report[key]}")
    lines.append("")
    for t in report["targets"]:
        mark = {True: "PASS", False: "MISS", None: "n/a "}[t["pass"]]
        lines.append(f"{mark}  {t['describe']:<52} {_num(t['value'])}")
    if report.get("bounds"):
        lines.append("")
        lines.append(
            "work floors: the most this machine allows (every CPU busy with nothing but the work)"
        )
        lines.append(
            f"{'':<26} {'floor s/GB':>10} {'bound':>6} {'target':>6} {'reached':>7} {'of bound':>8}"
        )
        for b in report["bounds"]:
            lines.append(
                f"{b['describe']:<26} {b['floor_cpu_s_gb']:>10.2f} {b['bound_ratio']:>6.2f}"
                f" {b['target']:>6.2f} {b['reached_ratio']:>7.2f} {b['efficiency']:>8.2f}"
            )
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = 0
    with contextlib.suppress(OSError):
        ram = proc_status_mem()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "nproc": os.cpu_count(),
        "ram_gib": round(ram / GiB, 1),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def proc_status_mem() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


# -- the run ----------------------------------------------------------------------------------


@contextlib.contextmanager
def work_dir(data: str | None) -> Iterator[Path]:
    if data:
        path = Path(data)
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    path = Path(tempfile.mkdtemp(prefix="bench-run-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def measure(
    args: argparse.Namespace,
    sizes: Sizes,
    work: Path,
    endpoint: str,
    creds: tuple[str, str],
    pid: int | None,
    server: LocalServer | None,
    cluster: LocalCluster | None = None,
) -> dict[str, Any]:
    sampler: RssSampler = RssSampler(pid) if pid else NoSampler()
    sampler.start()
    runs: list[dict[str, float]] = []
    ceilings: list[dict[str, float]] = []
    peak = list_peak = None
    client = S3LoadClient(endpoint, *creds, args.region, connections=64)
    cluster_client = None
    if cluster is not None:
        cluster_client = S3LoadClient(
            cluster.endpoint, cluster.access_key, cluster.secret_key, args.region, connections=64
        )
    try:
        if cluster_client is not None:
            await cluster_client.create_bucket(BUCKET)
        await client.create_bucket(BUCKET)
        await client.create_bucket(LIST_BUCKET)
        with NoopServer(free_port()) as noop:
            for n in range(args.runs):
                log(f"run {n + 1}/{args.runs}: ceilings")
                ceil = await asyncio.to_thread(local_ceilings, args.scale, work)
                assert noop.proc is not None
                ceil.update(
                    await measure_endpoint(
                        noop.endpoint,
                        sizes.big,
                        sizes.concurrent,
                        sizes.small_count,
                        pid=noop.proc.pid,
                    )
                )
                ceil["put_ceiling_mb_s"] = min(ceil["md5_mb_s"], ceil["put_1g_mb_s"])
                ceil.update(work_floors(ceil, os.cpu_count() or 1))
                ceilings.append(ceil)
                log(f"run {n + 1}/{args.runs}: s3dedup")
                bench = Bench(client, endpoint, *creds, args.region, pid, sizes, server is not None)
                runs.append(await bench.one_run(n))
                if cluster is not None and cluster_client is not None:
                    log(f"run {n + 1}/{args.runs}: cluster (gateway + 3 nodes, R=2)")
                    on_cluster = Bench(
                        cluster_client,
                        cluster.endpoint,
                        cluster.access_key,
                        cluster.secret_key,
                        args.region,
                        cluster.pid,
                        sizes,
                        True,
                    )
                    runs[-1].update(await on_cluster.single_stream(n))
                    for name in CLUSTER_SINGLE:
                        ceil[f"embedded_{name}"] = runs[-1][name]
                log(
                    "  " + ", ".join(f"{k} {_num(v)}" for k, v in runs[-1].items() if "4k" not in k)
                )
        if pid:
            peak = round(
                max(sampler.hwm(), max((s[1] for s in sampler.samples), default=0)) / MiB, 1
            )
        sampler.stop()
        log(f"the {sizes.list_keys}-key bucket")
        t0 = time.perf_counter()
        if server is not None:
            await client.close()
            await asyncio.to_thread(server.stop)
            await asyncio.to_thread(fill_index, server.data, sizes.list_keys)
            await asyncio.to_thread(server.start)
            assert server.proc is not None
            pid = server.proc.pid
        else:
            await fill_http(client, sizes.list_keys)
        log(f"  filled in {time.perf_counter() - t0:.1f}s")
        pages = await time_pages(client, sizes.list_keys, args.runs)
        if pid:
            list_peak = round(proc_status(pid)["VmHWM"] / MiB, 1)
    finally:
        sampler.stop()
        await client.close()
        if cluster_client is not None:
            await cluster_client.close()
    meta = {
        "machine": machine(),
        "scale": args.scale,
        "runs": args.runs,
        "sizes": vars(sizes),
        "endpoint": args.endpoint or "s3dedup serve (embedded store)",
        "cluster": None if cluster is None else "s3dedup gateway --replicas 2 + 3 nodes, loopback",
        "peak_rss_mib": peak,
        "list_server_peak_rss_mib": list_peak,
    }
    return build_report(runs, ceilings, pages, meta)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", type=float, default=1.0, help="sizes x this (default 1)")
    p.add_argument("--runs", type=int, default=5, help="runs per figure (default 5)")
    p.add_argument("--json", help="write the report to this file")
    p.add_argument("--data", help="the server's data directory (default: a temporary one)")
    p.add_argument("--endpoint", help="measure this running S3 server instead of starting one")
    p.add_argument("--pid", type=int, help="with --endpoint: the server's process")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    p.add_argument(
        "--cluster",
        action="store_true",
        help="also measure a local cluster (gateway, 3 nodes, R=2): single-stream PUT/GET",
    )
    args = p.parse_args(argv)
    if not 0 < args.scale <= 1 or args.runs < 1:
        p.error("--scale must be in (0, 1] and --runs at least 1")
    if args.cluster and args.endpoint:
        p.error("--cluster starts its own cluster: not with --endpoint")
    sizes = Sizes.at(args.scale)

    if args.endpoint:
        ak = os.environ.get("AWS_ACCESS_KEY_ID", "")
        sk = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
        with work_dir(args.data) as work:
            report = asyncio.run(
                measure(args, sizes, work, args.endpoint, (ak, sk), args.pid, None)
            )
    else:
        with work_dir(args.data) as work:
            need = int(4 * sizes.big + 8 * sizes.concurrent)
            if args.cluster:
                need += 2 * 2 * sizes.big  # R=2
            if shutil.disk_usage(work).free < need:
                log(f"refusing to run: {need / GiB:.1f} GiB needed under {work}")
                return 2
            server = LocalServer(work / "data", work / "server.log")
            cluster = LocalCluster(work / "cluster") if args.cluster else None
            server.start()
            assert server.proc is not None
            cluster_rc = 0
            try:
                if cluster is not None:
                    cluster.start()
                report = asyncio.run(
                    measure(
                        args,
                        sizes,
                        work,
                        server.endpoint,
                        (server.access_key, server.secret_key),
                        server.proc.pid,
                        server,
                        cluster,
                    )
                )
            except BaseException:
                log(f"server log:\n{server.log_tail()}")
                if cluster is not None:
                    log(f"cluster logs:\n{cluster.log_tail()}")
                raise
            finally:
                rc = server.stop()
                if cluster is not None:
                    cluster_rc = cluster.stop()
            if rc != 0:
                log(f"the server exited with {rc}:\n{server.log_tail()}")
                return 1
            if cluster is not None and cluster_rc != 0:
                log(f"a cluster process exited with {cluster_rc}:\n{cluster.log_tail()}")
                return 1
    print(table(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 1 if args.strict and not report["targets_met"] else 0


if __name__ == "__main__":
    sys.exit(main())
