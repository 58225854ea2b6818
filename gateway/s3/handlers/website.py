"""Website hosting: Put/Get/DeleteBucketWebsite, and the website endpoint's GET/HEAD (see
:mod:`gateway.s3.website` for the rules). The endpoint answers in HTML, never XML, and
serves only objects the bucket's policy lets everyone read."""

from __future__ import annotations

from dataclasses import dataclass, field
from http import HTTPStatus
from types import MappingProxyType

from aiohttp import web

from dedup import catalog
from dedup.engine import Engine
from gateway.config import Config
from gateway.credentials import StaticCredentials
from gateway.s3 import website
from gateway.s3.auth import UNSIGNED_PAYLOAD, AuthResult
from gateway.s3.context import Handler, S3Request
from gateway.s3.errors import S3Error
from gateway.s3.handlers.common import (
    config_document,
    set_bucket_config,
    stored_config,
    xml_response,
)
from gateway.s3.handlers.objects import get_object, head_object
from gateway.s3.handlers.policy import public_access
from gateway.s3.policy import PublicAccess
from gateway.s3.router import Endpoint, Op, locate

ANONYMOUS = AuthResult(access_key=None, content_sha256=UNSIGNED_PAYLOAD)
# headers about the object asked for, not about the error document served in its place
_PER_OBJECT = frozenset(
    {"range", "if-match", "if-none-match", "if-modified-since", "if-unmodified-since"}
)


async def get_bucket_website(r: S3Request) -> web.StreamResponse:
    raw = stored_config(r, website.KIND, "NoSuchWebsiteConfiguration")
    return xml_response("WebsiteConfiguration", website.to_document(website.from_json(raw)))


async def put_bucket_website(r: S3Request) -> web.StreamResponse:
    body = await config_document(r, 128 * 1024)
    await set_bucket_config(r, website.KIND, website.to_json(website.from_xml(body)))
    return web.Response(status=200)


async def delete_bucket_website(r: S3Request) -> web.StreamResponse:
    await set_bucket_config(r, website.KIND, None)
    return web.Response(status=204)


HANDLERS: dict[Op, Handler] = {
    Op.GetBucketWebsite: get_bucket_website,
    Op.PutBucketWebsite: put_bucket_website,
    Op.DeleteBucketWebsite: delete_bucket_website,
}


# -- the website endpoint --------------------------------------------------------------------


@dataclass
class Visit:
    """One website request: what it needs to look objects up and answer."""

    request: web.Request
    engine: Engine
    config: Config
    credentials: StaticCredentials
    request_id: str
    bucket: str
    access: PublicAccess = field(default_factory=PublicAccess)

    def redirect(self, location: str, status: int = 301) -> web.Response:
        return web.Response(status=status, headers={"Location": location})

    def exists(self, key: str) -> bool:
        bucket = self.bucket
        return (
            self.engine.lookup(lambda txn: catalog.get_object_bytes(txn, bucket, key)) is not None
        )

    async def found(self, key: str, *, as_asked: bool = True) -> web.StreamResponse | None:
        """The object if everyone may read it and it exists (one lookup), else None."""
        if not self.access.can_read(key):
            return None
        try:
            return await self.object(key, as_asked=as_asked)
        except S3Error as err:
            if err.code != "NoSuchKey":
                raise
            return None

    async def object(self, key: str, *, as_asked: bool = True) -> web.StreamResponse:
        """The object, as GetObject / HeadObject answer it: with the request's Range and
        conditions (``as_asked``), or whole (the error document: the visitor's Range and
        conditions were about the page asked for, not about it)."""
        op = Op.HeadObject if self.request.method == "HEAD" else Op.GetObject
        request = self.request
        if not as_asked:
            kept = {k: v for k, v in request.headers.items() if k.lower() not in _PER_OBJECT}
            request = request.clone(headers=kept)
        ctx = S3Request(
            request=request,
            endpoint=Endpoint(op, self.bucket, key, MappingProxyType({})),
            auth=ANONYMOUS,
            engine=self.engine,
            config=self.config,
            credentials=self.credentials,
            request_id=self.request_id,
        )
        return await (head_object if op is Op.HeadObject else get_object)(ctx)

    def page(
        self,
        err: S3Error,
        extra: dict[str, str] | None = None,
        error_document: dict[str, str] | None = None,
    ) -> web.Response:
        reason = HTTPStatus(err.status).phrase
        fields = {"Code": err.code, "Message": err.message, **(extra or {})}
        fields["RequestId"] = self.request_id
        text = website.error_page(err.status, reason, fields, error_document)
        # HEAD: aiohttp sends the headers of the page (its true length) without the body
        resp = web.Response(status=err.status, text=text, content_type="text/html")
        resp.headers.update(err.headers)
        return resp


