"""Multipart uploads idle longer than upload_expiry are aborted by the background task, and
nothing of them survives GC."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from dedup import catalog, multipart
from dedup.engine import Engine
from dedup.index import Index
from dedup.ingest import Ingest
from dedup.multipart import PartRecord, UploadRecord
from dedup.store import MemoryChunkStore
from tests.conftest import make_server


class Clock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def __call__(self) -> float:
        return self.t


async def _upload_with_part(engine: Engine, key: str) -> str:
    uid = multipart.new_upload_id(engine.now_ms())
    rec = UploadRecord(engine.now_ms(), "o")
    await engine.index.write(lambda txn: multipart.create_upload(txn, "b", key, uid, rec))
    ing = Ingest(engine, inline=False)
    await ing.write(b"p" * 300_000 + key.encode())
    res = await ing.finish()
    part = PartRecord(res.size, res.md5, engine.now_ms(), "", res.chunks)
    await engine.index.write(
        lambda txn: multipart.commit_part(
            txn, "b", key, uid, 1, part, res.token, res.stored, engine.now_ms()
        )
    )
    return uid


async def test_idle_uploads_expire_by_last_activity(tmp_path: Path) -> None:
    clock = Clock()
    engine = Engine(Index(tmp_path / "index"), MemoryChunkStore(), clock=clock)
    await engine.index.write(lambda txn: catalog.create_bucket(txn, "b", "o", 1))
    old = await _upload_with_part(engine, "old")
    clock.t += 3 * 86400
    fresh_start = await _upload_with_part(engine, "fresh")
    clock.t += 5 * 86400  # old: 8 days idle; fresh: 5 days
    assert await engine.expire_uploads(7 * 86400) == 1
    with engine.index.read() as txn:
        with pytest.raises(multipart.NoSuchUploadError):
            multipart.get_upload(txn, "b", "old", old)
        multipart.get_upload(txn, "b", "fresh", fresh_start)
    # a part uploaded now makes the upload active again
    uid = fresh_start
    ing = Ingest(engine, inline=False)
    await ing.write(b"second part")
    res = await ing.finish()
    part = PartRecord(res.size, res.md5, engine.now_ms(), "", res.chunks)
    await engine.index.write(
        lambda txn: multipart.commit_part(
            txn, "b", "fresh", uid, 2, part, res.token, res.stored, engine.now_ms()
        )
    )
    clock.t += 3 * 86400
    assert await engine.expire_uploads(7 * 86400) == 0
    clock.t += 5 * 86400
    assert await engine.expire_uploads(7 * 86400) == 1
    await engine.collect_garbage(0)
    assert engine.index.stats()["chunks"] == 0
    await engine.close()


def test_background_expiry_on_a_server(tmp_path: Path) -> None:
    srv = make_server(
        tmp_path, S3DEDUP_UPLOAD_EXPIRY="1", S3DEDUP_GC_INTERVAL="0.5", S3DEDUP_GC_GRACE="0"
    ).start()
    try:
        s3: Any = srv.client()
        s3.create_bucket(Bucket="expiry")
        uid = s3.create_multipart_upload(Bucket="expiry", Key="k")["UploadId"]
        s3.upload_part(Bucket="expiry", Key="k", UploadId=uid, PartNumber=1, Body=b"x" * 70_000)
        assert srv.stats()["chunks"] >= 1
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not s3.list_multipart_uploads(Bucket="expiry").get("Uploads"):
                break
            time.sleep(0.2)
        with pytest.raises(ClientError) as e:
            s3.list_parts(Bucket="expiry", Key="k", UploadId=uid)
        assert e.value.response["Error"]["Code"] == "NoSuchUpload"
        while time.monotonic() < deadline and srv.stats()["chunks"]:
            time.sleep(0.2)
        assert srv.stats()["chunks"] == 0
        assert srv.fsck()["ok"]
    finally:
        srv.stop()
