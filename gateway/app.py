"""The aiohttp application factory for the gateway: `serve` (gateway plus a local directory
chunk store) and `gateway` (cluster mode: chunks on storage nodes, see gateway/cluster/)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from dedup.engine import Engine
from dedup.index import Index
from dedup.store import ChunkStore, DirectoryChunkStore
from gateway import admin, memory
from gateway.cluster.maintain import MAINTAINER, Maintainer
from gateway.cluster.membership import MEMBERSHIP, Membership
from gateway.cluster.membership import add_routes as cluster_routes
from gateway.cluster.store import ClusterChunkStore
from gateway.config import Config
from gateway.credentials import StaticCredentials
from gateway.s3.dispatch import CONFIG, CREDENTIALS, ENGINE, make_s3_middleware, s3_handler

log = structlog.get_logger("s3dedup")


def open_engine(config: Config, store: ChunkStore | None = None) -> Engine:
    """The engine on ``DATA/index``, with ``store`` (default: the local ``DATA/store``)."""
    index = Index(config.data / "index", config.chunker)
    # Chunks asked of the store at once, two such reads in flight. Local disk: 8, one
    # hand-off to a reader thread (a hand-off per chunk cost more CPU than reading and
    # hashing the chunk). Cluster: 16, one /batch/get per node holding some of them (a round
    # trip per chunk kept the gateway waiting). Measured in docs/performance.md.
    read_batch = config.read_batch or (8 if store is None else 16)
    read_ahead = config.read_ahead or 2 * read_batch
    if store is None:
        store = DirectoryChunkStore(config.data / "store")
    return Engine(
        index,
        store,
        inline_max=config.inline_max,
        inflight_bytes=config.inflight_bytes,
        read_ahead=read_ahead,
        read_batch=read_batch,
    )


async def _engine_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    membership = app.get(MEMBERSHIP)  # cluster (`gateway`) mode: chunks live on the nodes
    store = None if membership is None else ClusterChunkStore(membership, config.replicas)
    engine = await asyncio.get_running_loop().run_in_executor(None, open_engine, config, store)
    if membership is not None:
        try:
            await membership.start(engine.index)  # before recover(): its GC deletes chunks
        except BaseException:
            await engine.close()
            raise
    await engine.recover()
    app[ENGINE] = engine
    maintainer = None
    if isinstance(store, ClusterChunkStore):
        maintainer = Maintainer(engine, store, config)
        maintainer.start()
        app[MAINTAINER] = maintainer
    tasks = []
    if config.gc_interval > 0:
        tasks.append(asyncio.create_task(_maintenance_loop(engine, config)))
    if config.trim_interval > 0:
        tasks.append(asyncio.create_task(_trim_loop(engine, config)))
    if config.lifecycle_interval > 0:
        tasks.append(asyncio.create_task(_lifecycle_loop(engine, config)))
    log.info("engine ready", data=str(config.data), store_id=engine.index.store_id)
    yield
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if maintainer is not None:
        await maintainer.close()
    await engine.close()
    log.info("engine closed")


async def _maintenance_loop(engine: Engine, config: Config) -> None:
    """Every gc_interval: abort multipart uploads idle longer than upload_expiry, then GC."""
    while True:
        await asyncio.sleep(config.gc_interval)
        aborted = await engine.expire_uploads(config.upload_expiry)
        if aborted:
            log.info("expired multipart uploads", uploads=aborted)
        result = await engine.collect_garbage(config.gc_grace)
        if result.chunks_deleted:
            log.info("gc", chunks=result.chunks_deleted, bytes=result.bytes_freed)


async def _lifecycle_loop(engine: Engine, config: Config) -> None:
    """Every lifecycle_interval: apply the buckets' lifecycle rules (expire objects, abort
    old multipart uploads). The chunks they free go at the next GC."""
    while True:
        await asyncio.sleep(config.lifecycle_interval)
        try:
            result = await engine.apply_lifecycle()
        except Exception:  # the loop must outlive one failed pass; the next one retries
            log.exception("lifecycle pass failed")
            continue
        if result.expired or result.aborted:
            log.info("lifecycle", expired=result.expired, aborted=result.aborted)


async def _trim_loop(engine: Engine, config: Config) -> None:
    """Give freed heap back to the OS while no upload holds memory (see gateway/memory)."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(config.trim_interval)
        if engine.inflight_bytes == 0:
            await loop.run_in_executor(None, memory.trim)


@dataclass
class InFlight:
    """The requests whose handlers are running, for a graceful shutdown."""

    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    stopping: bool = False


IN_FLIGHT = web.AppKey("in_flight", InFlight)


@web.middleware
async def in_flight_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[IN_FLIGHT]
    task = asyncio.current_task()
    assert task is not None
    state.tasks.add(task)
    try:
        resp = await handler(request)
    finally:
        state.tasks.discard(task)
    if state.stopping:
        resp.force_close()  # no keep-alive: the client reconnects to the next server
    return resp


