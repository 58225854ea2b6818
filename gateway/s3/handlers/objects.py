"""Object operations: PutObject, GetObject, HeadObject, DeleteObject, CopyObject,
DeleteObjects."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from urllib.parse import unquote

from aiohttp import web
from aiohttp.payload import AsyncIterablePayload

from dedup import catalog, lifecycle
from dedup.index import Txn
from dedup.ingest import Ingest, IngestResult
from dedup.records import ObjectRecord
from gateway.s3.context import Handler, S3Request
from gateway.s3.errors import S3Error
from gateway.s3.handlers.acl import check_acl_headers
from gateway.s3.handlers.common import (
    commit_or_release,
    get_bucket_and_record,
    get_record,
    require_bucket,
    xml_response,
)
from gateway.s3.handlers.tagging import tags_from_header
from gateway.s3.objectmeta import (
    RESPONSE_OVERRIDES,
    ByteRange,
    ChecksumRequest,
    NotModified,
    check_read_conditions,
    check_write_conditions,
    checksum_request,
    decode_content_md5,
    http_date,
    object_headers,
    parse_range,
    part_range,
    quoted,
    stored_headers,
    verify_checksums,
)
from gateway.s3.router import Op
from gateway.s3.xml import Node, decimal, parse_delete, timestamp

MAX_OBJECT_SIZE = 5 * 1024**4  # 5 TiB (a single PUT is limited to 5 GiB as in S3)
MAX_PUT_SIZE = 5 * 1024**3


async def ingest_body(
    r: S3Request, checks: ChecksumRequest, *, inline: bool, max_size: int
) -> tuple[IngestResult, dict[str, str]]:
    """Stream the request body through an Ingest and verify Content-MD5 and the requested
    checksums. On success the chunks are pinned under ``result.token``: the caller commits
    them or releases the token (:func:`release_pins`); on failure nothing stays pinned."""
    content_md5 = decode_content_md5(r.header("content-md5"))
    payload = r.payload()
    if payload.declared_length is not None and payload.declared_length > max_size:
        raise S3Error("EntityTooLarge", MaxSizeAllowed=str(max_size))
    ingest = Ingest(r.engine, checks.algorithms, inline=inline)
    try:
        received = 0
        while block := await payload.read():
            received += len(block)
            if received > max_size:
                raise S3Error("EntityTooLarge", MaxSizeAllowed=str(max_size))
            await ingest.write(block)
        result = await ingest.finish()
        if content_md5 is not None and content_md5 != result.md5:
            raise S3Error("BadDigest")
        checksums = verify_checksums(checks, payload.trailers, result.checksums)
    except BaseException:
        await asyncio.shield(ingest.abort())
        raise
    return result, checksums


def single_upload_record(
    r: S3Request,
    result: IngestResult,
    headers: dict[str, str],
    meta: dict[str, str],
    checksums: dict[str, str],
    tags: dict[str, str],
) -> ObjectRecord:
    """The record of an object written in one request (PutObject, PostObject)."""
    return ObjectRecord(
        size=result.size,
        etag=result.md5.hex(),
        mtime_ms=r.engine.now_ms(),
        headers=headers,
        meta=meta,
        checksums=checksums,
        checksum_type="FULL_OBJECT" if checksums else "",
        inline=result.inline,
        chunks=result.chunks,
        tags=tags,
    )


async def put_object(r: S3Request) -> web.StreamResponse:
    bucket, key = r.bucket, r.key
    headers = r.request.headers
    check_acl_headers(headers, is_object=True)
    content_headers, meta = stored_headers(headers)
    tags = tags_from_header(headers.get("x-amz-tagging"))
    checks = checksum_request(headers)
    decode_content_md5(headers.get("content-md5"))  # malformed → InvalidDigest before the body
    # Fail fast (before the body) when the bucket is missing or a condition already fails;
    # the commit transaction checks the conditions again, atomically.
    if "if-match" in headers or "if-none-match" in headers:
        current = await r.engine.read(lambda txn: _current(txn, bucket, key))
        check_write_conditions(headers, current)
    else:
        await require_bucket(r)  # a point lookup: no record to decode
    result, checksums = await ingest_body(r, checks, inline=True, max_size=MAX_PUT_SIZE)
    rec = single_upload_record(r, result, content_headers, meta, checksums, tags)
    await commit_or_release(
        r,
        result.token,
        lambda txn: catalog.commit_object(
            txn,
            bucket,
            key,
            rec,
            result.token,
            result.stored,
            lambda cur: check_write_conditions(headers, cur),
            r.engine.now_ms(),
        ),
    )
    out = {"ETag": quoted(rec.etag)}
    for algo, value in checksums.items():
        out[f"x-amz-checksum-{algo.lower()}"] = value
    if checksums:
        out["x-amz-checksum-type"] = "FULL_OBJECT"
    return web.Response(status=200, headers=out)


def _current(txn: Txn, bucket: str, key: str) -> ObjectRecord | None:
    if txn.bucket(bucket) is None:
        raise S3Error("NoSuchBucket", bucket_name=bucket)
    return catalog.get_object(txn, bucket, key)


async def _read(r: S3Request, *, body: bool) -> web.StreamResponse:
    bucket_rec, rec = await get_bucket_and_record(r, r.bucket, r.key)
    headers = r.request.headers
    try:
        check_read_conditions(headers, rec)
    except NotModified:
        h = object_headers(rec, with_checksums=False)
        return web.Response(
            status=304, headers={k: v for k, v in h.items() if k in ("ETag", "Last-Modified")}
        )
    q = r.query
    part = q.get("partNumber")
    rng: ByteRange | None
    if part is not None:
        if headers.get("range") is not None:
            raise S3Error(
                "InvalidRequest", "Cannot specify both Range header and partNumber query parameter."
            )
        rng = part_range(part, rec)
        # the part of a multipart object has no checksum of its own here (only the object's)
        with_checksums = not rec.part_sizes
    else:
        rng = parse_range(headers.get("range"), rec.size)
        with_checksums = rng is None
    checksum_mode = (headers.get("x-amz-checksum-mode") or "").upper() == "ENABLED"
    out = object_headers(rec, with_checksums=checksum_mode and with_checksums)
    if part is not None and rec.part_sizes:
        out["x-amz-mp-parts-count"] = str(len(rec.part_sizes))
    rules = bucket_rec.configs.get(lifecycle.KIND)
    if rules is not None and (expiry := lifecycle.expiry_of(rules, r.key, rec)) is not None:
        when, rule_id = expiry
        out["x-amz-expiration"] = f'expiry-date="{http_date(when)}", rule-id="{rule_id}"'

    for param, name in RESPONSE_OVERRIDES.items():
        if param in q:
            out[name] = q[param]
    start, end, status = 0, rec.size, 200
    if rng is not None:
        start, end = rng.start, rng.end
        if end > start:  # an empty part has no byte range to name
            status = 206
            out["Content-Range"] = rng.content_range(rec.size)
    out["Content-Length"] = str(end - start)
    if not body:
        resp = web.Response(status=status, headers=out)
        return resp
    stream = r.engine.read_range(rec, start, end)
    return web.Response(status=status, headers=out, body=AsyncIterablePayload(stream))


async def get_object(r: S3Request) -> web.StreamResponse:
    return await _read(r, body=True)


async def head_object(r: S3Request) -> web.StreamResponse:
    return await _read(r, body=False)


async def delete_object(r: S3Request) -> web.StreamResponse:
    bucket, key = r.bucket, r.key
    await r.engine.index.write(
        lambda txn: catalog.delete_object(txn, bucket, key, r.engine.now_ms())
    )
    return web.Response(status=204)


NULL_VERSION = "null"  # the version id of every object: buckets are never versioned


def check_version_id(value: str | None, argument: str = "versionId") -> None:
    """Objects here have one version, "null" (as in an S3 bucket never versioned): a request
    for any other version is refused, never answered with the current object."""
    if value is not None and value != NULL_VERSION:
        raise S3Error(
            "InvalidArgument",
            "Invalid version id specified",
            ArgumentName=argument,
            ArgumentValue=value,
        )


def copy_source(value: str) -> tuple[str, str]:
    path, has_version, version = value.partition("?versionId=")
    if has_version:
        check_version_id(unquote(version), "x-amz-copy-source")
    src = unquote(path).lstrip("/")
    bucket, _, key = src.partition("/")
    if not bucket or not key:
        raise S3Error(
            "InvalidArgument",
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
            ArgumentName="x-amz-copy-source",
            ArgumentValue=value,
        )
    return bucket, key


def _directive(headers: Mapping[str, str], what: str) -> str:
    """CopyObject's x-amz-metadata-directive / x-amz-tagging-directive: COPY or REPLACE."""
    name = f"x-amz-{what}-directive"
    value = (headers.get(name) or "COPY").upper()
    if value not in ("COPY", "REPLACE"):
        raise S3Error(
            "InvalidArgument",
            f"Unknown {what} directive.",
            ArgumentName=name,
            ArgumentValue=value,
        )
    return value


