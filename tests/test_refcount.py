"""The reference-counting rules under interleaving, not just in sequence.

A test ChunkStore (GatedStore) stops puts and deletes at gates the test opens, so a writer can
be held between pin and store-put, and GC between mark and store-delete or between
store-delete and finish. Every scenario ends with fsck ok and, after a GC with grace 0, no
unreferenced chunk and the same ids in the store and in the index. A randomized test then
runs workers and GC concurrently against a model of the last acknowledged content per key.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from dedup import catalog, refcount
from dedup.chunker import chunk_all
from dedup.engine import Engine, GcResult
from dedup.index import NoSuchKeyError, Txn
from dedup.ingest import Ingest, IngestResult
from dedup.records import ChunkState, ObjectRecord
from dedup.store import (
    ChunkNotFound,
    ChunkStore,
    DirectoryChunkStore,
    MemoryChunkStore,
    Placement,
    StoreUsage,
    chunk_id_of,
)
from tests.test_engine import (
    BUCKET,
    SMALL,
    KiB,
    check,
    chunks,
    commit,
    copy,
    crash,
    delete,
    gc_clean,
    get,
    ids_of,
    open_engine,
    pins,
    put,
    rand,
    read_rec,
    record,
    store_ids,
)

# -- a chunk store whose operations stop where the test says ------------------------------------


class Gate:
    """Stops matching operations until :meth:`open`. ``count`` limits how many it catches."""

    def __init__(self, op: str, phase: str, ids: set[bytes] | None, count: int | None) -> None:
        self.op, self.phase, self.ids, self.count = op, phase, ids, count
        self.hits: list[bytes] = []
        self.opened = asyncio.Event()
        self._arrived = asyncio.Event()

    def matches(self, op: str, phase: str, h: bytes) -> bool:
        return (
            not self.opened.is_set()
            and op == self.op
            and phase == self.phase
            and (self.ids is None or h in self.ids)
            and (self.count is None or len(self.hits) < self.count)
        )

    async def hit(self, h: bytes) -> None:
        self.hits.append(h)
        self._arrived.set()
        await self.opened.wait()

    async def reached(self, n: int = 1, limit_s: float = 10) -> None:
        async with asyncio.timeout(limit_s):
            while len(self.hits) < n:
                self._arrived.clear()
                await self._arrived.wait()

    def open(self) -> None:
        self.opened.set()


class GatedStore:
    """A ChunkStore around another one (a MemoryChunkStore by default).

    ``shield``: operations that go on when their caller is cancelled, as DirectoryChunkStore's
    do (a thread writes or unlinks the chunk file whatever the caller does; a remote node
    may have received the request).
    ``fail``: ids whose put/delete raise OSError (the store or node refuses);
    ``fail_rate``: the probability that any put/delete does (drawn from ``rng``).
    ``jitter``: a random delay before each put/delete, to shuffle interleavings."""

    def __init__(
        self,
        inner: ChunkStore | None = None,
        *,
        shield: Sequence[str] = (),
        jitter: Callable[[], float] | None = None,
    ) -> None:
        self.inner: ChunkStore = inner if inner is not None else MemoryChunkStore()
        self.shield = set(shield)
        self.jitter = jitter
        self.fail: dict[str, set[bytes]] = {"put": set(), "delete": set()}
        self.fail_rate = 0.0
        self.rng = random.Random(0)
        self.gates: list[Gate] = []
        self.log: list[tuple[str, bytes]] = []  # completed puts and deletes, in order
        self.inflight = 0
        self._shielded: set[asyncio.Task[None]] = set()

    def gate(
        self,
        op: str,
        phase: str = "before",
        ids: Sequence[bytes] | set[bytes] | None = None,
        count: int | None = None,
    ) -> Gate:
        g = Gate(op, phase, None if ids is None else set(ids), count)
        self.gates.append(g)
        return g

    def open_all(self) -> None:
        for g in self.gates:
            g.open()

    async def _pass(self, op: str, phase: str, h: bytes) -> None:
        for g in list(self.gates):
            if g.matches(op, phase, h):
                await g.hit(h)

    async def _op(self, op: str, h: bytes, action: Callable[[], Awaitable[object]]) -> None:
        work = self._run_op(op, h, action)
        if op not in self.shield:
            await work
            return
        task = asyncio.ensure_future(work)
        self._shielded.add(task)
        task.add_done_callback(self._shielded_done)
        await asyncio.shield(task)

    def _shielded_done(self, task: asyncio.Task[None]) -> None:
        self._shielded.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: its caller may be gone

    async def _run_op(self, op: str, h: bytes, action: Callable[[], Awaitable[object]]) -> None:
        self.inflight += 1
        try:
            if self.jitter is not None:
                await asyncio.sleep(self.jitter())
            await self._pass(op, "before", h)
            if h in self.fail[op] or (self.fail_rate and self.rng.random() < self.fail_rate):
                raise OSError(f"{op} refused: {h.hex()}")
            await action()
            self.log.append((op, h))
            await self._pass(op, "after", h)
        finally:
            self.inflight -= 1

    async def put(self, chunk_id: bytes, data: bytes | memoryview) -> Placement:
        body = bytes(data)
        await self._op("put", chunk_id, lambda: self.inner.put(chunk_id, body))
        return ()

    async def put_many(self, items: Sequence[tuple[bytes, bytes | memoryview]]) -> None:
        await asyncio.gather(*(self.put(h, d) for h, d in items))

    async def get(self, chunk_id: bytes) -> bytes:
        return await self.inner.get(chunk_id)

    async def get_many(self, chunk_ids: Sequence[bytes]) -> list[bytes]:
        return await self.inner.get_many(chunk_ids)

    async def has(self, chunk_id: bytes) -> bool:
        return await self.inner.has(chunk_id)

    async def delete(self, chunk_id: bytes) -> bool:
        existed = False

        async def action() -> None:
            nonlocal existed
            existed = await self.inner.delete(chunk_id)

        await self._op("delete", chunk_id, action)
        return existed

    async def list_ids(self, after: bytes | None = None, limit: int = 1000) -> list[bytes]:
        return await self.inner.list_ids(after, limit)

    async def usage(self) -> StoreUsage:
        return await self.inner.usage()

    async def settled(self, limit_s: float = 10) -> None:
        """Wait until no put or delete is in flight (including shielded ones)."""
        async with asyncio.timeout(limit_s):
            while True:
                if not (self.inflight or self._shielded):
                    return
                await asyncio.sleep(0.002)

    async def close(self) -> None:
        self.open_all()
        await self.settled()
        await self.inner.close()


# -- helpers ---------------------------------------------------------------------------------


async def poll(cond: Callable[[], Awaitable[bool]], limit_s: float = 10) -> None:
    async with asyncio.timeout(limit_s):
        while True:
            if await cond():
                return
            await asyncio.sleep(0.002)


async def pinned_by(engine: Engine, token: bytes) -> int:
    return await engine.read(lambda txn: sum(refcount.pinned(txn, token).values()))


class Upload:
    """One PUT body streamed in the background; the test decides when to commit or abort."""

    def __init__(self, engine: Engine, data: bytes, *, block: int = 16 * KiB) -> None:
        self.engine = engine
        self.data = data
        self.ing = Ingest(engine, [])
        self.more = asyncio.Event()  # set to send the rest of the body after `hold_after`
        self.hold_after: int | None = None
        self.task = asyncio.create_task(self._body(block))

    async def _body(self, block: int) -> IngestResult:
        for i in range(0, len(self.data), block):
            if self.hold_after is not None and i >= self.hold_after:
                await self.more.wait()
            await self.ing.write(self.data[i : i + block])
        return await self.ing.finish()

    async def commit(
        self, key: str, on_commit: Callable[[Txn], None] | None = None
    ) -> ObjectRecord:
        res = await self.task
        return await commit(self.engine, self.ing, res, key, on_commit=on_commit)

    async def abort(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.ing.abort()

    async def pinned(self) -> int:
        return await pinned_by(self.engine, self.ing.token)

    async def has_pins(self) -> bool:
        return await self.pinned() > 0


def distinct(data: bytes) -> set[bytes]:
    return set(ids_of(data))


async def states(engine: Engine, ids: set[bytes]) -> dict[bytes, ChunkState | None]:
    cur = await chunks(engine)
    return {h: (cur[h].state if h in cur else None) for h in ids}


@pytest.fixture
async def gated(tmp_path: Path) -> AsyncIterator[tuple[Engine, GatedStore]]:
    store = GatedStore()
    eng = await open_engine(tmp_path / "index", store)
    yield eng, store
    store.open_all()
    await eng.close()


# -- (a) an upload in flight while another object with the same content is deleted + GC ----------


async def test_a_pinned_upload_survives_delete_and_gc(
    gated: tuple[Engine, GatedStore],
) -> None:
    engine, store = gated
    x = rand(1, 80 * KiB)
    await put(engine, "B", x)
    puts = len(store.log)
    a = Upload(engine, x)
    res = await a.task  # pinned, not committed
    assert len(store.log) == puts  # the chunks were STORED: nothing sent
    assert await a.pinned() == len(res.chunks)
    assert await delete(engine, "B")
    report = await check(engine)
    assert report.pinned_references == len(res.chunks)
    assert report.unreferenced_chunks == 0
    assert (await engine.collect_garbage(0)).chunks_deleted == 0
    await a.commit("A")
    assert await get(engine, "A") == x
    await gc_clean(engine)
    assert await store_ids(store) == distinct(x)


async def test_a_upload_between_pin_and_put(gated: tuple[Engine, GatedStore]) -> None:
    """A pinned X's new chunks and is held before its store puts; B uploads the same X (its
    own puts pass), commits, is deleted, GC runs; then A's puts land and A commits."""
    engine, store = gated
    x = rand(2, 24 * KiB)  # few chunks: all of A's puts are in flight at once
    ids = distinct(x)
    assert len(ids) <= Ingest.SENDS_IN_FLIGHT
    gate = store.gate("put", ids=ids, count=len(ids))
    a = Upload(engine, x)
    await gate.reached(len(ids))
    assert set((await states(engine, ids)).values()) == {ChunkState.PENDING}
    await put(engine, "B", x)  # pins the PENDING chunks, sends them too, commits
    assert set((await states(engine, ids)).values()) == {ChunkState.STORED}
    await delete(engine, "B")
    assert (await engine.collect_garbage(0)).chunks_deleted == 0
    await check(engine)
    gate.open()
    await a.commit("A")
    assert await get(engine, "A") == x
    await gc_clean(engine)


