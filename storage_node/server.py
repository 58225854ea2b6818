"""Run a storage node until SIGTERM or SIGINT, then stop gracefully."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

import structlog
from aiohttp import web

from storage_node.app import NODE, NodeConfig, create_app

log = structlog.get_logger("storage_node")


async def serve(config: NodeConfig, *, on_ready: Callable[[str], None] | None = None) -> None:
    """Serve until a signal: then stop accepting connections, let the requests in flight
    finish (up to ``config.shutdown_timeout`` seconds), close the store and write the usage
    summary (marked clean)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    app = create_app(config)
    runner = web.AppRunner(
        app, access_log=None, handler_cancellation=False, shutdown_timeout=config.shutdown_timeout
    )
    try:
        await runner.setup()  # opens the node (store, id, summary) and starts heartbeats
        try:
            site = web.TCPSite(runner, config.host, config.port)
            await site.start()
            log.info("listening", url=config.url, id=app[NODE].node_id)
            if on_ready is not None:
                on_ready(app[NODE].node_id)
            await stop.wait()
            log.info("shutting down", requests_in_flight=app[NODE].in_flight)
        finally:
            await runner.cleanup()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
