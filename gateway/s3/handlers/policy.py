"""Bucket policies: Put/Get/DeleteBucketPolicy and GetBucketPolicyStatus. What a policy may
say, and the anonymous access it grants, is :mod:`gateway.s3.policy`; dispatch applies it."""

from __future__ import annotations

from aiohttp import web

from dedup.engine import Engine
from gateway.s3 import policy
from gateway.s3.context import Handler, S3Request
from gateway.s3.errors import S3Error
from gateway.s3.handlers.common import (
    config_document,
    set_bucket_config,
    stored_config,
    xml_response,
)
from gateway.s3.objectmeta import RESPONSE_OVERRIDES
from gateway.s3.router import Endpoint, Op

KIND = "policy"


def stored_policy(engine: Engine, bucket: str) -> str | None:
    """The bucket's policy document; raises NoSuchBucket."""
    rec = engine.lookup(lambda txn: txn.bucket(bucket))
    if rec is None:
        raise S3Error("NoSuchBucket", bucket_name=bucket)
    return rec.configs.get(KIND)


def public_access(engine: Engine, bucket: str) -> policy.PublicAccess:
    """What anyone may do in ``bucket`` (nothing when it has no policy or does not exist)."""
    try:
        text = stored_policy(engine, bucket)
    except S3Error:
        return policy.PublicAccess()
    return policy.PublicAccess() if text is None else policy.access_of(text, bucket)


_READS = frozenset({Op.GetObject, Op.HeadObject})
_LISTS = frozenset({Op.ListObjects, Op.ListObjectsV2, Op.HeadBucket})


def anonymous_access(engine: Engine, endpoint: Endpoint) -> policy.PublicAccess:
    """Let an unsigned request through if the bucket's policy grants everyone its operation;
    else 403 AccessDenied. Returns the bucket's public access."""
    if endpoint.bucket is None:
        raise S3Error("AccessDenied")
    access = public_access(engine, endpoint.bucket)
    op = endpoint.op
    allowed = (
        (op in _READS and endpoint.key is not None and access.can_read(endpoint.key))
        or (op in _LISTS and access.list_bucket)
        or (op is Op.GetBucketLocation and access.bucket_location)
    )
    if not allowed:
        raise S3Error("AccessDenied")
    if op in _READS and any(p in endpoint.query for p in RESPONSE_OVERRIDES):
        raise S3Error(
            "InvalidRequest",
            "Request specific response headers cannot be used for anonymous GET requests.",
        )
    return access


def _policy_of(r: S3Request) -> str:
    return stored_config(r, KIND, "NoSuchBucketPolicy")


async def get_bucket_policy(r: S3Request) -> web.StreamResponse:
    return web.Response(status=200, text=_policy_of(r), content_type="application/json")


async def get_bucket_policy_status(r: S3Request) -> web.StreamResponse:
    access = policy.access_of(_policy_of(r), r.bucket)
    return xml_response("PolicyStatus", {"IsPublic": access.is_public})


async def put_bucket_policy(r: S3Request) -> web.StreamResponse:
    body = await config_document(r, policy.MAX_POLICY_BYTES + 1)
    policy.parse(body, r.bucket)
    await set_bucket_config(r, KIND, body.decode())
    return web.Response(status=204)


async def delete_bucket_policy(r: S3Request) -> web.StreamResponse:
    await set_bucket_config(r, KIND, None)
    return web.Response(status=204)


HANDLERS: dict[Op, Handler] = {
    Op.GetBucketPolicy: get_bucket_policy,
    Op.GetBucketPolicyStatus: get_bucket_policy_status,
    Op.PutBucketPolicy: put_bucket_policy,
    Op.DeleteBucketPolicy: delete_bucket_policy,
}
