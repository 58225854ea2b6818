"""Bucket operations: create, delete, head, location, versioning."""

from __future__ import annotations

import ipaddress
import re

from aiohttp import web

from dedup import catalog, multipart
from dedup.index import BucketExistsError
from gateway.s3.context import Handler, S3Request
from gateway.s3.errors import S3Error
from gateway.s3.handlers.acl import check_acl_headers
from gateway.s3.handlers.common import require_bucket, xml_response
from gateway.s3.router import Op
from gateway.s3.xml import document, parse_location_constraint

_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def valid_bucket_name(name: str) -> bool:
    """The S3 rules for general purpose bucket names."""
    if not _NAME.match(name) or ".." in name or ".-" in name or "-." in name:
        return False
    if name.startswith(_RESERVED_PREFIXES) or name.endswith(_RESERVED_SUFFIXES):
        return False
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return True
    return False


async def create_bucket(r: S3Request) -> web.StreamResponse:
    name = r.bucket
    if not valid_bucket_name(name):
        raise S3Error("InvalidBucketName", BucketName=name)
    check_acl_headers(r.request.headers, is_object=False)
    if (r.header("x-amz-bucket-object-lock-enabled") or "").strip().lower() == "true":
        raise S3Error("NotImplemented", "Object Lock is not supported.")
    constraint = parse_location_constraint(await r.small_body())
    if constraint is not None and constraint != r.config.region:
        raise S3Error("InvalidLocationConstraint", LocationConstraint=constraint)
    owner = r.credentials.owner_id
    try:
        await r.engine.index.write(
            lambda txn: catalog.create_bucket(txn, name, owner, r.engine.now_ms())
        )
    except BucketExistsError as exc:
        if str(exc) != owner:
            raise S3Error("BucketAlreadyExists", BucketName=name) from exc
        if r.config.region != "us-east-1":
            raise S3Error("BucketAlreadyOwnedByYou", BucketName=name) from exc
        # us-east-1 answers a re-create by the owner with 200 OK
    return web.Response(status=200, headers={"Location": "/" + name})


async def delete_bucket(r: S3Request) -> web.StreamResponse:
    name = r.bucket
    await r.engine.index.write(lambda txn: multipart.delete_bucket(txn, name, r.engine.now_ms()))
    return web.Response(status=204)


async def head_bucket(r: S3Request) -> web.StreamResponse:
    await require_bucket(r)
    return web.Response(status=200, headers={"x-amz-bucket-region": r.config.region})


async def get_bucket_location(r: S3Request) -> web.StreamResponse:
    await require_bucket(r)
    region = "" if r.config.region == "us-east-1" else r.config.region
    body = document("LocationConstraint", {}, text=region)
    return web.Response(body=body, content_type="application/xml")


async def get_bucket_versioning(r: S3Request) -> web.StreamResponse:
    await require_bucket(r)
    return xml_response("VersioningConfiguration", {})


HANDLERS: dict[Op, Handler] = {
    Op.CreateBucket: create_bucket,
    Op.DeleteBucket: delete_bucket,
    Op.HeadBucket: head_bucket,
    Op.GetBucketLocation: get_bucket_location,
    Op.GetBucketVersioning: get_bucket_versioning,
}
