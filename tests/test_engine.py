"""The engine driven directly (no HTTP): Ingest → commit → read_range, dedup, overwrite and
delete, GC with a grace period on a fake clock, startup recovery. fsck is the oracle.

The helpers at the top are shared with tests/test_refcount.py."""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from dedup import catalog, refcount
from dedup.chunker import ChunkerParams, chunk_all
from dedup.engine import Engine
from dedup.fsck import FsckReport, fsck
from dedup.index import Index, NoSuchBucketError, NoSuchKeyError, Txn
from dedup.ingest import Ingest, IngestResult
from dedup.records import ChunkRecord, ChunkState, ObjectRecord
from dedup.store import (
    ChunkNotFound,
    ChunkStore,
    DirectoryChunkStore,
    MemoryChunkStore,
    Placement,
    StoreUsage,
    chunk_id_of,
)

KiB = 1024
MiB = 1024 * KiB
BUCKET = "b"
# Small chunks so that tests cross many chunk boundaries cheaply (FastCDC's lower bounds).
SMALL = ChunkerParams(min_size=1 * KiB, avg_size=4 * KiB, max_size=16 * KiB)


# -- helpers (also used by test_refcount.py) ---------------------------------------------------


class FakeClock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


async def open_engine(
    path: Path,
    store: ChunkStore | None = None,
    *,
    clock: Callable[[], float] | None = None,
    chunker: ChunkerParams | None = SMALL,
    bucket: str | None = BUCKET,
    recover: bool = True,
) -> Engine:
    index = Index(path, chunker)
    kwargs: dict[str, Any] = {} if clock is None else {"clock": clock}
    engine = Engine(index, store if store is not None else MemoryChunkStore(), **kwargs)
    if recover:
        await engine.recover()
    if bucket is not None:
        await engine.index.write(
            lambda txn: (
                None
                if txn.bucket(bucket)
                else catalog.create_bucket(txn, bucket, "owner", engine.now_ms())
            )
        )
    return engine


def crash(engine: Engine) -> None:
    """Lose the process: nothing is released, nothing flushed beyond what was committed.
    The chunk store (another process in a cluster) stays up."""
    engine.hash_pool.shutdown(wait=True)
    engine.read_pool.shutdown(wait=True)
    engine.index.close()


async def ingest(
    engine: Engine, data: bytes, *, block: int = 64 * KiB
) -> tuple[Ingest, IngestResult]:
    ing = Ingest(engine, [])
    try:
        for i in range(0, len(data), block):
            await ing.write(data[i : i + block])
        return ing, await ing.finish()
    except BaseException:
        await asyncio.shield(ing.abort())
        raise


def make_record(engine: Engine, res: IngestResult) -> ObjectRecord:
    return ObjectRecord(
        size=res.size,
        etag=res.md5.hex(),
        mtime_ms=engine.now_ms(),
        inline=res.inline,
        chunks=res.chunks,
    )


async def commit(
    engine: Engine,
    ing: Ingest,
    res: IngestResult,
    key: str,
    *,
    bucket: str = BUCKET,
    on_commit: Callable[[Txn], None] | None = None,
) -> ObjectRecord:
    """Commit as the PUT handler does; ``on_commit`` runs inside the commit transaction (after
    it succeeded), which gives tests the exact order of commits."""
    rec = make_record(engine, res)

    def fn(txn: Txn) -> None:
        catalog.commit_object(txn, bucket, key, rec, res.token, res.stored, None, engine.now_ms())
        if on_commit is not None:
            on_commit(txn)

    try:
        await engine.index.write(fn)
    except BaseException:
        await asyncio.shield(ing.abort())
        raise
    return rec


async def put(
    engine: Engine, key: str, data: bytes, *, block: int = 64 * KiB, bucket: str = BUCKET
) -> ObjectRecord:
    ing, res = await ingest(engine, data, block=block)
    return await commit(engine, ing, res, key, bucket=bucket)


async def delete(engine: Engine, key: str, *, bucket: str = BUCKET) -> bool:
    return await engine.index.write(
        lambda txn: catalog.delete_object(txn, bucket, key, engine.now_ms())
    )


async def copy(engine: Engine, src: str, dst: str, *, bucket: str = BUCKET) -> ObjectRecord:
    now = engine.now_ms()
    return await engine.index.write(
        lambda txn: catalog.copy_object(
            txn, bucket, src, bucket, dst, lambda r: replace(r, mtime_ms=now), None, now
        )
    )


