"""CORS: Get/Put/DeleteBucketCors, the preflight (``OPTIONS``, answered without
authentication as S3 does, before routing) and the CORS headers of other responses to a
request with an ``Origin``. The rules themselves are :mod:`gateway.s3.cors`."""

from __future__ import annotations

from aiohttp import web

from dedup.engine import Engine
from gateway.s3 import cors
from gateway.s3.context import Handler, S3Request
from gateway.s3.errors import S3Error
from gateway.s3.handlers.common import (
    config_document,
    set_bucket_config,
    stored_config,
    xml_response,
)
from gateway.s3.router import Op
from gateway.s3.xml import parse_cors

KIND = "cors"
NOT_ALLOWED = (
    "CORSResponse: This CORS request is not allowed. This is usually because the evalution of"
    " Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers"
    " are not whitelisted by the resource's CORS spec."
)


def bucket_rules(engine: Engine, bucket: str) -> tuple[cors.CorsRule, ...] | None:
    """The bucket's rules; None when the bucket does not exist, () when it has none."""
    rec = engine.lookup(lambda txn: txn.bucket(bucket))
    if rec is None:
        return None
    raw = rec.configs.get(KIND)
    return () if raw is None else cors.from_json(raw)


async def get_bucket_cors(r: S3Request) -> web.StreamResponse:
    raw = stored_config(r, KIND, "NoSuchCORSConfiguration")
    return xml_response("CORSConfiguration", cors.to_document(cors.from_json(raw)))


async def put_bucket_cors(r: S3Request) -> web.StreamResponse:
    body = await config_document(r, 64 * 1024)
    await set_bucket_config(r, KIND, cors.to_json(cors.rules_from_document(parse_cors(body))))
    return web.Response(status=200)


async def delete_bucket_cors(r: S3Request) -> web.StreamResponse:
    await set_bucket_config(r, KIND, None)
    return web.Response(status=204)


def preflight(request: web.Request, engine: Engine, bucket: str, key: str | None) -> web.Response:
    """Answer a CORS preflight for ``bucket`` (and ``key``), in S3's order of checks: the
    Origin, the bucket and its configuration, then the method and the rules. A refusal names
    the requested method and what was looked at (BUCKET until rules were tried on a key)."""
    headers = request.headers
    origin = headers.get("Origin")
    if not origin:
        raise S3Error("BadRequest", "Insufficient information. Origin request header needed.")
    method = headers.get("Access-Control-Request-Method")
    named = method or "OPTIONS"
    rules = bucket_rules(engine, bucket)
    if rules is None:
        raise S3Error(
            "AccessForbidden", "CORSResponse: Bucket not found", Method=named, ResourceType="BUCKET"
        )
    if not rules:
        raise S3Error("AccessForbidden", Method=named, ResourceType="BUCKET")
    if method not in cors.METHODS:
        raise S3Error("BadRequest", f"Invalid Access-Control-Request-Method: {method or 'null'}")
    wanted = cors.split_header_list(headers.get("Access-Control-Request-Headers"))
    rule = cors.find_rule(rules, origin, method, wanted)
    if rule is None:
        kind = "OBJECT" if key is not None else "BUCKET"
        raise S3Error("AccessForbidden", NOT_ALLOWED, Method=method, ResourceType=kind)
    return web.Response(
        status=200, headers=cors.response_headers(rule, origin, requested_headers=wanted)
    )


def add_response_headers(
    request: web.Request, response: web.StreamResponse, engine: Engine, bucket: str
) -> None:
    """The CORS headers of a response to a request with an ``Origin`` that a rule allows."""
    origin = request.headers.get("Origin")
    if not origin or response.prepared:
        return
    rules = bucket_rules(engine, bucket)
    if not rules:
        return
    # S3 weighs the preflight headers when a plain request carries them (browsers never do)
    method = request.headers.get("Access-Control-Request-Method") or request.method
    wanted = cors.split_header_list(request.headers.get("Access-Control-Request-Headers"))
    rule = cors.find_rule(rules, origin, method, wanted)
    if rule is not None:
        response.headers.update(cors.response_headers(rule, origin))


HANDLERS: dict[Op, Handler] = {
    Op.GetBucketCors: get_bucket_cors,
    Op.PutBucketCors: put_bucket_cors,
    Op.DeleteBucketCors: delete_bucket_cors,
}
