"""The aiohttp application factory for the gateway (embedded `serve` mode: gateway plus a
local directory chunk store)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from dedup.engine import Engine
from dedup.index import Index
from dedup.store import DirectoryChunkStore
from gateway import admin
from gateway.config import Config
from gateway.credentials import StaticCredentials
from gateway.s3.dispatch import CONFIG, CREDENTIALS, ENGINE, s3_handler, s3_middleware

log = structlog.get_logger("s3dedup")


def open_engine(config: Config) -> Engine:
    index = Index(config.data / "index", config.chunker)
    store = DirectoryChunkStore(config.data / "store")
    return Engine(index, store, inline_max=config.inline_max)


async def _engine_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    engine = await asyncio.get_running_loop().run_in_executor(None, open_engine, config)
    await engine.recover()
    app[ENGINE] = engine
    gc_task = asyncio.create_task(_gc_loop(engine, config)) if config.gc_interval > 0 else None
    log.info("engine ready", data=str(config.data), store_id=engine.index.store_id)
    yield
    if gc_task is not None:
        gc_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await gc_task
    await engine.close()
    log.info("engine closed")


async def _gc_loop(engine: Engine, config: Config) -> None:
    while True:
        await asyncio.sleep(config.gc_interval)
        result = await engine.collect_garbage(config.gc_grace)
        if result.chunks_deleted:
            log.info("gc", chunks=result.chunks_deleted, bytes=result.bytes_freed)


def create_app(config: Config, credentials: StaticCredentials) -> web.Application:
    app = web.Application(middlewares=[s3_middleware], client_max_size=1024**2)
    app[CONFIG] = config
    app[CREDENTIALS] = credentials
    app.cleanup_ctx.append(_engine_ctx)
    admin.add_routes(app)
    app.router.add_route("*", "/{tail:.*}", s3_handler)
    return app
