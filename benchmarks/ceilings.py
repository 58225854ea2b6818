"""This machine's ceilings, the yardsticks the s3dedup figures are compared with.

    python benchmarks/ceilings.py [--scale S] [--dir DIR]       # prints JSON
    python benchmarks/ceilings.py serve --port PORT              # the do-nothing endpoint

* MD5 and BLAKE3 (one thread) over one stream, in MB/s (10^6 bytes per second);
* parallel durable file writes: 256 KiB files, each written then fsync'ed, by a thread pool,
  in MB/s, under ``--dir`` (the server's data directory's file system);
* a do-nothing S3 endpoint: a separate aiohttp process that accepts any request (signatures
  are not checked), reads and discards PUT bodies, remembers only each key's size, and serves
  GETs of that many bytes from a buffer in memory; HEAD, DELETE and bucket PUTs get their
  usual answers. :func:`measure_endpoint` drives it (or any S3 endpoint) with
  :class:`benchmarks.loadgen.S3LoadClient`, the load generator s3dedup is measured with.

Work floors (:func:`work_floors`): the CPU seconds per GB that any server doing s3dedup's
work must spend on this machine, measured piece by piece in the same run — MD5 (the ETag),
FastCDC (s3dedup's own chunker) and BLAKE3 of every byte, the do-nothing endpoint's own CPU
and the load generator's (moving the bytes over HTTP at all), for new data the cheapest
durable write (appending to one file, ``fdatasync`` every 8 MiB) or the one the chunk layout
needs (a file per chunk, fsync'ed), and for GET a read from the page cache plus BLAKE3 (the
end-to-end check). With every CPU busy all the time and nothing else to do, a server could
go no faster than ``CPUs / floor`` (and a PUT no faster than MD5, its one serial step): an
upper bound, so a target above it cannot be reached on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import blake3
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_memory import cpu_seconds  # noqa: E402
from benchmarks.loadgen import MiB, S3LoadClient, content, content_bytes  # noqa: E402
from dedup.chunker import ChunkerParams, StreamChunker  # noqa: E402

GiB = 1024 * MiB
KiB = 1024
HASH_BLOCK = MiB


# -- hashing ----------------------------------------------------------------------------------


def _feed_rate(update: Callable[[memoryview], object], total: int) -> float:
    """MB/s of ``update`` taking ``total`` bytes fed in 1 MiB blocks (one thread)."""
    buf = memoryview(content_bytes(64 * MiB, 7))
    done = 0
    t0 = time.perf_counter()
    while done < total:
        off = done % (64 * MiB)
        n = min(HASH_BLOCK, total - done, 64 * MiB - off)
        update(buf[off : off + n])
        done += n
    return total / (time.perf_counter() - t0) / 1e6


def md5_rate(total: int) -> float:
    return _feed_rate(hashlib.md5().update, total)


def blake3_rate(total: int) -> float:
    return _feed_rate(blake3.blake3(max_threads=1).update, total)


def chunker_rate(total: int) -> float:
    """MB/s of s3dedup's FastCDC chunker (default parameters) cutting the bytes (one thread)."""
    return _feed_rate(StreamChunker(ChunkerParams()).feed, total)


