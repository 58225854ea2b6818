"""Decoded request bodies through a real aiohttp server on a loopback port.

Requests are signed by botocore (the seed signature); aws-chunked bodies are built by the small
encoder below, which follows the AWS "sigv4-streaming" and "sigv4-streaming-trailers" pages.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import os
import zlib
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import StreamReader, web
from aiohttp.test_utils import make_mocked_request
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum

from gateway.s3.auth import AuthResult, authenticate, derive_signing_key
from gateway.s3.errors import S3Error
from gateway.s3.payload import BLOCK_SIZE, open_payload, read_small_body
from tests.awschunked import SignedRequest, aws_chunked, sign

REGION = "us-east-1"
ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

STREAMING = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"


class Store:
    def secret_key(self, access_key: str) -> str | None:
        return SECRET_KEY if access_key == ACCESS_KEY else None


@dataclass
class Outcome:
    status: int
    body: dict[str, Any]


ERRORS = web.AppKey("errors", list[str])
EXECUTOR = web.AppKey("executor", ThreadPoolExecutor)


async def handler(request: web.Request) -> web.Response:
    raw_path, _, raw_query = request.raw_path.partition("?")
    executor = request.app[EXECUTOR]
    try:
        auth = authenticate(
            request.method,
            raw_path,
            raw_query,
            request.headers,
            Store(),
            REGION,
            datetime.now(UTC),
        )
        if "small" in request.query:
            body = await read_small_body(request, auth, int(request.query["small"]), executor)
            return web.json_response({"length": len(body), "sha256": _sha(body)})
        reader = open_payload(request, auth, executor)
        hasher = hashlib.sha256()
        blocks = 0
        max_block = 0
        while block := await reader.read():
            assert 0 < len(block) <= BLOCK_SIZE
            hasher.update(block)
            blocks += 1
            max_block = max(max_block, len(block))
        assert await reader.read() == b""
        return web.json_response(
            {
                "length": reader.bytes_read,
                "sha256": hasher.hexdigest(),
                "declared": reader.declared_length,
                "trailers": reader.trailers,
                "max_block": max_block,
                "blocks": blocks,
            }
        )
    except S3Error as err:
        request.app[ERRORS].append(err.code)
        return web.json_response({"code": err.code, "message": err.message}, status=err.status)


@dataclass
class Server:
    app: web.Application
    port: int


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    """A real server on a loopback port; like production, handlers are not cancelled when the
    client goes away (aiohttp's TestServer would cancel them)."""
    app = web.Application(client_max_size=64 << 20)
    app[ERRORS] = []
    with ThreadPoolExecutor(2) as executor:
        app[EXECUTOR] = executor
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, handler_cancellation=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            port = runner.addresses[0][1]
            yield Server(app, port)
        finally:
            await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as client:
        yield client


# --------------------------------------------------------------------------- client side


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sign_request(
    url: str,
    *,
    content_sha256: str | None,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> SignedRequest:
    return sign(
        "PUT",
        url,
        headers or {},
        content_sha256,
        body=body,
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        region=REGION,
    )


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


async def _body_stream(body: bytes, piece: int = 100_003) -> AsyncIterator[bytes]:
    for start in range(0, len(body), piece):
        yield body[start : start + piece]
        await asyncio.sleep(0)


async def send(
    session: aiohttp.ClientSession,
    signed: SignedRequest,
    body: bytes,
    *,
    chunked: bool,
    headers: dict[str, str] | None = None,
) -> Outcome:
    all_headers = {**signed.headers, **(headers or {})}
    data: io.BytesIO | AsyncIterator[bytes] = _body_stream(body) if chunked else io.BytesIO(body)
    async with session.put(signed.url, data=data, headers=all_headers) as response:
        return Outcome(response.status, await response.json())


def _url(server: Server, key: str = "bucket/key", query: str = "") -> str:
    return f"http://127.0.0.1:{server.port}/{key}" + (f"?{query}" if query else "")


def _streaming_headers(
    data_length: int, *, trailer: str | None = None, encoding: bool = True
) -> dict[str, str]:
    headers = {"x-amz-decoded-content-length": str(data_length)}
    if encoding:
        headers["Content-Encoding"] = "aws-chunked"
    if trailer:
        headers["x-amz-trailer"] = trailer
    return headers


CHUNKED = pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "te-chunked"])


