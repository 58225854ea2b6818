"""Chunk stores: content-addressed storage of chunks named by their BLAKE3-256 digest.

A chunk id is the 32-byte BLAKE3 digest of the chunk's body. Every store verifies that on
:meth:`ChunkStore.put` and refuses a body that does not hash to its name (:class:`ChunkCorrupt`).

Two implementations:

* :class:`DirectoryChunkStore` keeps one file per chunk under ``root/chunks/ab/cd/<64 hex>``
  (``ab`` and ``cd`` are the first two bytes of the id in hex) and makes every write durable
  before :meth:`~DirectoryChunkStore.put` returns.
* :class:`MemoryChunkStore` keeps chunks in a dict, for tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import secrets
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar, TypeVarTuple

import blake3

__all__ = [
    "CHUNK_ID_SIZE",
    "ChunkCorrupt",
    "ChunkNotFound",
    "ChunkStore",
    "DirectoryChunkStore",
    "MemoryChunkStore",
    "Placement",
    "StoreUsage",
    "check_chunk_id",
    "chunk_id_of",
    "fsync_dir",
]

CHUNK_ID_SIZE = 32

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")

# Immutable lookup tables for the on-disk layout.
_FANOUT_NAMES = frozenset(f"{i:02x}" for i in range(256))
_CHUNK_NAME = re.compile(r"[0-9a-f]{64}")
_TMP_SUFFIX = ".tmp"
# A directory in chunks/ present only while no process uses the store and after one that
# shut down cleanly (so no leaf directory holds a temporary file of an interrupted write).
_CLEAN_MARK = ".clean"


class ChunkNotFound(Exception):
    """The store holds no chunk with this id."""


class ChunkCorrupt(Exception):
    """A chunk body does not hash to its name (on put: refused; on get: damaged on disk)."""


# Where a put left a chunk: the numbers of the storage nodes now holding it (recorded in the
# chunk's index entry), or () for a store that is not replicated across nodes.
Placement = tuple[int, ...]


@dataclass(frozen=True, slots=True)
class StoreUsage:
    count: int
    bytes: int


class ChunkStore(Protocol):
    """What the rest of the system needs from a chunk store.

    ``data`` passed to :meth:`put`/:meth:`put_many` must not be modified until the call returns.
    """

    async def put(self, chunk_id: bytes, data: bytes | memoryview) -> Placement:
        """Store ``data`` under ``chunk_id``; durable when this returns. Returns where it is
        (see :data:`Placement`).

        Idempotent: a chunk already held is a cheap success. Raises :class:`ChunkCorrupt` (and
        stores nothing) when ``blake3(data) != chunk_id``.
        """
        ...

    async def put_many(self, items: Sequence[tuple[bytes, bytes | memoryview]]) -> None:
        """Put all items concurrently; all are durable when this returns.

        Every item is attempted; if any failed, the first failure (in ``items`` order) is
        raised after all the others have finished.
        """
        ...

    async def get(self, chunk_id: bytes) -> bytes:
        """The chunk's body, verified against its BLAKE3 name (the end-to-end check readers
        rely on). Raises :class:`ChunkNotFound`, or :class:`ChunkCorrupt` on a mismatch."""
        ...

    async def get_many(self, chunk_ids: Sequence[bytes]) -> list[bytes]:
        """The bodies of ``chunk_ids``, in order, each verified as by :meth:`get`. Raises the
        first failure in ``chunk_ids`` order. (Sequential reads ask for a few chunks at a
        time: one hand-off to a reader thread per batch, not per chunk.)"""
        ...

    async def has(self, chunk_id: bytes) -> bool: ...

    async def delete(self, chunk_id: bytes) -> bool:
        """Remove the chunk; True if it existed. Idempotent."""
        ...

    async def list_ids(self, after: bytes | None = None, limit: int = 1000) -> list[bytes]:
        """Up to ``limit`` ids, sorted ascending, all ``> after`` (bytewise)."""
        ...

    async def usage(self) -> StoreUsage: ...

    async def close(self) -> None: ...


def chunk_id_of(data: bytes | memoryview) -> bytes:
    """The id of a chunk body: its BLAKE3-256 digest. CPU-bound: call it off the event loop."""
    return bytes(blake3.blake3(data).digest())


def raise_first_failure(outcomes: Iterable[_T | BaseException]) -> list[_T]:
    """The outcomes, all results; or the first failure among them raised (the contract of
    :meth:`ChunkStore.get_many`)."""
    results: list[_T] = []
    for item in outcomes:
        if isinstance(item, BaseException):
            raise item
        results.append(item)
    return results


async def gather_in_order(calls: Iterable[Awaitable[_T]]) -> list[_T]:
    """Await ``calls`` concurrently; their results in order, or (once all have finished) the
    first failure in order."""
    return raise_first_failure(await asyncio.gather(*calls, return_exceptions=True))


def check_chunk_id(chunk_id: bytes) -> None:
    """Raise ValueError unless ``chunk_id`` is 32 bytes (every store checks its ids)."""
    if not isinstance(chunk_id, bytes) or len(chunk_id) != CHUNK_ID_SIZE:
        raise ValueError(f"a chunk id is exactly {CHUNK_ID_SIZE} bytes, got {chunk_id!r}")


def _check_list_args(after: bytes | None, limit: int) -> None:
    if after is not None and not isinstance(after, bytes):
        raise TypeError(f"after must be bytes or None, got {type(after).__name__}")
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")


def _verify(chunk_id: bytes, data: bytes | memoryview) -> None:
    if chunk_id_of(data) != chunk_id:
        raise ChunkCorrupt(f"data does not hash to chunk id {chunk_id.hex()}")


async def _gather_all(aws: Sequence[asyncio.Future[Any]]) -> None:
    """Wait for every awaitable; then raise the first failure, if any."""
    results = await asyncio.gather(*aws, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


# --------------------------------------------------------------------------------------------
# Directory store
# --------------------------------------------------------------------------------------------


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _mkdir_if_missing(path: str) -> None:
    with contextlib.suppress(FileExistsError):
        os.mkdir(path)


def _sorted_entries(path: str, wanted: Callable[[str], bool]) -> list[str]:
    """Sorted names in ``path`` accepted by ``wanted``; a missing directory is empty."""
    try:
        names = os.listdir(path)
    except FileNotFoundError:
        return []
    return sorted(name for name in names if wanted(name))


def _remove_files(directory: str, wanted: Callable[[str], bool]) -> None:
    """Unlink the entries of ``directory`` accepted by ``wanted``."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with os.scandir(fd) as entries:
            garbage = [e.name for e in entries if wanted(e.name)]
        for name in garbage:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=fd)
    finally:
        os.close(fd)


