"""What a handler receives: the request, its typed endpoint, who signed it, and the app state."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from dedup.engine import Engine
from gateway.config import Config
from gateway.credentials import StaticCredentials
from gateway.s3.auth import AuthResult
from gateway.s3.errors import S3Error
from gateway.s3.payload import PayloadReader, open_payload, read_small_body
from gateway.s3.router import Endpoint

MAX_XML_BODY = 2 * 1024 * 1024


@dataclass
class S3Request:
    request: web.Request
    endpoint: Endpoint
    auth: AuthResult
    engine: Engine
    config: Config
    credentials: StaticCredentials
    request_id: str

    @property
    def bucket(self) -> str:
        if self.endpoint.bucket is None:
            raise S3Error("InvalidRequest", "A bucket name is required")
        return self.endpoint.bucket

    @property
    def key(self) -> str:
        if self.endpoint.key is None:
            raise S3Error("InvalidRequest", "An object key is required")
        return self.endpoint.key

    @property
    def query(self) -> dict[str, str]:
        return dict(self.endpoint.query)

    def header(self, name: str) -> str | None:
        return self.request.headers.get(name)

    def payload(self) -> PayloadReader:
        return open_payload(self.request, self.auth, self.engine.hash_pool)

    async def small_body(self, limit: int = MAX_XML_BODY) -> bytes:
        return await read_small_body(self.request, self.auth, limit, self.engine.hash_pool)


Handler = Callable[[S3Request], Awaitable[web.StreamResponse]]