async def test_a_upload_between_put_and_commit(gated: tuple[Engine, GatedStore]) -> None:
    """A's chunks are durable but A has not committed (they stay PENDING in the index); B
    with the same content commits and is deleted; GC runs; A commits."""
    engine, _store = gated
    x = rand(3, 70 * KiB)
    a = Upload(engine, x)
    res = await a.task
    assert set(res.stored) == distinct(x)
    assert set((await states(engine, distinct(x))).values()) == {ChunkState.PENDING}
    await put(engine, "B", x)
    await delete(engine, "B")
    assert (await engine.collect_garbage(0)).chunks_deleted == 0
    await check(engine)
    await a.commit("A")
    assert await get(engine, "A") == x
    await gc_clean(engine)


async def test_a_upload_mid_body_while_same_content_is_collected(
    gated: tuple[Engine, GatedStore],
) -> None:
    """A has sent (and pinned) only the first part of X when B (= X) is deleted and GC
    deletes the chunks A has not pinned yet; the rest of A's body then stores them anew."""
    engine, store = gated
    x = rand(4, 256 * KiB)
    await put(engine, "B", x)
    a = Upload(engine, x)
    a.hold_after = 96 * KiB
    await poll(a.has_pins)
    await delete(engine, "B")
    gc = await engine.collect_garbage(0)
    tail = chunks_from(x, 160 * KiB)
    assert gc.chunks_deleted >= len(tail) > 0  # A had not reached these chunks
    await check(engine)
    a.more.set()
    await a.commit("A")
    assert await get(engine, "A") == x
    deleted = {h for op, h in store.log if op == "delete"}
    assert tail <= deleted
    assert [h for op, h in store.log if op == "put" and h in tail]  # sent again after GC
    await gc_clean(engine)