def _is_fanout_name(name: str) -> bool:
    return name in _FANOUT_NAMES


def _is_chunk_name(name: str) -> bool:
    return _CHUNK_NAME.fullmatch(name) is not None


class DirectoryChunkStore:
    """Chunks as files under ``root/chunks/ab/cd/<64 hex>``, each write durable on return.

    A write goes to ``.<hex>.<process>.<random>.tmp`` in the chunk's leaf directory, is
    fsynced, renamed into place with :func:`os.replace`, and the leaf directory is fsynced. A
    directory created on the way (``ab`` or ``ab/cd``) is fsynced into its parent after that
    and before the put returns (fsyncing it before the write would cost one more sequential
    journal commit per new directory; only that every fsync is done before the put is
    acknowledged matters). All file I/O and hashing runs in two thread pools: ``threads``
    workers for writes and deletes (parallel fsyncs are much faster than serial ones: the
    filesystem commits them together), and ``read_threads`` (default: one per CPU, at least
    2) for reads, listing and verification, so reads do not queue behind fsyncs. Reads from
    the page cache are CPU work: more reader threads than cores only fight over the GIL (8
    concurrent GETs: 1229 MB/s with 16 readers, 1595 with 2, on 2 cores). (Temporary files in
    one shared directory, renamed across directories, cost 20% of PUT throughput and more
    kernel CPU: docs/performance.md.)

    Startup (run in the pool on the first call, or by :meth:`open`) creates the directories;
    its cost does not depend on the number of chunks. A clean :meth:`close` leaves a mark
    (the directory ``chunks/.clean``) that startup removes: without it (a crash, or a store
    from an older version) leftover ``*.tmp`` files of interrupted writes may sit in leaf
    directories, and a background sweep removes them (it scans every leaf, but startup does
    not wait for it). Leftovers are never listed as chunks. One process per ``root``.

    Which directory entries are known durable is tracked per process: the ``chunks``
    directory is fsynced at startup (so every ``ab`` entry then present is durable), an
    ``ab`` directory is fsynced once before a put into one of its pre-existing leaves returns
    (a previous process may have died between creating a leaf and fsyncing its parent), and
    a leaf once before a put that found its chunk already there returns (the same, for a
    renamed-in chunk).

    Concurrent puts of the same id in this process are coalesced into one write. Deleting an id
    while it is being put is a race that the caller (garbage collection) must prevent.
    """

    def __init__(self, root: Path, *, threads: int = 16, read_threads: int | None = None) -> None:
        if read_threads is None:
            read_threads = max(2, os.cpu_count() or 2)
        if threads < 1 or read_threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads} and {read_threads}")
        self._root = Path(root)
        self._chunks = str(self._root / "chunks")
        self._clean_mark = os.path.join(self._chunks, _CLEAN_MARK)
        # In the name of every temporary file of this process: the leftover sweep after a crash
        # removes the temporary files of other (earlier) processes only.
        self._incarnation = secrets.token_hex(4)
        self._sweep: Future[bool] | None = None
        self._write_pool = ThreadPoolExecutor(threads, thread_name_prefix="chunkstore-write")
        self._read_pool = ThreadPoolExecutor(read_threads, thread_name_prefix="chunkstore-read")
        self._startup: asyncio.Future[None] | None = None
        self._closed = False
        # Puts in flight, by id: a second put of the same id waits for the first.
        self._inflight: dict[bytes, asyncio.Future[None]] = {}
        # Directory entries known durable: "ab" (its entry in chunks/) and "abcd" (its entry
        # in ab/). Only ever added to after the fsync that made them so has returned.
        self._linked: set[str] = set()
        # "ab" directories fsynced by this process: every leaf a previous process created in
        # them is durably linked.
        self._ab_synced: set[str] = set()
        # Directories ("ab", "abcd") created by this process; guarded by _dirs_lock so that a
        # put finding a directory just created by another put does not take it for an old one.
        self._created: set[str] = set()
        self._dirs_lock = threading.Lock()
        # Leaf directories ("abcd") fsynced by this process, so that every entry a previous
        # process left there (perhaps renamed in but never fsynced) is durable.
        self._flushed: set[str] = set()

    @classmethod
    async def open(cls, root: Path, *, threads: int = 16) -> Self:
        """Construct the store and run its startup now, so that errors surface here."""
        store = cls(root, threads=threads)
        started = False
        try:
            await store._ready()
            started = True
        finally:
            if not started:
                await store.close()
        return store

    @property
    def root(self) -> Path:
        return self._root

    def path_of(self, chunk_id: bytes) -> Path:
        """Where the chunk's file is (whether or not it exists)."""
        check_chunk_id(chunk_id)
        return Path(self._path(chunk_id.hex()))

    # -- public API ---------------------------------------------------------------------------

    async def put(self, chunk_id: bytes, data: bytes | memoryview) -> Placement:
        check_chunk_id(chunk_id)
        await self._ready()
        verified = False
        while True:
            pending = self._inflight.get(chunk_id)
            if pending is None:
                break
            if pending.done():
                # Finished, its done callback not run yet (it was queued behind this task).
                # Awaiting a done future does not yield, so looping on it would spin for ever
                # and the callback would never run: retire it here.
                self._put_done(chunk_id, pending)
                if not pending.cancelled() and isinstance(pending.exception(), ChunkCorrupt):
                    continue  # the other put's data was bad: ours may still be written
                pending.result()  # its failure is ours, as when awaiting it below
                return ()
            if not verified:
                await self._run(self._read_pool, _verify, chunk_id, data)
                verified = True
                continue  # the other put may have finished meanwhile
            try:
                await asyncio.shield(pending)
            except ChunkCorrupt:
                continue  # the other put's data was bad; ours is good, so write it ourselves
            return ()
        self._check_open()
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(self._write_pool, self._put_sync, chunk_id, data, verified)
        self._inflight[chunk_id] = job
        job.add_done_callback(functools.partial(self._put_done, chunk_id))
        await asyncio.shield(job)
        return ()

    async def put_many(self, items: Sequence[tuple[bytes, bytes | memoryview]]) -> None:
        for chunk_id, _ in items:
            check_chunk_id(chunk_id)
        await _gather_all([asyncio.ensure_future(self.put(cid, data)) for cid, data in items])

    async def get(self, chunk_id: bytes) -> bytes:
        check_chunk_id(chunk_id)
        await self._ready()
        return await self._run(self._read_pool, self._get_sync, chunk_id)

    async def get_many(self, chunk_ids: Sequence[bytes]) -> list[bytes]:
        for chunk_id in chunk_ids:
            check_chunk_id(chunk_id)
        await self._ready()
        return await self._run(self._read_pool, self._get_many_sync, chunk_ids)

    async def run_read(self, fn: Callable[[*_Ts], _T], *args: *_Ts) -> _T:
        """Run blocking read-side work ``fn(*args)`` (e.g. over :meth:`path_of` files) in the
        store's reader threads."""
        await self._ready()
        return await self._run(self._read_pool, fn, *args)

    async def has(self, chunk_id: bytes) -> bool:
        check_chunk_id(chunk_id)
        await self._ready()
        return await self._run(self._read_pool, os.path.isfile, self._path(chunk_id.hex()))

    async def delete(self, chunk_id: bytes) -> bool:
        check_chunk_id(chunk_id)
        await self._ready()
        return await self._run(self._write_pool, self._delete_sync, chunk_id)

    async def list_ids(self, after: bytes | None = None, limit: int = 1000) -> list[bytes]:
        _check_list_args(after, limit)
        await self._ready()
        if limit == 0:
            return []
        after_hex = after.hex() if after is not None else ""
        return await self._run(self._read_pool, self._list_sync, after_hex, limit)

    async def usage(self) -> StoreUsage:
        await self._ready()
        return await self._run(self._read_pool, self._usage_sync)

    async def close(self) -> None:
        """Wait for writes in flight, then release the thread pools. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._shutdown_pools)

    # -- helpers on the event loop ------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the chunk store is closed")

    async def _ready(self) -> None:
        self._check_open()
        if self._startup is None:
            loop = asyncio.get_running_loop()
            self._startup = loop.run_in_executor(self._write_pool, self._startup_sync)
        await asyncio.shield(self._startup)

    async def _run(self, pool: ThreadPoolExecutor, fn: Callable[[*_Ts], _T], *args: *_Ts) -> _T:
        self._check_open()
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    def _put_done(self, chunk_id: bytes, job: asyncio.Future[None]) -> None:
        if self._inflight.get(chunk_id) is job:
            del self._inflight[chunk_id]
        if not job.cancelled():
            job.exception()  # mark retrieved: a cancelled caller may have left nobody awaiting

    def _shutdown_pools(self) -> None:
        self._write_pool.shutdown(wait=True)
        self._read_pool.shutdown(wait=True)
        startup = self._startup
        if startup is None or not startup.done() or startup.cancelled() or startup.exception():
            return
        sweep = self._sweep
        if sweep is None or (sweep.done() and sweep.exception() is None and sweep.result()):
            # every write is finished and no leaf holds a temporary file: the next startup
            # need not look for any
            _mkdir_if_missing(self._clean_mark)
            fsync_dir(self._chunks)

    # -- blocking work, in the pools ----------------------------------------------------------

    def _path(self, hex_id: str) -> str:
        return os.path.join(self._chunks, hex_id[0:2], hex_id[2:4], hex_id)

    def _startup_sync(self) -> None:
        self._root.mkdir(parents=True, exist_ok=True)
        _mkdir_if_missing(self._chunks)
        clean = os.path.isdir(self._clean_mark)
        if clean:
            os.rmdir(self._clean_mark)  # durable below: a crash from now on will be seen
        # Every "ab" entry now in chunks/ is durable once chunks/ is fsynced.
        for directory in (str(self._root.parent), str(self._root), self._chunks):
            fsync_dir(directory)
        self._linked.update(_sorted_entries(self._chunks, _is_fanout_name))
        if not clean and self._linked:  # (an empty store has nothing to sweep)
            # A crash (or a store from a version without the mark) may have left temporary
            # files in leaf directories: remove them in the background (that scans every leaf
            # directory, so its cost grows with the number of chunks; startup does not wait).
            self._sweep = self._read_pool.submit(self._sweep_sync)

    def _sweep_sync(self) -> bool:
        """Remove the temporary files earlier processes left in the leaf directories. False if
        interrupted by :meth:`close`."""
        mine = f".{self._incarnation}."

        def leftover(name: str) -> bool:
            return name.endswith(_TMP_SUFFIX) and mine not in name

        for ab in _sorted_entries(self._chunks, _is_fanout_name):
            ab_path = os.path.join(self._chunks, ab)
            for cd in _sorted_entries(ab_path, _is_fanout_name):
                if self._closed:
                    return False
                with contextlib.suppress(FileNotFoundError):
                    _remove_files(os.path.join(ab_path, cd), leftover)
        return True

    def _mkdir(self, path: str, key: str) -> None:
        """Create the directory if missing, noting that this process created it."""
        with self._dirs_lock:
            try:
                os.mkdir(path)
            except FileExistsError:
                return
            self._created.add(key)

    def _link_parents(self, ab: str, leaf_key: str) -> None:
        """Make the entries of the chunk's leaf directory and of its parent durable: the
        rename into the leaf has been fsynced; now its directories' own entries."""
        if leaf_key not in self._linked:
            with self._dirs_lock:
                covered = ab in self._ab_synced and leaf_key not in self._created
            if not covered:
                fsync_dir(os.path.join(self._chunks, ab))
                self._ab_synced.add(ab)
            self._linked.add(leaf_key)
        if ab not in self._linked:
            # created by this process (startup linked every older one)
            fsync_dir(self._chunks)
            self._linked.add(ab)

    def _put_sync(self, chunk_id: bytes, data: bytes | memoryview, verified: bool) -> None:
        if not verified:
            _verify(chunk_id, data)
        hex_id = chunk_id.hex()
        ab, leaf_key = hex_id[0:2], hex_id[0:4]
        ab_path = os.path.join(self._chunks, ab)
        leaf = os.path.join(ab_path, hex_id[2:4])
        final = os.path.join(leaf, hex_id)
        if os.path.isfile(final):
            if leaf_key not in self._flushed:
                fsync_dir(leaf)
                self._flushed.add(leaf_key)
            self._link_parents(ab, leaf_key)
            return
        if leaf_key not in self._linked:
            if ab not in self._linked:
                self._mkdir(ab_path, ab)
            self._mkdir(leaf, leaf_key)
        tmp = os.path.join(
            leaf, f".{hex_id}.{self._incarnation}.{secrets.token_hex(4)}{_TMP_SUFFIX}"
        )
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        renamed = False
        try:
            try:
                view = memoryview(data).cast("B")
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, final)
            renamed = True
            fsync_dir(leaf)
        except BaseException:
            if renamed:
                self._flushed.discard(leaf_key)  # an entry now there may not be durable
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
            raise
        self._flushed.add(leaf_key)
        self._link_parents(ab, leaf_key)

    def _get_sync(self, chunk_id: bytes) -> bytes:
        try:
            with open(self._path(chunk_id.hex()), "rb", buffering=0) as f:
                data = f.readall()
        except FileNotFoundError:
            raise ChunkNotFound(chunk_id.hex()) from None
        _verify(chunk_id, data)
        return data

    def _get_many_sync(self, chunk_ids: Sequence[bytes]) -> list[bytes]:
        return [self._get_sync(chunk_id) for chunk_id in chunk_ids]

    def _delete_sync(self, chunk_id: bytes) -> bool:
        path = self._path(chunk_id.hex())
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        fsync_dir(os.path.dirname(path))
        return True

    def _list_sync(self, after_hex: str, limit: int) -> list[bytes]:
        after_ab, after_cd = after_hex[0:2], after_hex[2:4]
        out: list[bytes] = []
        for ab in _sorted_entries(self._chunks, _is_fanout_name):
            if ab < after_ab:
                continue
            ab_path = os.path.join(self._chunks, ab)
            for cd in _sorted_entries(ab_path, _is_fanout_name):
                if ab == after_ab and cd < after_cd:
                    continue
                prefix = ab + cd
                for name in _sorted_entries(os.path.join(ab_path, cd), _is_chunk_name):
                    if name > after_hex and name.startswith(prefix):
                        out.append(bytes.fromhex(name))
                        if len(out) >= limit:
                            return out
        return out

    def _usage_sync(self) -> StoreUsage:
        count = 0
        total = 0
        for ab in _sorted_entries(self._chunks, _is_fanout_name):
            ab_path = os.path.join(self._chunks, ab)
            for cd in _sorted_entries(ab_path, _is_fanout_name):
                prefix = ab + cd
                try:
                    entries = os.scandir(os.path.join(ab_path, cd))
                except FileNotFoundError:
                    continue
                with entries:
                    for entry in entries:
                        if _is_chunk_name(entry.name) and entry.name.startswith(prefix):
                            try:
                                size = entry.stat(follow_symlinks=False).st_size
                            except FileNotFoundError:
                                continue  # deleted while we scanned
                            count += 1
                            total += size
        return StoreUsage(count=count, bytes=total)


