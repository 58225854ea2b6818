"""A minimal SigV4-signing client for the admin API (used by `s3dedup admin ...`)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import aiohttp
from defusedxml import ElementTree

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
TIMEOUT = 3600.0  # seconds: fsck --verify-data and gc of a large store take a while


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def sign(
    method: str,
    url: str,
    access_key: str,
    secret_key: str,
    region: str = "us-east-1",
    now: datetime | None = None,
) -> dict[str, str]:
    """Headers that sign a body-less request with AWS Signature Version 4 (service s3)."""
    now = now or datetime.now(UTC)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    parts = urlsplit(url)
    pairs = sorted(
        (quote(unquote(k), safe="-_.~"), quote(unquote(v), safe="-_.~"))
        for k, _, v in (p.partition("=") for p in parts.query.split("&") if p)
    )
    query = "&".join(f"{k}={v}" for k, v in pairs)
    headers = {"host": parts.netloc, "x-amz-content-sha256": EMPTY_SHA256, "x-amz-date": amz_date}
    signed = ";".join(sorted(headers))
    canonical = "\n".join(
        [
            method,
            parts.path or "/",
            query,
            "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)),
            signed,
            EMPTY_SHA256,
        ]
    )
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _hmac(
        _hmac(_hmac(_hmac(("AWS4" + secret_key).encode(), day), region), "s3"), "aws4_request"
    )
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed},"
        f" Signature={signature}"
    )
    del headers["host"]
    return headers


class AdminError(Exception):
    """A failed admin call, with a message meant for the user."""


_AUTH_CODES = ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch")


def _describe(status: int, body: bytes) -> str:
    """The S3 error code and message of an error response, or the start of the body."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        text = body.decode(errors="replace").strip()[:300]
        return f"HTTP {status}" + (f": {text}" if text else "")
    code = root.findtext("Code") or f"HTTP {status}"
    message = root.findtext("Message") or ""
    out = f"{code}: {message}" if message else code
    if code in _AUTH_CODES:
        out += (
            " (check S3DEDUP_ACCESS_KEY / S3DEDUP_SECRET_KEY, or pass --data DIR to use the key"
            " pair the server generated)"
        )
    return out


async def call(
    method: str,
    endpoint: str,
    path: str,
    access_key: str,
    secret_key: str,
    query: dict[str, str] | None = None,
) -> Any:
    """The JSON answer of an admin endpoint. Raises :class:`AdminError`."""
    url = endpoint.rstrip("/") + path
    if not url.startswith(("http://", "https://")):
        raise AdminError(f"--endpoint must be an http:// or https:// URL, got {endpoint!r}")
    if query:
        url += "?" + "&".join(f"{quote(k)}={quote(v)}" for k, v in query.items())
    headers = sign(method, url, access_key, secret_key)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as session:
            async with session.request(method, url, headers=headers) as resp:
                body = await resp.read()
                status = resp.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise AdminError(f"cannot reach {endpoint}: {exc or type(exc).__name__}") from exc
    if status != 200:
        raise AdminError(f"{method} {endpoint}{path} failed: {_describe(status, body)}")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise AdminError(f"{endpoint} did not answer like an s3dedup server: {exc}") from exc