# --------------------------------------------------------------------------- signed streaming


@CHUNKED
@pytest.mark.parametrize(
    ("size", "chunk_size"),
    [(0, 65536), (1, 65536), (65536 * 2 + 1024, 65536), (3 * 1024 * 1024 + 7, 1 << 20)],
)
async def test_signed_streaming(
    server: Server, session: aiohttp.ClientSession, chunked: bool, size: int, chunk_size: int
) -> None:
    data = os.urandom(size)
    signed = sign_request(_url(server), content_sha256=STREAMING, headers=_streaming_headers(size))
    outcome = await send(session, signed, aws_chunked(data, chunk_size, signed), chunked=chunked)
    assert outcome.status == 200, outcome.body
    assert outcome.body["length"] == size
    assert outcome.body["sha256"] == _sha(data)
    assert outcome.body["declared"] == size
    assert outcome.body["trailers"] == {}


@CHUNKED
async def test_signed_streaming_large_frames(
    server: Server, session: aiohttp.ClientSession, chunked: bool
) -> None:
    data = os.urandom(9 * 1024 * 1024 + 12345)
    signed = sign_request(
        _url(server),
        content_sha256=STREAMING,
        headers=_streaming_headers(len(data), encoding=False),
    )
    outcome = await send(
        session, signed, aws_chunked(data, 8 * 1024 * 1024, signed), chunked=chunked
    )
    assert outcome.status == 200, outcome.body
    assert outcome.body["sha256"] == _sha(data)
    assert outcome.body["max_block"] <= BLOCK_SIZE
    assert outcome.body["blocks"] >= 10


@CHUNKED
async def test_signed_trailer(
    server: Server, session: aiohttp.ClientSession, chunked: bool
) -> None:
    data = os.urandom(200_000)
    trailer = [("x-amz-checksum-crc32", crc32_b64(data))]
    signed = sign_request(
        _url(server),
        content_sha256=STREAMING_TRAILER,
        headers=_streaming_headers(len(data), trailer="x-amz-checksum-crc32"),
    )
    body = aws_chunked(data, 65536, signed, trailer, sign_trailers=True)
    outcome = await send(session, signed, body, chunked=chunked)
    assert outcome.status == 200, outcome.body
    assert outcome.body["sha256"] == _sha(data)
    assert outcome.body["trailers"] == {"x-amz-checksum-crc32": crc32_b64(data)}


async def test_signed_trailer_bad_signature(server: Server, session: aiohttp.ClientSession) -> None:
    data = b"payload" * 1000
    signed = sign_request(
        _url(server),
        content_sha256=STREAMING_TRAILER,
        headers=_streaming_headers(len(data), trailer="x-amz-checksum-crc32"),
    )
    body = aws_chunked(
        data, 4096, signed, [("x-amz-checksum-crc32", crc32_b64(data))], sign_trailers=True
    )
    tampered = body.replace(crc32_b64(data).encode(), crc32_b64(b"other").encode())
    outcome = await send(session, signed, tampered, chunked=False)
    assert (outcome.status, outcome.body["code"]) == (403, "SignatureDoesNotMatch")


async def test_signed_trailer_missing_signature(
    server: Server, session: aiohttp.ClientSession
) -> None:
    data = b"x" * 10
    signed = sign_request(
        _url(server),
        content_sha256=STREAMING_TRAILER,
        headers=_streaming_headers(len(data), trailer="x-amz-checksum-crc32"),
    )
    body = aws_chunked(data, 4096, signed, [("x-amz-checksum-crc32", crc32_b64(data))])
    outcome = await send(session, signed, body, chunked=False)
    assert outcome.body["code"] == "SignatureDoesNotMatch"