async def record(engine: Engine, key: str, *, bucket: str = BUCKET) -> ObjectRecord | None:
    return await engine.read(lambda txn: catalog.get_object(txn, bucket, key))


async def read_rec(
    engine: Engine, rec: ObjectRecord, start: int = 0, end: int | None = None
) -> bytes:
    end = rec.size if end is None else end
    return b"".join([piece async for piece in engine.read_range(rec, start, end)])


async def get(engine: Engine, key: str, start: int = 0, end: int | None = None) -> bytes:
    rec = await record(engine, key)
    assert rec is not None, f"no object {key!r}"
    return await read_rec(engine, rec, start, end)


async def store_ids(store: ChunkStore) -> set[bytes]:
    out: set[bytes] = set()
    after: bytes | None = None
    while page := await store.list_ids(after, 1000):
        out.update(page)
        after = page[-1]
    return out


async def chunks(engine: Engine) -> dict[bytes, ChunkRecord]:
    return await engine.read(
        lambda txn: {h: ChunkRecord.decode(v) for h, v in txn.prefix("chunks", b"")}
    )


async def pins(engine: Engine) -> int:
    return await engine.read(lambda txn: sum(1 for _ in txn.prefix("pins", b"")))


async def check(engine: Engine) -> FsckReport:
    report = await fsck(engine.index, engine.store, verify_data=True)
    assert report.ok, report.problems
    return report


async def gc_clean(engine: Engine) -> FsckReport:
    """GC with grace 0, then: fsck ok, nothing unreferenced, store and index hold the same ids."""
    await engine.collect_garbage(0)
    report = await check(engine)
    assert report.unreferenced_chunks == 0
    assert await store_ids(engine.store) == set(await chunks(engine))
    return report


def ids_of(data: bytes, params: ChunkerParams = SMALL) -> list[bytes]:
    return [chunk_id_of(c) for c in chunk_all(data, params)]


def rand(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "directory"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Engine]:
    store: ChunkStore = (
        MemoryChunkStore()
        if request.param == "memory"
        else DirectoryChunkStore(tmp_path / "store", threads=8)
    )
    eng = await open_engine(tmp_path / "index", store)
    yield eng
    await eng.close()


@pytest.fixture
async def mem_engine(tmp_path: Path) -> AsyncIterator[Engine]:
    eng = await open_engine(tmp_path / "index")
    yield eng
    await eng.close()


# -- round trips -------------------------------------------------------------------------------

INLINE = Engine.INLINE_MAX
SIZES = [
    0, 1, INLINE - 1, INLINE, INLINE + 1, SMALL.min_size, SMALL.max_size - 1, SMALL.max_size,
    SMALL.max_size + 1, 2 * SMALL.max_size, 2 * SMALL.max_size + 1, 3 * SMALL.max_size - 1,
    100 * KiB + 3, 600 * KiB,
]  # fmt: skip


@pytest.mark.parametrize("size", SIZES)
async def test_put_get_round_trip(engine: Engine, size: int) -> None:
    data = rand(size, size)
    for block in (1 * KiB + 1, 64 * KiB):
        rec = await put(engine, f"k{size}-{block}", data, block=block)
        assert rec.size == size
        assert rec.etag == hashlib.md5(data).hexdigest()
        if size <= INLINE:
            assert rec.inline == data and rec.chunks == []
        else:
            assert rec.inline is None
            assert [h for h, _ in rec.chunks] == ids_of(data)
            assert sum(n for _, n in rec.chunks) == size
        assert await get(engine, f"k{size}-{block}") == data
    report = await check(engine)
    assert report.pinned_references == 0
    stats = engine.index.stats()
    assert stats["objects"] == 2
    assert stats["logical_bytes"] == 2 * size
    assert stats["inline_bytes"] == (2 * size if size <= INLINE else 0)


async def test_inline_threshold_is_configurable(tmp_path: Path) -> None:
    eng = await open_engine(tmp_path / "index")
    eng.inline_max = 0
    try:
        rec = await put(eng, "one", b"x")
        assert rec.inline is None and len(rec.chunks) == 1
        assert (await put(eng, "empty", b"")).inline == b""
        assert await get(eng, "one") == b"x"
        await check(eng)
    finally:
        await eng.close()