async def serve(visit: Visit) -> web.StreamResponse:
    """Answer a website request (its Host named the bucket)."""
    try:
        return await _serve(visit)
    except S3Error as err:
        return visit.page(err)


async def _serve(s: Visit) -> web.StreamResponse:
    request = s.request
    if request.method not in ("GET", "HEAD"):
        raise S3Error(
            "MethodNotAllowed",
            Method=request.method,
            ResourceType="OBJECT",
            headers={"Allow": "GET, HEAD, OPTIONS"},
        )
    rec = s.engine.lookup(lambda txn: txn.bucket(s.bucket))
    if rec is None:
        raise S3Error("NoSuchBucket", bucket_name=s.bucket)
    raw = rec.configs.get(website.KIND)
    if raw is None:
        raise S3Error("NoSuchWebsiteConfiguration", bucket_name=s.bucket)
    site = website.from_json(raw)
    # the whole path is the key: the Host named the bucket
    raw_path = request.raw_path.partition("?")[0]
    _, path_key = locate(raw_path, request.headers, domain=s.config.website_domain)
    asked = path_key or ""
    scheme, host = request.scheme, request.host
    if site.redirect_all is not None:
        return s.redirect(website.redirect_location(site.redirect_all, asked, "", scheme, host))
    rule = site.rule_before(asked)
    if rule is not None:
        where = website.redirect_location(rule.redirect, asked, rule.key_prefix or "", scheme, host)
        return s.redirect(where, int(rule.redirect.code or 301))
    assert site.index is not None  # a configuration without RedirectAllRequestsTo has one
    key = asked + site.index if asked == "" or asked.endswith("/") else asked
    s.access = public_access(s.engine, s.bucket)
    obj = await s.found(key)
    if obj is not None:
        target = obj.headers.get("x-amz-website-redirect-location")
        return s.redirect(target) if target else obj
    folder = f"{key}/{site.index}"
    if key == asked and s.access.can_read(folder) and s.exists(folder):
        # a "directory" asked for without its slash
        return s.redirect(f"/{website.encode_key(key)}/", 302)
    status = 404 if s.access.can_read(key) else 403
    rule = site.rule_after(asked, status)
    if rule is not None:
        where = website.redirect_location(rule.redirect, asked, rule.key_prefix or "", scheme, host)
        return s.redirect(where, int(rule.redirect.code or 301))
    err = S3Error("NoSuchKey", Key=key) if status == 404 else S3Error("AccessDenied")
    details = {"Key": key} if status == 404 else None
    if site.error is None:
        return s.page(err, details)
    page = await s.found(site.error, as_asked=False)
    if page is not None:
        page.set_status(status)
        return page
    # S3 says why its custom error document could not be served
    why = (
        {"Code": "NoSuchKey", "Message": "The specified key does not exist."}
        if s.access.can_read(site.error)
        else {"Code": "AccessDenied", "Message": "Access Denied"}
    )
    return s.page(err, details, {**why, "Key": site.error})