@CHUNKED
async def test_bad_chunk_signature(
    server: Server, session: aiohttp.ClientSession, chunked: bool
) -> None:
    data = os.urandom(3 * 65536)
    signed = sign_request(
        _url(server), content_sha256=STREAMING, headers=_streaming_headers(len(data))
    )
    body = bytearray(aws_chunked(data, 65536, signed))
    # Flip one data byte of the second frame: its signature no longer matches.
    second_frame = body.index(b"\r\n", 65536 + 90) + 2
    body[second_frame + 10] ^= 0xFF
    outcome = await send(session, signed, bytes(body), chunked=chunked)
    assert (outcome.status, outcome.body["code"]) == (403, "SignatureDoesNotMatch")


async def test_chunk_signatures_chain_from_the_seed(
    server: Server, session: aiohttp.ClientSession
) -> None:
    data = b"abc" * 100
    signed = sign_request(
        _url(server), content_sha256=STREAMING, headers=_streaming_headers(len(data))
    )
    other = sign_request(
        _url(server),
        content_sha256=STREAMING,
        headers={**_streaming_headers(len(data)), "x-amz-meta-a": "1"},
    )
    outcome = await send(session, signed, aws_chunked(data, 100, other), chunked=False)
    assert outcome.body["code"] == "SignatureDoesNotMatch"


async def test_missing_chunk_signature(server: Server, session: aiohttp.ClientSession) -> None:
    data = b"abc"
    signed = sign_request(
        _url(server), content_sha256=STREAMING, headers=_streaming_headers(len(data))
    )
    outcome = await send(session, signed, aws_chunked(data, 100, None), chunked=False)
    assert outcome.body["code"] == "SignatureDoesNotMatch"


@CHUNKED
async def test_truncated_streaming_body(
    server: Server, session: aiohttp.ClientSession, chunked: bool
) -> None:
    data = os.urandom(3 * 65536)
    signed = sign_request(
        _url(server), content_sha256=STREAMING, headers=_streaming_headers(len(data))
    )
    body = aws_chunked(data, 65536, signed)
    for cut in (len(body) - 3, 65536 * 2 + 50, 40, 1):
        outcome = await send(session, signed, body[:cut], chunked=chunked)
        assert (outcome.status, outcome.body["code"]) == (400, "IncompleteBody"), cut


async def test_decoded_length_mismatch(server: Server, session: aiohttp.ClientSession) -> None:
    data = b"z" * 1000
    longer = sign_request(
        _url(server), content_sha256=STREAMING, headers=_streaming_headers(len(data) + 1)
    )
    outcome = await send(session, longer, aws_chunked(data, 300, longer), chunked=False)
    assert outcome.body["code"] == "IncompleteBody"
    shorter = sign_request(
        _url(server), content_sha256=STREAMING, headers=_streaming_headers(len(data) - 1)
    )
    outcome = await send(session, shorter, aws_chunked(data, 300, shorter), chunked=False)
    assert (outcome.status, outcome.body["code"]) == (400, "InvalidRequest")


async def test_streaming_without_decoded_length(
    server: Server, session: aiohttp.ClientSession
) -> None:
    data = os.urandom(5000)
    signed = sign_request(_url(server), content_sha256=STREAMING)
    outcome = await send(session, signed, aws_chunked(data, 1000, signed), chunked=True)
    assert outcome.status == 200, outcome.body
    assert outcome.body["declared"] is None
    assert outcome.body["sha256"] == _sha(data)


async def test_streaming_requires_signed_request(
    server: Server, session: aiohttp.ClientSession
) -> None:
    body = b"3\r\nabc\r\n0\r\n\r\n"
    headers = {"x-amz-content-sha256": STREAMING, "x-amz-decoded-content-length": "3"}
    async with session.put(_url(server), data=body, headers=headers) as response:
        assert response.status == 400
        assert (await response.json())["code"] == "InvalidRequest"


# --------------------------------------------------------------------------- unsigned trailer


