"""The storage node (`s3dedup node`): auth, id validation, batches, summary, scrub, heartbeats.

The ChunkStore contract itself runs against a real node process in test_store_contract.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from dedup.store import ChunkCorrupt, ChunkNotFound, DirectoryChunkStore, StoreUsage, chunk_id_of
from gateway.cluster.client import NodeAuthError, NodeClient, ScrubPage, make_session
from storage_node import app as node_app
from storage_node import summary as summary_mod
from storage_node.app import NODE, NodeConfig, create_app
from storage_node.protocol import (
    HEARTBEAT_PATH,
    MAX_SCRUB_LIMIT,
    MISSING,
    SECRET_HEADER,
    frame_header,
)
from tests.conftest import free_port, server_env

SECRET = "node-test-cluster-secret"


@dataclass
class NodeProcess:
    """A real `python -m gateway.cli node` process on a loopback port."""

    data: Path
    log: Path
    gateway: str
    port: int = 0
    secret: str = SECRET
    extra: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> NodeProcess:
        self.port = self.port or free_port()
        cmd = [
            sys.executable, "-m", "gateway.cli", "node", "--data", str(self.data),
            "--listen", f"127.0.0.1:{self.port}", "--gateway", self.gateway,
            "--cluster-secret", self.secret, *self.extra,
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=server_env()
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"node exited: {self.log.read_text()[-3000:]}")
            try:
                self.status()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("node did not start")

    def status(self) -> dict[str, Any]:
        req = urllib.request.Request(self.url + "/status", headers={SECRET_HEADER: self.secret})
        with urllib.request.urlopen(req, timeout=2) as resp:
            return dict(json.loads(resp.read()))

    def stop(self, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout)
        self.proc = None
        return rc


def unused_gateway() -> str:
    """A gateway URL where nothing listens: heartbeats fail, and must not matter."""
    return f"http://127.0.0.1:{free_port()}"


def _chunk(rng: random.Random, size: int) -> tuple[bytes, bytes]:
    data = rng.randbytes(size)
    return chunk_id_of(data), data


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    return random.Random(request.node.nodeid)


def _config(data: Path, **kw: Any) -> NodeConfig:
    return NodeConfig(data=data, secret=SECRET, summary_interval=0.05, threads=4, **kw)


@pytest.fixture
async def node_server(tmp_path: Path) -> AsyncIterator[TestServer]:
    server = TestServer(create_app(_config(tmp_path / "node")))
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def client(node_server: TestServer) -> AsyncIterator[NodeClient]:
    node_client = NodeClient(str(node_server.make_url("")), SECRET)
    yield node_client
    await node_client.close()


def _url(server: TestServer, raw_path: str) -> URL:
    return URL(str(server.make_url("")).rstrip("/") + raw_path, encoded=True)


HEX = "ab" * 32
ROUTES = [
    ("GET", "/status"),
    ("GET", "/chunks"),
    ("GET", "/chunks?after=00&limit=5"),
    ("PUT", f"/chunks/{HEX}"),
    ("GET", f"/chunks/{HEX}"),
    ("HEAD", f"/chunks/{HEX}"),
    ("DELETE", f"/chunks/{HEX}"),
    ("POST", "/batch/put"),
    ("POST", "/batch/get"),
    ("POST", "/batch/delete"),
    ("POST", "/scrub"),
    ("POST", f"/scrub?after={HEX}&limit=5&rate=1000"),
    ("GET", "/no/such/route"),
    ("PUT", "/chunks/..%2F..%2Fnode-id"),
]


# -- authentication -------------------------------------------------------------------------------


async def test_every_route_needs_the_secret(
    node_server: TestServer, http: aiohttp.ClientSession
) -> None:
    body = frame_header(bytes.fromhex(HEX), 3) + b"abc"
    for method, path in ROUTES:
        url = _url(node_server, path)
        async with http.request(method, url, data=body) as resp:
            assert resp.status == 401, (method, path)
        for wrong in ("", "x", SECRET + "x", SECRET[:-1], SECRET.upper()):
            headers = {SECRET_HEADER: wrong}
            async with http.request(method, url, data=body, headers=headers) as resp:
                assert resp.status == 403, (method, path, wrong)
    node = node_server.app[NODE]
    assert node.requests == {}  # no handler ran
    assert node.status()["count"] == 0
    assert not list((node.config.data / "store" / "chunks").iterdir())
    # And with the secret, the routes answer.
    async with http.get(_url(node_server, "/status"), headers={SECRET_HEADER: SECRET}) as resp:
        assert resp.status == 200


async def test_client_with_a_wrong_secret(node_server: TestServer) -> None:
    bad = NodeClient(str(node_server.make_url("")), "wrong")
    try:
        with pytest.raises(NodeAuthError):
            await bad.status()
        with pytest.raises(NodeAuthError):
            await bad.has(bytes(32))
        with pytest.raises(NodeAuthError):
            await bad.scrub()
    finally:
        await bad.close()


# -- id validation --------------------------------------------------------------------------------


BAD_IDS = [
    "..%2F..%2Fnode-id",
    "..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "%2E%2E%2Fsummary.json",
    "..",
    "..%5C..%5Cnode-id",
    HEX.upper(),
    "Ab" + HEX[2:],
    HEX[:-1],
    HEX + "0",
    HEX[:-2] + "%00",
    HEX[:-2] + "zz",
    "",
    f"{HEX}%2F{HEX}",
    f"{HEX[:2]}%2F{HEX[2:4]}%2F{HEX}",
]


async def test_invalid_ids_are_refused_before_touching_disk(
    node_server: TestServer, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    touched: list[str] = []
    for name in ("put", "get", "has", "delete", "path_of"):
        real = getattr(DirectoryChunkStore, name)

        def spy(self: Any, *args: Any, _name: str = name, _real: Any = real) -> Any:
            touched.append(_name)
            return _real(self, *args)

        monkeypatch.setattr(DirectoryChunkStore, name, spy)
    headers = {SECRET_HEADER: SECRET}
    for bad in BAD_IDS:
        for method in ("PUT", "GET", "HEAD", "DELETE"):
            url = _url(node_server, f"/chunks/{bad}")
            async with http.request(method, url, data=b"x", headers=headers) as resp:
                assert resp.status == 400, (method, bad, resp.status)
    assert touched == []
    data_dir = node_server.app[NODE].config.data
    assert sorted(p.name for p in data_dir.iterdir()) == [
        "lock",
        "node-id",
        "store",
        "summary.json",
    ]
    for query in ("after=AB", "after=abc", "after=" + "00" * 33, "limit=-1", "limit=x"):
        async with http.get(_url(node_server, f"/chunks?{query}"), headers=headers) as resp:
            assert resp.status == 400, query
    # Batch bodies that are not whole ids.
    for path in ("/batch/get", "/batch/delete"):
        async with http.post(_url(node_server, path), data=b"x" * 33, headers=headers) as resp:
            assert resp.status == 400


# -- chunks ---------------------------------------------------------------------------------------


async def test_forged_chunk_is_refused_and_not_stored(
    node_server: TestServer, http: aiohttp.ClientSession, client: NodeClient, rng: random.Random
) -> None:
    chunk_id, data = _chunk(rng, 5000)
    headers = {SECRET_HEADER: SECRET}
    url = _url(node_server, f"/chunks/{chunk_id.hex()}")
    async with http.put(url, data=data[:-1] + b"!", headers=headers) as resp:
        assert resp.status == 422
    assert not await client.has(chunk_id)
    store = node_server.app[NODE].store
    assert store is not None
    assert not store.path_of(chunk_id).exists()
    with pytest.raises(ChunkCorrupt):
        await client.put(chunk_id, b"forged")
    # In a batch: the forged frame is refused, the others are stored.
    good = [_chunk(rng, 100) for _ in range(3)]
    frames = b"".join(frame_header(i, len(d)) + d for i, d in good[:2])
    frames += frame_header(chunk_id, 6) + b"forged" + frame_header(*good[2][:1], 100) + good[2][1]
    async with http.post(_url(node_server, "/batch/put"), data=frames, headers=headers) as resp:
        assert resp.status == 200
        results = [r["result"] for r in (await resp.json())["results"]]
    assert results == ["stored", "stored", "corrupt", "stored"]
    assert not await client.has(chunk_id)
    assert await client.usage() == StoreUsage(count=3, bytes=300)
    # Idempotent: a chunk already held is a cheap success.
    async with http.put(url, data=data, headers=headers) as resp:
        assert resp.status == 201
    async with http.put(url, data=data, headers=headers) as resp:
        assert resp.status == 200
    assert await client.usage() == StoreUsage(count=4, bytes=5300)


async def test_truncated_and_oversized_bodies(
    node_server: TestServer, http: aiohttp.ClientSession, client: NodeClient, rng: random.Random
) -> None:
    headers = {SECRET_HEADER: SECRET}
    chunk_id, data = _chunk(rng, 100)
    truncated = frame_header(chunk_id, 100) + data + frame_header(chunk_id, 100) + data[:50]
    async with http.post(_url(node_server, "/batch/put"), data=truncated, headers=headers) as r:
        assert r.status == 400
    assert await client.get(chunk_id) == data  # the complete frame was stored
    huge = frame_header(chunk_id, 16 * 1024 * 1024 + 1)
    async with http.post(_url(node_server, "/batch/put"), data=huge, headers=headers) as r:
        assert r.status == 413
    big = os.urandom(16 * 1024 * 1024 + 1)
    url = _url(node_server, f"/chunks/{chunk_id_of(big).hex()}")
    async with http.put(url, data=io.BytesIO(big), headers=headers) as r:
        assert r.status == 413
    with pytest.raises(ValueError):
        await client.put(chunk_id_of(big), big)


async def test_batches_of_many_small_chunks_take_few_requests(
    client: NodeClient, rng: random.Random
) -> None:
    small = [_chunk(rng, rng.randrange(1, 2000)) for _ in range(500)]
    await client.put_many(small)
    ids = [i for i, _ in small]
    got = await client.fetch_many([*ids, bytes(32)])
    assert got[:-1] == [d for _, d in small]
    assert isinstance(got[-1], ChunkNotFound)
    status = await client.status()
    assert status["count"] == 500
    assert status["used"] == sum(len(d) for _, d in small)
    assert status["requests"] == {"batch_put": 1, "batch_get": 1, "status": 1}

    # Request count scales with bytes: 200 chunks of 64 KiB (12.5 MiB) in 8 MiB batches.
    large = [_chunk(rng, 64 * 1024) for _ in range(200)]
    await client.put_many(large)
    assert (await client.status())["requests"]["batch_put"] == 1 + 2

    deleted = await client.delete_many([*ids, bytes(32)])
    assert deleted == [True] * 500 + [False]
    status = await client.status()
    assert status["requests"]["batch_delete"] == 1
    assert (status["count"], status["used"]) == (200, 200 * 64 * 1024)
    assert await client.list_ids(limit=10_000) == sorted(i for i, _ in large)


async def test_concurrent_puts_are_coalesced_into_batches(
    client: NodeClient, rng: random.Random
) -> None:
    """put() one chunk at a time, 300 at once (as uploads do): a few single PUTs, the rest
    carried together in /batch/put requests; every chunk durable, a bad one refused alone."""
    items = [_chunk(rng, rng.randrange(1, 20_000)) for _ in range(300)]
    bad_id = items[7][0]
    items[7] = (bad_id, b"not the data")
    outcomes = await asyncio.gather(*(client.put(i, d) for i, d in items), return_exceptions=True)
    assert isinstance(outcomes[7], ChunkCorrupt)
    assert all(o == () for n, o in enumerate(outcomes) if n != 7)
    requests = (await client.status())["requests"]
    sent = requests.get("put", 0) + requests.get("batch_put", 0)
    assert sent == client.requests and sent <= 30, requests
    assert requests.get("batch_put", 0) >= 1
    assert await client.list_ids(limit=1000) == sorted(i for i, _ in items if i != bad_id)
    for chunk_id, data in items[:20]:
        if chunk_id != bad_id:
            assert await client.get(chunk_id) == data


async def test_batch_get_reports_missing_and_damaged(
    node_server: TestServer, http: aiohttp.ClientSession, client: NodeClient, rng: random.Random
) -> None:
    items = [_chunk(rng, 3000) for _ in range(3)]
    await client.put_many(items)
    store = node_server.app[NODE].store
    assert store is not None
    damaged = store.path_of(items[1][0])
    damaged.write_bytes(b"bit rot" + damaged.read_bytes()[7:])
    missing = chunk_id_of(b"never stored")
    got = await client.fetch_many([items[0][0], items[1][0], missing, items[2][0]])
    assert got[0] == items[0][1]
    assert isinstance(got[1], ChunkCorrupt)
    assert isinstance(got[2], ChunkNotFound)
    assert got[3] == items[2][1]
    with pytest.raises(ChunkCorrupt):
        await client.get(items[1][0])
    # The raw frame of a missing id has the length 0xFFFFFFFF and no data.
    url = _url(node_server, "/batch/get")
    async with http.post(url, data=missing, headers={SECRET_HEADER: SECRET}) as resp:
        assert await resp.read() == frame_header(missing, MISSING)


# -- identity and usage summary -------------------------------------------------------------------


def _write_chunk_files(store_root: Path, count: int, rng: random.Random) -> int:
    """Chunk files written straight to disk (fast: no fsync), as a previous node left them."""
    total = 0
    for n in range(count):
        data = n.to_bytes(4, "big") + rng.randbytes(rng.randrange(0, 60))
        hex_id = chunk_id_of(data).hex()
        leaf = store_root / "chunks" / hex_id[0:2] / hex_id[2:4]
        leaf.mkdir(parents=True, exist_ok=True)
        (leaf / hex_id).write_bytes(data)
        total += len(data)
    return total


async def _open_app(config: NodeConfig) -> tuple[TestServer, NodeClient]:
    server = TestServer(create_app(config))
    await server.start_server()
    return server, NodeClient(str(server.make_url("")), SECRET)


async def test_restart_keeps_id_and_summary_without_scanning(
    tmp_path: Path, rng: random.Random, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "node"
    total = _write_chunk_files(data / "store", 20_000, rng)
    config = _config(data)

    # First start: no summary, so one scan builds it.
    server, client = await _open_app(config)
    status = await client.status()
    node_id = status["id"]
    assert (status["count"], status["used"], status["summary"]) == (20_000, total, "scan")
    extra_id, extra = _chunk(rng, 1000)
    await client.put(extra_id, extra)
    await client.close()
    await server.close()
    persisted = summary_mod.read(data)
    assert persisted == summary_mod.Persisted(count=20_001, bytes=total + 1000, clean=True)
    assert (data / "node-id").read_text().strip() == node_id

    # Restart: the persisted summary is used; a scan would fail this test.
    def no_scan(self: DirectoryChunkStore) -> StoreUsage:
        raise AssertionError("startup scanned the store")

    monkeypatch.setattr(DirectoryChunkStore, "_usage_sync", no_scan)
    started = time.monotonic()
    server, client = await _open_app(config)
    status = await client.status()
    assert time.monotonic() - started < 5
    assert status["id"] == node_id
    assert (status["count"], status["used"], status["summary"]) == (
        20_001,
        total + 1000,
        "persisted",
    )
    assert status["summary_trusted"]
    # While running, the file says "not clean" (so a crash is detected) and keeps up.
    assert await client.delete(extra_id)
    await asyncio.sleep(0.3)
    assert summary_mod.read(data) == summary_mod.Persisted(20_000, total, clean=False)
    await client.close()
    await server.close()
    assert summary_mod.read(data) == summary_mod.Persisted(20_000, total, clean=True)


async def test_unclean_summary_is_reconciled_in_the_background(
    tmp_path: Path, rng: random.Random
) -> None:
    data = tmp_path / "node"
    total = _write_chunk_files(data / "store", 300, rng)
    data.mkdir(exist_ok=True)
    summary_mod.write(data, 290, total - 100, clean=False)  # as a crash left it
    server, client = await _open_app(_config(data))
    try:
        status = await client.status()
        assert status["summary"] == "persisted"
        for _ in range(100):
            status = await client.status()
            if status["summary_trusted"]:
                break
            await asyncio.sleep(0.05)
        assert (status["count"], status["used"]) == (300, total)
    finally:
        await client.close()
        await server.close()
    assert summary_mod.read(data) == summary_mod.Persisted(300, total, clean=True)


async def test_lost_summary_is_rebuilt(tmp_path: Path, rng: random.Random) -> None:
    data = tmp_path / "node"
    server, client = await _open_app(_config(data))
    items = [_chunk(rng, 500) for _ in range(10)]
    await client.put_many(items)
    await client.close()
    await server.close()
    (data / "summary.json").unlink()
    server, client = await _open_app(_config(data))
    try:
        status = await client.status()
        assert (status["count"], status["used"], status["summary"]) == (10, 5000, "scan")
    finally:
        await client.close()
        await server.close()


async def test_one_process_per_directory(tmp_path: Path) -> None:
    from storage_node.app import Node, NodeDirBusy

    first = Node(_config(tmp_path / "node"))
    await first.open()
    try:
        with pytest.raises(NodeDirBusy):
            await Node(_config(tmp_path / "node")).open()
    finally:
        await first.close()


# -- scrub ----------------------------------------------------------------------------------------


def _damage(store: DirectoryChunkStore, chunk_id: bytes) -> bytes:
    """Flip the first byte of a chunk file in place (same size); the damaged content."""
    path = store.path_of(chunk_id)
    raw = path.read_bytes()
    damaged = bytes([raw[0] ^ 0xFF]) + raw[1:]
    path.write_bytes(damaged)
    return damaged


def _spy_scrubbed(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bytes, float]]:
    """Record (id, time) of every chunk file the node re-hashes."""
    seen: list[tuple[bytes, float]] = []
    real = node_app._scrub_file

    def spy(path: str, chunk_id: bytes, quarantine: str) -> tuple[int, bool] | None:
        seen.append((chunk_id, time.monotonic()))
        return real(path, chunk_id, quarantine)

    monkeypatch.setattr(node_app, "_scrub_file", spy)
    return seen


async def test_scrub_quarantines_damaged_chunks(tmp_path: Path, rng: random.Random) -> None:
    data_dir = tmp_path / "node"
    server, client = await _open_app(_config(data_dir))
    try:
        items = [_chunk(rng, rng.randrange(1000, 5000)) for _ in range(6)]
        await client.put_many(items)
        total = sum(len(d) for _, d in items)
        store = server.app[NODE].store
        assert store is not None
        bad_id, bad_data = items[2]
        damaged = _damage(store, bad_id)

        page = await client.scrub()
        assert page == ScrubPage(checked=6, bytes=total, corrupt=[bad_id], next=None)
        # Quarantined: moved aside, no longer served, listed or counted.
        assert (data_dir / "quarantine" / bad_id.hex()).read_bytes() == damaged
        assert not store.path_of(bad_id).exists()
        async with aiohttp.ClientSession() as http:
            url = _url(server, f"/chunks/{bad_id.hex()}")
            async with http.get(url, headers={SECRET_HEADER: SECRET}) as resp:
                assert resp.status == 404
        with pytest.raises(ChunkNotFound):
            await client.get(bad_id)
        assert not await client.has(bad_id)
        assert await client.list_ids() == sorted(i for i, _ in items if i != bad_id)
        status = await client.status()
        assert (status["count"], status["used"]) == (5, total - len(bad_data))
        assert status["scrub"] == {"checked": 6, "bytes": total, "corrupt": 1}
        assert status["requests"]["scrub"] == 1

        # A second pass finds nothing more.
        page = await client.scrub()
        assert page == ScrubPage(checked=5, bytes=total - len(bad_data), corrupt=[], next=None)
        assert (await client.status())["scrub"] == {
            "checked": 11,
            "bytes": 2 * total - len(bad_data),
            "corrupt": 1,
        }
        # A good copy (the gateway's repair) is a new chunk again.
        await client.put(bad_id, bad_data)
        assert await client.get(bad_id) == bad_data
        assert (await client.usage()) == StoreUsage(count=6, bytes=total)
        assert (await client.scrub()).corrupt == []
        _damage(store, bad_id)
        assert (await client.scrub(limit=MAX_SCRUB_LIMIT)).corrupt == [bad_id]
        assert (await client.usage()) == StoreUsage(count=5, bytes=total - len(bad_data))
    finally:
        await client.close()
        await server.close()
    # The persisted summary is exact: a rebuild by a scan finds the same numbers.
    expected = summary_mod.Persisted(5, total - len(bad_data), clean=True)
    assert summary_mod.read(data_dir) == expected
    (data_dir / "summary.json").unlink()
    server, client = await _open_app(_config(data_dir))
    try:
        status = await client.status()
        assert (status["count"], status["used"], status["summary"]) == (5, expected.bytes, "scan")
        assert status["scrub"] == {"checked": 0, "bytes": 0, "corrupt": 0}
    finally:
        await client.close()
        await server.close()


async def test_scrub_pages_cover_every_chunk_once(
    node_server: TestServer, client: NodeClient, rng: random.Random, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = [_chunk(rng, 100 + n) for n in range(23)]
    await client.put_many(items)
    ids = sorted(i for i, _ in items)
    store = node_server.app[NODE].store
    assert store is not None
    damaged = [ids[0], ids[7], ids[22]]
    for chunk_id in damaged:
        _damage(store, chunk_id)
    seen = _spy_scrubbed(monkeypatch)

    pages: list[ScrubPage] = []
    after: bytes | None = None
    while True:
        page = await client.scrub(after=after, limit=5)
        pages.append(page)
        if page.next is None:
            break
        after = page.next
    assert [p.checked for p in pages] == [5, 5, 5, 5, 3]
    assert [p.next for p in pages] == [ids[4], ids[9], ids[14], ids[19], None]
    assert [i for p in pages for i in p.corrupt] == damaged
    assert [i for i, _ in seen] == ids  # each chunk exactly once, in id order
    assert sum(p.bytes for p in pages) == sum(len(d) for _, d in items)

    # 20 chunks left, pages of 10: the listing ends exactly at a page boundary, so the second
    # page still names a next id, and a third, empty, page says that was the end.
    seen.clear()
    left = [i for i in ids if i not in damaged]
    sizes = {i: len(d) for i, d in items}
    first = await client.scrub(limit=10)
    assert first == ScrubPage(10, sum(sizes[i] for i in left[:10]), [], left[9])
    second = await client.scrub(after=first.next, limit=10)
    assert second == ScrubPage(10, sum(sizes[i] for i in left[10:]), [], left[19])
    assert await client.scrub(after=second.next, limit=10) == ScrubPage(0, 0, [], None)
    assert [i for i, _ in seen] == left


async def test_scrub_skips_chunks_deleted_meanwhile(
    node_server: TestServer, client: NodeClient, rng: random.Random, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = [_chunk(rng, 1000) for _ in range(4)]
    await client.put_many(items)
    victim = sorted(i for i, _ in items)[1]
    node = node_server.app[NODE]
    real_list = DirectoryChunkStore.list_ids

    async def list_then_delete(
        self: DirectoryChunkStore, after: bytes | None = None, limit: int = 1000
    ) -> list[bytes]:
        listed = await real_list(self, after=after, limit=limit)
        assert await node.delete_chunk(victim)  # after the listing, before the check
        return listed

    monkeypatch.setattr(DirectoryChunkStore, "list_ids", list_then_delete)
    page = await client.scrub()
    assert page == ScrubPage(checked=3, bytes=3000, corrupt=[], next=None)
    assert await client.usage() == StoreUsage(count=3, bytes=3000)


async def test_scrub_is_paced_by_rate(
    node_server: TestServer, client: NodeClient, rng: random.Random, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = 256 * 1024
    items = [_chunk(rng, size) for _ in range(4)]  # 1 MiB
    await client.put_many(items)
    rate = 4 * 1024 * 1024
    seen = _spy_scrubbed(monkeypatch)
    # A session whose read timeout is shorter than the scrub: the scrub request ignores it.
    session = make_session(read_timeout=0.1)
    try:
        slow_reader = NodeClient(str(node_server.make_url("")), SECRET, session)
        started = time.monotonic()
        page = await slow_reader.scrub(rate=rate)
        elapsed = time.monotonic() - started
    finally:
        await session.close()
    assert page == ScrubPage(checked=4, bytes=4 * size, corrupt=[], next=None)
    assert elapsed >= 4 * size / rate  # 0.25 s
    # Paced between chunks, not in one burst: the k-th read starts k * size / rate in (less
    # half a chunk's time, for the delay before the first read).
    times = [t for _, t in seen]
    for k in range(1, 4):
        assert times[k] - times[0] >= (k - 0.5) * size / rate, (k, times)
    # Unlimited (rate 0, the default): no pacing at all.
    seen.clear()
    started = time.monotonic()
    assert (await client.scrub()).checked == 4
    assert len(seen) == 4
    assert time.monotonic() - started < elapsed


async def test_scrub_refuses_bad_parameters(
    node_server: TestServer, http: aiohttp.ClientSession, client: NodeClient, rng: random.Random
) -> None:
    await client.put_many([_chunk(rng, 100)])
    headers = {SECRET_HEADER: SECRET}
    bad = [
        "after=" + HEX.upper(), "after=abc", "after=", "after=" + HEX[:-2], "after=" + HEX + "00",
        "after=" + HEX[:-1] + "g", "limit=0", f"limit={MAX_SCRUB_LIMIT + 1}", "limit=-1",
        "limit=x", "limit=1.5", "limit=", "limit=+5", "limit=1_0", "limit=%205",
        "limit=" + "9" * 30, "rate=-1", "rate=x", "rate=1e6", "rate=", "rate=1.5",
    ]  # fmt: skip
    for query in bad:
        async with http.post(_url(node_server, f"/scrub?{query}"), headers=headers) as resp:
            assert resp.status == 400, query
    assert (await client.status())["scrub"] == {"checked": 0, "bytes": 0, "corrupt": 0}
    for query in (f"after={HEX}&limit={MAX_SCRUB_LIMIT}&rate=0", "limit=1", "rate=999999999"):
        async with http.post(_url(node_server, f"/scrub?{query}"), headers=headers) as resp:
            assert resp.status == 200, query
            assert set(await resp.json()) == {"checked", "bytes", "corrupt", "next"}
    # The client checks its arguments before sending anything.
    sent = (await client.status())["requests"]["scrub"]
    assert sent == len(bad) + 3
    for kwargs in (
        {"limit": 0},
        {"limit": MAX_SCRUB_LIMIT + 1},
        {"rate": -1},
        {"after": b"short"},
        {"after": bytes(33)},
    ):
        with pytest.raises(ValueError):
            await client.scrub(**kwargs)
    assert (await client.status())["requests"]["scrub"] == sent


# -- the real process -----------------------------------------------------------------------------


async def test_node_process_restart_and_heartbeats(tmp_path: Path, rng: random.Random) -> None:
    beats: list[dict[str, Any]] = []
    secrets_seen: list[str | None] = []

    async def record(request: web.Request) -> web.Response:
        secrets_seen.append(request.headers.get(SECRET_HEADER))
        beats.append(await request.json())
        if len(beats) == 1:
            return web.Response(status=503)  # a failure is retried, never fatal
        return web.json_response({"ok": True})

    recorder_app = web.Application()
    recorder_app.router.add_post(HEARTBEAT_PATH, record)
    recorder = TestServer(recorder_app)
    await recorder.start_server()
    node = NodeProcess(
        data=tmp_path / "node",
        log=tmp_path / "node.log",
        gateway=str(recorder.make_url("")).rstrip("/"),
        extra=("--heartbeat", "0.1", "--capacity", "123456789",
               "--advertise", "http://node-1.example:9100"),
    )  # fmt: skip
    try:
        await asyncio.to_thread(node.start)

        async def wait_for_beats(n: int) -> None:
            for _ in range(200):
                if len(beats) >= n:
                    return
                await asyncio.sleep(0.05)
            raise AssertionError(f"only {len(beats)} heartbeats: {node.log.read_text()[-2000:]}")

        await wait_for_beats(3)
        status = await asyncio.to_thread(node.status)
        assert beats[0] == {
            "id": status["id"],
            "url": "http://node-1.example:9100",
            "capacity": 123456789,
            "used": 0,
            "count": 0,
        }
        assert set(secrets_seen) == {SECRET}

        client = NodeClient(node.url, SECRET)
        try:
            items = [_chunk(rng, 1000) for _ in range(5)]
            await client.put_many(items)
            seen = len(beats)
            await wait_for_beats(seen + 2)
            assert beats[-1]["count"] == 5
            assert beats[-1]["used"] == 5000
        finally:
            await client.close()

        assert await asyncio.to_thread(node.stop) == 0  # SIGTERM: graceful, exit code 0
        assert summary_mod.read(node.data) == summary_mod.Persisted(5, 5000, clean=True)
        await asyncio.to_thread(node.start)
        restarted = await asyncio.to_thread(node.status)
        assert restarted["id"] == status["id"]
        assert (restarted["count"], restarted["used"], restarted["summary"]) == (
            5,
            5000,
            "persisted",
        )
        client = NodeClient(node.url, SECRET)
        try:
            for chunk_id, data in items:
                assert await client.get(chunk_id) == data
        finally:
            await client.close()
    finally:
        if node.proc is not None:
            await asyncio.to_thread(node.stop)
        await recorder.close()


def test_node_cli_needs_a_secret(tmp_path: Path) -> None:
    env = server_env()
    env.pop("S3DEDUP_CLUSTER_SECRET", None)
    out = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "node", "--data", str(tmp_path / "n"),
         "--listen", "127.0.0.1:1", "--gateway", "http://127.0.0.1:2"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2
    assert "cluster-secret" in out.stderr


async def test_summary_stop_waits_for_the_periodic_write(tmp_path: Path) -> None:
    """stop() cancels the periodic writer, whose write runs in a thread: the final write must
    not race it (a shared temporary file: FileNotFoundError on replace, seen once in a CI-like
    run) nor be overtaken by it (stale counters, clean=False). Cancel a flush while its
    thread runs, then stop, many times: the summary on disk is always the final one."""
    for n in range(200):
        summary = summary_mod.Summary(tmp_path, 0, 0, interval=3600)
        summary.add(n, 10 * n)
        periodic = asyncio.create_task(summary.flush())
        await asyncio.sleep(0)  # its thread is writing now
        periodic.cancel()
        summary.add(1, 1)
        await summary.stop()  # the final, clean write
        with contextlib.suppress(asyncio.CancelledError):
            await periodic
        on_disk = summary_mod.read(tmp_path)
        assert on_disk == summary_mod.Persisted(count=n + 1, bytes=10 * n + 1, clean=True), n
