"""Streaming ingest of one object body: hash, chunk, pin, store — never the whole object in
memory.

Per block of body bytes, two worker threads run at once: one updates MD5 (the ETag) and the
requested S3 checksums, the other feeds the FastCDC chunker and BLAKE3-hashes the finished
chunks (all these libraries release the GIL). Finished chunks are pinned in the index
(rule 1: reference before use) and the ones the store does not hold yet are written with a
bounded number in flight. The caller commits the object (rule 2) or calls :meth:`abort`.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import blake3

from dedup import refcount
from dedup.checksums import new_checksum
from dedup.chunker import StreamChunker
from dedup.store import Placement

if TYPE_CHECKING:
    from dedup.engine import Engine


_TOKEN_PREFIX = os.urandom(8)
_token_counter = itertools.count()


@dataclass
class IngestResult:
    size: int
    md5: bytes
    checksums: dict[str, bytes]  # algorithm -> raw digest
    chunks: list[tuple[bytes, int]]
    inline: bytes | None
    # chunks this request made durable, with where (marked STORED, placement recorded, on commit)
    stored: dict[bytes, Placement]
    token: bytes


@dataclass
class _Pending:
    chunks: list[tuple[bytes, int]] = field(default_factory=list)
    stored: dict[bytes, Placement] = field(default_factory=dict)


class Ingest:
    BLOCK_QUEUE = 4  # body blocks waiting for the hashing threads
    SENDS_IN_FLIGHT = 8  # chunk writes in flight for this upload
    INLINE_HASH = 64 * 1024  # batches up to this size are hashed on the event loop

    def __init__(
        self,
        engine: Engine,
        checksum_algorithms: Iterable[str] = (),
        *,
        inline: bool = True,
        token: bytes | None = None,
    ) -> None:
        """``inline=False``: the body always becomes chunks (multipart parts, whose chunk
        lists are concatenated). ``token``: pin under a token the caller already uses."""
        self.engine = engine
        self.token = token or self.new_token()
        self.token_shared = token is not None  # the caller pins under it too
        self._inline_max = engine.inline_max if inline else -1
        self._md5 = hashlib.md5()
        self._checksums = {a: new_checksum(a) for a in checksum_algorithms}
        self._chunker = StreamChunker(engine.index.chunker)
        self._size = 0
        self._head = bytearray()  # first bytes, kept while the object may still be inline
        self._emitted = False
        self._out = _Pending()
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(self.BLOCK_QUEUE)
        self._sends: set[asyncio.Task[None]] = set()
        self._send_slots = asyncio.Semaphore(self.SENDS_IN_FLIGHT)
        self._send_error: BaseException | None = None  # the first failed chunk write
        # The pipeline (a task and a queue) starts with the first block that could not live
        # inline; until then blocks wait here, and a small object never starts it.
        self._worker: asyncio.Task[None] | None = None
        self._small: list[bytes] = []
        self._small_size = 0
        self._released = False
        self._queued = 0  # budget bytes of blocks written and not yet hashed

    @staticmethod
    def new_token() -> bytes:
        """A fresh request token for pins (16 bytes): 8 random bytes drawn once per process,
        then a counter (an os.urandom call per request costs a syscall)."""
        return _TOKEN_PREFIX + next(_token_counter).to_bytes(8, "big")

    async def write(self, data: bytes) -> None:
        """Queue a block of body bytes. Waits while the pipeline or the engine's global
        in-flight byte budget is full (backpressure to the client)."""
        await self.engine.intake_budget.acquire(len(data))
        self._queued += len(data)
        if self._worker is None:
            if self._small_size + len(data) <= self._inline_max:
                self._small.append(data)
                self._small_size += len(data)
                return
            self._worker = asyncio.get_running_loop().create_task(self._run())
            small, self._small = self._small, []
            for block in small:
                await self._enqueue(block)
        await self._enqueue(data)

    async def finish(self) -> IngestResult:
        """End of body: flush the chunker, wait for every chunk to be durable."""
        if self._worker is None:  # a small object: hashed here, no task, no thread, no pin
            self._digest(self._small)
            head = b"".join(self._small)
            self._small = []
            self._unqueue(self._queued)
            return IngestResult(
                size=len(head),
                md5=self._md5.digest(),
                checksums={a: c.digest() for a, c in self._checksums.items()},
                chunks=[],
                inline=head,
                stored={},
                token=self.token,
            )
        await self._enqueue(None)
        await self._worker
        return IngestResult(
            size=self._size,
            md5=self._md5.digest(),
            checksums={a: c.digest() for a, c in self._checksums.items()},
            chunks=self._out.chunks,
            inline=bytes(self._head) if not self._emitted else None,
            stored=self._out.stored,
            token=self.token,
        )

    async def _enqueue(self, item: bytes | None) -> None:
        # Never block on a full queue once the worker is gone (it failed): re-raise instead.
        assert self._worker is not None
        if self._worker.done():
            self._worker.result()  # re-raise the pipeline's failure
            raise RuntimeError("ingest already finished")
        put = asyncio.ensure_future(self._queue.put(item))
        try:
            done, _ = await asyncio.wait({put, self._worker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not put.done():
                put.cancel()
        if put not in done:
            self._worker.result()
            raise RuntimeError("ingest already finished")

    async def abort(self) -> None:
        """Give back every pin of this request (the chunks become GC candidates).

        Chunk writes in flight are waited for, not cancelled: a store may finish a write it
        has started whatever its caller does (DirectoryChunkStore shields it), and a write
        landing after the pins are released could race GC and leave a chunk file the index
        does not know (or, worse, recreate one GC is deleting)."""
        if self._worker is None:  # nothing was hashed, pinned or sent
            self._small = []
            self._unqueue(self._queued)
            if self.token_shared:
                await self.release()
            self._released = True
            return
        if not self._worker.done():
            self._worker.cancel()
        await asyncio.gather(self._worker, return_exceptions=True)
        if self._sends:
            await asyncio.wait(list(self._sends))
        await self.release()

    async def release(self) -> None:
        if not self._released:
            self._released = True
            await self.engine.index.write(
                lambda txn: refcount.release(txn, self.token, self.engine.now_ms())
            )

    # -- pipeline -------------------------------------------------------------------------

    async def _run(self) -> None:
        """Two lanes over the same blocks, each in order: MD5 (and the S3 checksums) of batch
        n runs while the chunker cuts batch n and the loop fetches batch n + 1, so the slowest
        hash (MD5) never waits for the chunker; pinning and dispatching the chunks of batch n
        runs while batch n + 1 is hashed. A batch is every block queued at the time (fewer
        thread hand-offs when hashing falls behind the network); a small one is hashed on the
        event loop."""
        loop = asyncio.get_running_loop()
        pool = self.engine.hash_pool
        digesting: asyncio.Future[None] | None = None  # MD5 of the previous batch
        handling: asyncio.Task[None] | None = None  # pin + dispatch of the previous batch
        try:
            while True:
                batch = await self._next_batch()
                if not batch:
                    break
                size = 0
                for block in batch:
                    size += len(block)
                    if not self._emitted and len(self._head) <= self._inline_max:
                        self._head += block[: self._inline_max + 1 - len(self._head)]
                self._size += size
                if digesting is not None:
                    await digesting
                    digesting = None
                held = 0  # intake bytes given back once this batch is hashed and pinned
                if size <= self.INLINE_HASH and not self._chunker.cuts_after(size):
                    # a small body (or a short network read): hashing it here costs less than
                    # two thread hand-offs, and the chunker only buffers it (no cut)
                    self._digest(batch)
                    chunks = self._cut(batch, False)
                    self._unqueue(min(size, self._queued))
                else:
                    digesting = loop.run_in_executor(pool, self._digest, batch)
                    chunks = await loop.run_in_executor(pool, self._cut, batch, False)
                    held = size
                if handling is not None:
                    await handling
                    handling = None
                if chunks:
                    self._emitted = True
                    handling = asyncio.ensure_future(self._handle(chunks))
                if held:
                    # The batch's intake goes back when MD5 is done with it and its chunks are
                    # pinned and handed to the sends (which count them in the write budget):
                    # its bytes stay counted while they are held. Never later: waiting for
                    # the next batch could hold it while every client waits for intake (a
                    # deadlock across uploads); pinning and sending never wait for intake.
                    self._release_when_done(held, digesting, handling)
            if digesting is not None:
                await digesting
                digesting = None
            if handling is not None:
                await handling
                handling = None
            if self._size <= self._inline_max and not self._emitted:
                return  # small object: lives inline in its record
            await self._handle(await loop.run_in_executor(pool, self._cut, [], True))
            await self._wait_sends()
        finally:
            if handling is not None and not handling.done():
                handling.cancel()
            for job in (digesting, handling):
                if job is not None:
                    # a hashing thread may still use the batch; a cancelled pin is released
                    await asyncio.wait([job])
                    if not job.cancelled():
                        job.exception()  # retrieved (the first failure is already raised)
            # asyncio.wait, not gather: cancelling the worker must not cancel chunk writes
            await self._wait_sends(check=False)
            self._unqueue(self._queued)  # blocks never hashed (an aborted upload)

    async def _next_batch(self) -> list[bytes]:
        """The blocks queued now (waits for one); [] at the end of the body."""
        first = await self._queue.get()
        if first is None:
            return []
        batch = [first]
        while not self._queue.empty():
            block = self._queue.get_nowait()
            if block is None:
                self._queue.put_nowait(None)  # seen again by the next call
                break
            batch.append(block)
        return batch

    async def _wait_sends(self, *, check: bool = True) -> None:
        if self._sends:
            await asyncio.wait(list(self._sends))
        if check:
            self._check_sends()

    def _check_sends(self) -> None:
        """Raise the first failed chunk write (an object must never be committed without
        every one of its chunks durable in the store)."""
        if self._send_error is not None:
            raise self._send_error

    def _send_done(self, task: asyncio.Task[None]) -> None:
        self._sends.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            if self._send_error is None:
                self._send_error = exc

    def _digest(self, batch: list[bytes]) -> None:
        for block in batch:
            self._md5.update(block)
            for c in self._checksums.values():
                c.update(block)

    def _cut(self, batch: list[bytes], final: bool) -> list[tuple[bytes, bytes]]:
        chunks: list[bytes] = []
        for block in batch:
            chunks += self._chunker.feed(block)
        if final:
            chunks += self._chunker.finish()
        return [(blake3.blake3(c).digest(), c) for c in chunks]

    async def _handle(self, chunks: list[tuple[bytes, bytes]]) -> None:
        if not chunks:
            return
        self._emitted = True
        data = dict(chunks)
        want = [(h, len(c)) for h, c in chunks]
        todo = want
        while todo:
            res = await self.engine.index.write(
                lambda txn, todo=todo: refcount.pin(txn, self.token, todo)  # type: ignore[misc]
            )
            for h in res.to_send:
                await self._send_slots.acquire()
                self._check_sends()
                await self.engine.write_budget.acquire(len(data[h]))  # back when durable
                task = asyncio.create_task(self._send(h, data[h]))
                self._sends.add(task)
                task.add_done_callback(self._send_done)
            if res.blocked:  # GC is deleting them: wait for that round, then pin anew
                await self.engine.gc_round_done()
                blocked = set(res.blocked)
                todo = [(h, n) for h, n in todo if h in blocked]
            else:
                todo = []
            # failed sends surface here rather than at finish()
            self._check_sends()
        self._out.chunks.extend(want)

    async def _send(self, h: bytes, data: bytes) -> None:
        try:
            self._out.stored[h] = await self.engine.store.put(h, data)
        finally:
            self._send_slots.release()
            self.engine.write_budget.release(len(data))

    def _release_when_done(self, n: int, *jobs: asyncio.Future[None] | None) -> None:
        """Give ``n`` intake bytes back once every job has ended (all of it is released when
        the worker ends anyway)."""
        waiting = [j for j in jobs if j is not None]
        left = len(waiting)

        def one_done(_: asyncio.Future[None]) -> None:
            nonlocal left
            left -= 1
            if left == 0:
                self._unqueue(min(n, self._queued))

        for job in waiting:
            job.add_done_callback(one_done)
        if not waiting:
            self._unqueue(min(n, self._queued))

    def _unqueue(self, n: int) -> None:
        if n:
            self._queued -= n
            self.engine.intake_budget.release(n)
