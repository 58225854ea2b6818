"""Small helpers shared by handler modules."""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Callable, Mapping

from aiohttp import web

from dedup import catalog, refcount
from dedup.index import Txn
from dedup.records import BucketRecord, ObjectRecord
from gateway.s3.context import S3Request
from gateway.s3.errors import S3Error
from gateway.s3.xml import Node, document


def xml_response(root: str, content: Mapping[str, Node], status: int = 200) -> web.Response:
    return web.Response(status=status, body=document(root, content), content_type="application/xml")


def owner(r: S3Request) -> dict[str, Node]:
    """The Owner element. Its DisplayName is the access key id, which only a signed request
    (the owner) is shown: a public listing shows the canonical id alone."""
    if r.auth.access_key is None:
        return {"ID": r.credentials.owner_id}
    return {"ID": r.credentials.owner_id, "DisplayName": r.credentials.access_key}


async def require_bucket(r: S3Request) -> None:
    bucket = r.bucket
    if not r.engine.lookup(lambda txn: txn.bucket(bucket) is not None):
        raise S3Error("NoSuchBucket", bucket_name=bucket)


# Records larger than this (objects of many chunks) are decoded in a thread, not on the loop.
_DECODE_INLINE = 64 * 1024


async def get_record(r: S3Request, bucket: str, key: str) -> ObjectRecord:
    return (await get_bucket_and_record(r, bucket, key))[1]


async def get_bucket_and_record(
    r: S3Request, bucket: str, key: str
) -> tuple[BucketRecord, ObjectRecord]:
    def lookup(txn: Txn) -> tuple[BucketRecord, bytes | None]:
        brec = txn.bucket(bucket)
        if brec is None:
            raise S3Error("NoSuchBucket", bucket_name=bucket)
        return brec, catalog.get_object_bytes(txn, bucket, key)

    brec, raw = r.engine.lookup(lookup)
    if raw is None:
        raise S3Error("NoSuchKey", Key=key)
    if len(raw) > _DECODE_INLINE:
        return brec, await asyncio.to_thread(ObjectRecord.decode, raw)
    return brec, ObjectRecord.decode(raw)


async def release_pins(r: S3Request, token: bytes) -> None:
    """Give back every reference pinned under ``token`` (an abandoned write)."""
    await r.engine.index.write(lambda txn: refcount.release(txn, token, r.engine.now_ms()))


def encode_token(name: str) -> str:
    """An opaque continuation token for a listing that resumes after ``name``."""
    return base64.urlsafe_b64encode(name.encode()).decode()


def decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise S3Error(
            "InvalidArgument",
            "The continuation token provided is incorrect",
            ArgumentName="continuation-token",
            ArgumentValue=token,
        ) from exc


async def commit_or_release(r: S3Request, token: bytes, commit: Callable[[Txn], None]) -> None:
    """Run the commit transaction of a write whose chunks are pinned under ``token``; if it
    fails (a precondition, a vanished upload) or is cancelled, give the pins back."""
    try:
        await r.engine.index.write(commit)
    except BaseException:
        await asyncio.shield(release_pins(r, token))
        raise


async def config_document(r: S3Request, limit: int) -> bytes:
    """The body of a Put-bucket-configuration request: the bucket must exist, the body must
    not be empty (MissingRequestBodyError); Content-MD5 / x-amz-checksum-* are verified."""
    await require_bucket(r)
    body = await r.small_body(limit)
    if not body.strip():
        raise S3Error("MissingRequestBodyError")
    return body


async def set_bucket_config(r: S3Request, kind: str, value: str | None) -> None:
    """Store (None: remove) the bucket's configuration ``kind`` (NoSuchBucket if none)."""
    bucket = r.bucket
    await r.engine.index.write(lambda txn: catalog.set_bucket_config(txn, bucket, kind, value))


def stored_config(r: S3Request, kind: str, missing: str) -> str:
    """The bucket's configuration ``kind``: NoSuchBucket, or the S3 error ``missing`` (e.g.
    NoSuchCORSConfiguration) when the bucket has none."""
    bucket = r.bucket
    rec = r.engine.lookup(lambda txn: txn.bucket(bucket))
    if rec is None:
        raise S3Error("NoSuchBucket", bucket_name=bucket)
    raw = rec.configs.get(kind)
    if raw is None:
        raise S3Error(missing, bucket_name=bucket)
    return raw
