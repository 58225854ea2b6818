"""Object headers (what is stored, what is returned), conditional requests, ranges, and
checksum headers — shared by the object handlers."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

from dedup.checksums import ALGORITHMS, header_name
from dedup.records import ObjectRecord
from gateway.s3.errors import ERRORS, S3Error

# Content headers S3 stores with an object and returns on GET/HEAD.
STORED_HEADERS = (
    "content-type",
    "content-encoding",
    "content-disposition",
    "content-language",
    "cache-control",
    "expires",
    "x-amz-website-redirect-location",
    "x-amz-storage-class",
)
META_PREFIX = "x-amz-meta-"
MAX_META_BYTES = 2048
DEFAULT_CONTENT_TYPE = "binary/octet-stream"
RESPONSE_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}


def stored_headers(headers: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(content headers, user metadata) to store from a PUT / CreateMultipartUpload /
    CopyObject REPLACE request."""
    out: dict[str, str] = {}
    for name in STORED_HEADERS:
        value = headers.get(name)
        if value is None:
            continue
        if name == "content-encoding":
            # aws-chunked is transport framing, never part of the object
            parts = [p.strip() for p in value.split(",") if p.strip().lower() != "aws-chunked"]
            if not parts:
                continue
            value = ",".join(parts)
        out[name] = value
    meta: dict[str, str] = {}
    for name, value in headers.items():
        lname = name.lower()
        if lname.startswith(META_PREFIX):
            meta[lname[len(META_PREFIX) :]] = value
    if sum(len(k) + len(v) for k, v in meta.items()) > MAX_META_BYTES:
        raise S3Error("MetadataTooLarge")
    return out, meta


def http_date(ms: int) -> str:
    return format_datetime(datetime.fromtimestamp(ms // 1000, UTC), usegmt=True)


def quoted(etag: str) -> str:
    return f'"{etag}"'


def object_headers(rec: ObjectRecord, *, with_checksums: bool) -> dict[str, str]:
    h = {
        "ETag": quoted(rec.etag),
        "Last-Modified": http_date(rec.mtime_ms),
        "Accept-Ranges": "bytes",
        "Content-Type": rec.headers.get("content-type", DEFAULT_CONTENT_TYPE),
    }
    for name, value in rec.headers.items():
        if name != "content-type":
            h[name.title() if not name.startswith("x-amz-") else name] = value
    for k, v in rec.meta.items():
        h[META_PREFIX + k] = v
    if rec.tags:
        h["x-amz-tagging-count"] = str(len(rec.tags))
    if with_checksums:
        for algo, value in rec.checksums.items():
            h[header_name(algo)] = value
        if rec.checksums and rec.checksum_type:
            h["x-amz-checksum-type"] = rec.checksum_type
    return h


# -- conditions ----------------------------------------------------------------------------


def _parse_http_date(value: str | None) -> int | None:
    if not value:
        return None
    try:
        dt = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp())


def _etag_matches(header: str, etag: str) -> bool:
    for candidate in header.split(","):
        c = candidate.strip()
        if c == "*" or c.strip('"') == etag or c.removeprefix("W/").strip('"') == etag:
            return True
    return False


def check_read_conditions(headers: Mapping[str, str], rec: ObjectRecord, prefix: str = "") -> None:
    """If-Match / If-Unmodified-Since → 412; If-None-Match / If-Modified-Since → 304
    (RFC 7232 precedence, as S3 applies it). ``prefix`` is "x-amz-copy-source-" for copies,
    where every failing condition is a 412."""
    mtime = rec.mtime_ms // 1000
    if_match = headers.get(prefix + "if-match")
    if_none_match = headers.get(prefix + "if-none-match")
    unmodified = _parse_http_date(headers.get(prefix + "if-unmodified-since"))
    modified = _parse_http_date(headers.get(prefix + "if-modified-since"))
    if if_match is not None:
        if not _etag_matches(if_match, rec.etag):
            raise S3Error("PreconditionFailed", Condition="If-Match")
    elif unmodified is not None and mtime > unmodified:
        raise S3Error("PreconditionFailed", Condition="If-Unmodified-Since")
    not_modified = False
    if if_none_match is not None:
        not_modified = _etag_matches(if_none_match, rec.etag)
    elif modified is not None and mtime <= modified:
        not_modified = True
    if not_modified:
        if prefix:
            raise S3Error("PreconditionFailed")
        raise NotModified(rec)


class NotModified(Exception):  # a 304 is not an error (not named ...Error)
    def __init__(self, rec: ObjectRecord) -> None:
        self.rec = rec


def check_write_conditions(headers: Mapping[str, str], current: ObjectRecord | None) -> None:
    """Conditional PutObject / CompleteMultipartUpload: If-None-Match: * and If-Match."""
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        if if_none_match.strip() != "*":
            raise S3Error("NotImplemented", "If-None-Match accepts only '*' on writes.")
        if current is not None:
            raise S3Error("PreconditionFailed", Condition="If-None-Match")
    if_match = headers.get("if-match")
    if if_match is not None:
        if current is None:
            raise S3Error("NoSuchKey")
        if not _etag_matches(if_match, current.etag):
            raise S3Error("PreconditionFailed", Condition="If-Match")


# -- ranges --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # exclusive

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end - 1}/{size}"


def parse_range(value: str | None, size: int) -> ByteRange | None:
    """A single ``bytes=`` range, as S3 reads it. Syntax S3 ignores returns None (the whole
    object is sent); a well-formed range that starts past the end raises InvalidRange (416)."""
    if not value:
        return None
    unit, eq, spec = value.strip().partition("=")
    if not eq or unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = (p.strip() for p in spec.strip().partition("-"))
    if not dash or not (first.isdigit() or not first) or not (last.isdigit() or not last):
        return None
    if not first:
        if not last:
            return None
        n = int(last)
        if n == 0 or size == 0:
            raise _unsatisfiable(size)
        return ByteRange(max(size - n, 0), size)
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise _unsatisfiable(size)
    return ByteRange(start, min(int(last) + 1, size) if last else size)