async def test_ranges(engine: Engine) -> None:
    data = rand(7, 200 * KiB + 11)
    rec = await put(engine, "r", data)
    offsets = rec.chunk_offsets()
    assert len(rec.chunks) > 10
    points = sorted({0, 1, rec.size - 1, rec.size, *offsets, *(o - 1 for o in offsets[1:]),
                     *(o + 1 for o in offsets[:-1])})  # fmt: skip
    rng = random.Random(1)
    cases = [(a, b) for a in points[::3] for b in points[::4] if a <= b]
    cases += [(a, min(a + rng.randint(1, 50 * KiB), rec.size)) for a in
              (rng.randrange(rec.size) for _ in range(30))]  # fmt: skip
    for a, b in cases:
        assert await read_rec(engine, rec, a, b) == data[a:b], (a, b)
    small = await put(engine, "s", b"0123456789")
    assert await read_rec(engine, small, 2, 5) == b"234"
    assert await read_rec(engine, small, 0, 10) == b"0123456789"


async def test_read_verifies_chunks(mem_engine: Engine) -> None:
    data = rand(3, 50 * KiB)
    rec = await put(mem_engine, "x", data)
    store = mem_engine.store
    assert isinstance(store, MemoryChunkStore)
    h = rec.chunks[1][0]
    store._chunks[h] = b"garbage"
    with pytest.raises(Exception, match=h.hex()):
        await get(mem_engine, "x")
    del store._chunks[h]
    with pytest.raises(ChunkNotFound):
        await get(mem_engine, "x")


# -- dedup -------------------------------------------------------------------------------------


async def test_same_content_stored_once(engine: Engine) -> None:
    data = rand(11, 300 * KiB)
    await put(engine, "a", data)
    first = engine.index.stats()
    usage = await engine.store.usage()
    await put(engine, "b", data, block=7 * KiB)  # other network reads, same chunks
    second = engine.index.stats()
    assert second["chunks"] == first["chunks"] == len(set(ids_of(data)))
    assert second["chunk_bytes"] == first["chunk_bytes"]
    assert second["logical_bytes"] == 2 * len(data)
    assert second["objects"] == 2
    assert await engine.store.usage() == usage
    for h, rec in (await chunks(engine)).items():
        assert rec.refcount == 2 * ids_of(data).count(h)
        assert rec.state is ChunkState.STORED
    assert await get(engine, "a") == await get(engine, "b") == data
    await check(engine)


async def test_edited_content_shares_most_chunks(mem_engine: Engine) -> None:
    data = rand(12, 400 * KiB)
    await put(mem_engine, "v1", data)
    before = mem_engine.index.stats()["chunks"]
    edited = data[: 100 * KiB] + b"an insertion" + data[100 * KiB :]
    await put(mem_engine, "v2", edited)
    new = mem_engine.index.stats()["chunks"] - before
    assert 0 < new <= 3
    assert await get(mem_engine, "v2") == edited
    await check(mem_engine)


async def test_repeated_chunk_in_one_object(mem_engine: Engine) -> None:
    zeros = bytes(3 * MiB)  # no cut point in zeros: max-size chunks, all the same
    rec = await put(mem_engine, "z", zeros)
    (h,) = {h for h, _ in rec.chunks}
    n = len(rec.chunks)
    assert n == 3 * MiB // SMALL.max_size
    assert (await chunks(mem_engine))[h].refcount == n
    assert mem_engine.index.stats()["chunks"] == 1
    assert await get(mem_engine, "z") == zeros
    await check(mem_engine)


# -- overwrite, delete, copy, GC ---------------------------------------------------------------


async def test_overwrite_and_delete_drop_references(engine: Engine) -> None:
    x, y = rand(21, 100 * KiB), rand(22, 100 * KiB)
    await put(engine, "k", x)
    await put(engine, "k", y)
    report = await check(engine)
    assert report.unreferenced_chunks == len(set(ids_of(x)))
    assert await get(engine, "k") == y
    result = await engine.collect_garbage(0)
    assert result.chunks_deleted == len(set(ids_of(x)))
    assert result.bytes_freed == len(x)
    assert await store_ids(engine.store) == set(ids_of(y))
    assert await delete(engine, "k")
    assert not await delete(engine, "k")  # deleting a missing key is not an error
    assert await record(engine, "k") is None
    await gc_clean(engine)
    assert await store_ids(engine.store) == set()
    assert engine.index.stats() == dict.fromkeys(engine.index.stats(), 0)