@CHUNKED
async def test_unsigned_trailer_botocore_encoder(
    server: Server, session: aiohttp.ClientSession, chunked: bool
) -> None:
    data = os.urandom(2 * 1024 * 1024 + 99)
    encoded = AwsChunkedWrapper(
        io.BytesIO(data), checksum_cls=Crc32Checksum, checksum_name="x-amz-checksum-crc32"
    ).read()
    signed = sign_request(
        _url(server),
        content_sha256=UNSIGNED_TRAILER,
        headers=_streaming_headers(len(data), trailer="x-amz-checksum-crc32"),
    )
    outcome = await send(session, signed, encoded, chunked=chunked)
    assert outcome.status == 200, outcome.body
    assert outcome.body["sha256"] == _sha(data)
    assert outcome.body["trailers"] == {"x-amz-checksum-crc32": crc32_b64(data)}


async def test_unsigned_trailer_anonymous(server: Server, session: aiohttp.ClientSession) -> None:
    data = b"hello world"
    body = aws_chunked(data, 4, None, [("x-amz-checksum-crc32", crc32_b64(data))])
    headers = {
        "x-amz-content-sha256": UNSIGNED_TRAILER,
        "x-amz-trailer": "x-amz-checksum-crc32",
        **_streaming_headers(len(data)),
    }
    async with session.put(_url(server), data=body, headers=headers) as response:
        assert response.status == 200
        assert (await response.json())["trailers"] == {"x-amz-checksum-crc32": crc32_b64(data)}


async def test_unannounced_trailer(server: Server, session: aiohttp.ClientSession) -> None:
    data = b"hello"
    signed = sign_request(
        _url(server),
        content_sha256=UNSIGNED_TRAILER,
        headers=_streaming_headers(len(data), trailer="x-amz-checksum-crc32"),
    )
    body = aws_chunked(data, 4, None, [("x-amz-checksum-sha256", "AAAA")])
    outcome = await send(session, signed, body, chunked=False)
    assert (outcome.status, outcome.body["code"]) == (400, "InvalidRequest")


async def test_missing_announced_trailer(server: Server, session: aiohttp.ClientSession) -> None:
    data = b"hello"
    signed = sign_request(
        _url(server),
        content_sha256=UNSIGNED_TRAILER,
        headers=_streaming_headers(len(data), trailer="x-amz-checksum-crc32"),
    )
    outcome = await send(session, signed, aws_chunked(data, 4, None), chunked=False)
    assert outcome.body["code"] == "InvalidRequest"


@pytest.mark.parametrize(
    "body",
    [
        b"zz\r\nabc\r\n0\r\n\r\n",  # not hex
        b"3\r\nabcdef\r\n0\r\n\r\n",  # frame longer than declared
        b"5" * 5000 + b"\r\n",  # header line too long
        b"3\r\nabc\r\n0\r\nno-colon\r\n\r\n",  # malformed trailer line
        b"3\r\nabc\r\n0\r\n\r\n\r\ntrailing garbage",  # data after the end
        b"-3\r\nabc\r\n0\r\n\r\n",  # negative size
    ],
)
async def test_malformed_framing(
    server: Server, session: aiohttp.ClientSession, body: bytes
) -> None:
    signed = sign_request(_url(server), content_sha256=UNSIGNED_TRAILER)
    outcome = await send(session, signed, body, chunked=False)
    assert (outcome.status, outcome.body["code"]) == (400, "InvalidRequest"), outcome.body


async def test_signed_frame_too_large(server: Server, session: aiohttp.ClientSession) -> None:
    signed = sign_request(_url(server), content_sha256=STREAMING)
    body = b"1000001;chunk-signature=" + b"0" * 64 + b"\r\n" + b"x" * 1000
    outcome = await send(session, signed, body, chunked=True)
    assert (outcome.status, outcome.body["code"]) == (400, "InvalidRequest")


async def test_unsigned_frames_are_streamed(server: Server, session: aiohttp.ClientSession) -> None:
    data = os.urandom(17 * 1024 * 1024)
    signed = sign_request(_url(server), content_sha256=UNSIGNED_TRAILER)
    outcome = await send(session, signed, aws_chunked(data, len(data), None), chunked=True)
    assert outcome.status == 200, outcome.body
    assert outcome.body["sha256"] == _sha(data)
    assert outcome.body["max_block"] <= BLOCK_SIZE