def chunks_from(data: bytes, offset: int) -> set[bytes]:
    """Ids of the chunks of ``data`` that start at or after ``offset``."""
    out = set()
    pos = 0
    for c in chunk_all(data, SMALL):
        if pos >= offset:
            out.add(chunk_id_of(c))
        pos += len(c)
    return out - {chunk_id_of(c) for c in chunk_all(data[:offset], SMALL)}


# -- (b) GC has marked a chunk DELETING; a new upload of the same content must wait ------------


@pytest.mark.parametrize("phase", ["before", "after"])
async def test_b_writer_waits_for_deleting_chunk(
    gated: tuple[Engine, GatedStore], phase: str
) -> None:
    """phase=before: GC paused between mark and store delete; after: between store delete
    and removing the entries."""
    engine, store = gated
    x = rand(5, 60 * KiB)
    ids = distinct(x)
    await put(engine, "old", x)
    await delete(engine, "old")
    gate = store.gate("delete", phase, ids=ids)
    gc = asyncio.create_task(engine.collect_garbage(0))
    await gate.reached()
    assert set((await states(engine, ids)).values()) == {ChunkState.DELETING}

    c = Upload(engine, x)
    await asyncio.sleep(0.2)
    assert not c.task.done(), "a writer used a chunk that GC is deleting"
    assert await c.pinned() == 0  # nothing pinned on DELETING chunks
    assert set((await states(engine, ids)).values()) == {ChunkState.DELETING}
    report = await check(engine)
    assert report.pinned_references == 0

    gate.open()
    result = await gc
    assert result.chunks_deleted == len(ids)
    await c.commit("new")
    assert await get(engine, "new") == x
    # every chunk was deleted by GC and then sent anew by the writer
    for h in ids:
        ops = [op for op, hh in store.log if hh == h]
        assert ops[-2:] == ["delete", "put"], ops
    await gc_clean(engine)
    assert await store_ids(store) == ids


