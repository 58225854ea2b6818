"""ACLs: every bucket and object is private to its owner (as an S3 bucket with ACLs
disabled). Get*Acl answers FULL_CONTROL for the owner; Put*Acl accepts what changes nothing
(canned `private`, or a policy granting only the owner FULL_CONTROL) since s3cmd, rclone and
others send it. On writes (PutObject, CopyObject, CreateBucket, CreateMultipartUpload) the
canned ACLs `private` and `public-read` are accepted and ignored, as the project asked for
now (the object stays private). Anything else is refused with 400
AccessControlListNotSupported, AWS's answer for buckets without ACLs, which clients do not
retry (a 5xx made s3cmd retry for 45 s)."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from gateway.s3.context import Handler, S3Request
from gateway.s3.errors import S3Error
from gateway.s3.handlers.common import get_record, owner, require_bucket, xml_response
from gateway.s3.router import Op
from gateway.s3.xml import parse_acl_grants

XSI = "http://www.w3.org/2001/XMLSchema-instance"


def _policy(r: S3Request) -> web.Response:
    return xml_response(
        "AccessControlPolicy",
        {
            "Owner": owner(r),
            "AccessControlList": {
                "Grant": {
                    "Grantee": {
                        "@xmlns:xsi": XSI,
                        "@xsi:type": "CanonicalUser",
                        **owner(r),
                    },
                    "Permission": "FULL_CONTROL",
                }
            },
        },
    )


# Canned ACLs that grant nobody but the owner anything. The bucket owner is the object owner
# here, so the bucket-owner-* ones are the same as private for objects.
BUCKET_CANNED = frozenset({"private"})
OBJECT_CANNED = frozenset({"private", "bucket-owner-full-control", "bucket-owner-read"})


# accepted and ignored on writes (not by Put*Acl, which would then claim to have shared)
IGNORED_ON_WRITE = frozenset({"public-read"})


def check_acl_headers(
    headers: Mapping[str, str], *, is_object: bool, setting: bool = False
) -> bool:
    """Refuse ACL headers this store cannot honour; returns whether a canned ACL was given.
    ``setting``: the request is Put*Acl itself."""
    canned = headers.get("x-amz-acl")
    allowed = OBJECT_CANNED if is_object else BUCKET_CANNED
    if not setting:
        allowed = allowed | IGNORED_ON_WRITE
    if canned is not None and canned.strip() not in allowed:
        raise S3Error("AccessControlListNotSupported")
    if any(h.lower().startswith("x-amz-grant-") for h in headers):
        raise S3Error("AccessControlListNotSupported")
    return canned is not None


async def _check_put(r: S3Request, *, is_object: bool) -> None:
    canned = check_acl_headers(r.request.headers, is_object=is_object, setting=True)
    body = await r.small_body()
    if canned:
        if body.strip():
            raise S3Error("NotImplemented", "A canned ACL and an ACL body cannot be combined.")
        return
    if not body.strip():
        raise S3Error("MissingSecurityHeader", "Your request was missing a required header.")
    grants = parse_acl_grants(body)
    if grants != [(r.credentials.owner_id, "FULL_CONTROL")]:
        raise S3Error("AccessControlListNotSupported")


async def get_bucket_acl(r: S3Request) -> web.StreamResponse:
    await require_bucket(r)
    return _policy(r)


async def put_bucket_acl(r: S3Request) -> web.StreamResponse:
    await require_bucket(r)
    await _check_put(r, is_object=False)
    return web.Response(status=200)


async def get_object_acl(r: S3Request) -> web.StreamResponse:
    await get_record(r, r.bucket, r.key)
    return _policy(r)


async def put_object_acl(r: S3Request) -> web.StreamResponse:
    await get_record(r, r.bucket, r.key)
    await _check_put(r, is_object=True)
    return web.Response(status=200)


HANDLERS: dict[Op, Handler] = {
    Op.GetBucketAcl: get_bucket_acl,
    Op.PutBucketAcl: put_bucket_acl,
    Op.GetObjectAcl: get_object_acl,
    Op.PutObjectAcl: put_object_acl,
}