async def test_lf_only_framing_and_no_final_crlf_are_tolerated(
    server: Server, session: aiohttp.ClientSession
) -> None:
    signed = sign_request(_url(server), content_sha256=UNSIGNED_TRAILER)
    outcome = await send(session, signed, b"3\nabc\n0\n", chunked=False)
    assert outcome.status == 200, outcome.body
    assert outcome.body["sha256"] == _sha(b"abc")


# --------------------------------------------------------------------------- plain bodies


@CHUNKED
async def test_plain_hex_sha256(
    server: Server, session: aiohttp.ClientSession, chunked: bool
) -> None:
    data = os.urandom(3 * 1024 * 1024 + 5)
    signed = sign_request(_url(server), content_sha256=None, body=data)
    assert signed.headers["X-Amz-Content-SHA256"] == _sha(data)
    outcome = await send(session, signed, data, chunked=chunked)
    assert outcome.status == 200, outcome.body
    assert outcome.body["sha256"] == _sha(data)
    assert outcome.body["declared"] == (None if chunked else len(data))
    assert outcome.body["max_block"] <= BLOCK_SIZE


@CHUNKED
async def test_plain_hex_sha256_mismatch(
    server: Server, session: aiohttp.ClientSession, chunked: bool
) -> None:
    signed = sign_request(_url(server), content_sha256=None, body=b"the signed body")
    outcome = await send(session, signed, b"another body!!!", chunked=chunked)
    assert (outcome.status, outcome.body["code"]) == (400, "XAmzContentSHA256Mismatch")


@CHUNKED
async def test_plain_unsigned_payload(
    server: Server, session: aiohttp.ClientSession, chunked: bool
) -> None:
    data = os.urandom(100_000)
    signed = sign_request(_url(server), content_sha256="UNSIGNED-PAYLOAD")
    outcome = await send(session, signed, data, chunked=chunked)
    assert outcome.status == 200
    assert outcome.body["sha256"] == _sha(data)


async def test_client_disconnect_is_incomplete_body(server: Server) -> None:
    for content_sha256, body in (
        ("UNSIGNED-PAYLOAD", b"x" * 500),
        (UNSIGNED_TRAILER, b"400\r\n" + b"x" * 500),
    ):
        signed = sign_request(_url(server), content_sha256=content_sha256)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        path = urlsplit(signed.url).path
        head = f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Length: 2000\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in signed.headers.items())
        writer.write(head.encode() + b"\r\n" + body)
        await writer.drain()
        writer.write_eof()
        await reader.read()
        writer.close()
        await writer.wait_closed()
        errors = server.app[ERRORS]
        for _ in range(100):
            if errors:
                break
            await asyncio.sleep(0.01)
        assert errors == ["IncompleteBody"]
        errors.clear()


# --------------------------------------------------------------------------- read_small_body


def _md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


@CHUNKED
async def test_small_body(server: Server, session: aiohttp.ClientSession, chunked: bool) -> None:
    xml = b"<Delete><Object><Key>a</Key></Object></Delete>"
    url = _url(server, "bucket", "delete&small=1000")
    signed = sign_request(url, content_sha256=None, body=xml, headers={"Content-MD5": _md5(xml)})
    outcome = await send(session, signed, xml, chunked=chunked)
    assert outcome.status == 200, outcome.body
    assert outcome.body == {"length": len(xml), "sha256": _sha(xml)}


@CHUNKED
async def test_small_body_too_large(
    server: Server, session: aiohttp.ClientSession, chunked: bool
) -> None:
    xml = b"<x>" + b"a" * 2000 + b"</x>"
    signed = sign_request(_url(server, "bucket", "small=1000"), content_sha256=None, body=xml)
    outcome = await send(session, signed, xml, chunked=chunked)
    assert (outcome.status, outcome.body["code"]) == (400, "MaxMessageLengthExceeded")


async def test_small_body_aws_chunked(server: Server, session: aiohttp.ClientSession) -> None:
    xml = b"<Tagging/>"
    url = _url(server, "bucket/key", "tagging&small=100")
    signed = sign_request(url, content_sha256=STREAMING, headers=_streaming_headers(len(xml)))
    outcome = await send(session, signed, aws_chunked(xml, 3, signed), chunked=False)
    assert outcome.body == {"length": len(xml), "sha256": _sha(xml)}


