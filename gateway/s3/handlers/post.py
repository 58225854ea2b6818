"""PostObject: the browser form upload (``POST /bucket``, multipart/form-data), as AWS's
"Browser-based uploads using POST" describes it.

The form signs itself: its ``policy`` field (base64 JSON: expiration and conditions) carries
a SigV4 or SigV2 signature in other fields, checked by
:func:`gateway.s3.auth.authenticate_post_form`; every field must satisfy the policy
(:mod:`gateway.s3.postpolicy`). Fields come first (20 KiB at most in all), then ``file``,
whose bytes stream into the engine like a PutObject body; anything after ``file`` is
ignored, as S3 does. ``${filename}`` in ``key`` becomes the file's name. The answer is
``success_action_redirect`` (303), or ``success_action_status`` 200 / 201 (with a
PostResponse document) / 204 (the default).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from urllib.parse import quote, urlencode, urlsplit

from aiohttp import BodyPartReader, web
from multidict import CIMultiDict

from dedup import catalog
from dedup.ingest import Ingest
from gateway.s3 import postpolicy
from gateway.s3.auth import authenticate_post_form
from gateway.s3.context import Handler, S3Request
from gateway.s3.errors import S3Error
from gateway.s3.handlers.acl import check_acl_headers
from gateway.s3.handlers.common import commit_or_release, require_bucket, xml_response
from gateway.s3.handlers.objects import MAX_PUT_SIZE, single_upload_record
from gateway.s3.handlers.tagging import MAX_OBJECT_TAGS, check_tags
from gateway.s3.objectmeta import checksum_request, quoted, stored_headers, verify_checksums
from gateway.s3.router import MAX_KEY_BYTES, Op
from gateway.s3.xml import parse_tagging

MAX_FIELD_BYTES = 20 * 1024  # all the fields but the file, together (S3's limit)
READ = 256 * 1024


def _malformed(message: str = "") -> S3Error:
    return S3Error("MalformedPOSTRequest", message or None)


async def _read_form(r: S3Request) -> tuple[dict[str, str], BodyPartReader]:
    """The fields before ``file`` (lower-case names, first value wins) and the file part."""
    try:
        reader = await r.request.multipart()
    except ValueError as exc:  # no or a bad boundary
        raise _malformed() from exc
    fields: dict[str, str] = {}
    budget = MAX_FIELD_BYTES
    while True:
        try:
            part = await reader.next()
        except ValueError as exc:
            raise _malformed() from exc
        if part is None:
            raise S3Error(
                "InvalidArgument",
                "POST requires exactly one file upload per request.",
                ArgumentName="file",
                ArgumentValue="0",
            )
        if not isinstance(part, BodyPartReader) or not part.name or not _utf8(part.name):
            raise _malformed()
        # every byte before the file counts: part headers too, not only field values
        budget -= sum(len(k) + len(v) + 4 for k, v in part.headers.items())
        if budget < 0:
            raise S3Error("MaxPostPreDataLengthExceeded")
        name = part.name.lower()
        if name == "file":
            return fields, part
        raw = bytearray()
        while chunk := await part.read_chunk(4096):
            raw += chunk
            budget -= len(chunk)
            if budget < 0:
                raise S3Error("MaxPostPreDataLengthExceeded")
        try:
            fields.setdefault(name, raw.decode())
        except UnicodeDecodeError as exc:
            raise _malformed() from exc


def _utf8(text: str) -> bool:
    """Whether ``text`` is real Unicode (aiohttp decodes header bytes that are not UTF-8 to
    lone surrogates)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _tags(document: str | None) -> dict[str, str]:
    if not document:
        return {}
    return check_tags(parse_tagging(document.encode()), limit=MAX_OBJECT_TAGS)


async def _ingest(
    r: S3Request, part: BodyPartReader, policy: postpolicy.PostPolicy, algorithms: list[str]
) -> Ingest:
    ingest = Ingest(r.engine, algorithms, inline=True)
    size = 0
    try:
        while block := await part.read_chunk(READ):
            size += len(block)
            if size > MAX_PUT_SIZE:
                raise S3Error("EntityTooLarge", MaxSizeAllowed=str(MAX_PUT_SIZE))
            policy.check_size(size, final=False)
            await ingest.write(block)
        policy.check_size(size, final=True)
    except BaseException:
        await asyncio.shield(ingest.abort())
        raise
    return ingest


async def post_object(r: S3Request) -> web.StreamResponse:
    bucket = r.bucket
    await require_bucket(r)
    fields, part = await _read_form(r)
    access_key = authenticate_post_form(fields, r.credentials, r.config.region)
    if access_key is None:  # no bucket here lets anyone write
        raise S3Error("AccessDenied")
    policy = postpolicy.parse(fields["policy"])
    if "key" not in fields:
        raise S3Error(
            "InvalidArgument",
            "Bucket POST must contain a field named 'key'.  If it is specified, please check"
            " the order of the fields.",
            ArgumentName="key",
            ArgumentValue="",
        )
    policy.check(fields, bucket, datetime.now(UTC))
    key = fields["key"].replace("${filename}", part.filename or "")
    if not _utf8(key):
        raise S3Error("InvalidArgument", "The file name is not valid UTF-8.")
    if not key:
        raise S3Error("InvalidArgument", "User key must have a length greater than 0.")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise S3Error("KeyTooLongError", MaxSizeAllowed=str(MAX_KEY_BYTES))
    headers = CIMultiDict(fields)
    if "acl" in fields:
        headers["x-amz-acl"] = fields["acl"]
    check_acl_headers(headers, is_object=True)
    content_headers, meta = stored_headers(headers)
    tags = _tags(fields.get("tagging"))
    checks = checksum_request(headers)
    ingest = await _ingest(r, part, policy, checks.algorithms)
    try:
        result = await ingest.finish()
        checksums = verify_checksums(checks, {}, result.checksums)
    except BaseException:
        await asyncio.shield(ingest.abort())
        raise
    rec = single_upload_record(r, result, content_headers, meta, checksums, tags)
    now = r.engine.now_ms()
    await commit_or_release(
        r,
        result.token,
        lambda txn: catalog.commit_object(
            txn, bucket, key, rec, result.token, result.stored, None, now
        ),
    )
    return _answer(r, fields, bucket, key, quoted(rec.etag))


def _answer(
    r: S3Request, fields: dict[str, str], bucket: str, key: str, etag: str
) -> web.StreamResponse:
    location = f"{r.request.scheme}://{r.request.host}/{quote(bucket)}/{quote(key)}"
    redirect = fields.get("success_action_redirect") or fields.get("redirect")
    if redirect and urlsplit(redirect).scheme in ("http", "https"):
        query = urlencode({"bucket": bucket, "key": key, "etag": etag})
        target = redirect + ("&" if "?" in redirect else "?") + query
        return web.Response(status=303, headers={"Location": target, "ETag": etag})
    status = fields.get("success_action_status", "")
    headers = {"ETag": etag, "Location": location}
    if status == "201":
        body = {"Location": location, "Bucket": bucket, "Key": key, "ETag": etag}
        resp = xml_response("PostResponse", body, status=201)
        resp.headers.update(headers)
        return resp
    return web.Response(status=200 if status == "200" else 204, headers=headers)


HANDLERS: dict[Op, Handler] = {Op.PostObject: post_object}