async def test_b_writer_waits_only_for_the_deleting_chunks(
    gated: tuple[Engine, GatedStore],
) -> None:
    """The new upload shares chunks with a live object (pinned at once) and with a deleted
    one (being collected): only the latter wait."""
    engine, store = gated
    live, dead = rand(6, 48 * KiB), rand(7, 48 * KiB)
    await put(engine, "live", live)
    await put(engine, "dead", dead)
    await delete(engine, "dead")
    gate = store.gate("delete", "before")
    gc = asyncio.create_task(engine.collect_garbage(0))
    await gate.reached()
    c = Upload(engine, live + dead)
    await poll(c.has_pins)
    await asyncio.sleep(0.1)
    assert not c.task.done()
    # the live object's chunks are pinned meanwhile, and GC is not allowed to take them
    assert await c.pinned() >= len(ids_of(live)) - 2
    await check(engine)
    gate.open()
    await gc
    await c.commit("both")
    assert await get(engine, "both") == live + dead
    assert await get(engine, "live") == live
    await gc_clean(engine)


async def test_b_leftover_deleting_chunk_then_crash_and_recover(tmp_path: Path) -> None:
    """A GC marked chunks and the process died; at the next start, recovery finishes the
    deletion before anyone writes, and the content can be stored again."""
    store = GatedStore()
    engine = await open_engine(tmp_path / "index", store)
    x = rand(8, 40 * KiB)
    await put(engine, "old", x)
    await delete(engine, "old")
    now = engine.now_ms()
    await engine.index.write(lambda txn: refcount.gc_mark(txn, now, 1000))
    crash(engine)
    engine = await open_engine(tmp_path / "index", store)
    try:
        assert await chunks(engine) == {}
        assert await store_ids(store) == set()
        await put(engine, "new", x)
        assert await get(engine, "new") == x
        await gc_clean(engine)
    finally:
        await engine.close()


@pytest.mark.parametrize("how", ["marked_only", "failed_round"])
async def test_b_writer_finishes_a_dead_gc_round(
    gated: tuple[Engine, GatedStore], how: str
) -> None:
    """DELETING chunks with no GC round under way (a round failed on a store error, or died
    after marking): a writer meeting them must neither use them nor wait forever (the next
    periodic round may be far away, or never with gc_interval=0). It finishes the deletion
    itself, then stores the chunks anew."""
    engine, store = gated
    x = rand(9, 40 * KiB)
    ids = distinct(x)
    await put(engine, "old", x)
    await delete(engine, "old")
    if how == "marked_only":
        now = engine.now_ms()
        await engine.index.write(lambda txn: refcount.gc_mark(txn, now, 1000))
    else:
        store.fail["delete"] = set(ids)
        with pytest.raises(OSError):
            await engine.collect_garbage(0)
        store.fail["delete"] = set()
    assert set((await states(engine, ids)).values()) == {ChunkState.DELETING}
    await asyncio.wait_for(put(engine, "new", x), 5)
    assert await get(engine, "new") == x
    for h in ids:
        ops = [op for op, hh in store.log if hh == h]
        assert ops[-2:] == ["delete", "put"], ops
    await gc_clean(engine)


async def test_b_failed_gc_round_leaves_no_delete_behind(
    gated: tuple[Engine, GatedStore],
) -> None:
    """One delete of a GC batch fails while another is still in flight: the round must not
    end (and let the chunk be stored anew) before that delete is over, or the late delete
    removes the new copy of an acknowledged object's chunk."""
    engine, store = gated
    x = rand(10, 40 * KiB)
    ids = sorted(distinct(x))
    await put(engine, "old", x)
    await delete(engine, "old")
    store.fail["delete"] = {ids[0]}
    gate = store.gate("delete", ids=ids[1:], count=len(ids) - 1)  # the others are slow
    gc1 = asyncio.create_task(engine.collect_garbage(0))
    await gate.reached(len(ids) - 1)
    await asyncio.wait({gc1}, timeout=0.2)
    store.fail["delete"] = set()
    gc2 = asyncio.create_task(engine.collect_garbage(0))
    up = Upload(engine, x)
    done, _ = await asyncio.wait({up.task}, timeout=0.5)
    committed = False
    if up.task in done:  # the writer got through before the first round's deletes ended
        await up.commit("new")
        committed = True
    gate.open()
    with pytest.raises(OSError):
        await gc1
    await gc2
    if not committed:
        await up.commit("new")
    await store.settled()
    await check(engine)
    assert await get(engine, "new") == x
    await gc_clean(engine)