async def copy_object(r: S3Request) -> web.StreamResponse:
    dst_bucket, dst_key = r.bucket, r.key
    headers = r.request.headers
    check_acl_headers(headers, is_object=True)
    src_bucket, src_key = copy_source(headers.get("x-amz-copy-source", ""))
    directive = _directive(headers, "metadata")
    content_headers, meta = stored_headers(headers)
    new_tags = None
    if _directive(headers, "tagging") == "REPLACE":
        new_tags = tags_from_header(headers.get("x-amz-tagging"))
    now = r.engine.now_ms()
    same = (src_bucket, src_key) == (dst_bucket, dst_key)

    def make(src: ObjectRecord) -> ObjectRecord:
        check_read_conditions(headers, src, prefix="x-amz-copy-source-")
        if same and directive == "COPY":
            raise S3Error(
                "InvalidRequest",
                "This copy request is illegal because it is trying to copy an object to itself"
                " without changing the object's metadata, storage class, website redirect"
                " location or encryption attributes.",
            )
        rec = replace(src, mtime_ms=now)
        if directive == "REPLACE":
            rec = replace(rec, headers=content_headers, meta=meta)
        if new_tags is not None:
            rec = replace(rec, tags=new_tags)
        return rec

    rec = await r.engine.index.write(
        lambda txn: catalog.copy_object(
            txn,
            src_bucket,
            src_key,
            dst_bucket,
            dst_key,
            make,
            lambda cur: check_write_conditions(headers, cur),
            now,
        )
    )
    body: dict[str, Node] = {"LastModified": timestamp(rec.mtime_ms), "ETag": quoted(rec.etag)}
    for algo, value in rec.checksums.items():
        body["Checksum" + algo] = value
    return xml_response("CopyObjectResult", body)


