"""A storage node seen as a :class:`~dedup.store.ChunkStore`, over HTTP.

:class:`NodeClient` speaks the protocol in ``docs/design.md`` ("Storage node protocol"). Many
clients (one per node) share one pooled keep-alive :class:`aiohttp.ClientSession`; see
:func:`make_session`. Reads are verified end to end: a body that does not hash to its id
raises :class:`~dedup.store.ChunkCorrupt`, whatever the node said.
"""

from __future__ import annotations

import asyncio
import builtins
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.abc import AbstractStreamWriter

from dedup.store import (
    CHUNK_ID_SIZE,
    ChunkCorrupt,
    ChunkNotFound,
    Placement,
    StoreUsage,
    check_chunk_id,
    chunk_id_of,
    raise_first_failure,
)
from storage_node.protocol import (
    CORRUPT,
    FRAME_HEADER,
    MAX_BATCH_IDS,
    MAX_CHUNK_SIZE,
    MAX_LIST_LIMIT,
    MAX_SCRUB_LIMIT,
    MISSING,
    SECRET_HEADER,
    frame_header,
)

__all__ = ["NODE_FAILURES", "NodeAuthError", "NodeClient", "NodeError", "ScrubPage", "make_session"]

# Chunks are grouped into /batch/put requests of about this many bytes (or this many chunks):
# the number of requests grows with the bytes sent, not with the number of chunks.
BATCH_BYTES = 8 * 1024 * 1024
BATCH_CHUNKS = 4096
_INLINE_HASH = 64 * 1024  # smaller bodies are hashed on the event loop
_JOIN_BELOW = 64 * 1024  # request-body parts smaller than this are joined before writing
PUTS_IN_FLIGHT = 4  # put requests at once per node; more puts wait and go as one batch


