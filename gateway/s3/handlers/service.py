"""ListBuckets."""

from __future__ import annotations

from aiohttp import web

from dedup import catalog
from gateway.s3.context import Handler, S3Request
from gateway.s3.handlers.common import owner, xml_response
from gateway.s3.router import Op
from gateway.s3.xml import timestamp


async def list_buckets(r: S3Request) -> web.StreamResponse:
    buckets = await r.engine.read(catalog.list_buckets)
    return xml_response(
        "ListAllMyBucketsResult",
        {
            "Owner": owner(r),
            "Buckets": {
                "Bucket": [
                    {"Name": name, "CreationDate": timestamp(b.created_ms)} for name, b in buckets
                ]
            },
        },
    )


HANDLERS: dict[Op, Handler] = {Op.ListBuckets: list_buckets}
