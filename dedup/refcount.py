"""The reference-counting rules of DESIGN.md, and nothing else.

Every function here runs inside one index write transaction (``Txn``) on the writer thread.
A reference is one occurrence of a chunk in an object's (or a pin's) chunk list, so an object
that holds the same chunk three times holds three references to it.

Invariant (checked by fsck): for every chunk entry,
    refcount == occurrences in object records + occurrences in pins (+ multipart parts)
and a chunk file exists in the store for every entry in state STORED.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dedup.records import ChunkRecord, ChunkState

if TYPE_CHECKING:
    from dedup.index import Txn

_U32 = struct.Struct("<I")


@dataclass
class PinResult:
    to_send: list[bytes] = field(default_factory=list)  # not known durable: the writer sends
    blocked: list[bytes] = field(default_factory=list)  # being deleted by GC: wait, pin again


def pin(txn: Txn, token: bytes, chunks: list[tuple[bytes, int]]) -> PinResult:
    """Rule 1: reference before use. Pins every occurrence under the request's ``token``."""
    result = PinResult()
    sizes = dict(chunks)
    for h, count in Counter(h for h, _ in chunks).items():
        rec = txn.chunk(h)
        if rec is None:
            rec = ChunkRecord(refcount=count, size=sizes[h], state=ChunkState.PENDING)
            txn.stat_add("chunks", 1)
            txn.stat_add("chunk_bytes", sizes[h])
        elif rec.state is ChunkState.DELETING:
            result.blocked.append(h)
            continue
        else:
            if rec.refcount == 0:
                txn.gcq_remove(h)
            rec.refcount += count
            rec.zero_since_ms = 0
        if rec.state is ChunkState.PENDING:
            result.to_send.append(h)
        txn.put_chunk(h, rec)
        key = token + h
        raw = txn.get("pins", key)
        txn.put("pins", key, _U32.pack((_U32.unpack(raw)[0] if raw else 0) + count))
    return result


def mark_stored(txn: Txn, stored: Mapping[bytes, tuple[int, ...]]) -> None:
    """The writer has made these chunks durable in the store, on these nodes (recorded; a
    chunk another writer stored first keeps that writer's placement)."""
    for h, replicas in stored.items():
        rec = txn.chunk(h)
        if rec is not None and rec.state is ChunkState.PENDING:
            rec.state = ChunkState.STORED
            rec.replicas = replicas
            txn.put_chunk(h, rec)


def move_replicas(txn: Txn, h: bytes, add: Iterable[int], remove: Iterable[int]) -> bool:
    """A STORED chunk's copies changed (cluster repair, rebalance, drain): record it. False
    (and nothing changed) when the chunk is no longer STORED."""
    rec = txn.chunk(h)
    if rec is None or rec.state is not ChunkState.STORED:
        return False
    gone = set(remove)
    kept = [n for n in rec.replicas if n not in gone]
    rec.replicas = tuple(kept + [n for n in dict.fromkeys(add) if n not in kept and n not in gone])
    txn.put_chunk(h, rec)
    return True


def mark_orphans(txn: Txn, ids: Iterable[bytes], node: int) -> list[bytes]:
    """Copies on ``node`` of chunks the index does not know: give each an entry marked
    DELETING (queued for GC, placed on ``node``), so that a writer storing the same chunk
    meanwhile waits for the deletion (rule 3) and GC finishes it after a crash. Returns the
    ids marked; ids the index knows are left alone."""
    marked: list[bytes] = []
    for h in ids:
        if txn.get("chunks", h) is not None:
            continue
        txn.put_chunk(h, ChunkRecord(0, 0, ChunkState.DELETING, replicas=(node,)))
        txn.gcq_add(h)
        txn.stat_add("chunks", 1)
        marked.append(h)
    return marked


def pinned(txn: Txn, token: bytes) -> Counter[bytes]:
    """Occurrences pinned under ``token``."""
    return Counter({k[len(token) :]: _U32.unpack(v)[0] for k, v in txn.prefix("pins", token)})


def unpin(txn: Txn, token: bytes, chunks: Iterable[bytes]) -> None:
    """Rule 2 (commit): the object record now holds these references; drop the pin records.

    ``chunks`` must be exactly the occurrences pinned under ``token`` (checked)."""
    want = Counter(chunks)
    have = pinned(txn, token)
    if want != have:
        raise AssertionError("commit references differ from the request's pins")
    for h in have:
        txn.delete("pins", token + h)


def release(txn: Txn, token: bytes, now_ms: int) -> None:
    """Rule 2 (abort) and startup: give back every reference pinned under ``token``."""
    have = pinned(txn, token)
    for h, count in have.items():
        txn.delete("pins", token + h)
        drop(txn, [h] * count, now_ms)


def add(txn: Txn, chunks: Iterable[bytes]) -> None:
    """More references to chunks that are already referenced (copy of an existing object)."""
    for h, count in Counter(chunks).items():
        rec = txn.chunk(h)
        if rec is None or rec.refcount == 0 or rec.state is ChunkState.DELETING:
            raise AssertionError("add() needs a chunk that is referenced already")
        rec.refcount += count
        txn.put_chunk(h, rec)


def drop(txn: Txn, chunks: Iterable[bytes], now_ms: int) -> None:
    """Give back references; a chunk reaching zero records ``zero_since`` (rule 3)."""
    for h, count in Counter(chunks).items():
        rec = txn.chunk(h)
        if rec is None or rec.refcount < count:
            raise AssertionError(f"refcount underflow on chunk {h.hex()}")
        rec.refcount -= count
        if rec.refcount == 0:
            rec.zero_since_ms = now_ms
            txn.gcq_add(h)
        txn.put_chunk(h, rec)


def gc_mark(txn: Txn, older_than_ms: int, limit: int) -> list[bytes]:
    """Rule 3, step 1: mark chunks whose count has been zero since before ``older_than_ms``
    as DELETING (and return them, with those a crashed GC left marked)."""
    marked: list[bytes] = []
    for h, _ in txn.prefix("gcq", b""):
        if len(marked) >= limit:
            break
        rec = txn.chunk(h)
        if rec is None:
            continue
        if rec.state is ChunkState.DELETING or (
            rec.refcount == 0 and rec.zero_since_ms <= older_than_ms
        ):
            rec.state = ChunkState.DELETING
            txn.put_chunk(h, rec)
            marked.append(h)
    return marked


def gc_finish(txn: Txn, ids: Iterable[bytes]) -> int:
    """Rule 3, last step: remove the entries still marked DELETING. Returns bytes freed."""
    freed = 0
    for h in ids:
        rec = txn.chunk(h)
        if rec is not None and rec.state is ChunkState.DELETING:
            txn.delete("chunks", h)
            txn.gcq_remove(h)
            txn.stat_add("chunks", -1)
            txn.stat_add("chunk_bytes", -rec.size)
            freed += rec.size
    return freed
