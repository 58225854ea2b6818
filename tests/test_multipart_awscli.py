"""Multipart with the aws cli (v1) against a real server (issue #3): `aws s3 cp` of a 120 MiB
file up (multipart upload) and down (parallel ranged GETs), and a server-side copy of it
(UploadPartCopy), which stores nothing new."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from tests.conftest import Aws, Server

MiB = 1024 * 1024
SIZE = 120 * MiB
CLI_PART = 8 * MiB  # the cli's default multipart_chunksize (and threshold)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(MiB):
            h.update(block)
    return h.hexdigest()


def mp_etag(data: bytes, part: int) -> str:
    md5s = [hashlib.md5(data[i : i + part]).digest() for i in range(0, len(data), part)]
    return f'"{hashlib.md5(b"".join(md5s)).hexdigest()}-{len(md5s)}"'


def test_aws_s3_cp_multipart_up_down_and_server_side(
    server: Server, s3: Any, bucket: str, aws: Aws, tmp_path: Path
) -> None:
    data = os.urandom(SIZE)
    src, down, down2 = tmp_path / "big", tmp_path / "down", tmp_path / "down2"
    src.write_bytes(data)
    etag = mp_etag(data, CLI_PART)
    parts = SIZE // CLI_PART

    aws("s3", "cp", str(src), f"s3://{bucket}/big")
    head = s3.head_object(Bucket=bucket, Key="big", PartNumber=1)
    assert head["ETag"] == etag
    assert head["PartsCount"] == parts
    assert head["ContentLength"] == CLI_PART

    aws("s3", "cp", f"s3://{bucket}/big", str(down))
    assert sha256(down) == sha256(src)

    server.gc(0)
    before = server.stats()
    aws("s3", "cp", f"s3://{bucket}/big", f"s3://{bucket}/big2")
    copied = s3.head_object(Bucket=bucket, Key="big2", PartNumber=1)
    assert copied["ETag"] == etag  # the same 8 MiB ranges: the same part MD5s
    assert copied["PartsCount"] == parts
    server.gc(0)
    after = server.stats()
    # the source's chunks end at its 8 MiB part boundaries, so every 8 MiB range of it is
    # made of whole chunks: the copy only references them
    assert after["chunk_bytes"] == before["chunk_bytes"]
    assert after["logical_bytes"] == before["logical_bytes"] + SIZE
    aws("s3", "cp", f"s3://{bucket}/big2", str(down2))
    assert sha256(down2) == sha256(src)

    uploads = s3.list_multipart_uploads(Bucket=bucket)
    assert "Uploads" not in uploads
    report = server.fsck()
    assert report["ok"], report["output"]
    assert report["pinned_references"] == 0
