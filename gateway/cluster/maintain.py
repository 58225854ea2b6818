"""Cluster maintenance: repair, reconcile, rebalance, drain, remove and scrub.

Every job works from the index, where each STORED chunk records the nodes holding it
(``ChunkRecord.replicas``, node numbers), and changes copies in the one safe order: **copy,
record, then delete**. A replica is dropped from the record only after its replacement is
durable, and a copy is deleted only after the record no longer names it, so a crash at any
point leaves at worst an extra copy (which reconciling that node removes), never a record
naming a copy that is gone.

Each batch of changes runs under ``Engine.moves``, which a GC round also holds: GC never
deletes a chunk a job is copying, and a job never copies a chunk GC is deleting. Writers do not
take that lock: they only ever send chunks that are PENDING (new entries), and every job here
only touches STORED ones, except :func:`Maintainer.reconcile`'s orphans (copies of chunks the
index does not know), which are first given an entry marked DELETING (``refcount.mark_orphans``)
so that a writer storing the same chunk meanwhile waits for the deletion, as it does for GC.

Jobs run one at a time (``job_lock``), started by the operator (``s3dedup admin repair |
rebalance | drain | remove | scrub``, with progress streamed back) or by the background loop:

* a node down for longer than ``repair_delay``: repair;
* a node that comes back: reconcile it (delete what the index no longer expects there, drop
  from the records what it lost), then repair;
* a node that joins: rebalance (the request is kept in the index, so it resumes after a
  gateway restart), until every node's fill is within ``rebalance_threshold`` of the mean;
* a node marked draining (also kept in the index): drain;
* copies a read found damaged, and copies the background scrub quarantined: re-copied from a
  good replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web

from dedup import refcount
from dedup.records import ChunkRecord, ChunkState
from dedup.store import ChunkCorrupt, ChunkNotFound
from gateway.cluster.client import NODE_FAILURES
from gateway.cluster.membership import DOWN, Member
from gateway.cluster.placement import rank
from storage_node.protocol import MAX_LIST_LIMIT

if TYPE_CHECKING:
    from dedup.engine import Engine
    from dedup.index import Txn
    from gateway.cluster.store import ClusterChunkStore
    from gateway.config import Config

__all__ = ["MAINTAINER", "JobError", "Maintainer", "Progress", "placement_problems"]

log = structlog.get_logger("s3dedup.maintain")

PARALLEL = 8  # chunk copies in flight in one job
BATCH = 256  # chunks changed under one hold of the moves lock
SCAN = 4096  # index entries read per scan step (one read transaction)
PROGRESS_EVERY = 0.5  # seconds between progress reports
TICK = 1.0  # seconds between looks of the background loop
REBALANCE_KEY = b"cluster:rebalance"  # meta: a rebalance was asked for and is not finished

ProgressCallback = Callable[[dict[str, Any]], Awaitable[None]]


class JobError(Exception):
    """A job cannot run as asked (unknown node, node not drained...): the operator's error."""