async def test_b_cancelled_gc_round_leaves_no_delete_behind(tmp_path: Path) -> None:
    """GC is cancelled (shutdown, a dropped admin request) while its store deletes are in
    flight, and the store carries them out anyway (DirectoryChunkStore's thread, a node that
    got the request). The next round and a writer storing the same content anew must not
    run before those deletes are over."""
    store = GatedStore(shield=["delete"])
    engine = await open_engine(tmp_path / "index", store)
    try:
        x = rand(11, 40 * KiB)
        ids = distinct(x)
        await put(engine, "old", x)
        await delete(engine, "old")
        gate = store.gate("delete", ids=ids, count=len(ids))
        gc1 = asyncio.create_task(engine.collect_garbage(0))
        await gate.reached(len(ids))
        gc1.cancel()
        await asyncio.wait({gc1}, timeout=0.2)
        gc2 = asyncio.create_task(engine.collect_garbage(0))
        up = Upload(engine, x)
        done, _ = await asyncio.wait({up.task}, timeout=0.5)
        committed = False
        if up.task in done:
            await up.commit("new")
            committed = True
        gate.open()
        await asyncio.gather(gc1, return_exceptions=True)
        await gc2
        if not committed:
            await up.commit("new")
        await store.settled()
        await check(engine)
        assert await get(engine, "new") == x
        await gc_clean(engine)
    finally:
        await engine.close()


# -- (c) overwrite of K racing delete of K racing copy of K racing GC ----------------------------


