"""The storage node: an aiohttp app around a :class:`~dedup.store.DirectoryChunkStore`.

Routes (every one needs the cluster secret; see ``docs/design.md``, "Storage node protocol"):

* ``PUT/GET/HEAD/DELETE /chunks/{64 hex}``: one chunk;
* ``POST /batch/put``, ``/batch/get``, ``/batch/delete``: many chunks in one request;
* ``GET /chunks?after=HEX&limit=N``: sorted, paginated listing of the ids held;
* ``POST /scrub?after=HEX&limit=N&rate=R``: re-hash a page of chunks, quarantine damaged ones;
* ``GET /status``: id, capacity, usage, chunk count, requests in flight, scrub counters.

The node keeps in ``DIR``: ``node-id`` (generated once), ``summary.json`` (see
:mod:`storage_node.summary`), ``lock`` (one process per directory), ``store/`` (chunks) and
``quarantine/`` (damaged chunk files moved aside by a scrub).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hmac
import json
import os
import re
import shutil
import time
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import structlog
from aiohttp import web

from dedup.store import (
    ChunkCorrupt,
    ChunkNotFound,
    DirectoryChunkStore,
    chunk_id_of,
    fsync_dir,
)
from storage_node import summary as summary_mod
from storage_node.protocol import (
    CORRUPT,
    FRAME_HEADER,
    HEARTBEAT_PATH,
    MAX_BATCH_BYTES,
    MAX_BATCH_IDS,
    MAX_CHUNK_SIZE,
    MAX_LIST_LIMIT,
    MAX_SCRUB_LIMIT,
    MISSING,
    SECRET_HEADER,
    frame_header,
    parse_hex_id,
)

log = structlog.get_logger("storage_node")

NODE_ID_FILE = "node-id"
QUARANTINE_DIR = "quarantine"
_NODE_ID = re.compile(r"[0-9a-f]{32}")
_AFTER = re.compile(r"(?:[0-9a-f]{2}){0,32}")
_DECIMAL = re.compile(r"[0-9]{1,18}")
# Bytes of /batch/put frames being written at once; /batch/get reads chunks in groups (one
# reader-thread job each), a few groups ahead of the response.
_PUT_WINDOW_BYTES = 64 * 1024 * 1024
_GET_GROUP = 8
_GET_GROUPS_AHEAD = 2


@dataclass(frozen=True, slots=True)
class NodeConfig:
    data: Path
    secret: str
    host: str = "127.0.0.1"
    port: int = 9100
    gateway: str | None = None  # None: no registration (tests)
    advertise: str | None = None  # default http://HOST:PORT
    capacity: int | None = None  # default: size of the file system holding DATA
    heartbeat: float = 2.0
    summary_interval: float = 1.0
    threads: int = 16
    shutdown_timeout: float = 10.0

    @property
    def url(self) -> str:
        if self.advertise:
            return self.advertise.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ScrubReport:
    """What one scrub request did: chunks re-hashed, bytes read, ids quarantined, and the
    last id examined when more may follow (None: the end of the listing was reached)."""

    checked: int
    read: int
    corrupt: list[bytes]
    next: bytes | None


class NodeDirBusy(Exception):
    """Another process holds this node directory."""


class _KeyedLocks:
    """One asyncio lock per key, forgotten when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[bytes, tuple[asyncio.Lock, list[int]]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: bytes) -> AsyncIterator[None]:
        entry = self._locks.get(key)
        if entry is None:
            entry = self._locks[key] = (asyncio.Lock(), [0])
        lock, users = entry
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._locks[key]


def _lock_dir(directory: Path) -> int:
    fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise NodeDirBusy(f"{directory} is in use by another node process") from None
    return fd


def load_or_create_node_id(directory: Path) -> str:
    """The node's id, generated on first start and kept in ``DIR/node-id``."""
    path = directory / NODE_ID_FILE
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        pass
    else:
        if _NODE_ID.fullmatch(text) is None:
            raise ValueError(f"{path}: not a node id: {text[:80]!r}")
        return text
    node_id = uuid.uuid4().hex
    tmp = directory / f".{NODE_ID_FILE}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, (node_id + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(str(directory))
    return node_id


