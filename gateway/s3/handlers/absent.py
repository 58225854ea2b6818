"""Bucket features s3dedup does not have, read as S3 reads them on a bucket without them.

Tools that inspect a bucket (Terraform's aws_s3_bucket, s3cmd info, backup products) ask
for every configuration and take S3's "there is none" answers in stride, where a 501 stops
them. Each answer here is true of every s3dedup bucket: no encryption configuration, no
replication, no object lock, no public access block, no logging, no transfer
acceleration, no notifications, no analytics / metrics / inventory / tiering
configurations, the owner pays, and object ownership is BucketOwnerEnforced (ACLs
disabled: see acl.py). Setting any of them stays 501 NotImplemented; deleting one that does
not exist is the no-op S3 makes of it.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from gateway.s3.context import Handler, S3Request
from gateway.s3.errors import S3Error
from gateway.s3.handlers.common import get_record, require_bucket, xml_response
from gateway.s3.router import Op
from gateway.s3.xml import Node


def _not_found(code: str) -> Handler:
    async def handler(r: S3Request) -> web.StreamResponse:
        await require_bucket(r)
        raise S3Error(code, bucket_name=r.bucket)

    return handler


def _document(root: str, content: Mapping[str, Node]) -> Handler:
    async def handler(r: S3Request) -> web.StreamResponse:
        await require_bucket(r)
        return xml_response(root, content)

    return handler


async def _nothing_to_delete(r: S3Request) -> web.StreamResponse:
    await require_bucket(r)
    return web.Response(status=204)


async def _no_object_lock(r: S3Request) -> web.StreamResponse:
    await get_record(r, r.bucket, r.key)
    raise S3Error("InvalidRequest", "Bucket is missing Object Lock Configuration")


_EMPTY_LIST = {"IsTruncated": False}

HANDLERS: dict[Op, Handler] = {
    Op.GetBucketEncryption: _not_found("ServerSideEncryptionConfigurationNotFoundError"),
    Op.GetBucketReplication: _not_found("ReplicationConfigurationNotFoundError"),
    Op.GetObjectLockConfiguration: _not_found("ObjectLockConfigurationNotFoundError"),
    Op.GetPublicAccessBlock: _not_found("NoSuchPublicAccessBlockConfiguration"),
    Op.DeleteBucketEncryption: _nothing_to_delete,
    Op.DeleteBucketReplication: _nothing_to_delete,
    Op.DeletePublicAccessBlock: _nothing_to_delete,
    Op.GetBucketOwnershipControls: _document(
        "OwnershipControls", {"Rule": {"ObjectOwnership": "BucketOwnerEnforced"}}
    ),
    Op.GetBucketLogging: _document("BucketLoggingStatus", {}),
    Op.GetBucketAccelerateConfiguration: _document("AccelerateConfiguration", {}),
    Op.GetBucketRequestPayment: _document("RequestPaymentConfiguration", {"Payer": "BucketOwner"}),
    Op.GetBucketNotificationConfiguration: _document("NotificationConfiguration", {}),
    Op.ListBucketAnalyticsConfigurations: _document(
        "ListBucketAnalyticsConfigurationResult", _EMPTY_LIST
    ),
    Op.ListBucketMetricsConfigurations: _document("ListMetricsConfigurationsResult", _EMPTY_LIST),
    Op.ListBucketInventoryConfigurations: _document(
        "ListInventoryConfigurationsResult", _EMPTY_LIST
    ),
    Op.ListBucketIntelligentTieringConfigurations: _document(
        "ListBucketIntelligentTieringConfigurationsOutput", _EMPTY_LIST
    ),
    Op.GetObjectRetention: _no_object_lock,
    Op.GetObjectLegalHold: _no_object_lock,
}
