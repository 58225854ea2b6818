"""Small helpers shared by handler modules."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from dedup import catalog, refcount
from dedup.index import Txn
from dedup.records import ObjectRecord
from gateway.s3.context import S3Request
from gateway.s3.errors import S3Error
from gateway.s3.xml import Node, document


def xml_response(root: str, content: Mapping[str, Node], status: int = 200) -> web.Response:
    return web.Response(status=status, body=document(root, content), content_type="application/xml")


def owner(r: S3Request) -> dict[str, Node]:
    return {"ID": r.credentials.owner_id, "DisplayName": r.credentials.access_key}


async def require_bucket(r: S3Request) -> None:
    bucket = r.bucket
    exists = await r.engine.read(lambda txn: txn.bucket(bucket) is not None)
    if not exists:
        raise S3Error("NoSuchBucket", bucket_name=bucket)


async def get_record(r: S3Request, bucket: str, key: str) -> ObjectRecord:
    def lookup(txn: Txn) -> ObjectRecord | None:
        if txn.bucket(bucket) is None:
            raise S3Error("NoSuchBucket", bucket_name=bucket)
        return catalog.get_object(txn, bucket, key)

    rec = await r.engine.read(lookup)
    if rec is None:
        raise S3Error("NoSuchKey", Key=key)
    return rec


async def release_pins(r: S3Request, token: bytes) -> None:
    """Give back every reference pinned under ``token`` (an abandoned write)."""
    await r.engine.index.write(lambda txn: refcount.release(txn, token, r.engine.now_ms()))