def _unsatisfiable(size: int) -> S3Error:
    return S3Error(
        "InvalidRange",
        headers={"Content-Range": f"bytes */{size}"},
        ActualObjectSize=str(size),
    )


MAX_PARTS = 10_000


def part_range(value: str, rec: ObjectRecord) -> ByteRange:
    """GetObject / HeadObject ``?partNumber=N``: the bytes of the object's N-th part (in part
    order: an object completed from parts 1 and 3 has parts 1 and 2). An object not made by
    a multipart upload has one part, itself."""
    if not value.isdigit() or not 1 <= int(value) <= MAX_PARTS:
        raise S3Error(
            "InvalidArgument",
            "Part number must be an integer between 1 and 10000, inclusive",
            ArgumentName="partNumber",
            ArgumentValue=value,
        )
    number = int(value)
    sizes = rec.part_sizes or [rec.size]
    if number > len(sizes):
        raise _invalid_part_number(number, len(sizes))
    start = sum(sizes[: number - 1])
    return ByteRange(start, start + sizes[number - 1])


def _invalid_part_number(number: int, count: int) -> S3Error:
    # S3 answers 416 InvalidPartNumber "The requested partnumber is not satisfiable"; the code
    # is not in gateway/s3/errors.py yet, so until it is, InvalidRange carries the same status.
    code = "InvalidPartNumber" if "InvalidPartNumber" in ERRORS else "InvalidRange"
    return S3Error(
        code,
        "The requested partnumber is not satisfiable",
        status=416,
        PartNumberRequested=str(number),
        ActualPartCount=str(count),
    )


# -- checksums -----------------------------------------------------------------------------


def decode_content_md5(value: str | None) -> bytes | None:
    if value is None:
        return None
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise S3Error("InvalidDigest") from exc
    if len(raw) != 16:
        raise S3Error("InvalidDigest")
    return raw


_DIGEST_LEN = {"CRC32": 4, "CRC32C": 4, "CRC64NVME": 8, "SHA1": 20, "SHA256": 32}


@dataclass
class ChecksumRequest:
    """Which checksums a write asked for, and the values it gave in headers."""

    algorithms: list[str]
    given: dict[str, bytes]  # from headers; trailer values come at the end of the body
    trailer: str | None  # the algorithm whose value comes in the trailer


def checksum_request(headers: Mapping[str, str]) -> ChecksumRequest:
    given: dict[str, bytes] = {}
    for algo in ALGORITHMS:
        value = headers.get(header_name(algo))
        if value is not None:
            given[algo] = decode_checksum(algo, value)
    algos = list(given)
    trailer = None
    announced = headers.get("x-amz-trailer")
    if announced:
        names = {header_name(a): a for a in ALGORITHMS}
        t = names.get(announced.strip().lower())
        if t is None:
            raise S3Error("InvalidRequest", f"Unsupported trailer {announced!r}.")
        trailer = t
        if t not in algos:
            algos.append(t)
    sdk = headers.get("x-amz-sdk-checksum-algorithm") or headers.get("x-amz-checksum-algorithm")
    if sdk:
        a = sdk.strip().upper()
        if a not in ALGORITHMS:
            raise S3Error("InvalidRequest", f"Checksum algorithm {sdk!r} is not supported.")
        if a not in algos:
            algos.append(a)
    if len(given) + (1 if trailer and trailer not in given else 0) > 1:
        raise S3Error("InvalidRequest", "Expecting a single x-amz-checksum- header.")
    return ChecksumRequest(algos, given, trailer)


def decode_checksum(algo: str, value: str) -> bytes:
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise S3Error("InvalidDigest", f"Value for {header_name(algo)} is not valid.") from exc
    if len(raw) != _DIGEST_LEN[algo]:
        raise S3Error("InvalidDigest", f"Value for {header_name(algo)} is not valid.")
    return raw


def verify_checksums(
    req: ChecksumRequest, trailers: Mapping[str, str], computed: Mapping[str, bytes]
) -> dict[str, str]:
    """Compare every given checksum; returns algorithm → base64 value to store and echo."""
    expected = dict(req.given)
    if req.trailer is not None:
        value = trailers.get(header_name(req.trailer))
        if value is None:
            raise S3Error("InvalidRequest", f"Missing trailer {header_name(req.trailer)}.")
        expected[req.trailer] = decode_checksum(req.trailer, value)
    for algo, want in expected.items():
        if computed[algo] != want:
            raise S3Error(
                "BadDigest", f"The {algo} you specified did not match the calculated checksum."
            )
    return {a: base64.b64encode(d).decode() for a, d in computed.items()}


def parse_copy_range(value: str | None, size: int) -> tuple[int, int]:
    """``x-amz-copy-source-range: bytes=first-last`` (both required, inside the source) as
    [start, end); the whole source when absent."""
    if value is None:
        return 0, size
    unit, eq, spec = value.strip().partition("=")
    first, dash, last = spec.partition("-")
    if (
        unit != "bytes"
        or not eq
        or not dash
        or not first.isdigit()
        or not last.isdigit()
        or int(last) < int(first)
        or int(last) >= size
    ):
        raise S3Error(
            "InvalidArgument",
            f"Range specified is not valid for source object of size: {size}",
            ArgumentName="x-amz-copy-source-range",
            ArgumentValue=value,
        )
    return int(first), int(last) + 1