@pytest.mark.parametrize(
    ("md5", "code"),
    [("not base64!", "InvalidDigest"), ("AAAA", "InvalidDigest"), (_md5(b"other"), "BadDigest")],
)
async def test_small_body_content_md5(
    server: Server, session: aiohttp.ClientSession, md5: str, code: str
) -> None:
    xml = b"<Delete/>"
    signed = sign_request(
        _url(server, "bucket", "delete&small=100"),
        content_sha256=None,
        body=xml,
        headers={"Content-MD5": md5},
    )
    outcome = await send(session, signed, xml, chunked=False)
    assert (outcome.status, outcome.body["code"]) == (400, code)


# --------------------------------------------------------------------------- published vectors

# The chunked-upload example of the AWS "sigv4-streaming" page: 66560 bytes of "a" in a 65536-byte
# chunk, a 1024-byte chunk and the final empty chunk, signed at 20130524T000000Z.
EXAMPLE_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
EXAMPLE_SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
EXAMPLE_CHUNKS = [
    (65536, "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"),
    (1024, "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"),
    (0, "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"),
]
# The trailer vector of AWS's CRT signer tests, chained from the final chunk signature above.
EXAMPLE_TRAILERS = [("first", "1st"), ("second", "2nd"), ("third", "3rd")]
EXAMPLE_TRAILER_SIGNATURE = "df5735bd9f3295cd9386572292562fefc93ba94e80a0a1ddcbd652c4e0a75e6c"


def _example_body(trailers: bool, corrupt: bool = False) -> bytes:
    body = bytearray()
    for size, signature in EXAMPLE_CHUNKS:
        body += f"{size:x};chunk-signature={signature}\r\n".encode()
        if size:
            data = bytearray(b"a" * size)
            if corrupt and size == 1024:
                data[10] = ord("b")
            body += data + b"\r\n"
    if trailers:
        for name, value in EXAMPLE_TRAILERS:
            body += f"{name}:{value}\r\n".encode()
        body += f"x-amz-trailer-signature:{EXAMPLE_TRAILER_SIGNATURE}\r\n".encode()
    return bytes(body + b"\r\n")


def _mocked_request(body: bytes, headers: dict[str, str]) -> web.Request:
    stream = StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop())
    stream.feed_data(body)
    stream.feed_eof()
    headers = {"Content-Length": str(len(body)), **headers}
    return make_mocked_request("PUT", "/examplebucket/chunkObject.txt", headers, payload=stream)


def _example_auth(content_sha256: str) -> AuthResult:
    return AuthResult(
        access_key="AKIAIOSFODNN7EXAMPLE",
        content_sha256=content_sha256,
        signing_key=derive_signing_key(EXAMPLE_SECRET, "20130524", "us-east-1"),
        seed_signature=EXAMPLE_SEED,
        amz_date="20130524T000000Z",
        scope="20130524/us-east-1/s3/aws4_request",
    )


async def test_aws_documented_chunk_signatures() -> None:
    request = _mocked_request(
        _example_body(trailers=False), {"x-amz-decoded-content-length": "66560"}
    )
    reader = open_payload(request, _example_auth(STREAMING), None)
    assert await reader.read_all() == b"a" * 66560
    assert reader.bytes_read == reader.declared_length == 66560


async def test_aws_documented_chunk_signatures_corrupted() -> None:
    request = _mocked_request(_example_body(trailers=False, corrupt=True), {})
    reader = open_payload(request, _example_auth(STREAMING), None)
    assert await reader.read() == b"a" * 65536
    with pytest.raises(S3Error) as info:
        await reader.read()
    assert info.value.code == "SignatureDoesNotMatch"


async def test_aws_crt_trailer_signature() -> None:
    request = _mocked_request(
        _example_body(trailers=True),
        {"x-amz-decoded-content-length": "66560", "x-amz-trailer": "first,second,third"},
    )
    reader = open_payload(request, _example_auth(STREAMING_TRAILER), None)
    assert await reader.read_all() == b"a" * 66560
    assert reader.trailers == dict(EXAMPLE_TRAILERS)
