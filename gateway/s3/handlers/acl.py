"""ACLs: every bucket and object is private to its owner. Get*Acl answers FULL_CONTROL for the
owner; Put*Acl accepts what changes nothing (canned `private`, or a policy granting only the
owner FULL_CONTROL) since s3cmd, rclone and others send it; anything else is NotImplemented."""

from __future__ import annotations

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


async def _check_put(r: S3Request) -> None:
    canned = r.header("x-amz-acl")
    body = await r.small_body()
    if canned is not None:
        if canned.strip() != "private" or body.strip():
            raise S3Error("NotImplemented", "Only the canned ACL 'private' is supported.")
        return
    if any(h.lower().startswith("x-amz-grant-") for h in r.request.headers):
        raise S3Error("NotImplemented", "ACL grants are not supported.")
    if not body.strip():
        raise S3Error("MissingSecurityHeader", "Your request was missing a required header.")
    grants = parse_acl_grants(body)
    if grants != [(r.credentials.owner_id, "FULL_CONTROL")]:
        raise S3Error("NotImplemented", "Only owner FULL_CONTROL ACLs are supported.")


async def get_bucket_acl(r: S3Request) -> web.StreamResponse:
    await require_bucket(r)
    return _policy(r)


async def put_bucket_acl(r: S3Request) -> web.StreamResponse:
    await require_bucket(r)
    await _check_put(r)
    return web.Response(status=200)


async def get_object_acl(r: S3Request) -> web.StreamResponse:
    await get_record(r, r.bucket, r.key)
    return _policy(r)


async def put_object_acl(r: S3Request) -> web.StreamResponse:
    await get_record(r, r.bucket, r.key)
    await _check_put(r)
    return web.Response(status=200)


HANDLERS: dict[Op, Handler] = {
    Op.GetBucketAcl: get_bucket_acl,
    Op.PutBucketAcl: put_bucket_acl,
    Op.GetObjectAcl: get_object_acl,
    Op.PutObjectAcl: put_object_acl,
}