def process_cpu() -> float:
    """User plus system CPU seconds of this process so far (all threads)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# -- durable writes ---------------------------------------------------------------------------


def durable_write_rate(
    directory: Path, total: int, threads: int = 16, size: int = 256 * KiB
) -> tuple[float, float]:
    """MB/s of ``threads`` threads writing ``total`` bytes as ``size``-byte files, each
    fsync'ed (then the directory), the way a chunk store writes chunks; and the CPU seconds
    per GB that cost (this process, kernel time of the fsyncs included)."""
    data = content_bytes(size, 11)
    count = max(threads, total // size)
    work = Path(tempfile.mkdtemp(prefix="ceiling-writes-", dir=directory))

    def write(i: int) -> None:
        path = work / f"{i:07d}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    try:
        c0, t0 = process_cpu(), time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            list(pool.map(write, range(count)))
        dfd = os.open(work, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        seconds, cpu = time.perf_counter() - t0, process_cpu() - c0
    finally:
        for p in work.iterdir():
            p.unlink()
        work.rmdir()
    return count * size / seconds / 1e6, cpu / (count * size / 1e9)


def append_costs(directory: Path, total: int, read_size: int = 256 * KiB) -> tuple[float, float]:
    """CPU seconds per GB (this thread, kernel time included) of the cheapest durable write —
    ``total`` bytes appended to one file in 1 MiB writes, ``fdatasync`` every 8 MiB — and of
    reading them back from the page cache in ``read_size`` pieces (each a new bytes object, as
    a chunk read is)."""
    data = content_bytes(MiB, 13)
    fd, name = tempfile.mkstemp(prefix="ceiling-append-", dir=directory)
    try:
        c0 = time.thread_time()
        for i in range(max(1, total // MiB)):
            os.write(fd, data)
            if i % 8 == 7:
                os.fdatasync(fd)
        os.fdatasync(fd)
        written = os.fstat(fd).st_size
        c1 = time.thread_time()
        offset = 0
        while piece := os.pread(fd, read_size, offset):
            offset += len(piece)
        c2 = time.thread_time()
    finally:
        os.close(fd)
        os.unlink(name)
    gb = written / 1e9
    return (c1 - c0) / gb, (c2 - c1) / gb


# -- the do-nothing S3 endpoint ---------------------------------------------------------------

_EMPTY_MD5 = '"d41d8cd98f00b204e9800998ecf8427e"'


def make_app() -> web.Application:
    sizes: dict[str, int] = {}
    pool = content_bytes(64 * MiB, 3)
    view = memoryview(pool)

    async def handle(request: web.Request) -> web.StreamResponse:
        path = request.path
        parts = path.lstrip("/").split("/", 1)
        is_object = len(parts) == 2 and parts[1] != ""
        method = request.method
        if path == "/_s3dedup/health":
            return web.Response(text="ok")
        if method == "PUT":
            n = 0
            async for data in request.content.iter_any():
                n += len(data)
            if is_object:
                sizes[path] = n
            return web.Response(headers={"ETag": _EMPTY_MD5})
        if method == "DELETE":
            sizes.pop(path, None)
            return web.Response(status=204)
        if method in ("GET", "HEAD") and is_object:
            size = sizes.get(path)
            if size is None:
                return web.Response(status=404, body=b"<Error><Code>NoSuchKey</Code></Error>")
            headers = {"ETag": _EMPTY_MD5, "Content-Type": "application/octet-stream"}
            if method == "HEAD":
                headers["Content-Length"] = str(size)
                return web.Response(headers=headers)
            if size <= 4 * MiB:
                return web.Response(body=view[:size], headers=headers)
            resp = web.StreamResponse(headers=headers)
            resp.content_length = size
            await resp.prepare(request)
            sent = 0
            while sent < size:
                n = min(4 * MiB, size - sent)
                off = sent % (len(pool) - 4 * MiB)
                await resp.write(view[off : off + n])
                sent += n
            await resp.write_eof()
            return resp
        if method == "GET":  # a listing or anything else: an empty result
            return web.Response(body=b"<ListBucketResult></ListBucketResult>")
        return web.Response()

    app = web.Application(client_max_size=1 << 62)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def serve(port: int) -> None:
    web.run_app(make_app(), host="127.0.0.1", port=port, print=None, access_log=None)


# -- measuring an endpoint --------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * len(s) + 0.5) - 1))]


async def timed(run: Awaitable[Any]) -> float:
    t0 = time.perf_counter()
    await run
    return time.perf_counter() - t0


async def small_ops(
    client: S3LoadClient, bucket: str, prefix: str, clients: int, count: int, size: int = 4 * KiB
) -> dict[str, dict[str, float]]:
    """``count`` PUTs of ``size``-byte objects by ``clients`` concurrent clients, then as many
    GETs, HEADs and DELETEs of them: ops/s and p50/p99 latency (ms) of each."""
    keys = [f"{prefix}/{i:07d}" for i in range(count)]
    bodies = [content_bytes(size, 0x4B, i * size) for i in range(count)]
    out: dict[str, dict[str, float]] = {}

    async def phase(name: str, op: Callable[[int], Awaitable[Any]]) -> None:
        latencies: list[float] = []
        it = iter(range(count))

        async def worker() -> None:
            for i in it:
                t = time.perf_counter()
                await op(i)
                latencies.append(time.perf_counter() - t)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        seconds = time.perf_counter() - t0
        out[name] = {
            "ops_s": count / seconds,
            "p50_ms": statistics.median(latencies) * 1e3,
            "p99_ms": pct(latencies, 0.99) * 1e3,
        }

    async def get(i: int) -> None:
        if await client.get(bucket, keys[i]) != size:
            raise RuntimeError(f"GET {keys[i]}: wrong size")

    await phase("put", lambda i: client.put(bucket, keys[i], bodies[i]))
    await phase("get", get)
    await phase("head", lambda i: client.head(bucket, keys[i]))
    await phase("delete", lambda i: client.delete(bucket, keys[i]))
    return out


async def measure_endpoint(
    endpoint: str,
    big: int,
    concurrent: int,
    small_count: int,
    access_key: str = "ceiling",
    secret_key: str = "ceiling",
    bucket: str = "ceiling",
    pid: int | None = None,
) -> dict[str, float]:
    """One run against ``endpoint``: a single-stream PUT and GET of ``big`` bytes, 8
    concurrent PUTs and GETs of ``concurrent`` bytes, and the 4 KiB operations at 16 and 64
    clients. A flat dict of figures (MB/s, ops/s, ms); for the single-stream PUT and GET
    also the CPU seconds per GB of the load generator (this process) and, given the server's
    ``pid``, of the server."""
    r: dict[str, float] = {}

    async def single(name: str, run: Awaitable[Any]) -> None:
        server0 = cpu_seconds(pid) if pid else 0.0
        client0 = process_cpu()
        s = await timed(run)
        r[f"{name}_mb_s"] = big / s / 1e6
        r[f"{name}_client_cpu_s_gb"] = (process_cpu() - client0) / (big / 1e9)
        if pid:
            r[f"{name}_server_cpu_s_gb"] = (cpu_seconds(pid) - server0) / (big / 1e9)

    async with S3LoadClient(endpoint, access_key, secret_key, connections=64) as client:
        await client.create_bucket(bucket)
        await single("put_1g", client.put(bucket, "big", content(big, 1), big))
        await single("get_1g", client.get(bucket, "big"))
        await client.delete(bucket, "big")
        keys = [f"conc/{i}" for i in range(8)]
        s = await timed(
            asyncio.gather(
                *(
                    client.put(bucket, k, content(concurrent, 100 + i), concurrent)
                    for i, k in enumerate(keys)
                )
            )
        )
        r["put_8x256m_mb_s"] = 8 * concurrent / s / 1e6
        s = await timed(asyncio.gather(*(client.get(bucket, k) for k in keys)))
        r["get_8x256m_mb_s"] = 8 * concurrent / s / 1e6
        await asyncio.gather(*(client.delete(bucket, k) for k in keys))
        for clients in (16, 64):
            ops = await small_ops(client, bucket, f"small{clients}", clients, small_count)
            for op, figs in ops.items():
                for name, value in figs.items():
                    r[f"{op}_4k_c{clients}_{name}"] = value
    return r


class NoopServer:
    """The do-nothing endpoint in a child process."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> NoopServer:
        import urllib.request

        cmd = [sys.executable, str(Path(__file__).resolve()), "serve", "--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(self.endpoint + "/_s3dedup/health", timeout=1):
                    return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the do-nothing endpoint did not start") from None
                time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def local_ceilings(scale: float, directory: Path) -> dict[str, float]:
    """The ceilings measured in this process (hashes, chunking, durable writes, reads)."""
    total = max(8 * MiB, int(GiB * scale))
    writes, writes_cpu = durable_write_rate(directory, max(4 * MiB, int(GiB * scale) // 2))
    append_cpu, cached_read_cpu = append_costs(directory, max(16 * MiB, int(GiB * scale) // 2))
    return {
        "md5_mb_s": md5_rate(total),
        "blake3_mb_s": blake3_rate(total),
        "chunker_mb_s": chunker_rate(total),
        "durable_writes_mb_s": writes,
        "durable_writes_cpu_s_gb": writes_cpu,
        "durable_append_cpu_s_gb": append_cpu,
        "cached_read_cpu_s_gb": cached_read_cpu,
    }


# -- work floors ------------------------------------------------------------------------------

FLOOR_PARTS: dict[str, tuple[str, ...]] = {
    # figure -> the per-GB CPU costs it cannot do without (see the module's docstring)
    "put_known": ("md5", "chunker", "blake3", "put_1g_server", "put_1g_client"),
    "put_new": (
        "md5",
        "chunker",
        "blake3",
        "put_1g_server",
        "put_1g_client",
        "durable_append",
    ),
    "put_new_files": (
        "md5",
        "chunker",
        "blake3",
        "put_1g_server",
        "put_1g_client",
        "durable_writes",
    ),
    "get": ("blake3", "cached_read", "get_1g_server", "get_1g_client"),
}


def _cpu_per_gb(ceil: dict[str, float], part: str) -> float:
    if part in ("md5", "chunker", "blake3"):  # measured as a rate: one thread, always busy
        return 1000 / ceil[f"{part}_mb_s"]
    return ceil[f"{part}_cpu_s_gb"]


def work_floors(ceil: dict[str, float], cpus: int) -> dict[str, float]:
    """Per figure of :data:`FLOOR_PARTS`: ``floor_X_cpu_s_gb`` (the sum of its parts) and
    ``bound_X_mb_s`` = ``cpus`` * 1000 / floor — for a PUT at most the MD5 rate, the ETag's
    serial hash. Empty when a part was not measured (no server pid)."""
    out: dict[str, float] = {}
    for name, parts in FLOOR_PARTS.items():
        try:
            floor = sum(_cpu_per_gb(ceil, p) for p in parts)
        except KeyError:
            continue
        bound = cpus * 1000 / floor
        if name.startswith("put"):
            bound = min(bound, ceil["md5_mb_s"])
        out[f"floor_{name}_cpu_s_gb"] = floor
        out[f"bound_{name}_mb_s"] = bound
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", nargs="?", default="measure", choices=("measure", "serve"))
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--dir", default=tempfile.gettempdir())
    args = p.parse_args(argv)
    if args.mode == "serve":
        serve(args.port)
        return 0
    from benchmarks.bench_memory import free_port

    out: dict[str, float] = local_ceilings(args.scale, Path(args.dir))
    with NoopServer(args.port or free_port()) as noop:
        big = max(MiB, int(GiB * args.scale))
        conc = max(MiB, int(256 * MiB * args.scale))
        small = max(128, int(10000 * args.scale))
        assert noop.proc is not None
        out.update(
            asyncio.run(measure_endpoint(noop.endpoint, big, conc, small, pid=noop.proc.pid))
        )
        out.update(work_floors(out, os.cpu_count() or 1))
    print(json.dumps({k: round(v, 2) for k, v in out.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