def create_app(
    config: Config, credentials: StaticCredentials, *, cluster: bool = False
) -> web.Application:
    """The gateway; with ``cluster``, chunks go to the storage nodes that heartbeat to it
    (``config.cluster_secret`` required) instead of the local ``DATA/store``."""
    # list[Any]: the two middlewares' handler annotations need not match aiohttp's exactly
    middlewares: list[Any] = [in_flight_middleware, make_s3_middleware()]
    # auto_decompress off: a body sent with Content-Encoding: gzip is the object's bytes,
    # stored as they are (S3 never decodes them)
    app = web.Application(
        middlewares=middlewares,
        client_max_size=1024**2,
        handler_args={"auto_decompress": False},
    )
    app[IN_FLIGHT] = InFlight()
    app[CONFIG] = config
    app[CREDENTIALS] = credentials
    app.cleanup_ctx.append(_engine_ctx)
    admin.add_routes(app)
    if cluster:
        if not config.cluster_secret:
            raise ValueError("cluster mode needs a cluster secret")
        app[MEMBERSHIP] = Membership(
            config.cluster_secret, config.node_timeout, config.node_io_timeout
        )
        cluster_routes(app)
    # (?s:...): an object key may contain a newline, which '.' alone would not match
    app.router.add_route("*", "/{tail:(?s:.*)}", s3_handler)
    return app


class DataDirBusy(Exception):
    """Another process (a running server, or an offline fsck) holds the data directory."""


LOCK_FILE = ".lock"


def lock_data_dir(data: Path) -> int:
    """Take the data directory for this process (an exclusive ``flock`` on ``DATA/.lock``,
    released by the kernel when the process ends, however it ends). Two processes on one
    data directory would delete each other's temporary chunk files and race their garbage
    collections. Returns the descriptor to keep open; raises :class:`DataDirBusy`."""
    data.mkdir(parents=True, exist_ok=True)
    fd = os.open(data / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DataDirBusy(f"{data} is in use by another s3dedup process") from None
    except BaseException:
        os.close(fd)
        raise
    return fd


async def serve(
    config: Config,
    credentials: StaticCredentials,
    *,
    on_ready: Callable[[], None] | None = None,
    cluster: bool = False,
) -> None:
    """Run the server until SIGTERM or SIGINT, then shut down gracefully:

    1. stop accepting connections;
    2. let the requests in flight finish, up to ``config.shutdown_timeout`` seconds, still
       reading their bodies (aiohttp's own shutdown stops reading request bodies at once,
       which stalls every upload in flight until it times out); responses made meanwhile
       close their connection; a second signal cuts this step short; then cancel what is left;
    3. close the connections, giving the responses still being written (downloads) up to
       ``config.shutdown_timeout`` seconds more, then the engine: GC loop, chunk store, index.
    """
    loop = asyncio.get_running_loop()
    stop, hurry = asyncio.Event(), asyncio.Event()

    def on_signal() -> None:
        (hurry if stop.is_set() else stop).set()

    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, on_signal)
    app = create_app(config, credentials, cluster=cluster)
    runner = web.AppRunner(
        app,
        access_log=None,
        handler_cancellation=False,
        shutdown_timeout=config.shutdown_timeout,
    )
    try:
        await runner.setup()  # opens the engine
        try:
            site = web.TCPSite(runner, config.host, config.port)
            await site.start()
            log.info("listening", endpoint=f"http://{config.listen}")
            if on_ready is not None:
                on_ready()
            await stop.wait()
            log.info("shutting down", requests_in_flight=len(app[IN_FLIGHT].tasks))
            await site.stop()
            await _drain(app[IN_FLIGHT], config.shutdown_timeout, hurry)
        finally:
            server = runner.server
            transports = [] if server is None else [c.transport for c in server.connections]
            await runner.cleanup()  # closes the connections, then the engine
            await _flushed([t for t in transports if t is not None], config.shutdown_timeout)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


async def _drain(state: InFlight, seconds: float, hurry: asyncio.Event) -> None:
    state.stopping = True
    deadline = time.monotonic() + seconds
    while state.tasks and not hurry.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            break
        waiter = asyncio.ensure_future(hurry.wait())
        await asyncio.wait(
            [*state.tasks, waiter], timeout=left, return_when=asyncio.FIRST_COMPLETED
        )
        waiter.cancel()
    if state.tasks:
        # Too slow (or a second signal): cancel them; an upload cancelled here releases its
        # pins, or startup recovery does it if the engine closes first.
        log.warning("cancelling requests still in flight", requests=len(state.tasks))
        for task in state.tasks:
            task.cancel()
        await asyncio.wait(list(state.tasks), timeout=5)


async def _flushed(transports: list[asyncio.Transport], seconds: float) -> None:
    """Wait until the closed connections have handed their last bytes to the kernel: closing
    the event loop drops what a slow reader has not taken from a transport's buffer yet."""
    deadline = time.monotonic() + seconds

    def pending(t: asyncio.Transport) -> int:
        try:
            return t.get_write_buffer_size()
        except (AttributeError, RuntimeError):
            return 0

    while time.monotonic() < deadline:
        if not any(pending(t) for t in transports):
            return
        await asyncio.sleep(0.01)
