"""ListBuckets (with the prefix / max-buckets / continuation-token / bucket-region
parameters S3 added in 2024)."""

from __future__ import annotations

from aiohttp import web

from dedup import catalog
from gateway.s3.context import Handler, S3Request
from gateway.s3.errors import S3Error
from gateway.s3.handlers.common import decode_token, encode_token, owner, xml_response
from gateway.s3.router import Op
from gateway.s3.xml import Node, timestamp

DEFAULT_PAGE = 10_000


def _max_buckets(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PAGE
    if not raw.isdigit() or not 1 <= int(raw) <= DEFAULT_PAGE:
        raise S3Error(
            "InvalidArgument",
            "Argument max-buckets must be an integer between 1 and 10000",
            ArgumentName="max-buckets",
            ArgumentValue=raw,
        )
    return int(raw)


async def list_buckets(r: S3Request) -> web.StreamResponse:
    q = r.query
    prefix = q.get("prefix", "")
    limit = _max_buckets(q.get("max-buckets"))
    token = q.get("continuation-token")
    after = "" if token is None else decode_token(token)
    region = q.get("bucket-region")
    buckets = await r.engine.read(catalog.list_buckets)
    if region is not None and region != r.config.region:
        buckets = []
    matching = [(n, b) for n, b in buckets if n.startswith(prefix) and n > after]
    page = matching[:limit]
    more = len(matching) > limit
    body: dict[str, Node] = {
        "Owner": owner(r),
        "Buckets": {
            "Bucket": [
                {
                    "Name": name,
                    "CreationDate": timestamp(b.created_ms),
                    "BucketRegion": r.config.region,
                }
                for name, b in page
            ]
        },
        "Prefix": prefix if "prefix" in q else None,
        "ContinuationToken": encode_token(page[-1][0]) if more else None,
    }
    return xml_response("ListAllMyBucketsResult", body)


HANDLERS: dict[Op, Handler] = {Op.ListBuckets: list_buckets}
