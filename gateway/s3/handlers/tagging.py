"""Tagging: Get/Put/DeleteObjectTagging, Get/Put/DeleteBucketTagging, and the tag set that
PutObject, CreateMultipartUpload and CopyObject take in ``x-amz-tagging``.

The rules are AWS's (S3 user guide, "Categorizing your storage using tags", and the answers
S3 gives): at most 10 tags on an object and 50 on a bucket (more: 400 BadRequest); a key of 1
to 128 characters and a value of at most 256, of letters, numbers, separators (spaces) and
``_ . : / = + - @`` only; unique keys; no key starting with ``aws:`` (reserved for system
tags). A bad tag answers 400 InvalidTag naming it. In ``x-amz-tagging`` (a URL-encoded query
string) a key twice, an empty key or bytes that are not UTF-8 answer 400 InvalidArgument.
Changing tags changes nothing else about an object: not its ETag, not Last-Modified.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from urllib.parse import parse_qsl

from aiohttp import web

from dedup import catalog
from gateway.s3.context import Handler, S3Request
from gateway.s3.errors import S3Error
from gateway.s3.handlers.common import get_record, require_bucket, xml_response
from gateway.s3.router import Op
from gateway.s3.xml import Node, parse_tagging

MAX_OBJECT_TAGS = 10
MAX_BUCKET_TAGS = 50
MAX_KEY_LEN = 128
MAX_VALUE_LEN = 256
_PUNCTUATION = frozenset("_.:/=+-@")
_HEADER_RULE = (
    "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters"
    " without tag name duplicates."
)


def _length(text: str) -> int:
    """Characters as S3 counts them: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def _allowed(text: str) -> bool:
    return all(
        c in _PUNCTUATION or unicodedata.category(c)[0] in "LNZ"  # letter, number, separator
        for c in text
    )


def check_tags(pairs: Iterable[tuple[str, str]], *, limit: int | None) -> dict[str, str]:
    """The tag set of ``pairs``, or the S3 error that refuses it (``limit``: at most that
    many tags; None: any number, as in a lifecycle filter)."""
    pairs = list(pairs)
    if limit is not None and len(pairs) > limit:
        what = "Object tags" if limit == MAX_OBJECT_TAGS else "Bucket tag count"
        raise S3Error("BadRequest", f"{what} cannot be greater than {limit}")
    tags: dict[str, str] = {}
    for key, value in pairs:
        if not 1 <= _length(key) <= MAX_KEY_LEN or not _allowed(key):
            raise S3Error("InvalidTag", "The TagKey you have provided is invalid", TagKey=key)
        if _length(value) > MAX_VALUE_LEN or not _allowed(value):
            raise S3Error(
                "InvalidTag",
                "The TagValue you have provided is invalid",
                TagKey=key,
                TagValue=value,
            )
        if key[:4].lower() == "aws:":
            raise S3Error(
                "InvalidTag", "System tags cannot be added/updated by requester", TagKey=key
            )
        if key in tags:
            raise S3Error(
                "InvalidTag", "Cannot provide multiple Tags with the same key", TagKey=key
            )
        tags[key] = value
    return tags


def tags_from_header(value: str | None) -> dict[str, str]:
    """The object tag set of an ``x-amz-tagging`` header (none: no tags)."""
    if not value:
        return {}
    try:
        pairs = parse_qsl(value, keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise _bad_header(value) from exc
    keys = [k for k, _ in pairs]
    if "" in keys or len(set(keys)) != len(keys):
        raise _bad_header(value)
    return check_tags(pairs, limit=MAX_OBJECT_TAGS)


def _bad_header(value: str) -> S3Error:
    return S3Error(
        "InvalidArgument", _HEADER_RULE, ArgumentName="x-amz-tagging", ArgumentValue=value
    )


async def _tag_document(r: S3Request, *, limit: int) -> dict[str, str]:
    body = await r.small_body()  # verifies Content-MD5 / x-amz-checksum-* when given
    if not body.strip():
        raise S3Error("MissingRequestBodyError")
    return check_tags(parse_tagging(body), limit=limit)


def _tagging(tags: dict[str, str]) -> web.Response:
    tag_list: list[Node] = [{"Key": k, "Value": v} for k, v in tags.items()]
    return xml_response("Tagging", {"TagSet": {"Tag": tag_list}})


# -- objects -------------------------------------------------------------------------------


async def get_object_tagging(r: S3Request) -> web.StreamResponse:
    rec = await get_record(r, r.bucket, r.key)
    return _tagging(rec.tags)


async def _set_object_tags(r: S3Request, tags: dict[str, str]) -> None:
    bucket, key = r.bucket, r.key
    await get_record(r, bucket, key)  # NoSuchBucket / NoSuchKey (with the key) up front
    await r.engine.index.write(lambda txn: catalog.set_object_tags(txn, bucket, key, tags))


async def put_object_tagging(r: S3Request) -> web.StreamResponse:
    await _set_object_tags(r, await _tag_document(r, limit=MAX_OBJECT_TAGS))
    return web.Response(status=200)


async def delete_object_tagging(r: S3Request) -> web.StreamResponse:
    await _set_object_tags(r, {})
    return web.Response(status=204)


# -- buckets -------------------------------------------------------------------------------


async def get_bucket_tagging(r: S3Request) -> web.StreamResponse:
    bucket = r.bucket
    rec = r.engine.lookup(lambda txn: txn.bucket(bucket))
    if rec is None:
        raise S3Error("NoSuchBucket", bucket_name=bucket)
    if not rec.tags:
        raise S3Error("NoSuchTagSet")
    return _tagging(rec.tags)


async def _set_bucket_tags(r: S3Request, tags: dict[str, str]) -> None:
    bucket = r.bucket
    await r.engine.index.write(lambda txn: catalog.set_bucket_tags(txn, bucket, tags))


async def put_bucket_tagging(r: S3Request) -> web.StreamResponse:
    await require_bucket(r)
    await _set_bucket_tags(r, await _tag_document(r, limit=MAX_BUCKET_TAGS))
    return web.Response(status=204)


async def delete_bucket_tagging(r: S3Request) -> web.StreamResponse:
    await _set_bucket_tags(r, {})
    return web.Response(status=204)


HANDLERS: dict[Op, Handler] = {
    Op.GetObjectTagging: get_object_tagging,
    Op.PutObjectTagging: put_object_tagging,
    Op.DeleteObjectTagging: delete_object_tagging,
    Op.GetBucketTagging: get_bucket_tagging,
    Op.PutBucketTagging: put_bucket_tagging,
    Op.DeleteBucketTagging: delete_bucket_tagging,
}
