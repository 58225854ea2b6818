"""The deduplicating object engine: the index, a chunk store and the worker threads, plus the
operations that need several of them (reading ranges, GC, startup recovery). No HTTP here."""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from dedup import lifecycle, multipart, refcount
from dedup.index import Index, Txn
from dedup.records import ObjectRecord
from dedup.store import ChunkStore

T = TypeVar("T")


class ByteBudget:
    """A budget of bytes held in memory, taken by waiters in FIFO order.

    The engine has two (see :class:`Engine`): *intake* (body blocks queued for hashing) and
    *writes* (chunks being written to the store). Body intake waits on intake; a hashing
    worker gives its block's intake back, then waits on writes for the chunks it must send;
    chunk writes wait on nothing and give writes back when durable. Every wait therefore
    ends by itself (no cycle), and memory is bounded by the two limits plus each upload's
    chunker buffer (at most 2 * max chunk + one block: FastCDC must see that much to cut).
    Clients get backpressure instead of memory growing with the number or size of uploads.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    async def acquire(self, n: int) -> None:
        if n > self.limit:
            raise ValueError(f"a single charge of {n} bytes exceeds the budget {self.limit}")
        if not self._waiters and self.used + n <= self.limit:
            self.used += n
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (n, fut)
        self._waiters.append(entry)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release(n)  # granted, then cancelled before the caller could use it
            else:
                self._waiters.remove(entry)
                self._wake()
            raise

    def release(self, n: int) -> None:
        self.used -= n
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.used + self._waiters[0][0] <= self.limit:
            n, fut = self._waiters.popleft()
            if not fut.done():
                self.used += n
                fut.set_result(None)


@dataclass
class GcResult:
    chunks_deleted: int = 0
    bytes_freed: int = 0


class Engine:
    INLINE_MAX = 4096  # objects up to this size live in their record, never as chunks
    READ_AHEAD = 4  # chunks fetched ahead of the client on GET (default)
    READ_BATCH = 1  # chunks asked of the store at once on GET (default)
    READ_BATCH_BYTES = 4 * 1024 * 1024  # and at most this many bytes of them

    def __init__(
        self,
        index: Index,
        store: ChunkStore,
        *,
        inline_max: int = INLINE_MAX,
        hash_threads: int = 8,
        inflight_bytes: int = 32 * 1024 * 1024,
        read_ahead: int = READ_AHEAD,
        read_batch: int = READ_BATCH,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if read_ahead < 1:
            raise ValueError("read_ahead must be >= 1")
        if read_batch < 1:
            raise ValueError("read_batch must be >= 1")
        self.read_ahead = read_ahead
        self.read_batch = read_batch
        self.index = index
        self.store = store
        self.inline_max = inline_max
        if inflight_bytes < 8 * index.chunker.max_size:
            raise ValueError("inflight_bytes must hold at least 8 maximum-size chunks")
        self.intake_budget = ByteBudget(inflight_bytes // 4)
        self.write_budget = ByteBudget(inflight_bytes - inflight_bytes // 4)
        self.hash_pool = ThreadPoolExecutor(hash_threads, thread_name_prefix="hash")
        self.read_pool = ThreadPoolExecutor(4, thread_name_prefix="index-read")
        self._clock = clock
        self._gc_lock = asyncio.Lock()
        # Held by a GC round and by every batch of replica moves (cluster repair, rebalance,
        # drain, reconcile): a chunk is never copied or dropped while GC may be deleting it.
        self.moves = asyncio.Lock()
        self._gc_round = asyncio.Event()

    @property
    def inflight_bytes(self) -> int:
        """Bytes of upload data held in memory now (both budgets)."""
        return self.intake_budget.used + self.write_budget.used

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    def lookup(self, fn: Callable[[Txn], T]) -> T:
        """Run ``fn``, a few point reads (never a scan), in a read transaction right here.

        On the event loop this is cheaper than :meth:`read`: an LMDB point read costs a few
        microseconds, a hop to a thread and back (with its GIL hand-offs) far more."""
        with self.index.read() as txn:
            return fn(txn)

    async def read(self, fn: Callable[[Txn], T]) -> T:
        """Run ``fn`` in a read transaction off the event loop."""

        def run() -> T:
            with self.index.read() as txn:
                return fn(txn)

        return await asyncio.get_running_loop().run_in_executor(self.read_pool, run)

    # -- startup / shutdown ---------------------------------------------------------------

    async def recover(self) -> None:
        """Rule 2 (startup): release every pin left by a process that died, and finish any
        deletion a crashed GC left half done."""
        now = self.now_ms()

        def release_all(txn: Txn) -> int:
            tokens = {k[:16] for k, _ in txn.prefix("pins", b"")}
            for token in tokens:
                refcount.release(txn, token, now)
            return len(tokens)

        await self.index.write(release_all)
        await self.collect_garbage(grace_s=math.inf)

    async def close(self) -> None:
        await self.store.close()
        self.hash_pool.shutdown(wait=True)
        self.read_pool.shutdown(wait=True)
        self.index.close()

    # -- reads ----------------------------------------------------------------------------

    async def read_range(self, rec: ObjectRecord, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes [start, end) of an object, streamed with a bounded window of chunk reads.

        Chunks are asked of the store ``read_batch`` at a time (and at most ``READ_BATCH_BYTES``
        per batch), with at most ``read_ahead`` chunks in flight (always at least one batch):
        on a local disk one thread hand-off per batch, not per chunk, is what lets a GET
        stream at memory speed (docs/performance.md)."""
        if rec.inline is not None:
            yield rec.inline[start:end]
            return
        if start >= end:
            return
        first, last, offset = rec.chunk_span(start, end)
        chunks = rec.chunks

        def next_batch(i: int) -> int:
            j, size = i + 1, chunks[i][1]
            while (
                j < last
                and j - i < self.read_batch
                and size + chunks[j][1] <= self.READ_BATCH_BYTES
            ):
                size += chunks[j][1]
                j += 1
            return j

        # ChunkStore.get_many returns bodies verified against their BLAKE3 names (end-to-end
        # check, in the store's threads) or raises ChunkCorrupt / ChunkNotFound
        window: deque[tuple[int, asyncio.Future[list[bytes]]]] = deque()
        nxt = first
        ahead = 0  # chunks in the window
        try:
            while nxt < last or window:
                while nxt < last:
                    j = next_batch(nxt)
                    if window and ahead + (j - nxt) > self.read_ahead:
                        break
                    ids = [chunks[k][0] for k in range(nxt, j)]
                    window.append((j - nxt, asyncio.ensure_future(self.store.get_many(ids))))
                    ahead += j - nxt
                    nxt = j
                n, fut = window.popleft()
                ahead -= n
                for data in await fut:
                    lo = max(start - offset, 0)
                    hi = min(end - offset, len(data))
                    offset += len(data)
                    yield data[lo:hi] if (lo, hi) != (0, len(data)) else data
        finally:
            for _, t in window:
                t.cancel()
            if window:
                await asyncio.gather(*(t for _, t in window), return_exceptions=True)

    # -- multipart expiry -----------------------------------------------------------------

    async def expire_uploads(self, max_idle_s: float) -> int:
        """Abort multipart uploads with no activity (creation or part upload) for longer
        than ``max_idle_s``; their parts give their references back. Also forgets old
        completion records. Returns the number of uploads aborted."""
        cutoff = self.now_ms() - int(max_idle_s * 1000)
        aborted = 0
        while True:
            idle = await self.read(lambda txn: multipart.expired_uploads(txn, cutoff, 256))
            for bucket, key, uid in idle:

                def abort(txn: Txn, b: str = bucket, k: str = key, u: str = uid) -> None:
                    multipart.abort_upload(txn, b, k, u, self.now_ms())

                try:
                    await self.index.write(abort)
                except multipart.NoSuchUploadError:
                    continue  # completed or aborted meanwhile
                aborted += 1
            if len(idle) < 256:
                break
        horizon = self.now_ms() - multipart.COMPLETED_TTL_MS
        await self.index.write(lambda txn: multipart.forget_completed(txn, horizon))
        return aborted

    # -- lifecycle ------------------------------------------------------------------------

    async def apply_lifecycle(
        self, as_of_ms: int | None = None, *, dry_run: bool = False
    ) -> lifecycle.LifecycleResult:
        """One pass of every bucket's lifecycle rules, as of now (or ``as_of_ms``)."""
        now = self.now_ms() if as_of_ms is None else as_of_ms
        return await lifecycle.apply(
            self.read, self.index.write, now, dry_run=dry_run, clock=self.now_ms
        )

    # -- garbage collection ---------------------------------------------------------------

    async def gc_round_done(self) -> None:
        """Wait for the GC round under way to finish (writers that met a DELETING chunk)."""
        if self._gc_lock.locked():
            await self._gc_round.wait()
        else:
            # No round under way: a failed or cancelled one left the marks behind. Finish those
            # deletions now (an infinite grace takes nothing else) rather than wait for the next
            # periodic round, which may be far away or never come (gc_interval = 0).
            await self.collect_garbage(grace_s=math.inf)

    async def collect_garbage(self, grace_s: float, batch: int = 2048) -> GcResult:
        """Rule 3: delete chunks whose count has been zero for longer than ``grace_s``."""
        result = GcResult()
        async with self.moves, self._gc_lock:
            self._gc_round = asyncio.Event()
            try:
                cutoff = -1 if math.isinf(grace_s) else self.now_ms() - int(grace_s * 1000)
                sem = asyncio.Semaphore(32)

                async def delete(h: bytes) -> None:
                    async with sem:
                        await self.store.delete(h)

                while True:
                    marked = await self.index.write(
                        lambda txn: refcount.gc_mark(txn, cutoff, batch)
                    )
                    if not marked:
                        break
                    # Every delete of the batch is over before the round ends, whether one
                    # failed or the round is cancelled: a delete still running after the round
                    # could remove the new copy of a chunk a writer stored again meanwhile.
                    deletes = asyncio.gather(*(delete(h) for h in marked), return_exceptions=True)
                    try:
                        outcomes = await asyncio.shield(deletes)
                    except asyncio.CancelledError:
                        await asyncio.wait([deletes])
                        raise
                    for outcome in outcomes:
                        if isinstance(outcome, BaseException):
                            raise outcome
                    freed = await self.index.write(
                        lambda txn, marked=marked: refcount.gc_finish(txn, marked)  # type: ignore[misc]
                    )
                    result.chunks_deleted += len(marked)
                    result.bytes_freed += freed
            finally:
                self._gc_round.set()
        return result
