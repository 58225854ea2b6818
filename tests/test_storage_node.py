"""The storage node (`s3dedup node`): auth, id validation, batches, summary, heartbeats.

The ChunkStore contract itself runs against a real node process in test_store_contract.py.
"""

from __future__ import annotations

import asyncio
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
from gateway.cluster.client import NodeAuthError, NodeClient
from storage_node import summary as summary_mod
from storage_node.app import NODE, NodeConfig, create_app
from storage_node.protocol import HEARTBEAT_PATH, MISSING, SECRET_HEADER, frame_header
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
    got = await client.get_many([*ids, bytes(32)])
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
    got = await client.get_many([items[0][0], items[1][0], missing, items[2][0]])
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