class NodeError(Exception):
    """The node answered with an unexpected status (or not at all)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NodeAuthError(NodeError):
    """The node refused the cluster secret (401/403)."""


# What a node failing looks like to its callers (a missing or damaged copy is not a failure
# of the node: ChunkNotFound / ChunkCorrupt are handled on their own).
NODE_FAILURES = (aiohttp.ClientError, TimeoutError, OSError, NodeError)


@dataclass(frozen=True, slots=True)
class ScrubPage:
    """One ``POST /scrub`` answer: chunks re-hashed, bytes read, the ids found damaged (now
    quarantined by the node), and the id to pass as ``after`` next (None: the end)."""

    checked: int
    bytes: int
    corrupt: list[builtins.bytes]
    next: builtins.bytes | None


def make_session(
    *,
    connect_timeout: float = 5.0,
    read_timeout: float = 60.0,
    connections: int = 256,
    connections_per_node: int = 32,
) -> aiohttp.ClientSession:
    """A pooled keep-alive session for talking to nodes (create it on the running loop)."""
    connector = aiohttp.TCPConnector(
        limit=connections, limit_per_host=connections_per_node, keepalive_timeout=60
    )
    timeout = aiohttp.ClientTimeout(
        total=None, connect=connect_timeout, sock_connect=connect_timeout, sock_read=read_timeout
    )
    return aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False)


class _Parts(aiohttp.payload.Payload):
    """A request body written as the buffers it is made of, each straight to the transport.

    (``bytes`` over 1 MiB make aiohttp warn, and an ``io.BytesIO`` costs two copies of every
    byte — aiohttp's ``getbuffer()`` unshares it, then reads it out in pieces — which were
    most of the gateway's ``memmove`` while it sent chunks to nodes.)"""

    def __init__(self, parts: Sequence[bytes | memoryview]) -> None:
        super().__init__(parts, content_type="application/octet-stream")
        self._parts = parts
        self._size = sum(len(part) for part in parts)

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        raise TypeError("a binary request body")

    async def write(self, writer: AbstractStreamWriter) -> None:
        # Runs of small parts (chunk ids, frame headers) go as one write each: a transport
        # write per 32-byte id would be a send() per id.
        small: list[bytes | memoryview] = []
        for part in self._parts:
            if len(part) < _JOIN_BELOW:
                small.append(part)
                continue
            if small:
                await writer.write(b"".join(small))
                small = []
            await writer.write(part)
        if small:
            await writer.write(b"".join(small))


async def _hash(data: bytes | memoryview) -> bytes:
    if len(data) <= _INLINE_HASH:
        return chunk_id_of(data)
    return await asyncio.to_thread(chunk_id_of, data)


async def _verified(chunk_id: bytes, data: bytes) -> bytes:
    if await _hash(data) != chunk_id:
        raise ChunkCorrupt(f"chunk {chunk_id.hex()} does not hash to its id (end-to-end check)")
    return data


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


class NodeClient:
    """One storage node as a ChunkStore. ``session`` is shared and not closed by
    :meth:`close`; without one, the client makes its own and closes it."""

    def __init__(
        self,
        url: str,
        secret: str,
        session: aiohttp.ClientSession | None = None,
        *,
        batch_bytes: int = BATCH_BYTES,
        batch_chunks: int = BATCH_CHUNKS,
        parallel_batches: int = 4,
    ) -> None:
        self.url = url.rstrip("/")
        self._headers = {SECRET_HEADER: secret}
        self._own_session = session is None
        self._session = session if session is not None else make_session()
        self._batch_bytes = batch_bytes
        self._batch_chunks = batch_chunks
        self._parallel = asyncio.Semaphore(parallel_batches)
        self._closed = False
        # put(): at most PUTS_IN_FLIGHT requests at once; puts arriving meanwhile wait and
        # travel together in one /batch/put when a request ends (no timer, no added latency)
        self._puts_in_flight = 0
        self._waiting: list[tuple[bytes, bytes | memoryview, asyncio.Future[None]]] = []
        self._waiting_bytes = 0
        self._senders: set[asyncio.Task[None]] = set()
        self.requests = 0  # put requests sent (single or batch), for tests and metrics

    # -- ChunkStore ---------------------------------------------------------------------------

    async def put(self, chunk_id: bytes, data: bytes | memoryview) -> Placement:
        """Durable on the node when this returns. Under load, concurrent puts are coalesced
        into ``/batch/put`` requests: the request count grows with bytes, not chunks."""
        check_chunk_id(chunk_id)
        self._check_open()
        if len(data) > MAX_CHUNK_SIZE:
            raise ValueError(f"a chunk is at most {MAX_CHUNK_SIZE} bytes")
        if self._puts_in_flight < PUTS_IN_FLIGHT and not self._waiting:
            self._puts_in_flight += 1
            self.requests += 1
            try:
                await self._put_one(chunk_id, data)
            finally:
                self._puts_in_flight -= 1
                self._flush()
            return ()  # one node: the cluster store records which one
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.add_done_callback(_retrieve)  # a caller that left must not leave it unretrieved
        self._waiting.append((chunk_id, data, done))
        self._waiting_bytes += len(data)
        self._flush()
        await asyncio.shield(done)  # a batch under way finishes whatever the caller does
        return ()

    async def _put_one(self, chunk_id: bytes, data: bytes | memoryview) -> None:
        async with self._request("PUT", f"/chunks/{chunk_id.hex()}", data=_Parts([data])) as resp:
            await resp.read()
            if resp.status == 422:
                raise ChunkCorrupt(f"data does not hash to chunk id {chunk_id.hex()}")
            self._expect(resp, 200, 201)

    def _flush(self) -> None:
        """Send the waiting puts as one batch, if a request slot is free."""
        if not self._waiting or self._puts_in_flight >= PUTS_IN_FLIGHT:
            return
        batch: list[tuple[bytes, bytes | memoryview, asyncio.Future[None]]] = []
        size = 0
        while self._waiting and (not batch or size + len(self._waiting[0][1]) <= self._batch_bytes):
            item = self._waiting.pop(0)
            batch.append(item)
            size += len(item[1])
        self._waiting_bytes -= size
        self._puts_in_flight += 1
        self.requests += 1
        task = asyncio.create_task(self._send_batch(batch))
        self._senders.add(task)
        task.add_done_callback(self._senders.discard)

    async def _send_batch(
        self, batch: list[tuple[bytes, bytes | memoryview, asyncio.Future[None]]]
    ) -> None:
        try:
            outcomes = await self._batch_put([(h, d) for h, d, _ in batch])
        except NODE_FAILURES as exc:
            for _, _, done in batch:
                if not done.done():
                    done.set_exception(exc)
        else:
            for (h, _, done), outcome in zip(batch, outcomes, strict=True):
                if done.done():
                    continue
                if outcome == "corrupt":
                    done.set_exception(ChunkCorrupt(f"data does not hash to chunk id {h.hex()}"))
                elif outcome in ("stored", "held"):
                    done.set_result(None)
                else:
                    done.set_exception(NodeError(f"unexpected batch result {outcome!r}"))
        finally:
            self._puts_in_flight -= 1
            self._flush()

    async def put_many(self, items: Sequence[tuple[bytes, bytes | memoryview]]) -> None:
        """Put every item, in /batch/put requests of about ``batch_bytes`` each (a few in
        parallel); then raise the first failure in ``items`` order, if any."""
        for chunk_id, data in items:
            check_chunk_id(chunk_id)
            if len(data) > MAX_CHUNK_SIZE:
                raise ValueError(f"a chunk is at most {MAX_CHUNK_SIZE} bytes")
        self._check_open()
        batches: list[list[int]] = []
        current: list[int] = []
        current_bytes = 0
        for n, (_, data) in enumerate(items):
            if current and (
                current_bytes + len(data) > self._batch_bytes or len(current) >= self._batch_chunks
            ):
                batches.append(current)
                current, current_bytes = [], 0
            current.append(n)
            current_bytes += len(data) + FRAME_HEADER.size
        if current:
            batches.append(current)
        errors: list[BaseException | None] = [None] * len(items)

        async def send(batch: list[int]) -> None:
            try:
                outcomes = await self._batch_put([items[n] for n in batch])
            except (aiohttp.ClientError, TimeoutError, NodeError) as exc:
                for n in batch:
                    errors[n] = exc
                return
            for n, outcome in zip(batch, outcomes, strict=True):
                if outcome == "corrupt":
                    errors[n] = ChunkCorrupt(f"data does not hash to chunk id {items[n][0].hex()}")
                elif outcome not in ("stored", "held"):
                    errors[n] = NodeError(f"unexpected batch result {outcome!r}")

        await asyncio.gather(*(send(b) for b in batches))
        for error in errors:
            if error is not None:
                raise error

    async def get(self, chunk_id: bytes) -> bytes:
        check_chunk_id(chunk_id)
        self._check_open()
        async with self._request("GET", f"/chunks/{chunk_id.hex()}") as resp:
            data = await resp.read()
            if resp.status == 404:
                raise ChunkNotFound(chunk_id.hex())
            if resp.status == 409:
                raise ChunkCorrupt(f"{self.url} holds a damaged copy of {chunk_id.hex()}")
            self._expect(resp, 200)
        return await _verified(chunk_id, data)

    async def get_many(self, chunk_ids: Sequence[bytes]) -> list[bytes]:
        """As :meth:`fetch_many` (one /batch/get), raising the first failure in order."""
        return raise_first_failure(await self.fetch_many(chunk_ids))

    async def has(self, chunk_id: bytes) -> bool:
        check_chunk_id(chunk_id)
        self._check_open()
        async with self._request("HEAD", f"/chunks/{chunk_id.hex()}") as resp:
            if resp.status == 404:
                return False
            self._expect(resp, 200)
            return True

    async def delete(self, chunk_id: bytes) -> bool:
        check_chunk_id(chunk_id)
        self._check_open()
        async with self._request("DELETE", f"/chunks/{chunk_id.hex()}") as resp:
            await resp.read()
            if resp.status == 404:
                return False
            self._expect(resp, 204)
            return True

    async def list_ids(self, after: bytes | None = None, limit: int = 1000) -> list[bytes]:
        if after is not None and not isinstance(after, bytes):
            raise TypeError(f"after must be bytes or None, got {type(after).__name__}")
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        self._check_open()
        # Ids are 32 bytes: "id > after" for a longer ``after`` is "id > after[:32]".
        cursor = after[:CHUNK_ID_SIZE] if after else b""
        out: list[bytes] = []
        while len(out) < limit:
            page_limit = min(limit - len(out), MAX_LIST_LIMIT)
            query = {"limit": str(page_limit)}
            if cursor:
                query["after"] = cursor.hex()
            async with self._request("GET", "/chunks", params=query) as resp:
                body = await resp.read()
                self._expect(resp, 200)
            page = [bytes.fromhex(i) for i in json.loads(body)["ids"]]
            out.extend(page)
            if len(page) < page_limit:
                break
            cursor = page[-1]
        return out

    async def usage(self) -> StoreUsage:
        status = await self.status()
        return StoreUsage(count=int(status["count"]), bytes=int(status["used"]))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._senders:
            await asyncio.wait(list(self._senders))
        if self._own_session:
            await self._session.close()

    # -- beyond the ChunkStore protocol --------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        """The node's ``/status``: id, url, capacity, used, count, in_flight, requests."""
        self._check_open()
        async with self._request("GET", "/status") as resp:
            body = await resp.read()
            self._expect(resp, 200)
        result: dict[str, Any] = json.loads(body)
        return result

    async def fetch_many(
        self, chunk_ids: Sequence[bytes]
    ) -> list[bytes | ChunkNotFound | ChunkCorrupt]:
        """Many chunks in one streamed request per ``MAX_BATCH_IDS`` ids, each verified end to
        end; a missing or damaged chunk is an exception object in its place, not raised."""
        for chunk_id in chunk_ids:
            check_chunk_id(chunk_id)
        self._check_open()
        out: list[bytes | ChunkNotFound | ChunkCorrupt] = []
        for start in range(0, len(chunk_ids), MAX_BATCH_IDS):
            part = chunk_ids[start : start + MAX_BATCH_IDS]
            async with self._request("POST", "/batch/get", data=_Parts(part)) as resp:
                if resp.status != 200:
                    await resp.read()
                    self._expect(resp, 200)
                try:
                    out.extend(await self._read_frames(resp, part))
                except asyncio.IncompleteReadError:
                    raise NodeError(f"{self.url}: batch get response cut short") from None
        return out

    async def scrub(
        self, after: bytes | None = None, limit: int = 1000, rate: int = 0
    ) -> ScrubPage:
        """Have the node re-hash up to ``limit`` of its chunks with ids above ``after``, reading
        at most ``rate`` bytes per second (0: unlimited), and quarantine the damaged ones.

        The answer comes only when the page is done, which at a low rate takes long: this
        request has no read timeout (the session's connect timeouts still apply)."""
        if after is not None:
            check_chunk_id(after)
        if not 1 <= limit <= MAX_SCRUB_LIMIT:
            raise ValueError(f"limit must be within 1..{MAX_SCRUB_LIMIT}, got {limit}")
        if rate < 0:
            raise ValueError(f"rate must be >= 0, got {rate}")
        self._check_open()
        query = {"limit": str(limit), "rate": str(rate)}
        if after is not None:
            query["after"] = after.hex()
        base = self._session.timeout
        timeout = aiohttp.ClientTimeout(
            total=None, connect=base.connect, sock_connect=base.sock_connect, sock_read=None
        )
        async with self._request("POST", "/scrub", params=query, timeout=timeout) as resp:
            body = await resp.read()
            self._expect(resp, 200)
        page = json.loads(body)
        return ScrubPage(
            checked=int(page["checked"]),
            bytes=int(page["bytes"]),
            corrupt=[bytes.fromhex(i) for i in page["corrupt"]],
            next=bytes.fromhex(page["next"]) if page["next"] is not None else None,
        )

    async def _read_frames(
        self, resp: aiohttp.ClientResponse, chunk_ids: Sequence[bytes]
    ) -> list[bytes | ChunkNotFound | ChunkCorrupt]:
        out: list[bytes | ChunkNotFound | ChunkCorrupt] = []
        received: list[tuple[int, bytes]] = []  # (index in out, body) to check
        for chunk_id in chunk_ids:
            got_id, length = FRAME_HEADER.unpack(await resp.content.readexactly(FRAME_HEADER.size))
            if got_id != chunk_id:
                raise NodeError(f"{self.url}: batch get answered out of order")
            if length == MISSING:
                out.append(ChunkNotFound(chunk_id.hex()))
            elif length == CORRUPT or length > MAX_CHUNK_SIZE:
                out.append(ChunkCorrupt(f"{self.url}: damaged copy of {chunk_id.hex()}"))
            else:
                data = await resp.content.readexactly(length)
                received.append((len(out), data))
                out.append(data)

        # the end-to-end check of every body, in one thread hand-off for the whole answer
        def hash_all() -> list[bytes]:
            return [chunk_id_of(data) for _, data in received]

        small = sum(len(data) for _, data in received) <= _INLINE_HASH
        ids = hash_all() if small else await asyncio.to_thread(hash_all)
        for (i, _), got in zip(received, ids, strict=True):
            if got != chunk_ids[i]:
                out[i] = ChunkCorrupt(f"{self.url}: damaged copy of {chunk_ids[i].hex()}")
        return out

    async def delete_many(self, chunk_ids: Sequence[bytes]) -> list[bool]:
        """Delete many chunks, one request per ``MAX_BATCH_IDS`` ids; True where one existed."""
        for chunk_id in chunk_ids:
            check_chunk_id(chunk_id)
        self._check_open()
        out: list[bool] = []
        for start in range(0, len(chunk_ids), MAX_BATCH_IDS):
            part = chunk_ids[start : start + MAX_BATCH_IDS]
            async with self._request("POST", "/batch/delete", data=_Parts(part)) as resp:
                body = await resp.read()
                self._expect(resp, 200)
            out.extend(bool(d) for d in json.loads(body)["deleted"])
        return out

    # -- helpers -------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the node client is closed")

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._session.request(method, self.url + path, headers=self._headers, **kwargs)

    def _expect(self, resp: aiohttp.ClientResponse, *statuses: int) -> None:
        if resp.status in statuses:
            return
        error = NodeAuthError if resp.status in (401, 403) else NodeError
        raise error(f"{resp.method} {resp.url}: HTTP {resp.status}", resp.status)

    async def _batch_put(self, items: Sequence[tuple[bytes, bytes | memoryview]]) -> list[str]:
        parts: list[bytes | memoryview] = []
        for chunk_id, data in items:
            parts.append(frame_header(chunk_id, len(data)))
            parts.append(data)
        async with self._parallel:
            async with self._request("POST", "/batch/put", data=_Parts(parts)) as resp:
                raw = await resp.read()
                self._expect(resp, 200)
        results = json.loads(raw)["results"]
        if len(results) != len(items):
            raise NodeError(f"{self.url}: batch put answered {len(results)} of {len(items)}")
        return [str(r["result"]) for r in results]