async def test_copy_references_the_same_chunks(engine: Engine) -> None:
    x = rand(31, 90 * KiB)
    await put(engine, "src", x)
    usage = await engine.store.usage()
    await copy(engine, "src", "dst")
    assert await engine.store.usage() == usage
    await delete(engine, "src")
    await gc_clean(engine)
    assert await get(engine, "dst") == x
    with pytest.raises(NoSuchKeyError):
        await copy(engine, "src", "again")
    before = {h: r.refcount for h, r in (await chunks(engine)).items()}
    await copy(engine, "dst", "dst")  # onto itself (new metadata): references unchanged
    assert {h: r.refcount for h, r in (await chunks(engine)).items()} == before
    assert await get(engine, "dst") == x
    await check(engine)


async def test_gc_respects_grace(tmp_path: Path) -> None:
    clock = FakeClock()
    eng = await open_engine(tmp_path / "index", clock=clock)
    try:
        x = rand(41, 80 * KiB)
        n = len(set(ids_of(x)))
        await put(eng, "k", x)
        await delete(eng, "k")
        clock.advance(5)
        assert (await eng.collect_garbage(10)).chunks_deleted == 0
        assert len(await store_ids(eng.store)) == n
        clock.advance(4.9)
        assert (await eng.collect_garbage(10)).chunks_deleted == 0
        clock.advance(0.2)
        assert (await eng.collect_garbage(10)).chunks_deleted == n
        assert await store_ids(eng.store) == set()
        await check(eng)

        # a chunk that comes back to life inside the grace period is kept, and its grace
        # starts again when it is dropped again
        await put(eng, "k", x)
        await delete(eng, "k")
        clock.advance(9)
        await put(eng, "k2", x)
        clock.advance(9)
        assert (await eng.collect_garbage(10)).chunks_deleted == 0
        await delete(eng, "k2")
        clock.advance(9)
        assert (await eng.collect_garbage(10)).chunks_deleted == 0
        clock.advance(2)
        assert (await eng.collect_garbage(10)).chunks_deleted == n
        await check(eng)
    finally:
        await eng.close()


async def test_gc_batches(mem_engine: Engine) -> None:
    x = rand(42, 300 * KiB)
    await put(mem_engine, "k", x)
    await delete(mem_engine, "k")
    result = await mem_engine.collect_garbage(0, batch=7)
    assert result.chunks_deleted == len(set(ids_of(x)))
    await gc_clean(mem_engine)


# -- abort and failures ------------------------------------------------------------------------


async def test_abort_after_finish_releases_pins(mem_engine: Engine) -> None:
    shared, own = rand(51, 60 * KiB), rand(52, 60 * KiB)
    await put(mem_engine, "keep", shared)
    ing, res = await ingest(mem_engine, shared + own)
    assert await pins(mem_engine) > 0
    await ing.abort()
    assert await pins(mem_engine) == 0
    report = await check(mem_engine)
    assert report.pinned_references == 0
    result = await mem_engine.collect_garbage(0)
    assert result.chunks_deleted == len(set(h for h, _ in res.chunks) - set(ids_of(shared)))
    await gc_clean(mem_engine)
    assert await get(mem_engine, "keep") == shared


async def test_failed_precondition_aborts_cleanly(mem_engine: Engine) -> None:
    ing, res = await ingest(mem_engine, rand(53, 50 * KiB))
    with pytest.raises(NoSuchBucketError):
        await commit(mem_engine, ing, res, "k", bucket="missing")
    assert await pins(mem_engine) == 0
    await gc_clean(mem_engine)
    assert await store_ids(mem_engine.store) == set()


class FailingStore(MemoryChunkStore):
    """Refuses puts of chosen chunks."""

    def __init__(self, fail: set[bytes]) -> None:
        super().__init__()
        self.fail = fail

    async def put(self, chunk_id: bytes, data: bytes | memoryview) -> Placement:
        await asyncio.sleep(0)
        if chunk_id in self.fail:
            raise OSError("disk on fire")
        return await super().put(chunk_id, data)


@pytest.mark.parametrize("which", [0, 5, -1])
async def test_failed_chunk_write_fails_the_upload(tmp_path: Path, which: int) -> None:
    """A chunk that could not be written must fail the upload, whenever the failure is
    noticed: committing an object whose chunk is not in the store would lose data."""
    data = rand(61, 400 * KiB)
    bad = ids_of(data)[which]
    eng = await open_engine(tmp_path / "index", FailingStore({bad}))
    try:
        with pytest.raises(OSError, match="disk on fire"):
            await asyncio.wait_for(put(eng, "k", data, block=4 * KiB), 10)
        assert await record(eng, "k") is None
        assert await pins(eng) == 0
        await gc_clean(eng)
    finally:
        await eng.close()


