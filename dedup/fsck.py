"""fsck: recompute every refcount from the object records (and pins, and multipart parts) and
compare with the index and with what the chunk store holds. The safety net and the test
oracle of the refcount rules."""

from __future__ import annotations

import asyncio
import struct
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from dedup.index import STATS, Index, Txn, split_value
from dedup.multipart import PartRecord
from dedup.records import ChunkRecord, ChunkState, ObjectRecord
from dedup.store import ChunkCorrupt, ChunkNotFound, ChunkStore


@dataclass
class FsckReport:
    problems: list[str] = field(default_factory=list)
    objects: int = 0
    chunks: int = 0
    unreferenced_chunks: int = 0  # refcount 0: GC candidates (not a problem)
    pinned_references: int = 0  # held by requests in flight (not a problem)
    store_chunks: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def expected_references(txn: Txn) -> tuple[Counter[bytes], dict[str, int], int]:
    """References by chunk from object records, pins and multipart uploads; recomputed stats;
    the number of pinned references."""
    refs: Counter[bytes] = Counter()
    stats = dict.fromkeys(STATS, 0)
    for k, raw in txn.prefix("objects", b""):
        rec = ObjectRecord.decode(split_value(k, raw)[1])
        stats["objects"] += 1
        stats["logical_bytes"] += rec.size
        stats["inline_bytes"] += len(rec.inline or b"")
        refs.update(h for h, _ in rec.chunks)
    for _, raw in txn.prefix("parts", b""):
        refs.update(h for h, _ in PartRecord.decode(raw).chunks)
    pinned = 0
    for k, v in txn.prefix("pins", b""):
        (n,) = struct.unpack("<I", v)
        refs[k[16:]] += n
        pinned += n
    return refs, stats, pinned


def check_index(txn: Txn, report: FsckReport) -> dict[bytes, ChunkRecord]:
    refs, stats, report.pinned_references = expected_references(txn)
    in_objects = {
        h
        for k, raw in txn.prefix("objects", b"")
        for h, _ in ObjectRecord.decode(split_value(k, raw)[1]).chunks
    }
    report.objects = stats["objects"]
    entries: dict[bytes, ChunkRecord] = {}
    gcq = {k for k, _ in txn.prefix("gcq", b"")}
    for h, raw in txn.prefix("chunks", b""):
        rec = ChunkRecord.decode(raw)
        entries[h] = rec
        stats["chunks"] += 1
        stats["chunk_bytes"] += rec.size
        want = refs.get(h, 0)
        if rec.refcount != want:
            report.problems.append(
                f"chunk {h.hex()}: refcount {rec.refcount}, references found {want}"
            )
        if rec.refcount == 0:
            report.unreferenced_chunks += 1
            if h not in gcq:
                report.problems.append(f"chunk {h.hex()}: refcount 0 but not queued for GC")
        elif h in gcq:
            report.problems.append(f"chunk {h.hex()}: referenced but queued for GC")
        if rec.state is ChunkState.PENDING and h in in_objects:
            report.problems.append(f"chunk {h.hex()}: used by an object, never marked stored")
        if rec.state is ChunkState.DELETING and rec.refcount:
            report.problems.append(f"chunk {h.hex()}: being deleted while referenced")
    for h in refs.keys() - entries.keys():
        report.problems.append(f"chunk {h.hex()}: referenced {refs[h]} times but has no entry")
    report.chunks = len(entries)
    for name in STATS:
        if txn.stat(name) != stats[name]:
            report.problems.append(
                f"stat {name}: index says {txn.stat(name)}, recount {stats[name]}"
            )
    return entries


async def fsck(index: Index, store: ChunkStore, *, verify_data: bool = False) -> FsckReport:
    """Run with the index at rest (``--data``) or live (``--endpoint``): a chunk that looks
    orphaned in a live store is re-checked against a fresh transaction before it is reported."""
    report = FsckReport()

    def scan() -> dict[bytes, ChunkRecord]:
        with index.read() as txn:
            return check_index(txn, report)

    # a whole-index scan: in a thread, so a live server keeps answering meanwhile
    entries = await asyncio.get_running_loop().run_in_executor(None, scan)
    held: set[bytes] = set()
    after: bytes | None = None
    while True:
        page = await store.list_ids(after, 1000)
        if not page:
            break
        held.update(page)
        after = page[-1]
    report.store_chunks = len(held)
    for h, rec in entries.items():
        if rec.state is ChunkState.STORED and h not in held:
            report.problems.append(f"chunk {h.hex()}: stored per the index, missing in the store")
    orphans = held - entries.keys()
    if orphans:
        with index.read() as txn:
            for h in orphans:
                if txn.get("chunks", h) is None:
                    report.problems.append(f"chunk {h.hex()}: in the store, unknown to the index")
    if verify_data:
        for h in sorted(held & entries.keys()):
            try:
                await store.get(h)  # verifies the content against its name
            except ChunkNotFound:
                continue  # reported above when the index expects it
            except ChunkCorrupt:
                report.problems.append(f"chunk {h.hex()}: content does not match its name")
    return report
