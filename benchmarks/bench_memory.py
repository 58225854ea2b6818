"""Server memory (RSS) and throughput under large and concurrent transfers.

    python benchmarks/bench_memory.py [--scale 1.0] [--cases slow,a,b,c] [--fresh] [--data DIR]
                                      [--timeline FILE] [--strict]
    python benchmarks/bench_memory.py --endpoint URL [--pid PID] [--gc]   # another server

Starts its own ``s3dedup serve`` (data under ``--data``, default a temporary directory removed
afterwards) and samples the server's resident memory every 20 ms (``VmRSS`` of
``/proc/PID/status``; ``VmHWM``, the high-water mark, is reported at the end). Cases, sizes
multiplied by ``--scale`` (parts at least 5 MiB), in this order:

  slow reader: a GET of a 1 GiB object read at 20 MB/s for 3 s, then the client goes away;
     the server's RSS must come back to within 30 MiB of what it was before the GET, and the
     server must still answer (first: on a server that has not yet grown its heap);
  a. one PUT of 5 GiB, then a GET of it                                     (target < 200 MiB)
  b. a multipart upload of 5 GiB, 64 MiB parts, 10 parts in flight; a GET   (target < 200 MiB)
  c. 32 concurrent PUTs of 256 MiB each, then 32 concurrent GETs            (target < 600 MiB)

One server runs every case, so a case starts from the RSS the earlier ones left (reported as
"RSS before"); ``--fresh`` starts a new server for each case instead. ``--timeline`` writes
every sample as ``seconds,VmRSS MiB,RssAnon MiB`` lines (``# case NAME at SECONDS`` marks each
case). RssAnon leaves out the file pages in VmRSS (the index's LMDB map, shared libraries).

For each case: MB/s (10^6 bytes per second of wall time) of each phase, the RSS before the
case, the peak RSS during it (and during each phase), and the server's CPU seconds. Objects
are deleted after each case and the garbage collected (``POST /_s3dedup/admin/gc?grace=0``)
so the disk does not fill: at full scale 20 GiB must be free. Prints a table, then the same
as JSON on the last line. Exits 0 when the run completed (``--strict``: and every target met).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.loadgen import MiB, S3LoadClient, content, seed_of  # noqa: E402

GiB = 1024 * MiB
MIN_PART = 5 * MiB
TARGETS_MIB = {"a_single_put": 200, "b_multipart": 200, "c_concurrent": 600}
SLOW_TOLERANCE_MIB = 30
NOTEWORTHY = re.compile(r"warn|error|exception|traceback", re.IGNORECASE)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- the server's memory ----------------------------------------------------------------------


def proc_status(pid: int) -> dict[str, int]:
    """The kB fields of /proc/PID/status (VmRSS, VmHWM, ...), in bytes."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            name, _, value = line.partition(":")
            parts = value.split()
            if len(parts) == 2 and parts[1] == "kB":
                out[name] = int(parts[0]) * 1024
    return out


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of the process (all its threads)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RssSampler:
    """A thread sampling a process's VmRSS every ``interval`` seconds."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid, self.interval = pid, interval
        # (time.monotonic(), VmRSS, RssAnon): RssAnon leaves out file pages (the index's
        # LMDB map, libraries), i.e. the heap, stacks and buffers
        self.samples: list[tuple[float, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def start(self) -> RssSampler:
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> int:
        status = proc_status(self.pid)
        rss = status["VmRSS"]
        self.samples.append((time.monotonic(), rss, status.get("RssAnon", rss)))
        return rss

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample()
            except (OSError, KeyError):  # the process is gone
                return

    def peak(self, start: float, end: float, *, anon: bool = False) -> int:
        inside = [(a if anon else r) for t, r, a in self.samples if start <= t <= end]
        if not inside:
            self.sample()
            _, r, a = self.samples[-1]
            return a if anon else r
        return max(inside)

    def hwm(self) -> int:
        return proc_status(self.pid)["VmHWM"]


class NoSampler(RssSampler):
    """For a server whose process is not known (``--endpoint`` without ``--pid``)."""

    def __init__(self) -> None:
        super().__init__(0)

    def start(self) -> RssSampler:
        return self

    def stop(self) -> None:
        pass

    def sample(self) -> int:
        return 0

    def hwm(self) -> int:
        return 0


# -- a local server ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LocalServer:
    data: Path
    log_path: Path
    access_key: str = field(default_factory=lambda: "BENCH" + secrets.token_hex(8).upper())
    secret_key: str = field(default_factory=lambda: secrets.token_hex(20))
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    source: Path = ROOT  # the source tree the server runs from (benchmarks/ab.py: A vs B)
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        # server settings (e.g. S3DEDUP_INFLIGHT_BYTES) pass through; identity does not
        mine = (
            "AWS_",
            "S3DEDUP_ACCESS_KEY",
            "S3DEDUP_SECRET_KEY",
            "S3DEDUP_DATA",
            "S3DEDUP_LISTEN",
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(mine)}
        env.update(
            S3DEDUP_ACCESS_KEY=self.access_key,
            S3DEDUP_SECRET_KEY=self.secret_key,
            S3DEDUP_GC_INTERVAL="0",
            S3DEDUP_LOG_LEVEL="warning",
            PYTHONPATH=str(self.source),
        )
        env.update(self.extra_env)
        cmd = [
            sys.executable,
            "-m",
            "gateway.cli",
            "serve",
            "--data",
            str(self.data),
            "--listen",
            f"127.0.0.1:{self.port}",
        ]
        with self.log_path.open("ab") as out:
            # cwd: `python -m` puts it first on sys.path, before PYTHONPATH
            self.proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.source
            )
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not start:\n{self.log_tail()}")
            if health(self.endpoint):
                return
            time.sleep(0.05)

    def stop(self) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(90)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc = None
        return rc

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""


def health(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(endpoint + "/_s3dedup/health", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


# -- the cases --------------------------------------------------------------------------------


@dataclass
class Bench:
    client: S3LoadClient
    sampler: RssSampler
    pid: int | None
    bucket: str
    gc: bool
    scale: float

    def size(self, full: int, minimum: int = 1) -> int:
        return max(minimum, int(full * self.scale))

    async def phase(self, row: dict[str, Any], name: str, nbytes: int, run: Awaitable[Any]) -> Any:
        """Run one phase of a case, recording its rate, peak RSS and CPU time in ``row``."""
        cpu0 = cpu_seconds(self.pid) if self.pid else 0.0
        t0 = time.monotonic()
        result = await run
        t1 = time.monotonic()
        seconds = t1 - t0
        row[f"{name}_seconds"] = round(seconds, 3)
        row[f"{name}_mb_s"] = round(nbytes / seconds / 1e6, 1) if seconds > 0 else None
        row[f"{name}_peak_rss_mib"] = mib(self.sampler.peak(t0, t1))
        if self.pid:
            row[f"{name}_cpu_s"] = round(cpu_seconds(self.pid) - cpu0, 2)
        log(
            f"  {name}: {nbytes / MiB:.0f} MiB in {seconds:.1f}s = {row[f'{name}_mb_s']} MB/s,"
            f" peak RSS {row[f'{name}_peak_rss_mib']} MiB"
        )
        return result

    async def cleanup(self, keys: list[str]) -> None:
        await asyncio.gather(*(self.client.delete(self.bucket, k) for k in keys))
        if self.gc:
            result = await self.client.admin_gc(0)
            log(f"  gc: {result}")
        await asyncio.sleep(0.5)  # let the server settle before the next case measures

    async def case(
        self,
        name: str,
        describe: str,
        keys: list[str],
        size: int,
        put: Callable[[str], Awaitable[Any]],
        put_concurrency: int,
    ) -> dict[str, Any]:
        log(f"case {name}: {describe}")
        row: dict[str, Any] = {
            "case": name,
            "describe": describe,
            "objects": len(keys),
            "object_bytes": size,
        }
        start = time.monotonic()
        row["rss_before_mib"] = mib(self.sampler.sample())
        total = size * len(keys)
        sem = asyncio.Semaphore(put_concurrency)

        async def put_one(key: str) -> None:
            async with sem:
                await put(key)

        async def get_one(key: str) -> None:
            async with sem:
                got = await self.client.get(self.bucket, key)
            if got != size:
                raise RuntimeError(f"GET {key}: {got} bytes, expected {size}")

        await self.phase(row, "put", total, asyncio.gather(*(put_one(k) for k in keys)))
        await self.phase(row, "get", total, asyncio.gather(*(get_one(k) for k in keys)))
        end = time.monotonic()
        row["peak_rss_mib"] = mib(self.sampler.peak(start, end))
        row["peak_rss_anon_mib"] = mib(self.sampler.peak(start, end, anon=True))
        row["growth_mib"] = round(row["peak_rss_mib"] - row["rss_before_mib"], 1)
        row["rss_after_mib"] = mib(self.sampler.sample())
        target = TARGETS_MIB.get(name)
        row["target_mib"] = target
        row["ok"] = None if target is None or not self.pid else row["peak_rss_mib"] < target
        await self.cleanup(keys)
        return row

    async def case_a(self) -> dict[str, Any]:
        size = self.size(5 * GiB)
        key = "a/single"

        async def put(k: str) -> None:
            await self.client.put(self.bucket, k, content(size, seed_of(k)), size)

        return await self.case(
            "a_single_put", f"1 PUT of {fmt(size)}, then 1 GET", [key], size, put, 1
        )

    async def case_b(self) -> dict[str, Any]:
        size = self.size(5 * GiB)
        part = self.size(64 * MiB, MIN_PART)
        key = "b/multipart"

        async def put(k: str) -> None:
            await self.client.multipart_upload(self.bucket, k, size, part, 10)

        parts = -(-size // part)
        return await self.case(
            "b_multipart",
            f"multipart {fmt(size)}: {parts} parts of {fmt(part)}, 10 in flight; then 1 GET",
            [key],
            size,
            put,
            1,
        )

    async def case_c(self) -> dict[str, Any]:
        size = self.size(256 * MiB)
        keys = [f"c/{i:02d}" for i in range(32)]

        async def put(k: str) -> None:
            await self.client.put(self.bucket, k, content(size, seed_of(k)), size)

        return await self.case(
            "c_concurrent", f"32 concurrent PUTs of {fmt(size)}, then 32 GETs", keys, size, put, 32
        )

    async def slow_reader(self, rate: float = 20e6, seconds: float = 3.0) -> dict[str, Any]:
        size = self.size(GiB, 8 * MiB)
        if self.scale < 0.1:
            seconds = 0.3
        max_bytes = min(int(rate * seconds), size // 2)
        key = "slow/reader"
        log(
            f"case slow_reader: GET of {fmt(size)} read at {rate / 1e6:.0f} MB/s,"
            f" dropped after {seconds}s or {fmt(max_bytes)}"
        )
        row: dict[str, Any] = {"case": "slow_reader", "object_bytes": size, "rate_mb_s": rate / 1e6}
        await self.client.put(self.bucket, key, content(size, seed_of(key)), size)
        await asyncio.sleep(1.0)
        baseline = self.sampler.sample()
        row["rss_before_mib"] = mib(baseline)
        t0 = time.monotonic()
        got = await self.client.get(
            self.bucket, key, rate=rate, max_bytes=max_bytes, max_seconds=seconds
        )
        t1 = time.monotonic()
        row["read_bytes"] = got
        row["read_seconds"] = round(t1 - t0, 2)
        row["peak_rss_mib"] = mib(self.sampler.peak(t0, t1))
        # the RSS back to its baseline: wait up to 10 s
        settled = None
        rss = self.sampler.sample()
        while time.monotonic() - t1 < 10:
            rss = self.sampler.sample()
            if abs(rss - baseline) <= SLOW_TOLERANCE_MIB * MiB:
                settled = time.monotonic() - t1
                break
            await asyncio.sleep(0.1)
        row["rss_after_mib"] = mib(rss)
        row["settle_seconds"] = None if settled is None else round(settled, 2)
        # the server still answers: health, HEAD, a whole GET of the object
        answers = await asyncio.to_thread(health, self.client.endpoint)
        try:
            head = await self.client.head(self.bucket, key)
            answers = answers and int(head["Content-Length"]) == size
            answers = answers and await self.client.get(self.bucket, key) == size
        except Exception as exc:  # noqa: BLE001 - recorded in the report
            log(f"  the server does not answer after the disconnect: {exc!r}")
            answers = False
        row["server_answers"] = answers
        row["ok"] = answers and (settled is not None or not self.pid)
        log(
            f"  read {fmt(got)} in {row['read_seconds']}s, RSS before {row['rss_before_mib']},"
            f" peak {row['peak_rss_mib']}, after {row['rss_after_mib']} MiB,"
            f" server answers: {answers}"
        )
        await self.cleanup([key])
        return row


def mib(n: int) -> float:
    return round(n / MiB, 1)


def fmt(n: int) -> str:
    if n >= GiB and n % GiB == 0:
        return f"{n // GiB} GiB"
    if n >= MiB:
        return f"{n / MiB:.4g} MiB"
    return f"{n / 1024:.4g} KiB"


CASES = ("slow", "a", "b", "c")


async def run(
    args: argparse.Namespace,
    cases: list[str],
    endpoint: str,
    ak: str,
    sk: str,
    pid: int | None,
    gc: bool,
) -> dict[str, Any]:
    sampler = RssSampler(pid) if pid else NoSampler()
    sampler.start()
    client = S3LoadClient(endpoint, ak, sk, args.region, connections=64)
    bench = Bench(client, sampler, pid, args.bucket, gc, args.scale)
    rows: list[dict[str, Any]] = []
    slow: dict[str, Any] | None = None
    marks: list[tuple[float, str]] = []
    try:
        await client.create_bucket(args.bucket)
        await asyncio.sleep(0.5)
        idle = sampler.sample()
        log(f"server pid {pid}, idle RSS {mib(idle)} MiB")
        for name in cases:
            marks.append((time.monotonic(), name))
            if name == "slow":
                slow = await bench.slow_reader()
            else:
                rows.append(await getattr(bench, f"case_{name}")())
        hwm = sampler.hwm() if pid else 0
    finally:
        sampler.stop()
        await client.close()
    if args.timeline:
        await asyncio.to_thread(write_timeline, Path(args.timeline), sampler.samples, marks)
    return {
        "scale": args.scale,
        "endpoint": endpoint,
        "server_pid": pid,
        "idle_rss_mib": mib(idle),
        "vm_hwm_mib": mib(hwm),
        "cases": rows,
        "slow_reader": slow,
    }


def merge(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """One report from the runs of ``--fresh`` (a server each)."""
    out = dict(reports[0])
    out["server_pid"] = [r["server_pid"] for r in reports]
    out["idle_rss_mib"] = min(r["idle_rss_mib"] for r in reports)
    out["vm_hwm_mib"] = max(r["vm_hwm_mib"] for r in reports)
    out["cases"] = [c for r in reports for c in r["cases"]]
    out["server_log_warnings"] = [w for r in reports for w in r.get("server_log_warnings", [])]
    out["slow_reader"] = next((r["slow_reader"] for r in reports if r["slow_reader"]), None)
    return out


def finish(report: dict[str, Any], fresh: bool) -> dict[str, Any]:
    slow = report["slow_reader"]
    oks = [r["ok"] for r in [*report["cases"], *([slow] if slow else [])] if r["ok"] is not None]
    return {**report, "fresh_server_per_case": fresh, "targets_met": all(oks)}


def write_timeline(
    path: Path, samples: list[tuple[float, int, int]], marks: list[tuple[float, str]]
) -> None:
    """Append ``seconds,VmRSS MiB,RssAnon MiB`` lines (and ``# case NAME at SECONDS``)."""
    t0 = samples[0][0] if samples else 0
    lines = [(t, f"{t - t0:.3f},{rss / MiB:.1f},{anon / MiB:.1f}") for t, rss, anon in samples]
    lines += [(t, f"# case {name} at {t - t0:.3f}") for t, name in marks]
    with path.open("a") as fh:
        fh.writelines(line + "\n" for _, line in sorted(lines))


def table(report: dict[str, Any]) -> str:
    head = (
        f"{'case':<14} {'PUT MB/s':>9} {'GET MB/s':>9} {'RSS before':>10} {'peak PUT':>9}"
        f" {'peak GET':>9} {'peak':>8} {'(anon)':>7} {'target':>7} {'ok':>4}  (RSS in MiB)"
    )
    lines = [head]
    for r in report["cases"]:
        ok = {True: "yes", False: "NO", None: "-"}[r["ok"]]
        lines.append(
            f"{r['case']:<14} {r['put_mb_s']:>9} {r['get_mb_s']:>9} {r['rss_before_mib']:>10}"
            f" {r['put_peak_rss_mib']:>9} {r['get_peak_rss_mib']:>9} {r['peak_rss_mib']:>8}"
            f" {r['peak_rss_anon_mib']:>7}"
            f" {r['target_mib']:>7} {ok:>4}"
        )
    s = report["slow_reader"]
    if s:
        ok = {True: "yes", False: "NO", None: "-"}[s["ok"]]
        lines.append(
            f"{'slow_reader':<14} read {fmt(s['read_bytes'])} in {s['read_seconds']}s;"
            f" RSS before {s['rss_before_mib']}, peak {s['peak_rss_mib']},"
            f" after {s['rss_after_mib']} (settled in {s['settle_seconds']}s);"
            f" server answers: {s['server_answers']}; ok: {ok}"
        )
    lines.append(f"server VmHWM {report['vm_hwm_mib']} MiB, idle RSS {report['idle_rss_mib']} MiB")
    return "\n".join(lines)


@contextlib.contextmanager
def work_dir(data: str | None) -> Iterator[Path]:
    if data:
        path = Path(data)
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    path = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_local(args: argparse.Namespace, work: Path, cases: list[str]) -> dict[str, Any] | None:
    """Run ``cases`` against a server of our own; None if the server failed."""
    if args.data:
        server = LocalServer(work, work.parent / f"{work.name}-bench-server.log")
    else:
        server = LocalServer(work / "data", work / "server.log")
    offset = server.log_path.stat().st_size if server.log_path.exists() else 0
    server.start()
    assert server.proc is not None
    try:
        creds = (server.access_key, server.secret_key)
        report = asyncio.run(run(args, cases, server.endpoint, *creds, server.proc.pid, True))
    except BaseException:
        log(f"server log:\n{server.log_tail()}")
        raise
    finally:
        rc = server.stop()
    if rc != 0:
        log(f"the server exited with {rc}:\n{server.log_tail()}")
        return None
    with server.log_path.open("rb") as fh:
        fh.seek(offset)
        lines = fh.read().decode(errors="replace").splitlines()
    noted = [line for line in lines if NOTEWORTHY.search(line)]
    for line in noted[:20]:
        log(f"server log: {line}")
    report["server_log_warnings"] = noted[:50]
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", type=float, default=1.0, help="object sizes x this (default 1)")
    p.add_argument("--data", help="the server's data directory (default: a temporary one)")
    p.add_argument("--cases", default=",".join(CASES), help="of slow,a,b,c (default: all)")
    p.add_argument("--bucket", default="bench-memory")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--timeline", help="write the RSS samples to this CSV file")
    p.add_argument("--fresh", action="store_true", help="a new server for each case")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--endpoint", help="measure this running S3 server instead of starting one")
    p.add_argument("--pid", type=int, help="with --endpoint: the server's process (for RSS)")
    p.add_argument("--gc", action="store_true", help="with --endpoint: run s3dedup's admin GC")
    args = p.parse_args(argv)
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    if not 0 < args.scale <= 1 or any(c not in CASES for c in args.cases):
        p.error("--scale must be in (0, 1] and --cases a list of slow, a, b, c")

    if args.timeline:
        Path(args.timeline).write_text("")
    if args.endpoint:
        ak = os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("S3DEDUP_ACCESS_KEY", "")
        sk = os.environ.get("AWS_SECRET_ACCESS_KEY") or os.environ.get("S3DEDUP_SECRET_KEY", "")
        report = finish(
            asyncio.run(run(args, args.cases, args.endpoint, ak, sk, args.pid, args.gc)), False
        )
    else:
        with work_dir(args.data) as work:
            need = max(GiB, int(20 * GiB * args.scale))
            free = shutil.disk_usage(work).free
            if free < need:
                log(f"refusing to run: {fmt(free)} free under {work}, {fmt(need)} needed")
                return 2
            groups = [[c] for c in args.cases] if args.fresh else [args.cases]
            reports = []
            for cases in groups:
                one = run_local(args, work, cases)
                if one is None:
                    return 1
                reports.append(one)
            report = finish(merge(reports), args.fresh)
    print(table(report))
    print(json.dumps(report))
    return 1 if args.strict and not report["targets_met"] else 0


if __name__ == "__main__":
    sys.exit(main())
