"""ListObjects (V1), ListObjectsV2 and ListObjectVersions."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

from aiohttp import web

from dedup import catalog
from dedup.index import Txn
from gateway.s3.context import Handler, S3Request
from gateway.s3.errors import S3Error
from gateway.s3.handlers.common import decode_token, encode_token, owner, xml_response
from gateway.s3.handlers.objects import NULL_VERSION
from gateway.s3.objectmeta import quoted
from gateway.s3.router import Op
from gateway.s3.xml import Node, timestamp

Encoder = Callable[[str], str]

MAX_KEYS = 1000


def _max_keys(q: dict[str, str]) -> int:
    raw = q.get("max-keys", str(MAX_KEYS))
    try:
        n = int(raw)
    except ValueError as exc:
        raise S3Error(
            "InvalidArgument",
            "Provided max-keys not an integer or within integer range",
            ArgumentName="max-keys",
            ArgumentValue=raw,
        ) from exc
    if n < 0:
        raise S3Error(
            "InvalidArgument",
            "Argument maxKeys must be an integer between 0 and 2147483647",
            ArgumentName="maxKeys",
            ArgumentValue=raw,
        )
    return min(n, MAX_KEYS)


def _identity(s: str) -> str:
    return s


def _url_encode(s: str) -> str:
    # '+' and ' ' are both encoded: clients decode with unquote_plus.
    return quote(s, safe="/")


def _encoder(q: dict[str, str]) -> tuple[bool, Encoder]:
    enc = q.get("encoding-type")
    if enc is None:
        return False, _identity
    if enc != "url":
        raise S3Error(
            "InvalidArgument",
            "Invalid Encoding Method specified in Request",
            ArgumentName="encoding-type",
            ArgumentValue=enc,
        )
    return True, _url_encode


async def _list(r: S3Request, marker: str) -> tuple[catalog.Listing, dict[str, str]]:
    q = r.query
    bucket, prefix, delimiter = r.bucket, q.get("prefix", ""), q.get("delimiter", "")
    max_keys = _max_keys(q)

    def run(txn: Txn) -> catalog.Listing:
        if txn.bucket(bucket) is None:
            raise S3Error("NoSuchBucket", bucket_name=bucket)
        return catalog.list_objects(txn, bucket, prefix, delimiter, marker, max_keys)

    return await r.engine.read(run), q


def _contents(r: S3Request, listing: catalog.Listing, enc: Encoder, with_owner: bool) -> list[Node]:
    out: list[Node] = []
    for e in listing.entries:
        item: dict[str, Node] = {
            "Key": enc(e.key),
            "LastModified": timestamp(e.mtime_ms),
            "ETag": quoted(e.etag),
            "Size": e.size,
            "StorageClass": "STANDARD",
        }
        if with_owner:
            item["Owner"] = owner(r)
        out.append(item)
    return out


async def list_objects(r: S3Request) -> web.StreamResponse:
    marker = r.query.get("marker", "")
    url, enc = _encoder(r.query)
    listing, q = await _list(r, marker)
    body: dict[str, Node] = {
        "Name": r.bucket,
        "Prefix": enc(q.get("prefix", "")),
        "Marker": enc(marker),
        "MaxKeys": _max_keys(q),
        "Delimiter": enc(q["delimiter"]) if "delimiter" in q else None,
        "IsTruncated": listing.truncated,
        # Only with a delimiter: without one, clients continue from the last key.
        "NextMarker": enc(listing.next_marker)
        if listing.truncated and listing.next_marker is not None and "delimiter" in q
        else None,
        "EncodingType": "url" if url else None,
        "Contents": _contents(r, listing, enc, with_owner=True),
        "CommonPrefixes": [{"Prefix": enc(p)} for p in listing.prefixes],
    }
    return xml_response("ListBucketResult", body)


async def list_objects_v2(r: S3Request) -> web.StreamResponse:
    q = r.query
    token = q.get("continuation-token")
    start_after = q.get("start-after", "")
    marker = decode_token(token) if token is not None else start_after
    if token is not None and start_after > marker:
        marker = start_after
    url, enc = _encoder(q)
    listing, q = await _list(r, marker)
    body: dict[str, Node] = {
        "Name": r.bucket,
        "Prefix": enc(q.get("prefix", "")),
        "MaxKeys": _max_keys(q),
        "KeyCount": len(listing.entries) + len(listing.prefixes),
        "Delimiter": enc(q["delimiter"]) if "delimiter" in q else None,
        "IsTruncated": listing.truncated,
        "ContinuationToken": token,
        "NextContinuationToken": encode_token(listing.next_marker)
        if listing.truncated and listing.next_marker is not None
        else None,
        "StartAfter": enc(start_after) if "start-after" in q else None,
        "EncodingType": "url" if url else None,
        "Contents": _contents(r, listing, enc, with_owner=q.get("fetch-owner") == "true"),
        "CommonPrefixes": [{"Prefix": enc(p)} for p in listing.prefixes],
    }
    return xml_response("ListBucketResult", body)


async def list_object_versions(r: S3Request) -> web.StreamResponse:
    """Every object has one version here, "null", the latest (as in a bucket that was never
    versioned), and there are no delete markers. key-marker / version-id-marker page as S3."""
    q = r.query
    key_marker = q.get("key-marker", "")
    version_marker = q.get("version-id-marker")
    if version_marker is not None and not key_marker:
        raise S3Error(
            "InvalidArgument",
            "A version-id marker cannot be specified without a key marker.",
            ArgumentName="version-id-marker",
            ArgumentValue=version_marker,
        )
    if version_marker not in (None, "", NULL_VERSION):
        raise S3Error(
            "InvalidArgument",
            "Invalid version id specified",
            ArgumentName="version-id-marker",
            ArgumentValue=version_marker or "",
        )
    url, enc = _encoder(q)
    listing, q = await _list(r, key_marker)
    versions: list[Node] = []
    for e in listing.entries:
        versions.append(
            {
                "Key": enc(e.key),
                "VersionId": NULL_VERSION,
                "IsLatest": True,
                "LastModified": timestamp(e.mtime_ms),
                "ETag": quoted(e.etag),
                "Size": e.size,
                "StorageClass": "STANDARD",
                "Owner": owner(r),
            }
        )
    next_key = listing.next_marker if listing.truncated else None
    body: dict[str, Node] = {
        "Name": r.bucket,
        "Prefix": enc(q.get("prefix", "")),
        "KeyMarker": enc(key_marker),
        "VersionIdMarker": version_marker or "",
        "NextKeyMarker": None if next_key is None else enc(next_key),
        "NextVersionIdMarker": (
            NULL_VERSION if next_key is not None and next_key not in listing.prefixes else None
        ),
        "MaxKeys": _max_keys(q),
        "Delimiter": enc(q["delimiter"]) if "delimiter" in q else None,
        "IsTruncated": listing.truncated,
        "EncodingType": "url" if url else None,
        "Version": versions,
        "CommonPrefixes": [{"Prefix": enc(p)} for p in listing.prefixes],
    }
    return xml_response("ListVersionsResult", body)


HANDLERS: dict[Op, Handler] = {
    Op.ListObjects: list_objects,
    Op.ListObjectsV2: list_objects_v2,
    Op.ListObjectVersions: list_object_versions,
}
