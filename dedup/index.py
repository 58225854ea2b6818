"""The LMDB index: buckets, objects, chunks and their refcounts, pins.

Writes go through ONE writer thread with group commit: every queued operation is drained into
one LMDB transaction (each operation in a nested child transaction, so one that fails leaves
the others intact) and one fsync. Reads use LMDB read transactions from any thread.

Byte layouts: docs/design.md. Refcount rules: dedup/refcount.py.
"""

from __future__ import annotations

import asyncio
import os
import queue
import struct
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import blake3
import lmdb

from dedup.chunker import ChunkerParams
from dedup.records import BucketRecord, ChunkRecord

T = TypeVar("T")

FORMAT_VERSION = b"1"
DB_NAMES = (
    "meta",
    "buckets",
    "objects",
    "chunks",
    "gcq",
    "pins",
    "uploads",
    "parts",
    "mpdone",
    "nodes",
)
STATS = ("objects", "logical_bytes", "inline_bytes", "chunks", "chunk_bytes")
_I64 = struct.Struct("<q")


class IndexError_(Exception):
    """Base for index errors that the S3 layer translates (see gateway/s3/storage_errors)."""


class NoSuchBucketError(IndexError_):
    pass


class BucketNotEmptyError(IndexError_):
    pass


class BucketExistsError(IndexError_):
    pass


class NoSuchKeyError(IndexError_):
    pass


