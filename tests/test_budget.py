"""The global in-flight byte budget: backpressure without deadlock, every byte given back."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from dedup import catalog
from dedup.engine import ByteBudget, Engine
from dedup.fsck import fsck
from dedup.index import Index, Txn
from dedup.ingest import Ingest
from dedup.records import ObjectRecord
from dedup.store import DirectoryChunkStore

MiB = 1024 * 1024


async def test_acquire_release_fifo() -> None:
    b = ByteBudget(10)
    await b.acquire(8)
    big = asyncio.create_task(b.acquire(5))
    await asyncio.sleep(0)
    small = asyncio.create_task(b.acquire(1))  # would fit, but must not overtake `big`
    await asyncio.sleep(0)
    assert not big.done() and not small.done()
    b.release(8)
    await asyncio.wait_for(asyncio.gather(big, small), 1)
    assert b.used == 6


async def test_cancelled_waiter_leaves_no_charge() -> None:
    b = ByteBudget(10)
    await b.acquire(10)
    waiter = asyncio.create_task(b.acquire(4))
    behind = asyncio.create_task(b.acquire(2))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    b.release(10)
    await asyncio.wait_for(behind, 1)
    assert b.used == 2
    with pytest.raises(ValueError):
        await b.acquire(11)


async def test_many_uploads_through_a_small_budget(tmp_path: Path) -> None:
    """16 concurrent 8 MiB uploads (and 4 aborted ones) through an 8 MiB budget: no
    deadlock, usage never above the limit, nothing left charged, fsck clean."""
    index = Index(tmp_path / "index")
    engine = Engine(index, DirectoryChunkStore(tmp_path / "store"), inflight_bytes=8 * MiB)
    await engine.index.write(lambda txn: catalog.create_bucket(txn, "b", "o", 1))
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, engine.inflight_bytes)
            await asyncio.sleep(0.001)

    async def upload(i: int, abort: bool) -> None:
        rng = random.Random(i)
        ing = Ingest(engine)
        try:
            for _ in range(8):
                await ing.write(rng.randbytes(MiB))
            if abort:
                raise RuntimeError("client went away")
            res = await ing.finish()
        except RuntimeError:
            await ing.abort()
            return
        rec = ObjectRecord(size=res.size, etag=res.md5.hex(), mtime_ms=1, chunks=res.chunks)

        def commit(txn: Txn) -> None:
            catalog.commit_object(txn, "b", f"k{i}", rec, res.token, res.stored, None, 1)

        await engine.index.write(commit)

    watcher = asyncio.create_task(watch())
    try:
        await asyncio.wait_for(asyncio.gather(*(upload(i, abort=i >= 16) for i in range(20))), 120)
    finally:
        watcher.cancel()
    assert engine.inflight_bytes == 0
    assert 0 < peak <= 8 * MiB
    report = await fsck(engine.index, engine.store)
    assert report.ok, report.problems
    assert report.objects == 16
    await engine.close()
