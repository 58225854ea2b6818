"""The decoded request body: aws-chunked framing, chunk/trailer signatures and payload hashes.

:func:`open_payload` returns a :class:`PayloadReader` whose :meth:`PayloadReader.read` yields the
*decoded* object bytes, whatever the wire format was:

* a plain body (``x-amz-content-sha256`` is a hex digest or ``UNSIGNED-PAYLOAD``), sent with a
  Content-Length or with ``Transfer-Encoding: chunked`` (aiohttp removes that layer). A hex digest
  is checked at EOF (``XAmzContentSHA256Mismatch``);
* an aws-chunked body (``x-amz-content-sha256`` starts with ``STREAMING-``; the
  ``Content-Encoding: aws-chunked`` header is not required). Every frame signature of the signed
  forms is verified before the frame's bytes are delivered; trailers (``x-amz-checksum-*``) are
  parsed, checked against the ``x-amz-trailer`` announcement and, for the signed trailer form,
  their signature is verified.

A plain body's hash is only known at EOF, so data delivered before an error must be discarded by
the caller: an upload is only valid once :meth:`PayloadReader.read` has returned ``b""``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import string
from collections import deque
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Protocol

from aiohttp import StreamReader
from aiohttp.http_exceptions import HttpProcessingError

from dedup.checksums import new_checksum
from gateway.s3.auth import (
    EMPTY_SHA256,
    STREAMING_PAYLOAD,
    STREAMING_PAYLOAD_TRAILER,
    STREAMING_UNSIGNED_TRAILER,
    UNSIGNED_PAYLOAD,
    AuthResult,
    sign,
    signatures_equal,
)
from gateway.s3.errors import S3Error
from gateway.s3.objectmeta import checksum_request, verify_checksums

if TYPE_CHECKING:
    from aiohttp import web

BLOCK_SIZE = 1 << 20
"""Largest block :meth:`PayloadReader.read` returns."""
MAX_FRAME_SIZE = 16 << 20
"""Largest signed aws-chunked frame (held in memory until its signature is verified)."""
MAX_LINE = 4096
"""Longest frame-header or trailer line accepted."""
MAX_TRAILER_BYTES = 16 << 10
MAX_TRAILERS = 32
INLINE_HASH_LIMIT = 64 << 10
"""Data larger than this is hashed in the executor instead of on the event loop."""
HASH_BATCH = 1 << 20
"""Pieces are hashed in batches of about this size."""

_FILL_SIZE = 64 << 10
_HEX_DIGITS = frozenset(string.hexdigits)
_TRAILER_SIGNATURE = "x-amz-trailer-signature"
_PAYLOAD_SIGNING_ALGORITHM = "AWS4-HMAC-SHA256-PAYLOAD"
_TRAILER_SIGNING_ALGORITHM = "AWS4-HMAC-SHA256-TRAILER"
_STREAMING_FORMS = frozenset(
    {STREAMING_PAYLOAD, STREAMING_PAYLOAD_TRAILER, STREAMING_UNSIGNED_TRAILER}
)


class _Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def digest(self) -> bytes: ...


def _update_all(hasher: _Hasher, pieces: list[bytes]) -> None:
    for piece in pieces:
        hasher.update(piece)


async def _hash_pieces(
    hasher: _Hasher, pieces: list[bytes], size: int, executor: Executor | None
) -> None:
    """Feed ``pieces`` to ``hasher``: in the executor if large (hashlib releases the GIL)."""
    if size > INLINE_HASH_LIMIT:
        await asyncio.get_running_loop().run_in_executor(executor, _update_all, hasher, pieces)
    else:
        _update_all(hasher, pieces)


class _Sha256:
    """An incremental SHA-256 that keeps large hashing off the event loop.

    Pieces are batched (up to HASH_BATCH bytes) so that small network reads do not each cost an
    executor round trip; batches larger than INLINE_HASH_LIMIT run in the executor.
    """

    def __init__(self, executor: Executor | None) -> None:
        self._hasher = hashlib.sha256()
        self._executor = executor
        self._pending: list[bytes] = []
        self._pending_size = 0

    async def update(self, data: bytes) -> None:
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size >= HASH_BATCH:
            await self._flush()

    async def hexdigest(self) -> str:
        await self._flush()
        return self._hasher.hexdigest()

    async def _flush(self) -> None:
        pieces, size = self._pending, self._pending_size
        self._pending, self._pending_size = [], 0
        await _hash_pieces(self._hasher, pieces, size, self._executor)


def _incomplete(detail: str | None = None) -> S3Error:
    return S3Error("IncompleteBody", detail)


def _malformed(detail: str) -> S3Error:
    return S3Error("InvalidRequest", f"Malformed aws-chunked payload: {detail}")


class _Source:
    """A buffered view of the request body stream with bounded line reads.

    Every failure of the underlying stream (client gone, body shorter than Content-Length,
    broken transfer encoding) surfaces as ``IncompleteBody``.
    """

    def __init__(self, content: StreamReader) -> None:
        self._content = content
        self._buf = bytearray()
        self._eof = False

    async def _recv(self, size: int) -> bytes:
        if self._eof:
            return b""
        try:
            data = await self._content.read(size)
        except (HttpProcessingError, ConnectionError, asyncio.IncompleteReadError) as exc:
            raise _incomplete() from exc
        if not data:
            self._eof = True
        return data

    async def _fill(self) -> bool:
        data = await self._recv(_FILL_SIZE)
        self._buf += data
        return bool(data)

    async def read_some(self, size: int) -> bytes:
        """Up to ``size`` (> 0) bytes; ``b""`` only at EOF."""
        if self._buf:
            data = bytes(self._buf[:size])
            del self._buf[:size]
            return data
        return await self._recv(size)

    async def read_line(self, limit: int) -> bytes | None:
        """The next line without its CRLF (a bare LF is tolerated); None at a clean EOF."""
        start = 0
        while True:
            end = self._buf.find(b"\n", start)
            if end >= 0:
                if end > limit + 1:
                    raise _malformed("line too long")
                line = bytes(self._buf[:end])
                del self._buf[: end + 1]
                return line[:-1] if line.endswith(b"\r") else line
            if len(self._buf) > limit + 1:
                raise _malformed("line too long")
            start = len(self._buf)
            if not await self._fill():
                if not self._buf:
                    return None
                raise _incomplete()

    async def at_eof(self) -> bool:
        """True if nothing is left (waits for the next data or for EOF)."""
        if self._buf:
            return False
        return not await self._fill()


class PayloadReader:
    """The decoded request body. Obtain one with :func:`open_payload`."""

    trailers: dict[str, str]
    """Lower-cased trailer headers (e.g. ``x-amz-checksum-crc32``), filled at EOF."""
    declared_length: int | None
    """x-amz-decoded-content-length for aws-chunked, else Content-Length (None if unknown)."""
    bytes_read: int
    """Decoded bytes delivered so far."""

    def __init__(
        self, source: _Source, declared_length: int | None, executor: Executor | None
    ) -> None:
        self._source = source
        self._executor = executor
        self.declared_length = declared_length
        self.trailers = {}
        self.bytes_read = 0

    async def read(self) -> bytes:
        """The next block of decoded payload (at most 1 MiB); ``b""`` at EOF. Raises S3Error."""
        raise NotImplementedError

    async def read_all(self, limit: int | None = None) -> bytes:
        """The whole remaining payload; MaxMessageLengthExceeded beyond ``limit`` bytes."""
        parts: list[bytes] = []
        total = 0
        while block := await self.read():
            total += len(block)
            if limit is not None and total > limit:
                raise S3Error("MaxMessageLengthExceeded")
            parts.append(block)
        return b"".join(parts)

    def _check_final_length(self, total: int) -> None:
        if self.declared_length is None:
            return
        if total < self.declared_length:
            raise _incomplete()
        if total > self.declared_length:
            raise S3Error(
                "InvalidRequest",
                "The payload is longer than the declared content length.",
            )


class _PlainPayload(PayloadReader):
    """A body sent as is; optionally checked against a hex x-amz-content-sha256."""

    def __init__(
        self,
        source: _Source,
        declared_length: int | None,
        executor: Executor | None,
        expected_sha256: str | None,
    ) -> None:
        super().__init__(source, declared_length, executor)
        self._expected = expected_sha256.lower() if expected_sha256 else None
        self._hasher = _Sha256(executor) if expected_sha256 else None
        self._done = False

    async def read(self) -> bytes:
        if self._done:
            return b""
        data = await self._source.read_some(BLOCK_SIZE)
        if data:
            if self.declared_length is not None and self.bytes_read + len(data) > (
                self.declared_length
            ):
                self._check_final_length(self.bytes_read + len(data))
            if self._hasher is not None:
                await self._hasher.update(data)
            self.bytes_read += len(data)
            return data
        self._done = True
        self._check_final_length(self.bytes_read)
        if self._hasher is not None and self._expected is not None:
            computed = await self._hasher.hexdigest()
            if computed != self._expected:
                raise S3Error(
                    "XAmzContentSHA256Mismatch",
                    ClientComputedContentSHA256=self._expected,
                    S3ComputedContentSHA256=computed,
                )
        return b""


class _ChunkSigner:
    """The rolling signature chain of a signed aws-chunked upload."""

    def __init__(self, signing_key: bytes, amz_date: str, scope: str, seed: str) -> None:
        self._key = signing_key
        self._prefix_date_scope = f"{amz_date}\n{scope}\n"
        self.previous = seed

    def verify_chunk(self, data_sha256: str, provided: str) -> None:
        string_to_sign = (
            f"{_PAYLOAD_SIGNING_ALGORITHM}\n{self._prefix_date_scope}{self.previous}\n"
            f"{EMPTY_SHA256}\n{data_sha256}"
        )
        expected = sign(self._key, string_to_sign)
        if not signatures_equal(expected, provided):
            raise S3Error("SignatureDoesNotMatch", StringToSign=string_to_sign)
        self.previous = expected

    def verify_trailer(self, candidates: list[bytes], provided: str) -> None:
        matched = False
        first = ""
        for trailer_bytes in candidates:
            string_to_sign = (
                f"{_TRAILER_SIGNING_ALGORITHM}\n{self._prefix_date_scope}{self.previous}\n"
                f"{hashlib.sha256(trailer_bytes).hexdigest()}"
            )
            first = first or string_to_sign
            matched |= signatures_equal(sign(self._key, string_to_sign), provided)
        if not matched:
            raise S3Error("SignatureDoesNotMatch", StringToSign=first)


class _AwsChunkedPayload(PayloadReader):
    """``hex-size[;chunk-signature=sig]\\r\\n data \\r\\n`` frames, a 0 frame, then trailers."""

    def __init__(
        self,
        source: _Source,
        declared_length: int | None,
        executor: Executor | None,
        signer: _ChunkSigner | None,
        trailer_mode: str,
        announced_trailers: frozenset[str],
    ) -> None:
        super().__init__(source, declared_length, executor)
        self._signer = signer
        self._trailer_mode = trailer_mode  # "none", "unsigned" or "signed"
        self._announced = announced_trailers
        self._pending: deque[bytes] = deque()
        self._frame_left = 0  # bytes of the current unsigned frame not yet delivered
        self._framed_total = 0  # sum of the frame sizes seen so far
        self._finished = False

    async def read(self) -> bytes:
        while True:
            if self._pending:
                block = self._pending.popleft()
                self.bytes_read += len(block)
                return block
            if self._finished:
                return b""
            if self._frame_left:
                data = await self._source.read_some(min(self._frame_left, BLOCK_SIZE))
                if not data:
                    raise _incomplete()
                self._frame_left -= len(data)
                if not self._frame_left:
                    await self._end_of_frame()
                self.bytes_read += len(data)
                return data
            await self._next_frame()

    async def _next_frame(self) -> None:
        line = await self._source.read_line(MAX_LINE)
        if line is None:
            raise _incomplete()
        size, signature = self._parse_frame_header(line)
        if size > MAX_FRAME_SIZE and self._signer is not None:
            # Signed frames are held in memory until their signature is verified.
            raise S3Error(
                "InvalidRequest",
                f"aws-chunked frames larger than {MAX_FRAME_SIZE} are not allowed.",
            )
        self._framed_total += size
        if self.declared_length is not None and self._framed_total > self.declared_length:
            self._check_final_length(self._framed_total)
        if size == 0:
            if self._signer is not None:
                self._signer.verify_chunk(EMPTY_SHA256, signature)
            await self._read_trailers()
            self._check_final_length(self._framed_total)
            if not await self._source.at_eof():
                raise _malformed("data after the final chunk")
            self._finished = True
        elif self._signer is not None:
            await self._read_signed_frame(size, signature)
        else:
            self._frame_left = size

    def _parse_frame_header(self, line: bytes) -> tuple[int, str]:
        try:
            text = line.decode("ascii")
        except UnicodeDecodeError:
            raise _malformed("invalid chunk header") from None
        size_text, _, extensions = text.partition(";")
        size_text = size_text.strip()
        if not size_text or len(size_text) > 16 or not set(size_text) <= _HEX_DIGITS:
            raise _malformed("invalid chunk size")
        signature = ""
        for extension in extensions.split(";") if extensions else ():
            name, _, value = extension.partition("=")
            if name.strip() == "chunk-signature":
                signature = value.strip()
        if self._signer is not None and not signature:
            raise S3Error("SignatureDoesNotMatch", "The chunk signature is missing.")
        return int(size_text, 16), signature

    async def _end_of_frame(self) -> None:
        line = await self._source.read_line(MAX_LINE)
        if line is None:
            raise _incomplete()
        if line:
            raise _malformed("chunk data longer than its declared size")

    async def _read_signed_frame(self, size: int, signature: str) -> None:
        assert self._signer is not None
        hasher = _Sha256(self._executor)
        pieces: list[bytes] = []
        left = size
        while left:
            piece = await self._source.read_some(min(left, BLOCK_SIZE))
            if not piece:
                raise _incomplete()
            left -= len(piece)
            await hasher.update(piece)
            pieces.append(piece)
        await self._end_of_frame()
        self._signer.verify_chunk(await hasher.hexdigest(), signature)
        self._pending.extend(_coalesce(pieces))

    async def _read_trailers(self) -> None:
        trailers: dict[str, str] = {}
        received: list[tuple[str, str]] = []
        raw_lines: list[bytes] = []
        trailer_signature: str | None = None
        total = 0
        ended_by_eof = False
        skipped_blank = False
        while True:
            line = await self._source.read_line(MAX_LINE)
            if line is None:
                ended_by_eof = True
                break
            if not line:
                # Tolerate one empty line between the final chunk and the trailers.
                if (
                    received
                    or trailer_signature is not None
                    or self._trailer_mode == "none"
                    or skipped_blank
                    or await self._source.at_eof()
                ):
                    break
                skipped_blank = True
                continue
            total += len(line)
            if self._trailer_mode == "none":
                raise _malformed("trailers are not allowed with " + STREAMING_PAYLOAD)
            if total > MAX_TRAILER_BYTES or len(received) >= MAX_TRAILERS:
                raise _malformed("trailers too large")
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                raise _malformed("invalid trailer") from None
            name, sep, value = text.partition(":")
            name, value = name.strip().lower(), value.strip()
            if not sep or not name:
                raise _malformed("invalid trailer")
            if trailer_signature is not None:
                raise _malformed("x-amz-trailer-signature must be the last trailer")
            if name == _TRAILER_SIGNATURE:
                if self._trailer_mode != "signed":
                    raise _malformed("unexpected x-amz-trailer-signature")
                trailer_signature = value
                continue
            if name not in self._announced:
                raise S3Error(
                    "InvalidRequest",
                    f"The trailer {name} was not announced in the x-amz-trailer header.",
                )
            if name in trailers:
                raise _malformed(f"duplicate trailer {name}")
            trailers[name] = value
            received.append((name, value))
            raw_lines.append(line)
        missing = self._announced - trailers.keys()
        if missing or (self._trailer_mode == "signed" and trailer_signature is None):
            if ended_by_eof:
                raise _incomplete()
            if missing:
                raise S3Error(
                    "InvalidRequest",
                    f"The trailer {sorted(missing)[0]} announced in x-amz-trailer is missing.",
                )
            raise S3Error("SignatureDoesNotMatch", "The trailer signature is missing.")
        if self._trailer_mode == "signed":
            assert self._signer is not None and trailer_signature is not None
            candidates = [
                "".join(f"{n}:{v}\n" for n, v in sorted(received)).encode("utf-8"),
                "".join(f"{n}:{v}\n" for n, v in received).encode("utf-8"),
                b"".join(line + b"\n" for line in raw_lines),
            ]
            self._signer.verify_trailer(list(dict.fromkeys(candidates)), trailer_signature)
        self.trailers = trailers


def _coalesce(pieces: list[bytes]) -> list[bytes]:
    """Join small pieces into blocks of at most BLOCK_SIZE bytes."""
    blocks: list[bytes] = []
    run: list[bytes] = []
    run_size = 0
    for piece in pieces:
        if run and run_size + len(piece) > BLOCK_SIZE:
            blocks.append(b"".join(run))
            run, run_size = [], 0
        run.append(piece)
        run_size += len(piece)
    if run:
        blocks.append(b"".join(run))
    return blocks


def _parse_length(value: str | None, header: str) -> int | None:
    if value is None:
        return None
    value = value.strip()
    if not value.isdigit() or not value.isascii():
        raise S3Error("InvalidArgument", f"Invalid {header}", ArgumentName=header)
    return int(value)


def open_payload(
    request: web.Request, auth: AuthResult, executor: Executor | None
) -> PayloadReader:
    """The decoded body of ``request`` as authenticated by ``auth``; see the module docstring."""
    source = _Source(request.content)
    content_sha256 = auth.content_sha256
    if not content_sha256.startswith("STREAMING-"):
        expected = None if content_sha256 == UNSIGNED_PAYLOAD else content_sha256
        return _PlainPayload(source, request.content_length, executor, expected)
    if content_sha256 not in _STREAMING_FORMS:
        raise S3Error(
            "InvalidArgument",
            f"Unsupported x-amz-content-sha256 value {content_sha256}",
            ArgumentName="x-amz-content-sha256",
            ArgumentValue=content_sha256,
        )
    declared = _parse_length(
        request.headers.get("x-amz-decoded-content-length"), "x-amz-decoded-content-length"
    )
    signer: _ChunkSigner | None = None
    if content_sha256 != STREAMING_UNSIGNED_TRAILER:
        if (
            auth.signing_key is None
            or auth.seed_signature is None
            or auth.amz_date is None
            or auth.scope is None
        ):
            raise S3Error(
                "InvalidRequest", f"{content_sha256} requires a request signed with SigV4."
            )
        signer = _ChunkSigner(auth.signing_key, auth.amz_date, auth.scope, auth.seed_signature)
    if content_sha256 == STREAMING_PAYLOAD:
        trailer_mode = "none"
    elif content_sha256 == STREAMING_PAYLOAD_TRAILER:
        trailer_mode = "signed"
    else:
        trailer_mode = "unsigned"
    announced: frozenset[str] = frozenset()
    if trailer_mode != "none":
        announced = frozenset(
            name.strip().lower()
            for value in request.headers.getall("x-amz-trailer", [])
            for name in value.split(",")
            if name.strip()
        )
        if _TRAILER_SIGNATURE in announced:
            raise S3Error("InvalidRequest", f"{_TRAILER_SIGNATURE} cannot be announced.")
    return _AwsChunkedPayload(source, declared, executor, signer, trailer_mode, announced)


async def read_small_body(
    request: web.Request, auth: AuthResult, limit: int, executor: Executor | None
) -> bytes:
    """The whole decoded body of an XML-carrying request, at most ``limit`` bytes.

    Larger bodies raise MaxMessageLengthExceeded (before reading, when the length is declared).
    A Content-MD5 header is verified: malformed → InvalidDigest, mismatch → BadDigest; so is
    an ``x-amz-checksum-*`` value, from a header or from the trailer.
    """
    expected_md5 = _content_md5(request.headers.get("Content-MD5"))
    checks = checksum_request(request.headers)
    reader = open_payload(request, auth, executor)
    if reader.declared_length is not None and reader.declared_length > limit:
        raise S3Error("MaxMessageLengthExceeded")
    body = await reader.read_all(limit)
    if expected_md5 is not None:
        hasher = hashlib.md5(usedforsecurity=False)
        await _hash_pieces(hasher, [body], len(body), executor)
        if hasher.digest() != expected_md5:
            raise S3Error("BadDigest", ExpectedDigest=base64.b64encode(expected_md5).decode())
    computed = {}
    for algo in checks.algorithms:
        c = new_checksum(algo)
        await _hash_pieces(c, [body], len(body), executor)
        computed[algo] = c.digest()
    verify_checksums(checks, reader.trailers, computed)
    return body


def _content_md5(value: str | None) -> bytes | None:
    """The decoded Content-MD5 header (None if absent); InvalidDigest if malformed."""
    if value is None:
        return None
    try:
        digest = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise S3Error("InvalidDigest") from None
    if len(digest) != 16:
        raise S3Error("InvalidDigest")
    return digest