async def test_failure_with_a_full_queue_does_not_hang_finish(tmp_path: Path) -> None:
    """The pipeline dies while the body queue is full and finish() waits to queue the end of
    the body: finish() must raise, not block forever."""
    block = 64 * KiB
    data = rand(62, (Ingest.BLOCK_QUEUE + 1) * block)
    store = FailingStore(set(ids_of(data)))
    eng = await open_engine(tmp_path / "index", store)
    try:
        ing = Ingest(eng, [])
        for i in range(0, len(data), block):  # fills the queue before the worker has run
            await ing.write(data[i : i + block])
        with pytest.raises(OSError, match="disk on fire"):
            await asyncio.wait_for(ing.finish(), 10)
        with pytest.raises(OSError, match="disk on fire"):
            await ing.write(b"more")
        await asyncio.wait_for(ing.abort(), 10)
        await gc_clean(eng)
    finally:
        await eng.close()


# -- startup recovery --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["memory", "directory"])
async def test_recover_releases_pins_of_a_dead_process(tmp_path: Path, kind: str) -> None:
    store: ChunkStore = (
        MemoryChunkStore() if kind == "memory" else DirectoryChunkStore(tmp_path / "store")
    )
    eng = await open_engine(tmp_path / "index", store)
    shared, own = rand(71, 50 * KiB), rand(72, 50 * KiB)
    await put(eng, "keep", shared)
    _ing, res = await ingest(eng, shared + own)  # pinned and sent, never committed
    assert await pins(eng) > 0
    crash(eng)

    eng = await open_engine(tmp_path / "index", store)  # runs recover()
    try:
        assert await pins(eng) == 0
        report = await check(eng)
        assert report.pinned_references == 0
        orphans = set(h for h, _ in res.chunks) - set(ids_of(shared))
        assert report.unreferenced_chunks == len(orphans)
        assert (await eng.collect_garbage(0)).chunks_deleted == len(orphans)
        await gc_clean(eng)
        assert await get(eng, "keep") == shared
    finally:
        await eng.close()


async def test_recover_releases_pins_of_an_unfinished_upload(tmp_path: Path) -> None:
    """Pins of an upload cut off mid-body (some chunks pinned, perhaps not all sent)."""
    store = MemoryChunkStore()
    eng = await open_engine(tmp_path / "index", store)
    ing = Ingest(eng, [])
    data = rand(73, 300 * KiB)
    for i in range(0, len(data), 16 * KiB):
        await ing.write(data[i : i + 16 * KiB])
    for _ in range(500):
        if await pins(eng):
            break
        await asyncio.sleep(0.01)
    assert await pins(eng) > 0
    ing._worker.cancel()  # the process dies here
    await asyncio.gather(ing._worker, return_exceptions=True)
    crash(eng)
    eng = await open_engine(tmp_path / "index", store)
    try:
        assert await pins(eng) == 0
        await gc_clean(eng)
        assert await store_ids(store) == set()
    finally:
        await eng.close()


@pytest.mark.parametrize("deleted_from_store", [False, True])
async def test_recover_finishes_a_crashed_gc(tmp_path: Path, deleted_from_store: bool) -> None:
    """GC marked chunks DELETING and died (before or after deleting them from the store)."""
    store = MemoryChunkStore()
    eng = await open_engine(tmp_path / "index", store)
    x, y = rand(81, 60 * KiB), rand(82, 60 * KiB)
    await put(eng, "gone", x)
    await put(eng, "kept", y)
    await delete(eng, "gone")
    now = eng.now_ms()
    marked = await eng.index.write(lambda txn: refcount.gc_mark(txn, now, 10_000))
    assert set(marked) == set(ids_of(x)) - set(ids_of(y))
    if deleted_from_store:
        for h in marked:
            await store.delete(h)
    crash(eng)

    eng = await open_engine(tmp_path / "index", store)
    try:
        left = await chunks(eng)
        assert not any(r.state is ChunkState.DELETING for r in left.values())
        assert set(left) == set(ids_of(y))
        assert await store_ids(store) == set(ids_of(y))
        await check(eng)
        assert await get(eng, "kept") == y
        await put(eng, "gone", x)  # the content can be stored again
        assert await get(eng, "gone") == x
        await gc_clean(eng)
    finally:
        await eng.close()


