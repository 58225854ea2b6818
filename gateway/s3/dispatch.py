"""The one catch-all S3 route: request → typed endpoint → authentication → exactly one
handler. The one error middleware turns every failure into S3 XML with a request id."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from datetime import UTC, datetime

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from dedup import multipart
from dedup.engine import Engine
from dedup.index import BucketExistsError, BucketNotEmptyError, NoSuchBucketError, NoSuchKeyError
from dedup.store import ChunkCorrupt, ChunkNotFound
from gateway.cluster.placement import InsufficientNodes
from gateway.config import Config
from gateway.credentials import StaticCredentials
from gateway.s3 import handlers
from gateway.s3.auth import authenticate
from gateway.s3.context import S3Request
from gateway.s3.errors import S3Error
from gateway.s3.handlers import cors, policy, website
from gateway.s3.handlers.objects import check_version_id
from gateway.s3.router import Op, host_bucket, locate, route
from gateway.s3.xml import error_document

log = structlog.get_logger("s3dedup.access")

ENGINE = web.AppKey("engine", Engine)
CONFIG = web.AppKey("config", Config)
CREDENTIALS = web.AppKey("credentials", StaticCredentials)
REQUEST_ID = "s3dedup.request_id"
OPERATION = "s3dedup.operation"
BUCKET = "s3dedup.bucket"  # the routed request's bucket, for the CORS headers of its answer


class RequestIds:
    """Request ids unique per server start: a random tag + a counter (os.urandom for every
    request cost 6% of a small request's CPU on this VM)."""

    def __init__(self) -> None:
        self._tag = os.urandom(4).hex().upper()
        self._counter = itertools.count()

    def __call__(self) -> str:
        return f"{self._tag}{next(self._counter):08X}"


def translate(exc: Exception) -> S3Error | None:
    """Storage-layer errors become S3 errors here, and only here."""
    match exc:
        case NoSuchBucketError():
            return S3Error("NoSuchBucket", bucket_name=str(exc))
        case NoSuchKeyError():
            return S3Error("NoSuchKey")
        case BucketNotEmptyError():
            return S3Error("BucketNotEmpty", bucket_name=str(exc))
        case BucketExistsError():
            return S3Error("BucketAlreadyExists")
        case multipart.NoSuchUploadError():
            return S3Error("NoSuchUpload", UploadId=str(exc))
        case multipart.InvalidPartError():
            return S3Error("InvalidPart")
        case multipart.InvalidPartOrderError():
            return S3Error("InvalidPartOrder")
        case multipart.EntityTooSmallError():
            return S3Error("EntityTooSmall")
        case InsufficientNodes():  # too few storage nodes up for R replicas: retry later
            return S3Error("SlowDown")
        case ChunkNotFound() | ChunkCorrupt():
            return S3Error("InternalError", "A stored chunk is missing or damaged.")
    return None


_HTTP_TO_S3 = {
    405: "MethodNotAllowed",
    411: "MissingContentLength",
    413: "EntityTooLarge",
    414: "InvalidURI",
    431: "InvalidRequest",
}


def _from_http(exc: web.HTTPException) -> S3Error:
    if exc.status >= 500:
        return S3Error("InternalError")
    return S3Error(_HTTP_TO_S3.get(exc.status, "InvalidRequest"), exc.reason)


def error_response(err: S3Error, request: web.Request, request_id: str) -> web.Response:
    if "bucket_name" in err.extra:
        err.extra = {"BucketName": err.extra.pop("bucket_name"), **err.extra}
    if err.resource is None:
        err.resource = request.path
    body = b"" if request.method == "HEAD" else error_document(err, request_id)
    resp = web.Response(status=err.status, body=body, content_type="application/xml")
    if request.method == "HEAD":
        resp.headers["Content-Length"] = "0"
    resp.headers.update(err.headers)
    return resp


def make_s3_middleware() -> Middleware:
    """The one error middleware, with its own request-id source."""
    new_request_id = RequestIds()

    @web.middleware
    async def s3_middleware(
        request: web.Request,
        handler: Handler,
    ) -> web.StreamResponse:
        request_id = new_request_id()
        request[REQUEST_ID] = request_id
        started = time.perf_counter()
        status = 500
        try:
            try:
                resp: web.StreamResponse = await handler(request)
            except S3Error as s3err:
                resp = error_response(s3err, request, request_id)
            except web.HTTPException as exc:  # raised by aiohttp itself, e.g. a body too large
                resp = error_response(_from_http(exc), request, request_id)
            except (asyncio.CancelledError, ConnectionResetError):
                status = 499  # the client went away
                raise
            except Exception as exc:  # the one place that turns any failure into an S3 error
                translated = translate(exc)
                if translated is None:
                    log.exception("internal error", request_id=request_id)
                    translated = S3Error("InternalError")
                resp = error_response(translated, request, request_id)
            status = resp.status
            if not resp.prepared:
                resp.headers["x-amz-request-id"] = request_id
                resp.headers.setdefault("Server", "s3dedup")
                bucket = request.get(BUCKET)
                if bucket is not None and "Origin" in request.headers:
                    cors.add_response_headers(request, resp, request.app[ENGINE], bucket)
            return resp
        finally:
            log.info(
                "request",
                request_id=request_id,
                op=request.get(OPERATION),
                method=request.method,
                path=request.path,
                status=status,
                bytes_in=request.content_length,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )

    return s3_middleware


async def s3_handler(request: web.Request) -> web.StreamResponse:
    config = request.app[CONFIG]
    raw_path, _, raw_query = request.raw_path.partition("?")
    if config.website_domain:
        site = host_bucket(request.headers.get("Host"), config.website_domain)
        if site is not None:  # the website endpoint: unsigned GET/HEAD, HTML answers
            request[OPERATION] = "Website"
            request[BUCKET] = site  # its answers carry the bucket's CORS headers too
            engine, creds = request.app[ENGINE], request.app[CREDENTIALS]
            if request.method == "OPTIONS":
                return cors.preflight(request, engine, site, "")
            visit = website.Visit(request, engine, config, creds, request[REQUEST_ID], site)
            return await website.serve(visit)
    if request.method == "OPTIONS":
        bucket, key = locate(raw_path, request.headers, domain=config.domain)
        if bucket is not None:  # a CORS preflight: no S3 operation, no signature
            request[OPERATION] = "CorsPreflight"
            return cors.preflight(request, request.app[ENGINE], bucket, key)
    endpoint = route(request.method, raw_path, raw_query, request.headers, domain=config.domain)
    request[OPERATION] = endpoint.op.value
    request[BUCKET] = endpoint.bucket
    creds = request.app[CREDENTIALS]
    # SigV2 signs the bucket as part of the resource, not the Host: a virtual-host request's
    # bucket must go into what is verified, or a signature for one bucket would do for any
    vhost = host_bucket(request.headers.get("Host"), config.domain) if config.domain else None
    auth = authenticate(
        request.method,
        raw_path,
        raw_query,
        request.headers,
        creds,
        config.region,
        datetime.now(UTC),
        virtual_host_bucket=vhost,
    )
    fn = handlers.HANDLERS.get(endpoint.op)
    access = None
    # unsigned: only what the bucket's policy grants everyone. A browser form POST signs
    # inside its body: its handler checks that signature.
    if auth.access_key is None and endpoint.op is not Op.PostObject:
        access = policy.anonymous_access(request.app[ENGINE], endpoint)
    if fn is None:
        raise S3Error("NotImplemented", f"{endpoint.op.value} is not implemented by s3dedup.")
    ctx = S3Request(
        request=request,
        endpoint=endpoint,
        auth=auth,
        engine=request.app[ENGINE],
        config=config,
        credentials=creds,
        request_id=request[REQUEST_ID],
    )
    version = endpoint.query.get("versionId")
    if endpoint.key is not None:
        check_version_id(version)
    try:
        response: web.StreamResponse = await fn(ctx)
    except S3Error as err:
        # anyone may learn which keys exist only where anyone may list them (as S3)
        if access is not None and err.code == "NoSuchKey" and not access.list_bucket:
            raise S3Error("AccessDenied") from err
        raise
    response.headers["x-amz-request-id"] = ctx.request_id
    if endpoint.key is not None and version is not None and not response.prepared:
        response.headers["x-amz-version-id"] = version
    return response