async def delete_objects(r: S3Request) -> web.StreamResponse:
    await require_bucket(r)
    checks = checksum_request(r.request.headers)
    if r.header("content-md5") is None and not checks.given and checks.trailer is None:
        raise S3Error("InvalidRequest", "Missing required header for this request: Content-MD5")
    body = await r.small_body()  # verifies Content-MD5 and the checksum (header or trailer)
    quiet, items = parse_delete(body)
    bucket = r.bucket
    now = r.engine.now_ms()

    def problem(key: str, version: str | None) -> tuple[str, str] | None:
        if not key:
            return "InvalidArgument", "The key must not be empty."
        if len(key.encode()) > 1024:
            return "KeyTooLongError", "Your key is too long"
        if version is not None and version != NULL_VERSION:
            return "InvalidArgument", "Invalid version id specified"
        return None

    refused = {i: p for i, (k, v) in enumerate(items) if (p := problem(k, v)) is not None}
    valid = [k for i, (k, _) in enumerate(items) if i not in refused]

    def run(txn: Txn) -> None:
        for key in valid:
            catalog.delete_object(txn, bucket, key, now)

    await r.engine.index.write(run)
    errors: list[Node] = [
        {"Key": items[i][0], "VersionId": items[i][1], "Code": code, "Message": message}
        for i, (code, message) in refused.items()
    ]
    deleted: list[Node] = []
    if not quiet:
        deleted = [{"Key": k, "VersionId": v} for i, (k, v) in enumerate(items) if i not in refused]
    return xml_response("DeleteResult", {"Deleted": deleted, "Error": errors})


