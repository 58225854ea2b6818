"""One contract for every ChunkStore, plus DirectoryChunkStore's on-disk promises."""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from dedup.store import (
    ChunkCorrupt,
    ChunkNotFound,
    ChunkStore,
    DirectoryChunkStore,
    MemoryChunkStore,
    StoreUsage,
    chunk_id_of,
)
from gateway.cluster.client import NodeClient
from tests.test_storage_node import SECRET, NodeProcess, unused_gateway


def _chunk(rng: random.Random, size: int = 1000) -> tuple[bytes, bytes]:
    data = rng.randbytes(size)
    return chunk_id_of(data), data


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    return random.Random(request.node.nodeid)


@pytest.fixture(scope="module")
def node_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """A real `s3dedup node` process (its gateway is absent: heartbeats fail harmlessly)."""
    tmp = tmp_path_factory.mktemp("node")
    node = NodeProcess(data=tmp / "data", log=tmp / "node.log", gateway=unused_gateway())
    node.start()
    yield node
    assert node.stop() == 0


@pytest.fixture(params=["memory", "directory", "storage-node"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ChunkStore]:
    chunk_store: ChunkStore
    if request.param == "memory":
        chunk_store = MemoryChunkStore()
    elif request.param == "directory":
        chunk_store = DirectoryChunkStore(tmp_path / "store", threads=8)
    else:
        # One node process per module, emptied before each test through the client itself.
        node: NodeProcess = request.getfixturevalue("node_process")
        client = NodeClient(node.url, SECRET)
        await client.delete_many(await client.list_ids(limit=1_000_000))
        assert await client.usage() == StoreUsage(count=0, bytes=0)
        chunk_store = client
    yield chunk_store
    await chunk_store.close()


@pytest.fixture
async def dir_store(tmp_path: Path) -> AsyncIterator[DirectoryChunkStore]:
    chunk_store = await DirectoryChunkStore.open(tmp_path / "store", threads=8)
    yield chunk_store
    await chunk_store.close()


# -- the contract -----------------------------------------------------------------------------


async def test_put_get_round_trip(store: ChunkStore, rng: random.Random) -> None:
    for size in (0, 1, 1000, 256 * 1024 + 3):
        chunk_id, data = _chunk(rng, size)
        await store.put(chunk_id, data)
        assert await store.get(chunk_id) == data
        assert await store.has(chunk_id)


async def test_put_accepts_memoryview(store: ChunkStore, rng: random.Random) -> None:
    buffer = bytearray(rng.randbytes(5000))
    view = memoryview(buffer)[100:4100]
    chunk_id = chunk_id_of(view)
    await store.put(chunk_id, view)
    got = await store.get(chunk_id)
    assert isinstance(got, bytes)
    assert got == bytes(buffer[100:4100])


async def test_put_is_idempotent(store: ChunkStore, rng: random.Random) -> None:
    chunk_id, data = _chunk(rng)
    await store.put(chunk_id, data)
    await store.put(chunk_id, data)
    await store.put(chunk_id, memoryview(data))
    assert await store.get(chunk_id) == data
    assert await store.usage() == StoreUsage(count=1, bytes=len(data))
    assert await store.list_ids() == [chunk_id]


async def test_corrupt_put_is_refused_and_not_stored(store: ChunkStore, rng: random.Random) -> None:
    chunk_id, data = _chunk(rng)
    with pytest.raises(ChunkCorrupt):
        await store.put(chunk_id, data + b"x")
    with pytest.raises(ChunkCorrupt):
        await store.put(chunk_id, b"")
    assert not await store.has(chunk_id)
    with pytest.raises(ChunkNotFound):
        await store.get(chunk_id)
    assert await store.list_ids() == []
    assert await store.usage() == StoreUsage(count=0, bytes=0)


async def test_corrupt_put_of_held_chunk_is_refused(store: ChunkStore, rng: random.Random) -> None:
    chunk_id, data = _chunk(rng)
    await store.put(chunk_id, data)
    with pytest.raises(ChunkCorrupt):
        await store.put(chunk_id, b"something else")
    assert await store.get(chunk_id) == data


async def test_missing_chunk(store: ChunkStore, rng: random.Random) -> None:
    chunk_id, _ = _chunk(rng)
    with pytest.raises(ChunkNotFound):
        await store.get(chunk_id)
    assert not await store.has(chunk_id)
    assert not await store.delete(chunk_id)


async def test_delete_is_idempotent(store: ChunkStore, rng: random.Random) -> None:
    chunk_id, data = _chunk(rng)
    other_id, other = _chunk(rng)
    await store.put_many([(chunk_id, data), (other_id, other)])
    assert await store.delete(chunk_id)
    assert not await store.delete(chunk_id)
    assert not await store.has(chunk_id)
    with pytest.raises(ChunkNotFound):
        await store.get(chunk_id)
    assert await store.get(other_id) == other
    assert await store.list_ids() == [other_id]
    # Put again after delete works.
    await store.put(chunk_id, data)
    assert await store.get(chunk_id) == data


@pytest.mark.parametrize(
    "bad_id", [b"", b"\x00" * 31, b"\x00" * 33, bytearray(32), "00" * 32, "0" * 32]
)
async def test_invalid_ids_are_rejected(store: ChunkStore, bad_id: object) -> None:
    with pytest.raises(ValueError):
        await store.put(bad_id, b"")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        await store.put_many([(bad_id, b"")])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        await store.get(bad_id)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        await store.has(bad_id)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        await store.delete(bad_id)  # type: ignore[arg-type]


async def test_list_ids_pagination(store: ChunkStore, rng: random.Random) -> None:
    # At least 1500 random ids, drawn until they cover all 256 top-level directories (about
    # 1600 on average, whatever the seed), with leaf directories holding more than one id.
    items = [_chunk(rng, 16) for _ in range(1500)]
    while len({chunk_id[:1] for chunk_id, _ in items}) < 256:
        items.append(_chunk(rng, 16))
    await store.put_many(items)
    expected = sorted(chunk_id for chunk_id, _ in items)
    assert len({i[:1] for i in expected}) == 256
    assert len({i[:2] for i in expected}) < len(expected)

    assert await store.list_ids(limit=5000) == expected
    assert await store.list_ids() == expected[:1000]
    assert await store.list_ids(limit=0) == []
    for limit in (1, 7, 250, len(items) - 1, len(items)):
        pages: list[bytes] = []
        after: bytes | None = None
        while True:
            page = await store.list_ids(after=after, limit=limit)
            assert len(page) <= limit
            if not page:
                break
            pages.extend(page)
            after = page[-1]
        assert pages == expected


async def test_list_ids_after_non_member_values(store: ChunkStore, rng: random.Random) -> None:
    items = [_chunk(rng, 16) for _ in range(400)]
    await store.put_many(items)
    expected = sorted(chunk_id for chunk_id, _ in items)
    assert await store.list_ids(after=b"", limit=1000) == expected
    assert await store.list_ids(after=b"\xff" * 32) == []
    assert await store.list_ids(after=b"\x00" * 32, limit=1000) == expected
    probes = [
        bytes(32),
        b"\x80",
        b"\x80\x00",
        b"\x80\x00\x00",
        b"\x7f\xff",
        b"\x80" + b"\xff" * 40,
        *(rng.randbytes(32) for _ in range(20)),
        *(i[:-1] + bytes([i[-1] ^ 1]) for i in expected[::37]),
        *(i[:2] for i in expected[::41]),
    ]
    for after in probes:
        want = [i for i in expected if i > after][:25]
        assert await store.list_ids(after=after, limit=25) == want, after.hex()


async def test_list_ids_bad_arguments(store: ChunkStore) -> None:
    with pytest.raises(ValueError):
        await store.list_ids(limit=-1)
    with pytest.raises(TypeError):
        await store.list_ids(after="00")  # type: ignore[arg-type]


async def test_put_many(store: ChunkStore, rng: random.Random) -> None:
    items = [_chunk(rng, rng.randrange(0, 20_000)) for _ in range(60)]
    await store.put_many([*items, *items[:10]])  # duplicates in one batch are fine
    for chunk_id, data in items:
        assert await store.get(chunk_id) == data
    assert await store.usage() == StoreUsage(count=60, bytes=sum(len(d) for _, d in items))
    await store.put_many([])


async def test_put_many_with_a_corrupt_item(store: ChunkStore, rng: random.Random) -> None:
    good = [_chunk(rng) for _ in range(20)]
    bad_id, _ = _chunk(rng)
    with pytest.raises(ChunkCorrupt):
        await store.put_many([*good[:10], (bad_id, b"not it"), *good[10:]])
    # Every good item was still stored, and is there when put_many returns.
    for chunk_id, data in good:
        assert await store.get(chunk_id) == data
    assert not await store.has(bad_id)


async def test_usage(store: ChunkStore, rng: random.Random) -> None:
    assert await store.usage() == StoreUsage(count=0, bytes=0)
    items = [_chunk(rng, size) for size in (0, 10, 1000, 70_000)]
    await store.put_many(items)
    assert await store.usage() == StoreUsage(count=4, bytes=71_010)
    await store.delete(items[3][0])
    assert await store.usage() == StoreUsage(count=3, bytes=1010)


async def test_concurrent_puts(store: ChunkStore, rng: random.Random) -> None:
    items = [_chunk(rng, rng.randrange(1, 64 * 1024)) for _ in range(100)]
    await asyncio.gather(*(store.put(chunk_id, data) for chunk_id, data in items))
    assert await store.list_ids() == sorted(chunk_id for chunk_id, _ in items)
    results = await asyncio.gather(*(store.get(chunk_id) for chunk_id, _ in items))
    assert results == [data for _, data in items]


async def test_concurrent_puts_of_one_chunk(store: ChunkStore, rng: random.Random) -> None:
    chunk_id, data = _chunk(rng, 100_000)
    outcomes = await asyncio.gather(
        *(store.put(chunk_id, data if n % 10 else b"wrong") for n in range(100)),
        return_exceptions=True,
    )
    assert sum(isinstance(o, ChunkCorrupt) for o in outcomes) == 10
    assert all(o == () or isinstance(o, ChunkCorrupt) for o in outcomes)
    assert await store.get(chunk_id) == data
    assert await store.usage() == StoreUsage(count=1, bytes=len(data))


async def test_concurrent_mixed_operations(store: ChunkStore, rng: random.Random) -> None:
    items = [_chunk(rng, 2000) for _ in range(50)]
    await store.put_many(items[:25])

    async def reader() -> None:
        # items[:10] race the deleter: a read may come before or after its delete, so
        # it sees the whole chunk or ChunkNotFound, never anything else.
        for n, (chunk_id, data) in enumerate(items[:25]):
            try:
                assert await store.get(chunk_id) == data
            except ChunkNotFound:
                assert n < 10

    async def deleter() -> None:
        for chunk_id, _ in items[:10]:
            assert await store.delete(chunk_id)

    await asyncio.gather(store.put_many(items[25:]), reader(), deleter(), store.list_ids())
    assert await store.list_ids() == sorted(chunk_id for chunk_id, _ in items[10:])


async def test_closed_store_refuses_work(store: ChunkStore, rng: random.Random) -> None:
    chunk_id, data = _chunk(rng)
    await store.put(chunk_id, data)
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(RuntimeError):
        await store.get(chunk_id)
    with pytest.raises(RuntimeError):
        await store.put(chunk_id, data)


# -- DirectoryChunkStore only -----------------------------------------------------------------


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


async def test_directory_layout(dir_store: DirectoryChunkStore, rng: random.Random) -> None:
    chunk_id, data = _chunk(rng)
    await dir_store.put(chunk_id, data)
    hex_id = chunk_id.hex()
    expected = dir_store.root / "chunks" / hex_id[0:2] / hex_id[2:4] / hex_id
    assert dir_store.path_of(chunk_id) == expected
    assert expected.read_bytes() == data
    assert _files(dir_store.root) == [expected]  # no temporary file left behind


async def test_directory_corrupt_put_leaves_no_file(
    dir_store: DirectoryChunkStore, rng: random.Random
) -> None:
    chunk_id, data = _chunk(rng)
    with pytest.raises(ChunkCorrupt):
        await dir_store.put(chunk_id, data[:-1])
    assert _files(dir_store.root) == []


async def test_directory_put_after_a_finished_corrupt_put_does_not_spin(
    dir_store: DirectoryChunkStore, rng: random.Random
) -> None:
    """A put of good data that finds a bad put of the same chunk already finished (its done
    callback still queued behind this task) writes the chunk. It used to await the finished
    future again and again, which never yields: the event loop spun for ever."""
    chunk_id, data = _chunk(rng)
    await dir_store.put(chunk_id, data)
    assert await dir_store.delete(chunk_id)
    finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    finished.set_exception(ChunkCorrupt("bad data"))
    dir_store._inflight[chunk_id] = finished  # finished, its callback not yet run

    def stop_a_spin() -> None:
        # A spinning loop runs no callback and no timeout: this thread ends the spin instead
        # (the test then fails rather than hangs).
        if dir_store._inflight.pop(chunk_id, None) is finished:
            finished_spinning.append(True)

    finished_spinning: list[bool] = []
    watchdog = threading.Timer(5, stop_a_spin)
    watchdog.start()
    try:
        await dir_store.put(chunk_id, data)
    finally:
        watchdog.cancel()
    assert not finished_spinning
    assert chunk_id not in dir_store._inflight
    assert await dir_store.get(chunk_id) == data


async def test_directory_startup_removes_tmp_leftovers(tmp_path: Path, rng: random.Random) -> None:
    """After a crash (no clean-shutdown mark) leftover temporary files are never listed, and a
    background sweep removes them; startup does not wait for it."""
    root = tmp_path / "store"
    first = await DirectoryChunkStore.open(root)
    chunk_id, data = _chunk(rng)
    await first.put(chunk_id, data)
    await first.close()
    (root / "chunks" / ".clean").rmdir()  # as if the process had died

    leaf = first.path_of(chunk_id).parent
    leftovers = [
        leaf / f".{chunk_id.hex()}.0123456789abcdef.tmp",  # an older version's name
        leaf / f".{chunk_id.hex()}.01234567.89abcdef.tmp",
        root / "chunks" / "00" / "00" / f".{'00' * 32}.ffff.tmp",
    ]
    leftovers[-1].parent.mkdir(parents=True, exist_ok=True)
    for path in leftovers:
        path.write_bytes(b"half written")

    second = DirectoryChunkStore(root)  # startup runs on first use
    try:
        assert await second.get(chunk_id) == data
        assert await second.list_ids() == [chunk_id]
        assert await second.usage() == StoreUsage(count=1, bytes=len(data))
        deadline = time.monotonic() + 10
        while any(path.exists() for path in leftovers):
            assert time.monotonic() < deadline, "the leftover sweep did not finish"
            await asyncio.sleep(0.01)
        assert _files(root) == [second.path_of(chunk_id)]
    finally:
        await second.close()


async def test_directory_startup_after_clean_close_reads_no_leaf(
    tmp_path: Path, rng: random.Random, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A clean close leaves a mark: the next startup lists no leaf directory."""
    root = tmp_path / "store"
    first = await DirectoryChunkStore.open(root)
    await first.put_many([_chunk(rng, 16) for _ in range(500)])
    await first.close()
    scanned: list[object] = []
    real_scandir = os.scandir

    def counting_scandir(path: Any = ".") -> Any:
        scanned.append(path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", counting_scandir)
    second = await DirectoryChunkStore.open(root)
    await second.close()
    assert scanned == []


async def test_directory_chunk_survives_reopening(tmp_path: Path, rng: random.Random) -> None:
    root = tmp_path / "store"
    items = [_chunk(rng, 3000) for _ in range(20)]
    first = DirectoryChunkStore(root)
    await first.put_many(items)
    await first.close()
    second = await DirectoryChunkStore.open(root)
    try:
        for chunk_id, data in items:
            assert await second.get(chunk_id) == data
        assert await second.list_ids() == sorted(chunk_id for chunk_id, _ in items)
        await second.put_many(items)  # already held: cheap success
        assert await second.usage() == StoreUsage(count=20, bytes=60_000)
    finally:
        await second.close()


async def test_directory_get_detects_damage(
    dir_store: DirectoryChunkStore, rng: random.Random
) -> None:
    chunk_id, data = _chunk(rng)
    await dir_store.put(chunk_id, data)
    path = dir_store.path_of(chunk_id)
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(ChunkCorrupt):
        await dir_store.get(chunk_id)


async def test_directory_ignores_stray_files(
    dir_store: DirectoryChunkStore, rng: random.Random
) -> None:
    chunk_id, data = _chunk(rng)
    await dir_store.put(chunk_id, data)
    leaf = dir_store.path_of(chunk_id).parent
    (leaf / "README").write_bytes(b"x")
    (leaf / ("ff" * 32)).write_bytes(b"x")  # a chunk name in the wrong directory
    (leaf / chunk_id.hex().upper()).write_bytes(b"x")
    (dir_store.root / "chunks" / "zz").mkdir()
    (dir_store.root / "chunks" / "note.txt").write_bytes(b"x")
    assert await dir_store.list_ids() == [chunk_id]
    assert await dir_store.usage() == StoreUsage(count=1, bytes=len(data))


async def test_directory_listing_reads_only_what_it_needs(
    dir_store: DirectoryChunkStore, rng: random.Random, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = [_chunk(rng, 16) for _ in range(1500)]
    await dir_store.put_many(items)
    expected = sorted(chunk_id for chunk_id, _ in items)
    listed: list[str] = []
    real_listdir = os.listdir

    def counting_listdir(path: str) -> list[str]:
        listed.append(path)
        return real_listdir(path)

    monkeypatch.setattr(os, "listdir", counting_listdir)
    middle = expected[700]
    assert await dir_store.list_ids(after=middle, limit=10) == expected[701:711]
    # The top level, then at most one top-level and one leaf directory per id returned (plus
    # the ones holding nothing after ``middle``), against 1 + 256 + ~1500 for a full walk.
    assert len(listed) <= 1 + 2 * 11 + 2


async def test_directory_open_creates_root(tmp_path: Path) -> None:
    root = tmp_path / "a" / "b" / "store"
    chunk_store = await DirectoryChunkStore.open(root)
    try:
        assert (root / "chunks").is_dir()
        assert await chunk_store.list_ids() == []
    finally:
        await chunk_store.close()


async def test_directory_open_failure_surfaces(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_bytes(b"")
    with pytest.raises(OSError):
        await DirectoryChunkStore.open(not_a_dir / "store")


def test_directory_threads_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        DirectoryChunkStore(tmp_path, threads=0)
    with pytest.raises(ValueError):
        DirectoryChunkStore(tmp_path, read_threads=0)


async def test_directory_many_concurrent_puts_large(
    dir_store: DirectoryChunkStore, rng: random.Random
) -> None:
    items = [_chunk(rng, 256 * 1024) for _ in range(100)]
    await asyncio.gather(*(dir_store.put(chunk_id, data) for chunk_id, data in items))
    for chunk_id, data in items:
        assert dir_store.path_of(chunk_id).read_bytes() == data
    assert not [p for p in _files(dir_store.root) if p.name.endswith(".tmp")]
    assert os.listdir(dir_store.root) == ["chunks"]


async def test_get_many_in_order(store: ChunkStore, rng: random.Random) -> None:
    items = [_chunk(rng, rng.randrange(1, 5000)) for _ in range(12)]
    for chunk_id, data in items:
        await store.put(chunk_id, data)
    ids = [h for h, _ in items]
    bodies = [d for _, d in items]
    assert await store.get_many(ids) == bodies
    assert await store.get_many([*ids[::-1], ids[0]]) == [*bodies[::-1], bodies[0]]
    assert await store.get_many([]) == []


async def test_get_many_raises_the_first_failure_in_order(
    store: ChunkStore, rng: random.Random
) -> None:
    held_id, held = _chunk(rng)
    await store.put(held_id, held)
    missing_id, _ = _chunk(rng)
    with pytest.raises(ChunkNotFound, match=missing_id.hex()):
        await store.get_many([held_id, missing_id, held_id])
    with pytest.raises(ValueError):
        await store.get_many([held_id, b"short"])