class Progress:
    """A job's counters, reported to ``callback`` every :data:`PROGRESS_EVERY` seconds."""

    def __init__(self, job: str, callback: ProgressCallback | None = None) -> None:
        self.job = job
        self.phase = "starting"
        self.counters: dict[str, int] = {}
        self.lost: list[str] = []
        self._callback = callback
        self._last = 0.0

    def add(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def get(self, name: str) -> int:
        return self.counters.get(name, 0)

    def lose(self, chunk_id: bytes) -> None:
        self.add("lost")
        if len(self.lost) < 1000:
            self.lost.append(chunk_id.hex())
        log.error("chunk lost: no good copy on any live node", job=self.job, chunk=chunk_id.hex())

    def line(self) -> dict[str, Any]:
        return {"job": self.job, "phase": self.phase, **self.counters}

    async def set_phase(self, phase: str) -> None:
        self.phase = phase
        await self.report(force=True)

    async def report(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if self._callback is not None and (force or now - self._last >= PROGRESS_EVERY):
            self._last = now
            await self._callback(self.line())

    def result(self) -> dict[str, Any]:
        ok = self.get("lost") == 0 and self.get("failed") == 0
        return {**self.line(), "lost_ids": self.lost, "ok": ok}


class Throttle:
    """At most ``rate`` bytes per second over the job's life (0: unlimited)."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.start = time.monotonic()
        self.taken = 0

    async def take(self, n: int) -> None:
        if self.rate <= 0:
            return
        self.taken += n
        ahead = self.taken / self.rate - (time.monotonic() - self.start)
        if ahead > 0:
            await asyncio.sleep(ahead)


@dataclass
class _Scan:
    """Walks the ``chunks`` database in steps of :data:`SCAN` entries (each in a thread, in
    its own read transaction), keeping those ``want`` accepts."""

    maintainer: Maintainer
    want: Callable[[bytes, ChunkRecord], bool]
    after: bytes | None = None
    done: bool = False

    async def next(self) -> list[tuple[bytes, ChunkRecord]]:
        def step() -> tuple[list[tuple[bytes, ChunkRecord]], bytes | None]:
            out: list[tuple[bytes, ChunkRecord]] = []
            last: bytes | None = None
            seen = 0
            start = None if self.after is None else self.after + b"\0"
            with self.maintainer.engine.index.read() as txn:
                for h, raw in txn.prefix("chunks", b"", start):
                    seen += 1
                    last = h
                    rec = ChunkRecord.decode(raw)
                    if self.want(h, rec):
                        out.append((h, rec))
                    if seen >= SCAN:
                        return out, last
            return out, None

        if self.maintainer.stopping:
            raise JobError("the gateway is stopping; the job resumes or can be run again later")
        found, last = await asyncio.to_thread(step)
        self.after = last
        self.done = last is None
        return found


class Maintainer:
    def __init__(self, engine: Engine, store: ClusterChunkStore, config: Config) -> None:
        self.engine = engine
        self.store = store
        self.membership = store.membership
        self.config = config
        self.replicas = store.replicas
        self.job_lock = asyncio.Lock()
        self.running: str | None = None
        self.stopping = False
        self._returned: list[Member] = []
        self._repaired_down: set[int] = set()
        self._drained: set[int] = set()
        self._quarantined: set[tuple[bytes, int]] = set()  # found by the background scrub
        self._scrub_cursor: dict[int, bytes | None] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.membership.on_join.append(self._joined)
        self.membership.on_return.append(self._returned.append)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._loop(), name="cluster-maintenance"))
        if self.config.scrub_rate > 0:
            self._tasks.append(asyncio.create_task(self._scrub_loop(), name="cluster-scrub"))

    async def close(self) -> None:
        """Let the job under way stop between two chunks (a copy is never left half-recorded),
        then stop the background tasks."""
        self.stopping = True
        async with self.job_lock:
            pass
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    def _joined(self, member: Member) -> None:
        if len(self.membership.members) > 1:
            task = asyncio.ensure_future(self._ask_rebalance())
            self._tasks.append(task)

    async def _ask_rebalance(self) -> None:
        await self.engine.index.write(lambda txn: txn.put("meta", REBALANCE_KEY, b"1"))

    def _rebalance_asked(self) -> bool:
        with self.engine.index.read() as txn:
            return txn.get("meta", REBALANCE_KEY) is not None

    # -- running jobs -------------------------------------------------------------------------

    async def run(
        self, job: str, callback: ProgressCallback | None = None, **args: Any
    ) -> dict[str, Any]:
        """Run one job (waiting for the one under way, if any) and return its result."""
        jobs: dict[str, Callable[..., Awaitable[None]]] = {
            "repair": self.repair,
            "reconcile": self.reconcile,
            "rebalance": self.rebalance,
            "drain": self.drain,
            "remove": self.remove,
            "scrub": self.scrub,
        }
        fn = jobs[job]
        progress = Progress(job, callback)
        if self.job_lock.locked():
            progress.phase = f"waiting for the {self.running} job under way"
            await progress.report(force=True)
        async with self.job_lock:
            if self.stopping:
                raise JobError("the gateway is stopping")
            self.running = job
            try:
                await fn(progress, **args)
            finally:
                self.running = None
        progress.phase = "done"
        log.info("cluster job done", **progress.line())
        return progress.result()

    async def _loop(self) -> None:
        while not self.stopping:
            await asyncio.sleep(TICK)
            try:
                await self._step()
            except JobError as exc:
                log.warning("cluster job not run", error=str(exc))
            except Exception:  # the loop must outlive one failed job; the next tick retries
                log.exception("cluster maintenance step failed")

    async def _step(self) -> None:
        now = time.monotonic()
        while self._returned:
            member = self._returned.pop(0)
            if member.id in self.membership.members:
                self._repaired_down.discard(member.num)
                await self.run("reconcile", node=member.id)
        for member in list(self.membership.members.values()):
            if member.up:
                self._repaired_down.discard(member.num)
            elif (
                member.state == DOWN
                and now - member.last_seen > self.config.repair_delay
                and member.num not in self._repaired_down
            ):
                self._repaired_down.add(member.num)
                log.warning("node down past repair_delay: repairing", node=member.id)
                await self.run("repair")
        for member in list(self.membership.members.values()):
            if member.draining and member.up and member.num not in self._drained:
                await self.run("drain", node=member.id)
        if self._rebalance_asked():
            await self.run("rebalance")
        if self.store.suspects or self._quarantined:
            await self.run("repair", full=False)

    # -- helpers ------------------------------------------------------------------------------

    def _member(self, node: str) -> Member:
        member = self.membership.find(node)
        if member is None:
            raise JobError(f"no node {node!r} (give its id, a unique id prefix, number or url)")
        return member

    def _live(self, rec: ChunkRecord) -> list[Member]:
        by_num = self.membership.by_num
        return [by_num[n] for n in rec.replicas if n in by_num and by_num[n].up]

    def _record(self, h: bytes) -> ChunkRecord | None:
        with self.engine.index.read() as txn:
            return txn.chunk(h)

    async def _move(self, h: bytes, add: Iterable[int], remove: Iterable[int]) -> bool:
        add, remove = list(add), list(remove)

        def change(txn: Txn) -> bool:
            return refcount.move_replicas(txn, h, add, remove)

        return bool(await self.engine.index.write(change))

    async def _read_good(self, h: bytes, members: list[Member], bad: set[int]) -> bytes | None:
        """A verified copy from the first of ``members`` that has one; the numbers of those
        holding a missing or damaged copy are added to ``bad``."""
        for member in rank(members, h):
            try:
                return await member.client.get(h)
            except (ChunkNotFound, ChunkCorrupt) as exc:
                bad.add(member.num)
                log.warning("bad copy", node=member.id, chunk=h.hex(), error=str(exc))
            except NODE_FAILURES as exc:
                log.warning("copy unreadable", node=member.id, chunk=h.hex(), error=repr(exc))
        return None

    async def _put_somewhere(
        self, h: bytes, data: bytes, exclude: set[int], progress: Progress
    ) -> Member | None:
        for member in rank(self.membership.writable(), h):
            if member.num in exclude:
                continue
            try:
                await member.client.put(h, data)
            except NODE_FAILURES as exc:
                log.warning("copy failed; next node", node=member.id, error=repr(exc))
                continue
            progress.add("copied")
            progress.add("bytes", len(data))
            return member
        return None

    async def _delete_copy(self, member: Member, h: bytes, progress: Progress) -> None:
        try:
            if await member.client.delete(h):
                progress.add("deleted")
        except NODE_FAILURES as exc:  # the copy stays: reconciling the node removes it later
            log.warning("delete failed", node=member.id, chunk=h.hex(), error=repr(exc))

    async def _each(
        self, items: list[bytes], fn: Callable[[bytes], Awaitable[None]], progress: Progress
    ) -> None:
        """``fn`` on every item, :data:`PARALLEL` at once, under the moves lock."""
        work = iter(items)

        async def worker() -> None:
            for h in work:
                if self.stopping:
                    return
                await fn(h)
                progress.add("done")
                await progress.report()

        async with self.engine.moves:
            await asyncio.gather(*(worker() for _ in range(PARALLEL)))

    async def _list(self, member: Member) -> set[bytes]:
        out: set[bytes] = set()
        after: bytes | None = None
        while True:
            page = await member.client.list_ids(after, MAX_LIST_LIMIT)
            out.update(page)
            if len(page) < MAX_LIST_LIMIT:
                return out
            after = page[-1]

    # -- repair -------------------------------------------------------------------------------

    async def repair(self, progress: Progress, full: bool = True) -> None:
        """Bring every STORED chunk back to R live copies, and re-copy damaged copies (found
        by reads and by scrub). ``full=False``: only the damaged copies."""
        await self._fix_copies(progress)
        if not full:
            return
        await progress.set_phase("scanning")
        up = {m.num for m in self.membership.up()}

        def short(h: bytes, rec: ChunkRecord) -> bool:
            if rec.state is not ChunkState.STORED:
                return False
            return not rec.replicas or sum(n in up for n in rec.replicas) < self.replicas

        scan = _Scan(self, short)
        while not scan.done:
            found = [h for h, _ in await scan.next()]
            progress.add("under_replicated", len(found))
            for start in range(0, len(found), BATCH):
                if progress.phase != "copying":
                    await progress.set_phase("copying")
                batch = found[start : start + BATCH]
                await self._each(batch, lambda h: self._repair_one(h, progress), progress)

    async def _repair_one(self, h: bytes, progress: Progress) -> None:
        rec = self._record(h)
        if rec is None or rec.state is not ChunkState.STORED:
            return
        live = self._live(rec)
        if not rec.replicas:  # no placement recorded: find the copies
            live = [m for m in self.membership.up() if await self._has(m, h)]
            if len(live) >= self.replicas:
                await self._move(h, [m.num for m in live], [])
                return
        if len(live) >= self.replicas:
            return
        bad: set[int] = set()
        data = await self._read_good(h, live, bad)
        live = [m for m in live if m.num not in bad]
        if data is None:
            if live:  # copies exist, but none could be read now
                progress.add("failed")
            else:
                progress.lose(h)
            await self._move(h, [], bad)
            return
        holders = {m.num for m in live}
        added: list[int] = []
        while len(holders) < self.replicas:
            target = await self._put_somewhere(h, data, holders | set(rec.replicas), progress)
            if target is None:
                break
            holders.add(target.num)
            added.append(target.num)
        if len(holders) >= self.replicas:
            # R live copies: forget the copies on nodes down, removed or damaged
            await self._move(h, added, [n for n in rec.replicas if n not in holders])
            progress.add("repaired")
        else:
            await self._move(h, added, bad)
            progress.add("failed")
            log.warning("still under-replicated", chunk=h.hex(), holders=len(holders))

    async def _has(self, member: Member, h: bytes) -> bool:
        try:
            return await member.client.has(h)
        except NODE_FAILURES:
            return False

    async def _fix_copies(self, progress: Progress) -> None:
        """Re-copy the copies reads found damaged and the background scrub quarantined."""
        damaged = {(h, n, True) for h, n in self.store.suspects}
        damaged |= {(h, n, False) for h, n in self._quarantined}
        self.store.suspects.clear()
        self._quarantined.clear()
        if not damaged:
            return
        await progress.set_phase("fixing damaged copies")
        async with self.engine.moves:
            for h, num, still_there in sorted(damaged):
                await self._fix_copy(h, num, progress, delete_first=still_there)

    async def _fix_copy(
        self, h: bytes, num: int, progress: Progress, *, delete_first: bool
    ) -> None:
        """Replace the damaged copy of ``h`` on node ``num`` by a good one (caller holds the
        moves lock)."""
        member = self.membership.by_num.get(num)
        rec = self._record(h)
        if member is None or not member.up:
            return
        if delete_first:
            await self._delete_copy(member, h, progress)
        if rec is None or rec.state is not ChunkState.STORED or num not in rec.replicas:
            return  # not a copy the index counts on: deleting it was all there was to do
        others = [m for m in self._live(rec) if m.num != num]
        bad: set[int] = set()
        data = await self._read_good(h, others, bad)
        if data is None:
            if others and not bad:
                progress.add("failed")
            else:
                progress.lose(h)
            return
        try:
            await member.client.put(h, data)
        except NODE_FAILURES as exc:
            log.warning("could not re-copy a damaged copy", node=member.id, error=repr(exc))
            await self._move(h, [], [num])  # the full repair finds it short now
            progress.add("failed")
            return
        progress.add("fixed")
        progress.add("bytes", len(data))

    # -- reconcile ----------------------------------------------------------------------------

    async def reconcile(self, progress: Progress, node: str) -> None:
        """Make a node's holdings agree with the index: copies of chunks the index does not
        know or does not place there are deleted (or adopted, for a chunk short of copies);
        chunks the index places there but the node lacks are dropped from their records and
        re-copied by a repair."""
        member = self._member(node)
        if not member.up:
            raise JobError(f"node {member.id} is down")
        await progress.set_phase("listing")
        held = await self._list(member)
        progress.add("listed", len(held))
        await progress.set_phase("removing copies the index does not expect")
        ids = sorted(held)
        for start in range(0, len(ids), BATCH):
            async with self.engine.moves:
                await self._reconcile_batch(member, ids[start : start + BATCH], progress)
            await progress.report()

        await progress.set_phase("checking the copies the index expects")
        num = member.num
        scan = _Scan(self, lambda h, rec: num in rec.replicas and h not in held)
        while not scan.done:
            for h, _ in await scan.next():
                async with self.engine.moves:
                    if not await self._has(member, h):  # not a listing that raced a write
                        await self._move(h, [], [num])
                        progress.add("missing")
        await self.repair(progress)

    async def _reconcile_batch(self, member: Member, ids: list[bytes], progress: Progress) -> None:
        num = member.num

        def marks(txn: Txn) -> tuple[list[bytes], dict[bytes, ChunkRecord]]:
            return refcount.mark_orphans(txn, ids, num), {
                h: rec for h in ids if (rec := txn.chunk(h)) is not None
            }

        orphans, recs = await self.engine.index.write(marks)
        for h in orphans:
            await self._delete_copy(member, h, progress)
            progress.add("orphans")
        if orphans:
            await self.engine.index.write(lambda txn: refcount.gc_finish(txn, orphans))
        for h in ids:
            rec = recs.get(h)
            if rec is None or h in orphans or rec.state is not ChunkState.STORED:
                continue  # orphans done; PENDING and DELETING ones belong to writers and GC
            if num in rec.replicas:
                continue
            if member.writable and len(self._live(rec)) < self.replicas:
                await self._move(h, [num], [])
                progress.add("adopted")
            else:
                await self._delete_copy(member, h, progress)
                progress.add("strays")

    # -- drain and remove ---------------------------------------------------------------------

    async def drain(self, progress: Progress, node: str) -> None:
        """Move every copy off a node (which takes no new chunks from now on)."""
        member = self._member(node)
        if not member.draining:
            await self.membership.set_draining(member, True)
        self._drained.discard(member.num)
        if not member.up:
            raise JobError(f"node {member.id} is down: its copies cannot be moved off it")
        num = member.num
        throttle = Throttle(self.config.move_rate)
        await progress.set_phase("moving")
        scan = _Scan(self, lambda h, rec: rec.state is ChunkState.STORED and num in rec.replicas)
        while not scan.done:
            found = await scan.next()
            progress.add("to_move", len(found))
            for start in range(0, len(found), BATCH):
                batch = [h for h, _ in found[start : start + BATCH]]
                await self._each(
                    batch, lambda h: self._move_one(h, member, None, throttle, progress), progress
                )
        await progress.set_phase("removing what is left")
        await self.reconcile(progress, node=member.id)
        progress.counters["left"] = len(await self._list(member))
        self._drained.add(num)  # `admin drain` runs it again

    async def _move_one(
        self,
        h: bytes,
        source: Member,
        target: Member | None,
        throttle: Throttle,
        progress: Progress,
    ) -> None:
        """Copy ``h`` from ``source`` to ``target`` (default: the first writable node not
        holding it), record the change, then delete the source's copy."""
        rec = self._record(h)
        if rec is None or rec.state is not ChunkState.STORED or source.num not in rec.replicas:
            return
        if target is not None and target.num in rec.replicas:
            return
        bad: set[int] = set()
        data = await self._read_good(h, [source], bad)
        if data is None:  # read it from another replica
            data = await self._read_good(h, [m for m in self._live(rec) if m is not source], bad)
        if data is None:
            progress.add("failed")
            return
        await throttle.take(len(data))
        exclude = set(rec.replicas)
        if target is None:
            target = await self._put_somewhere(h, data, exclude, progress)
            if target is None:
                progress.add("failed")
                return
        else:
            try:
                await target.client.put(h, data)
            except NODE_FAILURES as exc:
                log.warning("move failed", node=target.id, error=repr(exc))
                progress.add("failed")
                return
            progress.add("copied")
            progress.add("bytes", len(data))
        if await self._move(h, [target.num], [source.num, *sorted(bad - {target.num})]):
            await self._delete_copy(source, h, progress)
            progress.add("moved")
            progress.add("moved_bytes", len(data))

    async def remove(self, progress: Progress, node: str, force: bool = False) -> None:
        """Forget a node. Refused while the index places copies on it, unless ``force`` (for a
        node lost for good): then its copies are dropped from the records and repaired."""
        member = self._member(node)
        num = member.num
        await progress.set_phase("checking")
        placed = 0
        scan = _Scan(self, lambda h, rec: num in rec.replicas and rec.state is ChunkState.STORED)
        forced: list[bytes] = []
        while not scan.done:
            found = await scan.next()
            placed += len(found)
            forced.extend(h for h, _ in found)
        progress.counters["placed"] = placed
        if placed and not force:
            raise JobError(
                f"node {member.id} still holds {placed} chunks: drain it first"
                " (or, for a node lost for good, remove --force, which re-replicates them)"
            )
        await self.membership.remove(member)
        self._drained.discard(num)
        progress.counters["removed"] = 1
        if forced:
            await progress.set_phase("repairing")
            async with self.engine.moves:
                for h in forced:
                    await self._move(h, [], [num])
            await self.repair(progress)

    # -- rebalance ----------------------------------------------------------------------------

    def _balance(self, used: dict[int, int]) -> tuple[Member, Member, int] | None:
        """(fullest node, emptiest writable node, bytes to move) or None when balanced."""
        nodes = [m for m in self.membership.up() if not m.draining]
        targets = [m for m in nodes if m.writable]
        if len(nodes) < 2 or not targets:
            return None
        mean = sum(used.get(m.num, 0) for m in nodes) / sum(m.capacity for m in nodes)

        def fill(m: Member) -> float:
            return used.get(m.num, 0) / m.capacity

        full = max(nodes, key=fill)
        empty = min(targets, key=fill)
        if full is empty or fill(full) - fill(empty) <= self.config.rebalance_threshold * mean:
            return None
        need = min(
            used.get(full.num, 0) - mean * full.capacity,
            mean * empty.capacity - used.get(empty.num, 0),
        )
        if need < 2 * self.engine.index.chunker.max_size:
            return None  # the seed's floor: closer than two chunks is balanced
        return full, empty, int(need)

    async def usage(self) -> dict[int, int]:
        """Bytes the index places on each node (STORED chunks)."""
        used: dict[int, int] = {}
        scan = _Scan(self, lambda h, rec: rec.state is ChunkState.STORED)
        while not scan.done:
            for _, rec in await scan.next():
                for n in rec.replicas:
                    used[n] = used.get(n, 0) + rec.size
        return used

    async def rebalance(self, progress: Progress) -> None:
        """Move copies from the fullest node to the emptiest until every node's fill is within
        ``rebalance_threshold`` of the mean (seed 003's volume balancing), throttled."""
        await self._ask_rebalance()  # kept until done: resumed after a restart
        await progress.set_phase("measuring")
        used = await self.usage()
        throttle = Throttle(self.config.move_rate)
        await progress.set_phase("moving")
        cursor: bytes | None = None
        while (plan := self._balance(used)) is not None:
            full, empty, need = plan

            def movable(h: bytes, rec: ChunkRecord, f: int = full.num, e: int = empty.num) -> bool:
                return (
                    rec.state is ChunkState.STORED and f in rec.replicas and e not in rec.replicas
                )

            picked: list[bytes] = []
            total = 0
            scan = _Scan(self, movable, after=cursor)
            restarted = cursor is None
            while total < need and len(picked) < BATCH:
                if scan.done:
                    if restarted:
                        break
                    scan, restarted = _Scan(self, movable), True
                for h, rec in await scan.next():
                    if total < need and len(picked) < BATCH:
                        picked.append(h)
                        total += rec.size
            cursor = scan.after
            if not picked:
                log.info("rebalance: nothing more can move", full=full.id, empty=empty.id)
                break
            before = progress.get("moved_bytes")
            source, target = full, empty
            await self._each(
                picked,
                functools.partial(
                    self._move_one,
                    source=source,
                    target=target,
                    throttle=throttle,
                    progress=progress,
                ),
                progress,
            )
            moved = progress.get("moved_bytes") - before
            used[full.num] = used.get(full.num, 0) - moved
            used[empty.num] = used.get(empty.num, 0) + moved
            if not moved:
                log.warning("rebalance: a batch moved nothing", full=full.id, empty=empty.id)
                break
        await self.engine.index.write(lambda txn: txn.delete("meta", REBALANCE_KEY))
        progress.counters.update({f"node{n}_used": b for n, b in sorted(used.items())})

    # -- scrub --------------------------------------------------------------------------------

    async def scrub(self, progress: Progress, rate: int = 0) -> None:
        """Every up node re-hashes all its chunks (at ``rate`` bytes/s each; 0: unlimited) and
        quarantines damaged ones; those the index places there are re-copied from a good
        replica."""
        await progress.set_phase("scrubbing")
        found: set[tuple[bytes, int]] = set()

        async def one(member: Member) -> None:
            after: bytes | None = None
            while True:
                page = await member.client.scrub(after, 256, rate)
                progress.add("checked", page.checked)
                progress.add("scrubbed_bytes", page.bytes)
                progress.add("corrupt", len(page.corrupt))
                found.update((h, member.num) for h in page.corrupt)
                await progress.report()
                if page.next is None:
                    return
                if self.stopping:
                    raise JobError("the gateway is stopping; run the scrub again later")
                after = page.next

        await asyncio.gather(*(one(m) for m in self.membership.up()))
        self._quarantined |= found
        await self._fix_copies(progress)

    async def _scrub_loop(self) -> None:
        """The background scrub: one page per node at a time, at ``scrub_rate`` each."""
        while True:
            await asyncio.sleep(TICK)
            members = self.membership.up()
            try:
                await asyncio.gather(*(self._scrub_page(m) for m in members))
            except NODE_FAILURES as exc:
                log.warning("background scrub: a node failed", error=repr(exc))

    async def _scrub_page(self, member: Member) -> None:
        after = self._scrub_cursor.get(member.num)
        page = await member.client.scrub(after, 64, self.config.scrub_rate)
        self._scrub_cursor[member.num] = page.next
        if page.corrupt:
            log.warning("scrub found damaged copies", node=member.id, count=len(page.corrupt))
            self._quarantined.update((h, member.num) for h in page.corrupt)


MAINTAINER = web.AppKey("maintainer", Maintainer)


async def placement_problems(maintainer: Maintainer) -> tuple[list[str], dict[str, int]]:
    """fsck's cluster part: every STORED chunk is on R live nodes that the index records and
    that list it. Returns (problems, counts)."""
    up = maintainer.membership.up()
    listings = dict(
        zip(
            [m.num for m in up],
            await asyncio.gather(*(maintainer._list(m) for m in up)),
            strict=True,
        )
    )
    replicas = maintainer.replicas

    def check() -> tuple[list[str], dict[str, int]]:  # a whole-index scan: in a thread
        problems: list[str] = []
        live_copies = 0
        with maintainer.engine.index.read() as txn:
            for h, raw in txn.prefix("chunks", b""):
                rec = ChunkRecord.decode(raw)
                if rec.state is not ChunkState.STORED:
                    continue
                live = 0
                for n in rec.replicas:
                    if n not in listings:
                        continue  # a node down: fewer live copies, said below
                    if h in listings[n]:
                        live += 1
                    else:
                        problems.append(f"chunk {h.hex()}: placed on node {n}, which lacks it")
                live_copies += live
                if live < replicas:
                    problems.append(f"chunk {h.hex()}: {live} live copies of {replicas}")
        listed = sum(len(ids) for ids in listings.values())
        # every live recorded copy is listed once; whatever else is listed is a stray
        return problems, {"placed_copies": live_copies, "stray_copies": listed - live_copies}

    return await asyncio.to_thread(check)