async def test_recover_is_idempotent_and_keeps_committed_data(tmp_path: Path) -> None:
    store = MemoryChunkStore()
    eng = await open_engine(tmp_path / "index", store)
    data = {f"k{i}": rand(90 + i, 20 * KiB * i) for i in range(5)}
    for k, v in data.items():
        await put(eng, k, v)
    crash(eng)
    eng = await open_engine(tmp_path / "index", store)
    try:
        await eng.recover()
        for k, v in data.items():
            assert await get(eng, k) == v
        await gc_clean(eng)
        assert engine_stats_match(eng.index.stats(), data)
    finally:
        await eng.close()


async def test_index_write_after_close_raises(tmp_path: Path) -> None:
    """A write submitted after close() (a request finishing during shutdown) must fail, not
    wait forever for a writer thread that is gone; writes queued before close() are run."""
    index = Index(tmp_path / "index", SMALL)
    queued = index.submit(lambda txn: txn.put("meta", b"test:queued", b"1"))
    index.close()
    assert queued.result(timeout=5) is None
    with pytest.raises(RuntimeError, match="closed"):
        await asyncio.wait_for(index.write(lambda txn: None), 5)
    index.close()  # idempotent
    index = Index(tmp_path / "index", SMALL)
    with index.read() as txn:
        assert txn.get("meta", b"test:queued") == b"1"
    index.close()


def engine_stats_match(stats: dict[str, int], data: dict[str, bytes]) -> bool:
    return stats["objects"] == len(data) and stats["logical_bytes"] == sum(map(len, data.values()))


# -- misc --------------------------------------------------------------------------------------


async def test_usage_and_stats_agree_after_churn(mem_engine: Engine) -> None:
    rng = random.Random(5)
    pool = [rand(100 + i, 8 * KiB) for i in range(6)]
    for _ in range(40):
        key = f"k{rng.randrange(5)}"
        op = rng.random()
        if op < 0.6:
            await put(mem_engine, key, b"".join(rng.choices(pool, k=rng.randint(0, 8))))
        elif op < 0.8:
            await delete(mem_engine, key)
        else:
            missing = await record(mem_engine, key) is None
            with pytest.raises(NoSuchKeyError) if missing else nullcontext():
                await copy(mem_engine, key, f"k{rng.randrange(5)}")
        if rng.random() < 0.3:
            await mem_engine.collect_garbage(0)
        await check(mem_engine)
    await gc_clean(mem_engine)
    stats = mem_engine.index.stats()
    usage = await mem_engine.store.usage()
    assert usage == StoreUsage(stats["chunks"], stats["chunk_bytes"])


class _CountingStore(MemoryChunkStore):
    """Records every get_many call and the most chunks asked for at once."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []
        self.in_flight = 0
        self.most_in_flight = 0

    async def get_many(self, chunk_ids: Sequence[bytes]) -> list[bytes]:
        self.calls.append(len(chunk_ids))
        self.in_flight += len(chunk_ids)
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0)  # let the reader ask for more meanwhile
            return await super().get_many(chunk_ids)
        finally:
            self.in_flight -= len(chunk_ids)


@pytest.mark.parametrize(("batch", "ahead"), [(1, 1), (3, 5), (8, 16), (4, 2)])
async def test_ranges_read_in_batches(tmp_path: Path, batch: int, ahead: int) -> None:
    store = _CountingStore()
    engine = await open_engine(tmp_path / "index", store)
    engine.read_batch, engine.read_ahead = batch, ahead
    try:
        data = rand(11, 300 * KiB + 5)
        rec = await put(engine, "r", data)
        n = len(rec.chunks)
        assert n > 2 * batch
        store.calls.clear()
        assert await read_rec(engine, rec) == data
        # every chunk asked for once, never more than read_batch at a time; at most
        # read_ahead chunks in flight, unless one batch alone is more
        assert sum(store.calls) == n
        assert max(store.calls) <= batch
        assert store.most_in_flight <= max(ahead, batch)
        rng = random.Random(batch)
        for _ in range(40):
            a = rng.randrange(rec.size)
            b = min(rec.size, a + rng.choice((1, 100, 20 * KiB, 120 * KiB)))
            store.calls.clear()
            assert await read_rec(engine, rec, a, b) == data[a:b], (a, b)
            first, last, _ = rec.chunk_span(a, b)
            assert sum(store.calls) == last - first  # only the chunks the range touches
    finally:
        await engine.close()
