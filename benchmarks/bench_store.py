"""Durable-write throughput of DirectoryChunkStore: put_many (parallel fsyncs) vs one at a time.

    python benchmarks/bench_store.py [--mib 1024] [--chunk-kib 256] [--threads 16] [--runs 3]

Writes ``--mib`` MiB of random ``--chunk-kib`` KiB chunks into a fresh store in a temporary
directory under ``--dir`` (default /tmp) and prints MB/s (10^6 bytes per second), the median of
``--runs`` runs for each mode. ``--prefill-dirs`` creates all 65,536 fan-out directories first,
as in a store that has been in use for a while, so the timing excludes directory creation.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dedup.store import DirectoryChunkStore, chunk_id_of

Items = list[tuple[bytes, bytes]]


async def _put_many(store: DirectoryChunkStore, items: Items) -> None:
    await store.put_many(items)


async def _one_at_a_time(store: DirectoryChunkStore, items: Items) -> None:
    for chunk_id, data in items:
        await store.put(chunk_id, data)


Mode = Callable[[DirectoryChunkStore, Items], Coroutine[Any, Any, None]]


def _prefill(root: Path) -> None:
    chunks = root / "chunks"
    for ab in range(256):
        for cd in range(256):
            (chunks / f"{ab:02x}" / f"{cd:02x}").mkdir(parents=True, exist_ok=True)


async def _timed_run(root: Path, items: Items, mode: Mode, threads: int) -> float:
    store = await DirectoryChunkStore.open(root, threads=threads)
    try:
        start = time.perf_counter()
        await mode(store, items)
        elapsed = time.perf_counter() - start
        usage = await store.usage()
    finally:
        await store.close()
    if usage.count != len(items):
        raise RuntimeError(f"stored {usage.count} chunks, expected {len(items)}")
    return elapsed


def _run_mode(args: argparse.Namespace, items: Items, mode: Mode) -> list[float]:
    total = sum(len(data) for _, data in items)
    rates: list[float] = []
    for _ in range(args.runs):
        root = Path(tempfile.mkdtemp(prefix="bench_store.", dir=args.dir))
        try:
            if args.prefill_dirs:
                _prefill(root)
            os.sync()  # start each run without someone else's dirty pages
            elapsed = asyncio.run(_timed_run(root, items, mode, args.threads))
        finally:
            shutil.rmtree(root)
        rates.append(total / elapsed / 1e6)
    return rates


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--mib", type=int, default=1024, help="total MiB written per run")
    parser.add_argument("--chunk-kib", type=int, default=256, help="chunk size in KiB")
    parser.add_argument("--threads", type=int, default=16, help="store write threads")
    parser.add_argument("--runs", type=int, default=3, help="runs per mode (median reported)")
    parser.add_argument("--dir", default="/tmp", help="where the temporary stores go")
    parser.add_argument("--prefill-dirs", action="store_true", help="create fan-out dirs first")
    args = parser.parse_args(argv)

    chunk_size = args.chunk_kib * 1024
    count = max(1, args.mib * 1024 * 1024 // chunk_size)
    items = [(chunk_id_of(data), data) for data in (os.urandom(chunk_size) for _ in range(count))]
    print(
        f"{count} chunks of {args.chunk_kib} KiB ({count * chunk_size / 2**20:.0f} MiB), "
        f"threads={args.threads}, runs={args.runs}, prefill_dirs={args.prefill_dirs}, "
        f"dir={args.dir}"
    )
    modes: dict[str, Mode] = {"put_many": _put_many, "one-at-a-time": _one_at_a_time}
    for name, mode in modes.items():
        rates = _run_mode(args, items, mode)
        runs = ", ".join(f"{rate:.0f}" for rate in rates)
        print(f"{name:>14}: median {statistics.median(rates):7.0f} MB/s  (runs: {runs})")


if __name__ == "__main__":
    main()
