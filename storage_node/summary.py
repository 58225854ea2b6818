"""The node's usage summary (chunk count and bytes), persisted so that startup never scans.

``DIR/summary.json`` holds ``{"version": 1, "count": N, "bytes": B, "clean": bool}``. It is
updated in memory on every put of a new chunk and every delete, and rewritten atomically
(temp file, fsync, rename, fsync of the directory) at most once per ``interval`` seconds, and
at shutdown. ``clean`` is false while the node runs and true after a clean shutdown, so after
a crash the next start knows that the last second or so of changes may be missing: it serves
with the persisted numbers at once and reconciles them with a scan in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import structlog

log = structlog.get_logger("storage_node.summary")

FILE_NAME = "summary.json"
_VERSION = 1


@dataclass(frozen=True, slots=True)
class Persisted:
    count: int
    bytes: int
    clean: bool


def read(directory: Path) -> Persisted | None:
    """The persisted summary, or None if there is none or it is unreadable."""
    path = directory / FILE_NAME
    try:
        raw = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("summary unreadable; will rebuild it", path=str(path), error=str(exc))
        return None
    if not isinstance(raw, dict) or raw.get("version") != _VERSION:
        return None
    count, size, clean = raw.get("count"), raw.get("bytes"), raw.get("clean")
    if not (isinstance(count, int) and isinstance(size, int) and isinstance(clean, bool)):
        return None
    if count < 0 or size < 0:
        return None
    return Persisted(count=count, bytes=size, clean=clean)


def write(directory: Path, count: int, size: int, clean: bool) -> None:
    """Atomically replace the summary file (blocking: call it in a thread)."""
    body = json.dumps({"version": _VERSION, "count": count, "bytes": size, "clean": clean})
    tmp = directory / f".{FILE_NAME}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, body.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, directory / FILE_NAME)
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class Summary:
    """In-memory counters plus the debounced writer of ``summary.json``."""

    def __init__(self, directory: Path, count: int, size: int, *, interval: float = 1.0) -> None:
        self.directory = directory
        self.count = count
        self.bytes = size
        self.interval = interval
        # False while a crash may have left the counters behind the disk (until reconciled).
        self.trusted = True
        self._generation = 0
        self._written = -1
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def add(self, count: int, size: int) -> None:
        self.count += count
        self.bytes += size
        self._generation += 1

    def replace(self, count: int, size: int) -> None:
        self.count, self.bytes = count, size
        self._generation += 1

    async def flush(self, *, clean: bool = False) -> None:
        """Write the summary. One write at a time, and a cancelled flush still waits for its
        thread: stop() cancels the periodic writer, whose thread would otherwise race the
        final write for the temporary file (seen as FileNotFoundError on replace) or land
        after it with stale counters."""
        async with self._lock:
            generation = self._generation
            job = asyncio.ensure_future(
                asyncio.to_thread(write, self.directory, self.count, self.bytes, clean)
            )
            try:
                await asyncio.shield(job)
            finally:
                if not job.done():
                    await asyncio.wait([job])
            self._written = generation

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="summary-flusher")

    async def stop(self) -> None:
        """Stop the periodic writer and write the final summary (clean if trusted)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush(clean=self.trusted)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if self._generation != self._written:
                try:
                    await self.flush()
                except OSError as exc:
                    log.warning("cannot write the usage summary", error=str(exc))