ATTRIBUTES = ("ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize")
MAX_PARTS = 1000


def _int_header(r: S3Request, name: str, default: int) -> int:
    raw = r.header(name)
    if raw is None:
        return default
    value = decimal(raw)
    if value is None or value < 0:
        raise S3Error("InvalidArgument", f"Invalid {name}.", ArgumentName=name, ArgumentValue=raw)
    return value


async def get_object_attributes(r: S3Request) -> web.StreamResponse:
    """GetObjectAttributes: what HEAD says, as XML, plus the parts of a multipart object.
    A composite checksum is given without its "-N", as S3 does; parts are listed with their
    numbers and sizes (their own checksums are not kept after completion)."""
    raw = r.header("x-amz-object-attributes")
    if not raw or not raw.strip():
        raise S3Error(
            "InvalidRequest", "Missing required header for this request: x-amz-object-attributes"
        )
    wanted = {a.strip() for a in raw.split(",") if a.strip()}
    if not wanted <= set(ATTRIBUTES):
        raise S3Error("InvalidArgument", "Invalid attribute name specified.")
    max_parts = min(_int_header(r, "x-amz-max-parts", MAX_PARTS), MAX_PARTS)
    marker = _int_header(r, "x-amz-part-number-marker", 0)
    rec = await get_record(r, r.bucket, r.key)
    body: dict[str, Node] = {}
    if "ETag" in wanted:
        body["ETag"] = rec.etag
    if "Checksum" in wanted and rec.checksums:
        checksum: dict[str, Node] = {
            "Checksum" + algo: value.split("-")[0] for algo, value in rec.checksums.items()
        }
        checksum["ChecksumType"] = rec.checksum_type or "FULL_OBJECT"
        body["Checksum"] = checksum
    if "ObjectParts" in wanted and rec.part_sizes:
        numbers = list(range(marker + 1, len(rec.part_sizes) + 1))[:max_parts]
        truncated = bool(numbers) and numbers[-1] < len(rec.part_sizes)
        body["ObjectParts"] = {
            "PartsCount": len(rec.part_sizes),  # TotalPartsCount in the SDKs
            "PartNumberMarker": marker,
            "NextPartNumberMarker": numbers[-1] if numbers else marker,
            "MaxParts": max_parts,
            "IsTruncated": truncated,
            "Part": [{"PartNumber": n, "Size": rec.part_sizes[n - 1]} for n in numbers],
        }
    if "StorageClass" in wanted:
        body["StorageClass"] = "STANDARD"
    if "ObjectSize" in wanted:
        body["ObjectSize"] = rec.size
    resp = xml_response("GetObjectAttributesResponse", body)
    resp.headers["Last-Modified"] = http_date(rec.mtime_ms)
    return resp


HANDLERS: dict[Op, Handler] = {
    Op.GetObjectAttributes: get_object_attributes,
    Op.PutObject: put_object,
    Op.GetObject: get_object,
    Op.HeadObject: head_object,
    Op.DeleteObject: delete_object,
    Op.CopyObject: copy_object,
    Op.DeleteObjects: delete_objects,
}