class ChunkerMismatchError(Exception):
    """The store was created with other chunker parameters: refusing to open it."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# LMDB keys are at most 511 bytes; S3 keys up to 1024. A key longer than KEY_INLINE_MAX
# bytes is stored under its first KEY_INLINE_MAX bytes + 0xFF + 16 bytes of its BLAKE3
# hash, and its full key is kept at the front of the value (see with_full_key). UTF-8 never
# contains 0xFF, so every key outside such a "long-key group" (keys sharing their first
# KEY_INLINE_MAX bytes) still sorts exactly; a listing sorts each group in memory.
KEY_INLINE_MAX = 400
LONG_MARK = 0xFF
_U16 = struct.Struct("<H")


def object_key(bucket: str, key: str) -> bytes:
    kb = key.encode()
    if len(kb) <= KEY_INLINE_MAX:
        return bucket.encode() + b"\0" + kb
    digest = blake3.blake3(kb).digest()[:16]
    return bucket.encode() + b"\0" + kb[:KEY_INLINE_MAX] + bytes([LONG_MARK]) + digest


def is_long(raw_key: bytes) -> bool:
    return LONG_MARK in raw_key


def with_full_key(key: str, value: bytes) -> bytes:
    """The value stored for ``key``: prefixed with the full key when the key is long."""
    kb = key.encode()
    return value if len(kb) <= KEY_INLINE_MAX else _U16.pack(len(kb)) + kb + value


def split_value(raw_key: bytes, raw_value: bytes) -> tuple[bytes | None, bytes]:
    """(full key bytes for a long key else None, the record bytes)."""
    if not is_long(raw_key):
        return None, raw_value
    (n,) = _U16.unpack_from(raw_value)
    return bytes(raw_value[2 : 2 + n]), raw_value[2 + n :]


class Txn:
    """A write (or read) transaction with the named databases at hand."""

    def __init__(self, txn: lmdb.Transaction, dbs: dict[str, Any]) -> None:
        self.txn = txn
        self.dbs = dbs

    def get(self, db: str, key: bytes) -> bytes | None:
        v = self.txn.get(key, db=self.dbs[db])
        return None if v is None else bytes(v)

    def put(self, db: str, key: bytes, value: bytes) -> None:
        self.txn.put(key, value, db=self.dbs[db])

    def delete(self, db: str, key: bytes) -> bool:
        return bool(self.txn.delete(key, db=self.dbs[db]))

    def prefix(
        self, db: str, prefix: bytes, start: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """Items whose key starts with ``prefix``, in key order, from ``start`` (inclusive)."""
        cur = self.txn.cursor(db=self.dbs[db])
        if not cur.set_range(start if start is not None else prefix):
            return
        for k, v in cur:
            key = bytes(k)
            if not key.startswith(prefix):
                return
            yield key, bytes(v)

    def chunk(self, h: bytes) -> ChunkRecord | None:
        raw = self.get("chunks", h)
        return None if raw is None else ChunkRecord.decode(raw)

    def put_chunk(self, h: bytes, rec: ChunkRecord) -> None:
        self.put("chunks", h, rec.encode())

    def gcq_add(self, h: bytes) -> None:
        self.put("gcq", h, b"")

    def gcq_remove(self, h: bytes) -> None:
        self.delete("gcq", h)

    def stat(self, name: str) -> int:
        raw = self.get("meta", b"stat:" + name.encode())
        return _I64.unpack(raw)[0] if raw else 0

    def stat_add(self, name: str, delta: int) -> None:
        if delta:
            self.put("meta", b"stat:" + name.encode(), _I64.pack(self.stat(name) + delta))

    def bucket(self, name: str) -> BucketRecord | None:
        raw = self.get("buckets", name.encode())
        return None if raw is None else BucketRecord.decode(raw)


@dataclass
class _Op:
    fn: Callable[[Txn], Any]
    future: Future[Any]


class Index:
    """One LMDB environment per gateway. Create with :meth:`open`; close with :meth:`close`."""

    MAP_SIZE = 64 << 30  # sparse; grown when full

    def __init__(self, path: Path, chunker: ChunkerParams | None = None) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.env = lmdb.open(
            str(path),
            map_size=self.MAP_SIZE,
            max_dbs=len(DB_NAMES) + 1,
            max_readers=1024,
            sync=True,
            metasync=True,
            readahead=False,
        )
        self.dbs = {name: self.env.open_db(name.encode()) for name in DB_NAMES}
        self._queue: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._closing = False
        self._submit_lock = threading.Lock()  # nothing is queued behind the writer's stop
        try:
            self.store_id, self.chunker = self._init_meta(chunker)
        except BaseException:
            self.env.close()  # refused (other chunker, unknown format): leave nothing open
            raise
        self._thread = threading.Thread(target=self._writer, name="index-writer", daemon=True)
        self._thread.start()
        self.batches = 0  # group-commit batches written (observability and tests)

    def _init_meta(self, chunker: ChunkerParams | None) -> tuple[str, ChunkerParams]:
        with self.env.begin(write=True) as raw:
            txn = Txn(raw, self.dbs)
            version = txn.get("meta", b"format")
            if version is None:
                params = chunker or ChunkerParams()
                txn.put("meta", b"format", FORMAT_VERSION)
                txn.put("meta", b"chunker", params.encode())
                txn.put("meta", b"store_id", os.urandom(16).hex().encode())
            elif version != FORMAT_VERSION:
                raise ChunkerMismatchError(f"unknown index format {version!r}")
            stored = ChunkerParams.decode(txn.get("meta", b"chunker") or b"")
            if chunker is not None and chunker != stored:
                raise ChunkerMismatchError(
                    f"this store was created with chunker {stored}; refusing {chunker}"
                    " (changing it would silently stop deduplicating against stored data)"
                )
            return (txn.get("meta", b"store_id") or b"").decode(), stored

    # -- writes ---------------------------------------------------------------------------

    def submit(self, fn: Callable[[Txn], T]) -> Future[T]:
        fut: Future[T] = Future()
        with self._submit_lock:
            if self._closing:  # the writer is gone: the future would never be resolved
                raise RuntimeError("the index is closed")
            self._queue.put(_Op(fn, fut))
        return fut

    async def write(self, fn: Callable[[Txn], T]) -> T:
        """Run ``fn`` in a write transaction on the writer thread; durable when it returns."""
        return await asyncio.wrap_future(self.submit(fn))

    def write_sync(self, fn: Callable[[Txn], T]) -> T:
        """Same as :meth:`write`, for threads that are not the event loop (admin tools)."""
        return self.submit(fn).result()

    def _writer(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < 4096:
                try:
                    op = self._queue.get_nowait()
                except queue.Empty:
                    break
                if op is None:
                    stop = True
                    break
                batch.append(op)
            self._run_batch(batch)
            if stop:
                return

    def _run_batch(self, batch: list[_Op]) -> None:
        while True:
            results: list[tuple[bool, Any]] = []
            try:
                with self.env.begin(write=True) as parent:
                    for op in batch:
                        child = self.env.begin(write=True, parent=parent)
                        try:
                            value = op.fn(Txn(child, self.dbs))
                        except lmdb.MapFullError:
                            child.abort()
                            raise
                        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting caller
                            child.abort()
                            results.append((False, exc))
                        else:
                            child.commit()
                            results.append((True, value))
            except lmdb.MapFullError:
                self.env.set_mapsize(self.env.info()["map_size"] * 2)
                continue
            break
        self.batches += 1
        for op, (ok, value) in zip(batch, results, strict=True):
            if op.future.set_running_or_notify_cancel():
                if ok:
                    op.future.set_result(value)
                else:
                    op.future.set_exception(value)

    # -- reads ----------------------------------------------------------------------------

    def read(self) -> _ReadTxn:
        return _ReadTxn(self)

    def stats(self) -> dict[str, int]:
        with self.read() as txn:
            return {name: txn.stat(name) for name in STATS}

    def close(self) -> None:
        with self._submit_lock:
            stop, self._closing = not self._closing, True
            if stop:
                self._queue.put(None)  # after every write already queued
        self._thread.join()
        self.env.close()


class _ReadTxn:
    def __init__(self, index: Index) -> None:
        self._index = index
        self._raw: lmdb.Transaction | None = None

    def __enter__(self) -> Txn:
        self._raw = self._index.env.begin(write=False, buffers=False)
        return Txn(self._raw, self._index.dbs)

    def __exit__(self, *exc: object) -> None:
        assert self._raw is not None
        self._raw.abort()
