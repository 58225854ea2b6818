"""Hand-built SigV4 streaming requests: botocore signs the headers, and the aws-chunked
body (AWS "sigv4-streaming" docs) is framed and chained here, independently of the code
under test."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import dataclass

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.conftest import ACCESS_KEY, REGION, SECRET_KEY

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


class FixedPayloadSigner(S3SigV4Auth):  # type: ignore[misc]
    """botocore's header signer with a given x-amz-content-sha256 value (None: the body's hash)."""

    def __init__(
        self,
        content_sha256: str | None,
        access_key: str = ACCESS_KEY,
        secret_key: str = SECRET_KEY,
        region: str = REGION,
    ) -> None:
        super().__init__(Credentials(access_key, secret_key), "s3", region)
        self._content_sha256 = content_sha256

    def payload(self, request: AWSRequest) -> str:
        if self._content_sha256 is None:
            return str(super().payload(request))
        return self._content_sha256


@dataclass
class SignedRequest:
    url: str
    headers: dict[str, str]
    signing_key: bytes
    seed: str
    amz_date: str
    scope: str


def sign(
    method: str,
    url: str,
    headers: dict[str, str],
    content_sha256: str | None,
    *,
    body: bytes = b"",
    access_key: str = ACCESS_KEY,
    secret_key: str = SECRET_KEY,
    region: str = REGION,
) -> SignedRequest:
    """botocore signs the headers; the signing key for the chunk chain is derived here."""
    request = AWSRequest(method=method, url=url, headers=dict(headers), data=body)
    FixedPayloadSigner(content_sha256, access_key, secret_key, region).add_auth(request)
    signed = dict(request.headers.items())
    amz_date = signed["X-Amz-Date"]
    scope = f"{amz_date[:8]}/{region}/s3/aws4_request"
    key = _hmac(("AWS4" + secret_key).encode(), amz_date[:8])
    for part in (region, "s3", "aws4_request"):
        key = _hmac(key, part)
    seed = signed["Authorization"].rsplit("Signature=", 1)[1]
    return SignedRequest(url, signed, key, seed, amz_date, scope)


def _pieces(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def aws_chunked(
    data: bytes,
    chunk_size: int,
    signed: SignedRequest | None,
    trailers: list[tuple[str, str]] | None = None,
    *,
    sign_trailers: bool = False,
    corrupt_chunk: int | None = None,
) -> bytes:
    """The aws-chunked encoding of ``data``: frames ``hex-size;chunk-signature=sig\\r\\n data
    \\r\\n`` (signatures if ``signed`` is given), a final 0 frame, then trailers."""
    out = bytearray()
    previous = signed.seed if signed else ""
    for n, chunk in enumerate([*_pieces(data, chunk_size), b""]):
        out += f"{len(chunk):x}".encode()
        if signed is not None:
            string_to_sign = "\n".join(
                (
                    "AWS4-HMAC-SHA256-PAYLOAD",
                    signed.amz_date,
                    signed.scope,
                    previous,
                    EMPTY_SHA256,
                    _sha(chunk),
                )
            )
            previous = hmac.new(signed.signing_key, string_to_sign.encode(), "sha256").hexdigest()
            sig = previous
            if n == corrupt_chunk:
                sig = ("0" if sig[0] != "0" else "1") + sig[1:]
            out += f";chunk-signature={sig}".encode()
        out += b"\r\n"
        if chunk:
            out += chunk + b"\r\n"
    for name, value in trailers or []:
        out += f"{name}:{value}\r\n".encode()
    if sign_trailers:
        assert signed is not None
        canonical = "".join(f"{n}:{v}\n" for n, v in sorted(trailers or []))
        string_to_sign = "\n".join(
            (
                "AWS4-HMAC-SHA256-TRAILER",
                signed.amz_date,
                signed.scope,
                previous,
                _sha(canonical.encode()),
            )
        )
        sig = hmac.new(signed.signing_key, string_to_sign.encode(), "sha256").hexdigest()
        out += f"x-amz-trailer-signature:{sig}\r\n".encode()
    out += b"\r\n"
    return bytes(out)