class Model:
    """The last acknowledged content per key, updated inside each write transaction (so in
    the exact order of the commits)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.data: dict[str, bytes] = {}

    async def commit(self, up: Upload, key: str) -> None:
        def note(_txn: Txn) -> None:
            self.data[key] = up.data

        await up.commit(key, on_commit=note)

    async def put(self, key: str, data: bytes) -> None:
        up = Upload(self.engine, data)
        try:
            await self.commit(up, key)
        except BaseException:
            await asyncio.shield(up.abort())
            raise

    async def delete(self, key: str) -> None:
        def fn(txn: Txn) -> None:
            catalog.delete_object(txn, BUCKET, key, self.engine.now_ms())
            self.data.pop(key, None)

        await self.engine.index.write(fn)

    async def copy(self, src: str, dst: str) -> bool:
        now = self.engine.now_ms()

        def fn(txn: Txn) -> None:
            catalog.copy_object(
                txn,
                BUCKET,
                src,
                BUCKET,
                dst,
                lambda r: replace(r, mtime_ms=now),
                None,
                now,
            )
            self.data[dst] = self.data[src]

        try:
            await self.engine.index.write(fn)
        except NoSuchKeyError:
            return False
        return True

    async def verify(self, keys: Sequence[str]) -> None:
        for key in keys:
            if key in self.data:
                assert await get(self.engine, key) == self.data[key], key
            else:
                assert await record(self.engine, key) is None, key


STEPS = ("overwrite", "delete", "copy_out", "copy_in")


@pytest.mark.parametrize("order", list(itertools.permutations(STEPS)))
async def test_c_overwrite_delete_copy_gc_in_every_order(
    gated: tuple[Engine, GatedStore], order: tuple[str, ...]
) -> None:
    engine, store = gated
    x = rand(10, 64 * KiB)
    y = x[: 32 * KiB] + rand(11, 40 * KiB)  # the overwrite shares chunks with the old value
    w = x[16 * KiB :] + rand(12, 8 * KiB)
    m = Model(engine)
    await m.put("K", x)
    await m.put("W", w)
    gate = store.gate("put", count=1)
    up = Upload(engine, y)  # the overwrite: pinned, held before (one of) its store puts
    await gate.reached()
    for step in order:
        if step == "overwrite":
            gate.open()
            await m.commit(up, "K")
        elif step == "delete":
            await m.delete("K")
        elif step == "copy_out":
            await m.copy("K", "K2")
        else:
            await m.copy("W", "K")
        await check(engine)
        await engine.collect_garbage(0)
        await check(engine)
        await m.verify(["K", "K2", "W"])
    await gc_clean(engine)


@pytest.mark.parametrize("seed", range(12))
async def test_c_concurrent_overwrite_delete_copy_gc(
    gated: tuple[Engine, GatedStore], seed: int
) -> None:
    """The same four operations and GC rounds launched together, with store jitter."""
    engine, store = gated
    rng = random.Random(seed)
    store.jitter = lambda: rng.random() * 0.003
    x = rand(20 + seed, 64 * KiB)
    y = x[: 32 * KiB] + rand(40 + seed, 40 * KiB)
    w = x[16 * KiB :] + rand(60 + seed, 8 * KiB)
    m = Model(engine)
    await m.put("K", x)
    await m.put("W", w)
    if rng.random() < 0.2:
        await m.delete("W")

    async def later(coro: object) -> object:
        await asyncio.sleep(rng.random() * 0.01)
        return await coro  # type: ignore[misc]

    async def gc_rounds() -> None:
        for _ in range(rng.randint(1, 4)):
            await engine.collect_garbage(0)
            await asyncio.sleep(rng.random() * 0.005)

    ops = [m.put("K", y), m.delete("K"), m.copy("K", "K2"), m.copy("W", "K"), gc_rounds()]
    rng.shuffle(ops)
    await asyncio.gather(*(later(op) for op in ops))
    await check(engine)
    await m.verify(["K", "K2", "W"])
    await gc_clean(engine)
    await m.verify(["K", "K2", "W"])


# -- (d) abort mid-upload -----------------------------------------------------------------------


@pytest.mark.parametrize("shield", [False, True])
async def test_d_abort_mid_upload_gc_removes_exactly_the_orphans(
    tmp_path: Path, shield: bool
) -> None:
    """The aborted upload shares chunks with a committed object and has new ones, some of
    them with store puts in flight at the abort. shield=True: the store finishes a put whose
    caller is cancelled (as DirectoryChunkStore does), which must not leave a chunk the index
    does not know."""
    store = GatedStore(shield=["put"] if shield else [])
    engine = await open_engine(tmp_path / "index", store)
    try:
        keep = rand(13, 64 * KiB)
        await put(engine, "keep", keep)
        z = rand(14, 96 * KiB)
        gate = store.gate("put", count=2)  # two of the new chunks' puts are held
        up = Upload(engine, keep + z)
        up.hold_after = 120 * KiB  # the body stops part way
        await gate.reached(2)
        await poll(up.has_pins)
        aborting = asyncio.create_task(up.abort())
        await asyncio.sleep(0.05)
        # GC while the abort waits for the puts in flight: the upload's chunks are still
        # pinned, nothing may go
        assert (await engine.collect_garbage(0)).chunks_deleted == 0
        gate.open()
        await aborting
        await store.settled()
        assert await pins(engine) == 0
        report = await check(engine)
        assert report.pinned_references == 0
        orphans = set(await chunks(engine)) - distinct(keep)
        assert orphans
        assert report.unreferenced_chunks == len(orphans)
        result = await engine.collect_garbage(0)
        await store.settled()
        assert result.chunks_deleted == len(orphans)
        assert set(await chunks(engine)) == distinct(keep)  # nothing shared with keep went
        assert {h for op, h in store.log if op == "delete"} == orphans
        await gc_clean(engine)
        assert await get(engine, "keep") == keep
    finally:
        await engine.close()


async def test_d_abort_while_blocked_on_a_deleting_chunk(gated: tuple[Engine, GatedStore]) -> None:
    engine, store = gated
    x = rand(15, 40 * KiB)
    await put(engine, "old", x)
    await delete(engine, "old")
    gate = store.gate("delete", "before")
    gc = asyncio.create_task(engine.collect_garbage(0))
    await gate.reached()
    up = Upload(engine, rand(16, 30 * KiB) + x)
    await poll(up.has_pins)
    await asyncio.sleep(0.05)
    await up.abort()
    gate.open()
    await gc
    await check(engine)
    await gc_clean(engine)
    assert await store_ids(store) == set()


# -- (e) the same chunk several times inside one object -------------------------------------------


async def test_e_repeated_chunk_counted_through_overwrite_copy_delete(
    gated: tuple[Engine, GatedStore],
) -> None:
    engine, store = gated
    zeros3 = bytes(3 * 1024 * KiB)
    (z,) = distinct(zeros3)
    n3 = len(ids_of(zeros3))
    assert n3 == 192

    async def rc() -> int:
        cur = await chunks(engine)
        return cur[z].refcount if z in cur else 0

    await put(engine, "K", zeros3)
    assert await rc() == n3
    await copy(engine, "K", "K2")
    assert await rc() == 2 * n3
    mixed = bytes(64 * KiB) + rand(17, 20 * KiB) + bytes(64 * KiB)
    n_mixed = ids_of(mixed).count(z)
    assert n_mixed >= 4
    await put(engine, "K", mixed)  # overwrite: -192 + n_mixed
    assert await rc() == n3 + n_mixed
    await check(engine)

    # an upload of the same zeros in flight while every object holding them goes away
    up = Upload(engine, zeros3)
    await up.task
    assert await up.pinned() == n3
    await delete(engine, "K2")
    await delete(engine, "K")
    assert await rc() == n3
    assert (await engine.collect_garbage(0)).chunks_deleted == len(distinct(mixed) - {z})
    await check(engine)
    await up.commit("K3")
    assert await rc() == n3
    assert await get(engine, "K3") == zeros3

    # an aborted one gives back every occurrence, not one per distinct chunk
    up = Upload(engine, zeros3 + mixed)
    await up.task
    assert await rc() == 2 * n3 + n_mixed
    await up.abort()
    assert await rc() == n3
    await check(engine)
    await delete(engine, "K3")
    assert await rc() == 0
    await gc_clean(engine)
    assert await store_ids(store) == set()


async def test_e_repeated_chunk_pins_released_at_recover(tmp_path: Path) -> None:
    store = MemoryChunkStore()
    engine = await open_engine(tmp_path / "index", store)
    await put(engine, "K", bytes(1024 * KiB))
    up = Upload(engine, bytes(2048 * KiB))
    await up.task
    (z,) = distinct(bytes(1024 * KiB))
    assert (await chunks(engine))[z].refcount == 64 + 128
    crash(engine)
    engine = await open_engine(tmp_path / "index", store)
    try:
        assert (await chunks(engine))[z].refcount == 64
        await check(engine)
        await gc_clean(engine)
        assert await get(engine, "K") == bytes(1024 * KiB)
    finally:
        await engine.close()


# -- randomized concurrent workers + GC -----------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "seed", "fail_rate"),
    [("memory", 1, 0.0), ("memory", 2, 0.02), ("memory-shielded", 3, 0.02), ("directory", 4, 0.02)],
)
async def test_randomized_concurrent_workers_and_gc(
    tmp_path: Path, kind: str, seed: int, fail_rate: float
) -> None:
    """8 workers put (contents drawn from a small pool of blocks, so chunks are shared, some
    repeated inside an object), overwrite, delete, copy, abort (mid-body or after the body),
    read, while GC runs rounds with grace 0. With fail_rate, the store refuses some puts
    and deletes (failed uploads must not commit; failed GC rounds must be finished later)."""
    rng = random.Random(seed)
    inner: ChunkStore = (
        DirectoryChunkStore(tmp_path / "store", threads=8)
        if kind == "directory"
        else MemoryChunkStore()
    )
    jitter_rng = random.Random(seed + 1000)
    store = GatedStore(
        inner,
        shield=["put", "delete"] if kind != "memory" else [],
        jitter=lambda: jitter_rng.random() * 0.002 if jitter_rng.random() < 0.5 else 0.0,
    )
    store.rng = random.Random(seed + 2000)
    store.fail_rate = fail_rate
    engine = await open_engine(tmp_path / "index", store)
    duration = 4.0 if kind == "directory" else 5.0
    deadline = time.monotonic() + duration
    pool = [rand(seed * 100 + i, rng.choice([2 * KiB, 7 * KiB, 16 * KiB, 33 * KiB]))
            for i in range(8)] + [bytes(24 * KiB)]  # fmt: skip
    small = [rand(seed * 100 + 50 + i, rng.randint(0, 4096)) for i in range(3)]
    keys = [f"k{i}" for i in range(10)]
    m = Model(engine)
    stats: Counter[str] = Counter()

    def content(r: random.Random) -> bytes:
        if r.random() < 0.1:
            return r.choice(small)
        data = b"".join(r.choices(pool, k=r.randint(1, 6)))
        if r.random() < 0.3:  # new chunks too, not only shared ones
            data += r.randbytes(r.randint(1, 20 * KiB))
        return data

    async def upload_then_abort(r: random.Random, data: bytes) -> None:
        up = Upload(engine, data, block=r.choice([4 * KiB, 16 * KiB, 64 * KiB]))
        if r.random() < 0.5:
            up.hold_after = r.randrange(max(len(data), 1))
            if r.random() < 0.3:
                up.more.set()
        await asyncio.sleep(r.random() * 0.01)
        if r.random() < 0.5:
            await asyncio.wait({up.task}, timeout=r.random() * 0.02)
        await up.abort()

    async def read_check(key: str) -> None:
        rec = await record(engine, key)
        if rec is None:
            return
        try:
            data = await read_rec(engine, rec)
        except ChunkNotFound:
            # Fine if the object was replaced or deleted, and collected (grace 0), under the
            # reader; not if the record it read is still there.
            again = await record(engine, key)
            if again is None or again.encode() != rec.encode():
                stats["read_raced"] += 1
                return
            data = await read_rec(engine, rec)  # (or it was put again, identical, meanwhile)
        assert hashlib.md5(data).hexdigest() == rec.etag
        stats["read_ok"] += 1

    async def worker(wid: int) -> None:
        r = random.Random(seed * 1000 + wid)
        while time.monotonic() < deadline:
            op = r.choices(["put", "delete", "copy", "abort", "read"], [6, 2, 2, 2, 2])[0]
            key = r.choice(keys)
            stats[op] += 1
            try:
                if op == "put":
                    await m.put(key, content(r))
                elif op == "delete":
                    await m.delete(key)
                elif op == "copy":
                    if not await m.copy(key, r.choice(keys)):
                        stats["copy_missing"] += 1
                elif op == "abort":
                    await upload_then_abort(r, content(r))
                else:
                    await read_check(key)
            except OSError:  # injected store failure: the operation fails, nothing is lost
                stats[f"{op}_failed"] += 1

    gc_results: list[GcResult] = []
    stop = asyncio.Event()

    async def gc_loop() -> None:
        while not stop.is_set():
            try:
                gc_results.append(await engine.collect_garbage(0))
            except OSError:
                stats["gc_failed"] += 1
            await asyncio.sleep(rng.random() * 0.005)

    gc_task = asyncio.create_task(gc_loop())
    try:
        await asyncio.gather(*(worker(i) for i in range(8)))
    finally:
        stop.set()
        await gc_task
    await store.settled()
    store.fail_rate = 0.0
    try:
        assert stats["put"] > 50 and stats["abort"] > 10, stats
        if fail_rate:
            assert stats["put_failed"] and stats["gc_failed"], stats
        assert sum(g.chunks_deleted for g in gc_results) > 0
        assert await pins(engine) == 0
        await m.verify(keys)
        report = await check(engine)
        assert report.pinned_references == 0
        await gc_clean(engine)
        await m.verify(keys)
        assert engine.index.stats()["objects"] == len(m.data)
    finally:
        await engine.close()


async def test_randomized_restart_recovers(tmp_path: Path) -> None:
    """Workers and GC stop dead mid-operation (a crash: no abort runs); the next start
    releases their pins and finishes GC's deletions; every committed object is intact."""
    rng = random.Random(7)
    store = GatedStore(jitter=lambda: rng.random() * 0.002)
    engine = await open_engine(tmp_path / "index", store)
    pool = [rand(700 + i, 9 * KiB) for i in range(6)]
    m = Model(engine)
    keys = [f"k{i}" for i in range(6)]
    uploads: list[Upload] = []

    async def worker(wid: int) -> None:
        r = random.Random(wid)
        while True:
            key = r.choice(keys)
            if r.random() < 0.7:
                up = Upload(engine, b"".join(r.choices(pool, k=r.randint(1, 5))))
                uploads.append(up)
                await m.commit(up, key)  # no abort on failure: the process is dying
            else:
                await m.delete(key)

    async def gc_loop() -> None:
        while True:
            await engine.collect_garbage(0)
            await asyncio.sleep(0.001)

    tasks = [asyncio.create_task(worker(i)) for i in range(6)]
    tasks.append(asyncio.create_task(gc_loop()))
    await asyncio.sleep(1.5)
    # the crash: everything stops where it is
    # (an upload that has not written its first block yet has no pipeline task)
    workers = [up.ing._worker for up in uploads if up.ing._worker is not None]
    for up in uploads:
        up.task.cancel()
    for w in workers:
        w.cancel()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, *(up.task for up in uploads), return_exceptions=True)
    await asyncio.gather(*workers, return_exceptions=True)
    await store.settled()  # chunk writes the store had accepted land before the restart
    crash(engine)  # runs what was queued to the index writer: the model sees those commits
    assert len(uploads) > 20
    engine = await open_engine(tmp_path / "index", store)
    try:
        assert await pins(engine) == 0
        m.engine = engine
        await m.verify(keys)
        await check(engine)
        await gc_clean(engine)
        await m.verify(keys)
    finally:
        await engine.close()
