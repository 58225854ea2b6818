"""The gateway's chunk store in cluster mode: chunks replicated on storage nodes.

:class:`ClusterChunkStore` implements :class:`~dedup.store.ChunkStore` over the nodes of a
:class:`~gateway.cluster.membership.Membership`:

* ``put`` writes to the first R writable nodes in the chunk's rendezvous order, concurrently;
  a node that fails is replaced by the next one in that order. It returns when R copies are
  durable, and raises :class:`~gateway.cluster.placement.InsufficientNodes` (S3: 503 SlowDown)
  when fewer than R nodes can take the chunk: never a silent under-replication.
  The nodes that took it are returned (their numbers) and recorded in the chunk's index entry.
* ``get`` tries the recorded replicas that are up, then every other up node, moving on after
  an error, a timeout, a miss or a damaged copy (reported in ``suspects`` for repair).
* ``delete`` deletes on the recorded replicas that are up; ``has``, ``list_ids`` and ``usage``
  aggregate the up nodes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import structlog

from dedup.store import (
    ChunkCorrupt,
    ChunkNotFound,
    Placement,
    StoreUsage,
    check_chunk_id,
    gather_in_order,
)
from gateway.cluster.client import NODE_FAILURES
from gateway.cluster.membership import Member, Membership
from gateway.cluster.placement import InsufficientNodes, rank

__all__ = ["ClusterChunkStore", "NodesUnavailable"]

log = structlog.get_logger("s3dedup.cluster")

T = TypeVar("T")


class NodesUnavailable(InsufficientNodes):
    """No up node answered for a chunk (all failed, none said "missing"): S3 503 too."""


class ClusterChunkStore:
    def __init__(self, membership: Membership, replicas: int) -> None:
        if replicas < 1:
            raise ValueError("replicas must be >= 1")
        self.membership = membership
        self.replicas = replicas
        # (chunk id, node number) of copies a read found damaged: maintenance repairs them
        self.suspects: set[tuple[bytes, int]] = set()

    async def put(self, chunk_id: bytes, data: bytes | memoryview) -> Placement:
        check_chunk_id(chunk_id)
        order = rank(self.membership.writable(), chunk_id)
        if len(order) < self.replicas:
            raise InsufficientNodes(
                f"{len(order)} nodes can take chunks; {self.replicas} replicas needed"
            )
        candidates = iter(order)
        failures: list[str] = []

        async def replica() -> int:
            # one replica: the next candidate in rendezvous order, until one takes it
            for member in candidates:
                try:
                    await member.client.put(chunk_id, data)
                    return member.num
                except NODE_FAILURES as exc:
                    failures.append(f"{member.id}: {exc!r}")
                    log.warning("chunk write failed; next node", node=member.id, error=repr(exc))
            raise InsufficientNodes(
                f"chunk {chunk_id.hex()}: fewer than {self.replicas} nodes took it"
                f" ({'; '.join(failures)})"
            )

        outcomes = await asyncio.gather(
            *(replica() for _ in range(self.replicas)), return_exceptions=True
        )
        placed: list[int] = []
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome  # ChunkCorrupt (bad data) or InsufficientNodes
            placed.append(outcome)
        return tuple(placed)

    async def put_many(self, items: Sequence[tuple[bytes, bytes | memoryview]]) -> None:
        outcomes = await asyncio.gather(
            *(self.put(chunk_id, data) for chunk_id, data in items), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    def recorded(self, chunk_id: bytes) -> tuple[int, ...]:
        """The replicas the index records for a chunk (() if none are recorded)."""
        with self.membership.index.read() as txn:
            rec = txn.chunk(chunk_id)
        return rec.replicas if rec is not None else ()

    def read_order(self, chunk_id: bytes) -> list[Member]:
        """Up nodes to read a chunk from: its recorded replicas first (in rendezvous order),
        then every other up node (a copy may be where the record does not say)."""
        up = self.membership.up()
        recorded = set(self.recorded(chunk_id))
        first = [m for m in up if m.num in recorded]
        return rank(first, chunk_id) + rank([m for m in up if m.num not in recorded], chunk_id)

    async def get(self, chunk_id: bytes) -> bytes:
        check_chunk_id(chunk_id)
        return await self._get_from(chunk_id, self.read_order(chunk_id))

    async def _get_from(
        self, chunk_id: bytes, members: list[Member], corrupt: int = 0, failed: int = 0
    ) -> bytes:
        """The chunk from the first of ``members`` that has a good copy; ``corrupt`` and
        ``failed`` count the damaged copies and node failures met before these members."""
        for member in members:
            try:
                return await member.client.get(chunk_id)
            except ChunkNotFound:
                continue
            except ChunkCorrupt:
                corrupt += 1
                self.suspects.add((chunk_id, member.num))
                log.warning("damaged copy; next node", node=member.id, chunk=chunk_id.hex())
            except NODE_FAILURES as exc:
                failed += 1
                log.warning("chunk read failed; next node", node=member.id, error=repr(exc))
        if failed:
            raise NodesUnavailable(f"chunk {chunk_id.hex()}: no up node could serve it")
        if corrupt:
            raise ChunkCorrupt(f"chunk {chunk_id.hex()}: every copy found is damaged")
        raise ChunkNotFound(chunk_id.hex())

    async def get_many(self, chunk_ids: Sequence[bytes]) -> list[bytes]:
        """One /batch/get per node, for the chunks that node comes first in the read order
        of (all batches at once); a chunk its batch did not give (missing, damaged, node
        failure) is read as by :meth:`get` from the nodes after that one."""
        for chunk_id in chunk_ids:
            check_chunk_id(chunk_id)
        orders = [self.read_order(h) for h in chunk_ids]
        groups: dict[int, tuple[Member, list[int]]] = {}
        for i, order in enumerate(orders):
            if order:
                groups.setdefault(order[0].num, (order[0], []))[1].append(i)
        bodies: list[bytes | None] = [None] * len(chunk_ids)
        corrupt = [0] * len(chunk_ids)
        failed = [0] * len(chunk_ids)

        async def batch(member: Member, idx: list[int]) -> None:
            try:
                got = await member.client.fetch_many([chunk_ids[i] for i in idx])
            except NODE_FAILURES as exc:
                log.warning("batch read failed; next node", node=member.id, error=repr(exc))
                for i in idx:
                    failed[i] = 1
                return
            for i, item in zip(idx, got, strict=True):
                if isinstance(item, ChunkCorrupt):
                    corrupt[i] = 1
                    self.suspects.add((chunk_ids[i], member.num))
                    log.warning("damaged copy; next node", node=member.id, chunk=chunk_ids[i].hex())
                elif not isinstance(item, ChunkNotFound):
                    bodies[i] = item

        await asyncio.gather(*(batch(m, idx) for m, idx in groups.values()))

        async def one(i: int) -> bytes:
            body = bodies[i]
            if body is not None:
                return body
            return await self._get_from(chunk_ids[i], orders[i][1:], corrupt[i], failed[i])

        return await gather_in_order(one(i) for i in range(len(chunk_ids)))

    async def has(self, chunk_id: bytes) -> bool:
        check_chunk_id(chunk_id)
        answers = await self._each(lambda m: m.client.has(chunk_id))
        return any(answers)

    async def delete(self, chunk_id: bytes) -> bool:
        """Delete on the chunk's recorded replicas that are up (on every up node when none is
        recorded). A node down now keeps its copy: reconciling it when it returns removes
        that. Raises after trying all when an up node failed."""
        check_chunk_id(chunk_id)
        recorded = set(self.recorded(chunk_id))
        members = [m for m in self.membership.up() if not recorded or m.num in recorded]
        answers = await self._each(lambda m: m.client.delete(chunk_id), members)
        return any(answers)

    async def list_ids(self, after: bytes | None = None, limit: int = 1000) -> list[bytes]:
        """The union of the up nodes' ids: each node's first ``limit`` ids after ``after``
        contain the union's first ``limit``. An up node that fails makes this raise (a partial
        listing would make fsck report chunks missing)."""
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        pages = await self._each(lambda m: m.client.list_ids(after, limit))
        merged: set[bytes] = set().union(*pages)
        return sorted(merged)[:limit]

    async def usage(self) -> StoreUsage:
        """Raw usage summed over the up nodes (every replica counts), from their heartbeats."""
        up = self.membership.up()
        return StoreUsage(count=sum(m.count for m in up), bytes=sum(m.used for m in up))

    async def close(self) -> None:
        await self.membership.close()

    async def _each(
        self, fn: Callable[[Member], Awaitable[T]], members: list[Member] | None = None
    ) -> list[T]:
        """``fn`` on every up node (or ``members``) concurrently; the first failure is raised
        after all end."""
        if members is None:
            members = self.membership.up()
        outcomes = await asyncio.gather(*(fn(m) for m in members), return_exceptions=True)
        out: list[T] = []
        for member, outcome in zip(members, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                log.warning("node request failed", node=member.id, error=repr(outcome))
                raise outcome
            out.append(outcome)
        return out