def _file_size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


def _scrub_file(path: str, chunk_id: bytes, quarantine: str) -> tuple[int, bool] | None:
    """Re-hash one chunk file (blocking: call it in a thread); a damaged one (wrong hash, or
    unreadable) is moved to ``quarantine/<hex>``. ``(size, damaged)``, or None if the file is
    gone."""
    try:
        with open(path, "rb", buffering=0) as f:
            size = os.fstat(f.fileno()).st_size
            try:
                data = f.readall()
            except OSError as exc:
                log.warning("chunk file unreadable", chunk=chunk_id.hex(), error=str(exc))
                damaged = True
            else:
                size = len(data)
                damaged = chunk_id_of(data) != chunk_id
    except FileNotFoundError:
        return None
    if not damaged:
        return size, False
    try:
        os.mkdir(quarantine, 0o755)
    except FileExistsError:
        pass
    else:
        fsync_dir(os.path.dirname(quarantine))
    try:
        os.rename(path, os.path.join(quarantine, chunk_id.hex()))
    except FileNotFoundError:
        return None
    fsync_dir(os.path.dirname(path))
    fsync_dir(quarantine)
    return size, True


class Node:
    """A node's state: its store, id, usage summary and request counters."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.node_id = ""
        self.capacity = 0
        self.store: DirectoryChunkStore | None = None
        self.summary: summary_mod.Summary | None = None
        self.summary_source = ""  # "persisted" or "scan"
        self.in_flight = 0
        self.requests: Counter[str] = Counter()
        self._locks = _KeyedLocks()
        self._lock_fd: int | None = None
        self._reconcile: asyncio.Task[None] | None = None
        # Since start: chunks re-hashed by scrubs, bytes read, chunks found damaged.
        self.scrubbed: Counter[str] = Counter(checked=0, bytes=0, corrupt=0)

    # -- lifecycle ----------------------------------------------------------------------------

    async def open(self) -> None:
        data = self.config.data
        await asyncio.to_thread(data.mkdir, parents=True, exist_ok=True)
        self._lock_fd = _lock_dir(data)
        try:
            self.node_id = await asyncio.to_thread(load_or_create_node_id, data)
            self.capacity = self.config.capacity or shutil.disk_usage(data).total
            self.store = await DirectoryChunkStore.open(data / "store", threads=self.config.threads)
            persisted = await asyncio.to_thread(summary_mod.read, data)
            if persisted is None:
                # No summary (first start, or it was lost): one scan rebuilds it.
                started = time.monotonic()
                usage = await self.store.usage()
                self.summary = summary_mod.Summary(
                    data, usage.count, usage.bytes, interval=self.config.summary_interval
                )
                self.summary_source = "scan"
                log.info(
                    "usage summary rebuilt by a scan",
                    count=usage.count,
                    bytes=usage.bytes,
                    seconds=round(time.monotonic() - started, 3),
                )
            else:
                self.summary = summary_mod.Summary(
                    data, persisted.count, persisted.bytes, interval=self.config.summary_interval
                )
                self.summary_source = "persisted"
                if not persisted.clean:
                    self.summary.trusted = False
                    self._reconcile = asyncio.create_task(self._reconcile_summary())
            await self.summary.flush(clean=False)  # a crash from now on is detected
            self.summary.start()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._reconcile is not None:
            self._reconcile.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconcile
            self._reconcile = None
        if self.store is not None:
            await self.store.close()  # waits for the writes in flight
        if self.summary is not None:
            await self.summary.stop()
            self.summary = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    async def _reconcile_summary(self) -> None:
        """After an unclean shutdown: scan in the background and correct the counters.

        Changes made during the scan are carried over as deltas, so the result is exact
        unless a chunk put or deleted during the scan was also seen (or missed) by it."""
        assert self.store is not None and self.summary is not None
        log.warning("the last shutdown was not clean; reconciling the usage summary")
        base_count, base_bytes = self.summary.count, self.summary.bytes
        usage = await self.store.usage()
        self.summary.replace(
            usage.count + self.summary.count - base_count,
            usage.bytes + self.summary.bytes - base_bytes,
        )
        self.summary.trusted = True
        log.info("usage summary reconciled", count=self.summary.count, bytes=self.summary.bytes)

    # -- chunk operations that keep the summary exact -----------------------------------------

    def _parts(self) -> tuple[DirectoryChunkStore, summary_mod.Summary]:
        if self.store is None or self.summary is None:
            raise RuntimeError("the node is not open")
        return self.store, self.summary

    async def put_chunk(self, chunk_id: bytes, data: bytes | memoryview) -> bool:
        """Store a chunk; True if it is new. Raises ChunkCorrupt (and stores nothing)."""
        store, summary = self._parts()
        async with self._locks.hold(chunk_id):
            existed = await store.has(chunk_id)
            await store.put(chunk_id, data)  # verifies the BLAKE3 name
            if not existed:
                summary.add(1, len(data))
            return not existed

    async def delete_chunk(self, chunk_id: bytes) -> bool:
        store, summary = self._parts()
        async with self._locks.hold(chunk_id):
            size = await asyncio.to_thread(_file_size, store.path_of(chunk_id))
            deleted = await store.delete(chunk_id)
            if deleted:
                summary.add(-1, -(size or 0))
            return deleted

    async def scrub(self, after: bytes | None, limit: int, rate: int) -> ScrubReport:
        """Re-hash up to ``limit`` chunks with ids above ``after``, in id order, reading at
        most ``rate`` bytes per second (0: as fast as possible); quarantine damaged ones."""
        store, _ = self._parts()
        ids = await store.list_ids(after=after, limit=limit)
        loop = asyncio.get_running_loop()
        started = loop.time()
        checked = read = 0
        corrupt: list[bytes] = []
        for chunk_id in ids:
            outcome = await self._scrub_one(chunk_id)
            if outcome is None:
                continue  # deleted since the listing
            size, damaged = outcome
            checked += 1
            read += size
            if damaged:
                corrupt.append(chunk_id)
            if rate:
                delay = started + read / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
        return ScrubReport(checked, read, corrupt, ids[-1] if len(ids) == limit else None)

    async def _scrub_one(self, chunk_id: bytes) -> tuple[int, bool] | None:
        store, summary = self._parts()
        path = str(store.path_of(chunk_id))
        quarantine = str(self.config.data / QUARANTINE_DIR)

        def account(job: asyncio.Future[tuple[int, bool] | None]) -> None:
            # A done callback: it runs even if the scrub is cancelled while the thread works.
            if job.cancelled() or job.exception() is not None:
                return
            outcome = job.result()
            if outcome is None:
                return
            size, damaged = outcome
            self.scrubbed.update(checked=1, bytes=size, corrupt=int(damaged))
            if damaged:
                summary.add(-1, -size)
                log.warning("damaged chunk quarantined", chunk=chunk_id.hex(), size=size)

        # The per-id lock: a put or delete of this id waits until the check is over.
        async with self._locks.hold(chunk_id):
            job = asyncio.ensure_future(asyncio.to_thread(_scrub_file, path, chunk_id, quarantine))
            job.add_done_callback(account)
            try:
                return await asyncio.shield(job)
            except asyncio.CancelledError:
                # The thread cannot be stopped: keep the id locked until it is done.
                await asyncio.wait([job])
                raise

    def status(self) -> dict[str, Any]:
        _, summary = self._parts()
        return {
            **self.heartbeat_body(),
            "in_flight": self.in_flight,
            "requests": dict(self.requests),
            "summary": self.summary_source,
            "summary_trusted": summary.trusted,
            "scrub": dict(self.scrubbed),
        }

    def heartbeat_body(self) -> dict[str, Any]:
        _, summary = self._parts()
        return {
            "id": self.node_id,
            "url": self.config.url,
            "capacity": self.capacity,
            "used": summary.bytes,
            "count": summary.count,
        }


NODE = web.AppKey("node", Node)


# -- middleware ---------------------------------------------------------------------------------


@web.middleware
async def _auth_and_count(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    node = request.app[NODE]
    given = request.headers.get(SECRET_HEADER)
    if given is None:
        raise web.HTTPUnauthorized(text="cluster secret required\n")
    expected = node.config.secret.encode()
    if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected):
        raise web.HTTPForbidden(text="wrong cluster secret\n")
    route = request.match_info.route.name or "unknown"
    node.requests[route] += 1
    node.in_flight += 1
    try:
        return await handler(request)
    finally:
        node.in_flight -= 1


# -- handlers -----------------------------------------------------------------------------------


def _chunk_id(request: web.Request) -> bytes:
    chunk_id = parse_hex_id(request.match_info["id"])
    if chunk_id is None:
        raise web.HTTPBadRequest(text="a chunk id is 64 lowercase hex digits\n")
    return chunk_id


def _store(request: web.Request) -> DirectoryChunkStore:
    store = request.app[NODE].store
    assert store is not None
    return store


async def put_chunk(request: web.Request) -> web.Response:
    chunk_id = _chunk_id(request)
    length = request.content_length
    if length is not None and length > MAX_CHUNK_SIZE:
        raise web.HTTPRequestEntityTooLarge(MAX_CHUNK_SIZE, length)
    data = await request.read()  # bounded by client_max_size
    if len(data) > MAX_CHUNK_SIZE:
        raise web.HTTPRequestEntityTooLarge(MAX_CHUNK_SIZE, len(data))
    try:
        new = await request.app[NODE].put_chunk(chunk_id, data)
    except ChunkCorrupt:
        raise web.HTTPUnprocessableEntity(text="body does not hash to the chunk id\n") from None
    return web.json_response({"stored": new}, status=201 if new else 200)


async def get_chunk(request: web.Request) -> web.Response:
    chunk_id = _chunk_id(request)
    try:
        data = await _store(request).get(chunk_id)
    except ChunkNotFound:
        raise web.HTTPNotFound() from None
    except ChunkCorrupt:
        raise web.HTTPConflict(text="the stored copy is damaged\n") from None
    return web.Response(body=data, content_type="application/octet-stream")


async def head_chunk(request: web.Request) -> web.Response:
    chunk_id = _chunk_id(request)
    size = await asyncio.to_thread(_file_size, _store(request).path_of(chunk_id))
    if size is None:
        raise web.HTTPNotFound()
    return web.Response(headers={"x-s3dedup-chunk-size": str(size)})


async def delete_chunk(request: web.Request) -> web.Response:
    chunk_id = _chunk_id(request)
    if not await request.app[NODE].delete_chunk(chunk_id):
        raise web.HTTPNotFound()
    return web.Response(status=204)


async def list_chunks(request: web.Request) -> web.Response:
    after_hex = request.query.get("after", "")
    if _AFTER.fullmatch(after_hex) is None:
        raise web.HTTPBadRequest(text="after is up to 64 lowercase hex digits, even length\n")
    try:
        limit = int(request.query.get("limit", "1000"))
    except ValueError:
        raise web.HTTPBadRequest(text="limit must be an integer\n") from None
    if not 0 <= limit <= MAX_LIST_LIMIT:
        raise web.HTTPBadRequest(text=f"limit must be within 0..{MAX_LIST_LIMIT}\n")
    after = bytes.fromhex(after_hex) if after_hex else None
    ids = await _store(request).list_ids(after=after, limit=limit)
    return web.json_response({"ids": [i.hex() for i in ids]})


def _int_param(request: web.Request, name: str, default: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    if _DECIMAL.fullmatch(text) is None:
        raise web.HTTPBadRequest(text=f"{name} must be a non-negative decimal integer\n")
    return int(text)


async def scrub(request: web.Request) -> web.Response:
    after_hex = request.query.get("after")
    after = None
    if after_hex is not None:
        after = parse_hex_id(after_hex)
        if after is None:
            raise web.HTTPBadRequest(text="after is a chunk id: 64 lowercase hex digits\n")
    limit = _int_param(request, "limit", 1000)
    if not 1 <= limit <= MAX_SCRUB_LIMIT:
        raise web.HTTPBadRequest(text=f"limit must be within 1..{MAX_SCRUB_LIMIT}\n")
    rate = _int_param(request, "rate", 0)
    report = await request.app[NODE].scrub(after, limit, rate)
    return web.json_response(
        {
            "checked": report.checked,
            "bytes": report.read,
            "corrupt": [i.hex() for i in report.corrupt],
            "next": report.next.hex() if report.next is not None else None,
        }
    )


async def status(request: web.Request) -> web.Response:
    return web.json_response(request.app[NODE].status())


async def _read_ids(request: web.Request) -> list[bytes]:
    body = await request.read()  # bounded by client_max_size
    if len(body) % 32:
        raise web.HTTPBadRequest(text="the body is a concatenation of 32-byte ids\n")
    if len(body) > 32 * MAX_BATCH_IDS:
        raise web.HTTPRequestEntityTooLarge(32 * MAX_BATCH_IDS, len(body))
    return [body[i : i + 32] for i in range(0, len(body), 32)]


async def batch_put(request: web.Request) -> web.Response:
    """Frames are read one by one and written while the next ones arrive (up to
    ``_PUT_WINDOW_BYTES`` at once). Per-frame results, in frame order: ``stored`` (new),
    ``held`` (already there) or ``corrupt`` (refused: the data does not hash to the id)."""
    length = request.content_length
    if length is not None and length > MAX_BATCH_BYTES:
        raise web.HTTPRequestEntityTooLarge(MAX_BATCH_BYTES, length)
    node = request.app[NODE]
    content = request.content
    jobs: list[asyncio.Task[bool]] = []
    window: list[tuple[asyncio.Task[bool], int]] = []
    window_bytes = 0
    total = 0
    try:
        while True:
            header = await content.read(FRAME_HEADER.size)
            if not header:
                break
            if len(header) < FRAME_HEADER.size:
                header += await content.readexactly(FRAME_HEADER.size - len(header))
            chunk_id, size = FRAME_HEADER.unpack(header)
            if size > MAX_CHUNK_SIZE:
                raise web.HTTPRequestEntityTooLarge(MAX_CHUNK_SIZE, size)
            total += FRAME_HEADER.size + size
            if total > MAX_BATCH_BYTES:
                raise web.HTTPRequestEntityTooLarge(MAX_BATCH_BYTES, total)
            data = await content.readexactly(size)
            job = asyncio.create_task(node.put_chunk(chunk_id, data))
            jobs.append(job)
            window.append((job, size))
            window_bytes += size
            while window_bytes > _PUT_WINDOW_BYTES:
                oldest, oldest_size = window.pop(0)
                await asyncio.wait([oldest])
                window_bytes -= oldest_size
    except asyncio.IncompleteReadError:
        raise web.HTTPBadRequest(text="truncated frame\n") from None
    finally:
        # Whatever happens, the frames already received are finished (they are valid puts).
        if jobs:
            await asyncio.wait(jobs)
            for job in jobs:
                job.exception()  # retrieved here, so that an early exit logs nothing
    results: list[dict[str, str]] = []
    for job in jobs:
        exc = job.exception()
        if isinstance(exc, ChunkCorrupt):
            outcome = "corrupt"
        elif exc is not None:
            raise exc
        else:
            outcome = "stored" if job.result() else "held"
        results.append({"result": outcome})
    return web.json_response({"results": results})


def _frames_sync(store: DirectoryChunkStore, ids: Sequence[bytes]) -> bytes:
    """The /batch/get frames of ``ids``, read in one go (one hand-off to a reader thread per
    group, not per chunk). Bodies are not hashed here: the gateway checks every chunk it
    reads against its id (end-to-end BLAKE3), and the scrub finds damage at rest."""
    parts: list[bytes] = []
    for chunk_id in ids:
        try:
            with open(store.path_of(chunk_id), "rb", buffering=0) as f:
                data = f.readall()
        except FileNotFoundError:
            parts.append(frame_header(chunk_id, MISSING))
            continue
        if len(data) > MAX_CHUNK_SIZE:
            parts.append(frame_header(chunk_id, CORRUPT))
            continue
        parts.append(frame_header(chunk_id, len(data)))
        parts.append(data)
    return b"".join(parts)


async def batch_get(request: web.Request) -> web.StreamResponse:
    ids = await _read_ids(request)
    store = _store(request)
    groups = [ids[i : i + _GET_GROUP] for i in range(0, len(ids), _GET_GROUP)]
    response = web.StreamResponse(headers={"content-type": "application/octet-stream"})
    await response.prepare(request)
    pending: deque[asyncio.Future[bytes]] = deque()
    try:
        for n in range(len(groups)):
            while n + len(pending) < len(groups) and len(pending) < _GET_GROUPS_AHEAD:
                group = groups[n + len(pending)]
                pending.append(asyncio.ensure_future(store.run_read(_frames_sync, store, group)))
            await response.write(await pending.popleft())
    finally:
        for task in pending:
            task.cancel()
    await response.write_eof()
    return response


async def batch_delete(request: web.Request) -> web.Response:
    ids = await _read_ids(request)
    node = request.app[NODE]
    deleted = await asyncio.gather(*(node.delete_chunk(i) for i in ids))
    return web.json_response({"deleted": list(deleted)})


# -- background: registration and heartbeats ----------------------------------------------------


async def heartbeat_loop(node: Node, gateway: str) -> None:
    """Register with the gateway now, then every ``heartbeat`` seconds; never fatal."""
    url = gateway.rstrip("/") + HEARTBEAT_PATH
    timeout = aiohttp.ClientTimeout(total=max(5.0, node.config.heartbeat * 2))
    headers = {SECRET_HEADER: node.config.secret}
    failing = False
    async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
        while True:
            try:
                body = json.dumps(node.heartbeat_body())
                async with session.post(
                    url, data=body, headers={"content-type": "application/json"}
                ) as resp:
                    await resp.read()
                    if resp.status >= 300:
                        raise aiohttp.ClientResponseError(
                            resp.request_info, (), status=resp.status, message=resp.reason or ""
                        )
                if failing:
                    log.info("heartbeat reaches the gateway again", gateway=gateway)
                failing = False
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                if not failing:
                    log.warning("heartbeat failed; retrying", gateway=gateway, error=repr(exc))
                failing = True
            await asyncio.sleep(node.config.heartbeat)


# -- the app ------------------------------------------------------------------------------------


def create_app(config: NodeConfig) -> web.Application:
    app = web.Application(middlewares=[_auth_and_count], client_max_size=MAX_CHUNK_SIZE + 64 * 1024)
    node = Node(config)
    app[NODE] = node

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await node.open()
        log.info("node open", id=node.node_id, url=config.url, count=node.status()["count"])
        beat: asyncio.Task[None] | None = None
        if config.gateway:
            beat = asyncio.create_task(heartbeat_loop(node, config.gateway), name="heartbeat")
        try:
            yield
        finally:
            if beat is not None:
                beat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beat
            await node.close()

    app.cleanup_ctx.append(lifecycle)
    r = app.router
    r.add_get("/status", status, name="status")
    r.add_get("/chunks", list_chunks, name="list")
    r.add_put("/chunks/{id:.*}", put_chunk, name="put")
    r.add_get("/chunks/{id:.*}", get_chunk, name="get", allow_head=False)
    r.add_route("HEAD", "/chunks/{id:.*}", head_chunk, name="head")
    r.add_delete("/chunks/{id:.*}", delete_chunk, name="delete")
    r.add_post("/batch/put", batch_put, name="batch_put")
    r.add_post("/batch/get", batch_get, name="batch_get")
    r.add_post("/batch/delete", batch_delete, name="batch_delete")
    r.add_post("/scrub", scrub, name="scrub")
    return app
