"""Repair: bring every referenced chunk back to R live copies after nodes were lost.

:func:`repair` lists the chunk ids every up node holds (paginated ``GET /chunks``), so it
knows each chunk's live holders; then, for every chunk of the index that is referenced
(refcount > 0) and ``STORED`` but has fewer than R live holders, it reads one copy from a
holder (verified end to end by the client) and writes it to the next writable nodes in the
chunk's rendezvous order that do not hold it, until R live nodes do. A chunk no live node
holds (or whose every live copy is missing or damaged) is *lost*: reported, never skipped in
silence. At most ``parallel`` copies are in flight at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
import structlog

from dedup.records import ChunkRecord, ChunkState
from dedup.store import ChunkCorrupt, ChunkNotFound
from gateway.cluster.client import NodeError
from gateway.cluster.placement import rank
from storage_node.protocol import MAX_LIST_LIMIT

if TYPE_CHECKING:
    from dedup.index import Index
    from gateway.cluster.membership import Member
    from gateway.cluster.store import ClusterChunkStore

__all__ = ["RepairResult", "repair"]

log = structlog.get_logger("s3dedup.repair")

_NODE_FAILURES = (aiohttp.ClientError, TimeoutError, OSError, NodeError)
PARALLEL = 8  # copies in flight
PROGRESS_EVERY = 0.5  # seconds between progress reports (plus one at each phase's end)
_LOST_LISTED = 1000  # lost chunk ids named in the result (all are counted)

ProgressCallback = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class RepairResult:
    nodes_up: int = 0
    nodes_unlisted: int = 0  # up nodes whose listing failed (not counted as holders)
    checked: int = 0  # referenced, stored chunks in the index
    under_replicated: int = 0  # of those, fewer than R live holders at the start
    done: int = 0  # under-replicated chunks handled (repaired, lost or failed)
    repaired: int = 0  # brought back to R live holders
    copied: int = 0  # copies written
    bytes: int = 0  # bytes written
    lost: int = 0  # no live, readable copy left
    failed: int = 0  # readable, but fewer than R nodes could take it now
    lost_ids: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.lost == 0

    def progress(self) -> dict[str, Any]:
        return {
            "phase": "copying",
            "done": self.done,
            "total": self.under_replicated,
            "copied": self.copied,
            "bytes": self.bytes,
            "lost": self.lost,
            "failed": self.failed,
        }

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


async def _list_all(member: Member) -> list[bytes]:
    out: list[bytes] = []
    after: bytes | None = None
    while True:
        page = await member.client.list_ids(after, MAX_LIST_LIMIT)
        out.extend(page)
        if len(page) < MAX_LIST_LIMIT:
            return out
        after = page[-1]


def _under_replicated(
    index: Index, holders: dict[bytes, set[str]], replicas: int
) -> tuple[int, list[bytes]]:
    """(referenced stored chunks, the ones with fewer than ``replicas`` live holders)."""
    checked = 0
    short: list[bytes] = []
    with index.read() as txn:
        for chunk_id, raw in txn.prefix("chunks", b""):
            rec = ChunkRecord.decode(raw)
            if rec.refcount <= 0 or rec.state != ChunkState.STORED:
                continue
            checked += 1
            if len(holders.get(chunk_id, ())) < replicas:
                short.append(chunk_id)
    return checked, short


async def repair(
    index: Index,
    cluster_store: ClusterChunkStore,
    progress_cb: ProgressCallback,
    *,
    parallel: int = PARALLEL,
) -> RepairResult:
    membership = cluster_store.membership
    replicas = cluster_store.replicas
    result = RepairResult()
    up = membership.up()
    result.nodes_up = len(up)
    await progress_cb({"phase": "listing", "nodes": len(up)})

    listings = await asyncio.gather(*(_list_all(m) for m in up), return_exceptions=True)
    live: dict[str, Member] = {}
    holders: dict[bytes, set[str]] = {}
    for member, listing in zip(up, listings, strict=True):
        if isinstance(listing, BaseException):
            if not isinstance(listing, _NODE_FAILURES):
                raise listing
            result.nodes_unlisted += 1
            log.warning("repair: node listing failed", node=member.id, error=repr(listing))
            continue
        live[member.id] = member
        for chunk_id in listing:
            holders.setdefault(chunk_id, set()).add(member.id)

    result.checked, short = await asyncio.to_thread(_under_replicated, index, holders, replicas)
    result.under_replicated = len(short)
    await progress_cb({"phase": "listed", "checked": result.checked, "total": len(short)})
    log.info("repair: scanned", checked=result.checked, under_replicated=len(short))

    async def copy(chunk_id: bytes) -> None:
        have = {n for n in holders.get(chunk_id, ()) if n in live}
        data: bytes | None = None
        for member in rank([live[n] for n in have], chunk_id):
            try:
                data = await member.client.get(chunk_id)
                break
            except (ChunkNotFound, ChunkCorrupt) as exc:
                have.discard(member.id)  # not a good copy: it does not count
                log.warning("repair: bad copy", node=member.id, error=str(exc))
            except _NODE_FAILURES as exc:
                log.warning("repair: read failed", node=member.id, error=repr(exc))
        if data is None:
            if have:  # copies exist but no node answered: not lost, not repaired
                result.failed += 1
                return
            result.lost += 1
            if len(result.lost_ids) < _LOST_LISTED:
                result.lost_ids.append(chunk_id.hex())
            log.error("repair: chunk lost", chunk=chunk_id.hex())
            return
        targets = [
            m for m in rank(membership.writable(), chunk_id) if m.id in live and m.id not in have
        ]
        for member in targets:
            if len(have) >= replicas:
                break
            try:
                await member.client.put(chunk_id, data)
            except _NODE_FAILURES as exc:
                log.warning("repair: write failed; next node", node=member.id, error=repr(exc))
                continue
            have.add(member.id)
            result.copied += 1
            result.bytes += len(data)
        if len(have) >= replicas:
            result.repaired += 1
        else:
            result.failed += 1
            log.warning("repair: still under-replicated", chunk=chunk_id.hex(), holders=len(have))

    work: Iterator[bytes] = iter(short)
    last = time.monotonic()

    async def worker() -> None:
        nonlocal last
        for chunk_id in work:
            await copy(chunk_id)
            result.done += 1
            now = time.monotonic()
            if now - last >= PROGRESS_EVERY:
                last = now
                await progress_cb(result.progress())

    await asyncio.gather(*(worker() for _ in range(max(1, parallel))))
    await progress_cb(result.progress())
    log.info("repair: done", **{k: v for k, v in result.as_dict().items() if k != "lost_ids"})
    return result
