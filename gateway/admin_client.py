"""A minimal SigV4-signing client for the admin API (used by `s3dedup admin ...`)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def sign(
    method: str, url: str, access_key: str, secret_key: str, region: str = "us-east-1",
    now: datetime | None = None,
) -> dict[str, str]:
    """Headers that sign a body-less request with AWS Signature Version 4 (service s3)."""
    now = now or datetime.now(UTC)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    parts = urlsplit(url)
    pairs = sorted(
        (quote(k, safe="-_.~"), quote(v, safe="-_.~"))
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
    key = _hmac(_hmac(_hmac(_hmac(("AWS4" + secret_key).encode(), day), region), "s3"),
                "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed},"
        f" Signature={signature}"
    )
    del headers["host"]
    return headers


async def call(
    method: str, endpoint: str, path: str, access_key: str, secret_key: str,
    query: dict[str, str] | None = None, timeout: float = 3600,
) -> Any:
    url = endpoint.rstrip("/") + path
    if query:
        url += "?" + "&".join(f"{quote(k)}={quote(v)}" for k, v in query.items())
    headers = sign(method, url, access_key, secret_key)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        async with session.request(method, url, headers=headers) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise SystemExit(f"{method} {path}: HTTP {resp.status}: {body.decode(errors='replace')}")
            return json.loads(body)