# --------------------------------------------------------------------------------------------
# Memory store
# --------------------------------------------------------------------------------------------


class MemoryChunkStore:
    """Chunks in a dict; same semantics as :class:`DirectoryChunkStore`, for tests."""

    def __init__(self) -> None:
        self._chunks: dict[bytes, bytes] = {}
        self._closed = False

    async def put(self, chunk_id: bytes, data: bytes | memoryview) -> Placement:
        check_chunk_id(chunk_id)
        self._check_open()
        body = bytes(data)
        await asyncio.to_thread(_verify, chunk_id, body)
        self._check_open()
        self._chunks.setdefault(chunk_id, body)
        return ()

    async def put_many(self, items: Sequence[tuple[bytes, bytes | memoryview]]) -> None:
        for chunk_id, _ in items:
            check_chunk_id(chunk_id)
        await _gather_all([asyncio.ensure_future(self.put(cid, data)) for cid, data in items])

    async def get(self, chunk_id: bytes) -> bytes:
        check_chunk_id(chunk_id)
        self._check_open()
        try:
            data = self._chunks[chunk_id]
        except KeyError:
            raise ChunkNotFound(chunk_id.hex()) from None
        _verify(chunk_id, data)  # tests may damage a chunk in place: same contract as disk
        return data

    async def get_many(self, chunk_ids: Sequence[bytes]) -> list[bytes]:
        return [await self.get(chunk_id) for chunk_id in chunk_ids]

    async def has(self, chunk_id: bytes) -> bool:
        check_chunk_id(chunk_id)
        self._check_open()
        return chunk_id in self._chunks

    async def delete(self, chunk_id: bytes) -> bool:
        check_chunk_id(chunk_id)
        self._check_open()
        return self._chunks.pop(chunk_id, None) is not None

    async def list_ids(self, after: bytes | None = None, limit: int = 1000) -> list[bytes]:
        _check_list_args(after, limit)
        self._check_open()
        ids = sorted(i for i in self._chunks if after is None or i > after)
        return ids[:limit]

    async def usage(self) -> StoreUsage:
        self._check_open()
        return StoreUsage(count=len(self._chunks), bytes=sum(map(len, self._chunks.values())))

    async def close(self) -> None:
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the chunk store is closed")
