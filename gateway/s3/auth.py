"""AWS signature verification for S3 requests: Signature Version 4, and the legacy Version 2.

Both forms of SigV4 are supported:

* header authentication (``Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=...,
  Signature=...``), and
* presigned URLs (``X-Amz-Algorithm``, ``X-Amz-Credential``, ``X-Amz-Date``, ``X-Amz-Expires``,
  ``X-Amz-SignedHeaders`` and ``X-Amz-Signature`` query parameters).

And both forms of SigV2 (what boto3 still presigns with by default against a custom endpoint,
and what older tools such as s3cmd sign with):

* header authentication (``Authorization: AWS <AccessKeyId>:<Signature>``), and
* presigned URLs (``AWSAccessKeyId``, ``Expires`` and ``Signature`` query parameters).

:func:`authenticate` checks the signature of the request line and headers only. The payload is
verified while it is read (see :mod:`gateway.s3.payload`), which is why the result carries the
declared ``x-amz-content-sha256`` and, for streaming uploads, the signing key and the seed
signature that chunk signatures chain from. SigV2 never signs the payload: a SigV2 result carries
no signing key, so SigV4-signed streaming uploads are refused for it.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Protocol
from urllib.parse import quote, unquote_to_bytes

from multidict import MultiMapping

from gateway.s3.errors import S3Error

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "s3"
TERMINATOR = "aws4_request"

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_PAYLOAD = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_PAYLOAD_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
CONTENT_SHA256_LITERALS = frozenset(
    {UNSIGNED_PAYLOAD, STREAMING_PAYLOAD, STREAMING_PAYLOAD_TRAILER, STREAMING_UNSIGNED_TRAILER}
)
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

MAX_SKEW = timedelta(minutes=15)
MAX_SKEW_MS = "900000"
MAX_PRESIGNED_EXPIRES = 604800  # seven days, in seconds

_AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_AMZ_DATE_RE = re.compile(r"\d{8}T\d{6}Z")
_SCOPE_DATE_RE = re.compile(r"\d{8}")
_HEX64_RE = re.compile(r"[0-9a-fA-F]{64}")
_SIGNATURE_RE = re.compile(r"[0-9a-fA-F]{64}")
_HEADER_NAME_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Characters that never need percent-encoding in a canonical URI / query string.
_UNRESERVED = "-_.~"

_QUERY_AUTH_PARAMS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
)
_MISSING_QUERY_PARAMS = (
    "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential,"
    " X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters."
)
_UNSUPPORTED_MECHANISM = (
    "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256."
)

V2_ALGORITHM = "AWS"
_V2_QUERY_AUTH_PARAMS = ("AWSAccessKeyId", "Expires", "Signature")
V2_SUBRESOURCES = frozenset(
    {
        "acl",
        "cors",
        "delete",
        "lifecycle",
        "location",
        "logging",
        "notification",
        "partNumber",
        "policy",
        "requestPayment",
        "response-cache-control",
        "response-content-disposition",
        "response-content-encoding",
        "response-content-language",
        "response-content-type",
        "response-expires",
        "restore",
        "tagging",
        "torrent",
        "uploadId",
        "uploads",
        "versionId",
        "versioning",
        "versions",
        "website",
    }
)
"""Query parameters a SigV2 CanonicalizedResource includes (the documented list)."""
V2_EXTRA_SUBRESOURCES = frozenset(
    {
        "accelerate",
        "analytics",
        "defaultObjectAcl",
        "encryption",
        "inventory",
        "legal-hold",
        "metrics",
        "object-lock",
        "replication",
        "retention",
        "select",
        "select-type",
        "storageClass",
    }
)
"""Newer sub-resources some SigV2 signers (botocore among them) also include; tried as well."""
_STREAMING_SIGV4_PAYLOADS = frozenset({STREAMING_PAYLOAD, STREAMING_PAYLOAD_TRAILER})


class CredentialStore(Protocol):
    """Where secret keys come from."""

    def secret_key(self, access_key: str) -> str | None:
        """The secret key of ``access_key``, or None if it does not exist."""
        ...


@dataclass(frozen=True)
class AuthResult:
    """The outcome of a successful :func:`authenticate`."""

    access_key: str | None
    """None for an anonymous request (no Authorization header and no X-Amz-Signature)."""
    content_sha256: str
    """The x-amz-content-sha256 value ("UNSIGNED-PAYLOAD" for presigned/anonymous without it)."""
    signing_key: bytes | None = None
    """The derived SigV4 signing key (chunk signatures of streaming uploads use it)."""
    seed_signature: str | None = None
    """The request signature; the first chunk signature chains from it."""
    amz_date: str | None = None
    """The request timestamp as yyyymmddThhmmssZ."""
    scope: str | None = None
    """The credential scope, e.g. "20261122/us-east-1/s3/aws4_request"."""


@dataclass(frozen=True)
class _Credential:
    access_key: str
    date: str
    region: str
    service: str
    terminator: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/{self.terminator}"


@dataclass(frozen=True)
class _QueryParam:
    raw_key: str
    raw_value: str
    has_value: bool = True
    """Whether the parameter was sent with an '=' ("acl=" rather than "acl")."""


# --------------------------------------------------------------------------- helpers


@functools.lru_cache(maxsize=256)
def derive_signing_key(secret_key: str, date: str, region: str, service: str = SERVICE) -> bytes:
    """kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")."""
    k_date = _hmac(("AWS4" + secret_key).encode("utf-8"), date)
    k_region = _hmac(k_date, region)
    k_service = _hmac(k_region, service)
    return _hmac(k_service, TERMINATOR)


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def sign(signing_key: bytes, string_to_sign: str) -> str:
    """The hex HMAC-SHA256 signature of ``string_to_sign``."""
    return hmac.new(signing_key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def signatures_equal(expected: str, provided: str) -> bool:
    """Constant-time comparison of two hex signatures (case-insensitive)."""
    return hmac.compare_digest(expected.lower().encode(), provided.lower().encode())


def aws_encode(raw: bytes, *, keep_slash: bool = False) -> str:
    """Percent-encode with the SigV4 rules: everything except A-Za-z0-9-_.~ (and '/')."""
    return quote(raw, safe=_UNRESERVED + ("/" if keep_slash else ""))


def _format_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _parse_amz_date(value: str) -> datetime | None:
    if not _AMZ_DATE_RE.fullmatch(value):
        return None
    try:  # by hand: strptime costs ~10 µs per request
        return datetime(
            int(value[0:4]),
            int(value[4:6]),
            int(value[6:8]),
            int(value[9:11]),
            int(value[11:13]),
            int(value[13:15]),
            tzinfo=UTC,
        )
    except ValueError:
        return None


def _parse_http_date(value: str) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return _utc(parsed)


def _header_values(headers: Mapping[str, str], name: str) -> list[str]:
    """All values of header ``name`` (case-insensitive), in order of appearance."""
    if isinstance(headers, MultiMapping):
        return [str(v) for v in headers.getall(name, [])]
    lowered = name.lower()
    return [v for k, v in headers.items() if k.lower() == lowered]


def _header(headers: Mapping[str, str], name: str) -> str | None:
    values = _header_values(headers, name)
    return values[0] if values else None


def _parse_query(raw_query: str) -> list[_QueryParam]:
    params: list[_QueryParam] = []
    for piece in raw_query.split("&"):
        if not piece:
            continue
        key, sep, value = piece.partition("=")
        params.append(_QueryParam(key, value, bool(sep)))
    return params


def _wire_bytes(text: str) -> bytes:
    """The bytes a str from the HTTP parser came from (aiohttp decodes with surrogateescape)."""
    return text.encode("utf-8", "surrogateescape")


def _decode_query_component(raw: str, *, plus_is_space: bool) -> bytes:
    if plus_is_space:
        raw = raw.replace("+", " ")
    return unquote_to_bytes(_wire_bytes(raw))


def _query_value(params: Iterable[_QueryParam], name: str) -> str | None:
    """The decoded value of the first query parameter called ``name`` (case-sensitive)."""
    for param in params:
        key = _decode_query_component(param.raw_key, plus_is_space=True)
        if key == name.encode("ascii"):
            return _decode_query_component(param.raw_value, plus_is_space=True).decode(
                "utf-8", errors="replace"
            )
    return None


def _canonical_query(
    params: Iterable[_QueryParam], *, plus_is_space: bool, exclude: str | None = None
) -> str:
    pairs: list[tuple[str, str]] = []
    for param in params:
        key = _decode_query_component(param.raw_key, plus_is_space=plus_is_space)
        if exclude is not None and key == exclude.encode("ascii"):
            continue
        value = _decode_query_component(param.raw_value, plus_is_space=plus_is_space)
        pairs.append((aws_encode(key), aws_encode(value)))
    pairs.sort()
    return "&".join(f"{k}={v}" for k, v in pairs)


def _canonical_uris(raw_path: str) -> list[str]:
    """The canonical URI as received, then re-encoded from its decoded form if different."""
    path = raw_path.split("?", 1)[0] or "/"
    candidates = [path]
    reencoded = aws_encode(unquote_to_bytes(_wire_bytes(path)), keep_slash=True)
    if reencoded != path:
        candidates.append(reencoded)
    return candidates


def _canonical_queries(params: list[_QueryParam], exclude: str | None) -> list[str]:
    """'+' decoded as a space (form encoding, what most SDKs mean), then as a literal '+'."""
    candidates = [_canonical_query(params, plus_is_space=True, exclude=exclude)]
    if any("+" in p.raw_key or "+" in p.raw_value for p in params):
        literal = _canonical_query(params, plus_is_space=False, exclude=exclude)
        if literal != candidates[0]:
            candidates.append(literal)
    return candidates


def _canonical_header_value(values: list[str]) -> str:
    return ",".join(" ".join(v.split()) for v in values)


def _canonical_headers(headers: Mapping[str, str], signed: list[str]) -> str:
    return "".join(
        f"{name}:{_canonical_header_value(_header_values(headers, name))}\n" for name in signed
    )


def _parse_signed_headers(value: str, error: str) -> list[str]:
    names = value.split(";")
    if not value or not all(_HEADER_NAME_RE.fullmatch(n) for n in names):
        raise S3Error(error, f"Invalid SignedHeaders value: {value!r}")
    lowered = [n.lower() for n in names]
    if "host" not in lowered:
        raise S3Error(error, "The host header must be signed.")
    return lowered


def _parse_credential(value: str, error: str, region: str) -> _Credential:
    parts = value.rsplit("/", 4)
    if len(parts) != 5 or not parts[0]:
        if error == "AuthorizationHeaderMalformed":
            message = (
                "The authorization header is malformed; the Credential is mal-formed;"
                f' expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/{TERMINATOR}".'
            )
        else:
            message = "Error parsing the X-Amz-Credential parameter; the Credential is mal-formed."
        raise S3Error(error, message)
    cred = _Credential(*parts)
    prefix = (
        "The authorization header is malformed"
        if error == "AuthorizationHeaderMalformed"
        else "Error parsing the X-Amz-Credential parameter"
    )
    if not _SCOPE_DATE_RE.fullmatch(cred.date) or _parse_amz_date(cred.date + "T000000Z") is None:
        raise S3Error(error, f"{prefix}; incorrect date format '{cred.date}'.")
    if cred.terminator != TERMINATOR:
        raise S3Error(
            error,
            f"{prefix}; incorrect terminal '{cred.terminator}'. This endpoint uses '{TERMINATOR}'.",
        )
    if cred.service != SERVICE:
        raise S3Error(
            error,
            f"{prefix}; incorrect service '{cred.service}'. This endpoint belongs to '{SERVICE}'.",
        )
    if cred.region != region:
        raise S3Error(
            error,
            f"{prefix}; the region '{cred.region}' is wrong; expecting '{region}'",
            Region=region,
        )
    return cred


def _check_content_sha256(value: str | None) -> None:
    if value is None or value in CONTENT_SHA256_LITERALS or _HEX64_RE.fullmatch(value):
        return
    raise S3Error(
        "InvalidArgument",
        "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER,"
        " STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER or"
        " a valid sha256 value.",
        ArgumentName="x-amz-content-sha256",
        ArgumentValue=value,
    )


def _secret_for(credentials: CredentialStore, access_key: str) -> str:
    secret = credentials.secret_key(access_key)
    if secret is None:
        raise S3Error("InvalidAccessKeyId", AWSAccessKeyId=access_key)
    return secret


def _verify_signature(
    *,
    method: str,
    uris: list[str],
    queries: list[str],
    canonical_headers: str,
    signed_headers: str,
    payload_hashes: list[str],
    amz_date: str,
    scope: str,
    signing_key: bytes,
    provided: str,
    access_key: str,
) -> None:
    """Try every canonical-request variant; raise SignatureDoesNotMatch if none matches."""
    first_sts: str | None = None
    first_cr: str | None = None
    matched = False
    for uri in uris:
        for query in queries:
            for payload_hash in payload_hashes:
                canonical_request = "\n".join(
                    (method, uri, query, canonical_headers, signed_headers, payload_hash)
                )
                string_to_sign = "\n".join(
                    (
                        ALGORITHM,
                        amz_date,
                        scope,
                        hashlib.sha256(_wire_bytes(canonical_request)).hexdigest(),
                    )
                )
                if first_sts is None:
                    first_sts, first_cr = string_to_sign, canonical_request
                # No early exit: keeps the comparison count independent of which variant matches.
                matched |= signatures_equal(sign(signing_key, string_to_sign), provided)
    if not matched:
        raise S3Error(
            "SignatureDoesNotMatch",
            AWSAccessKeyId=access_key,
            StringToSign=first_sts or "",
            SignatureProvided=provided,
            CanonicalRequest=first_cr or "",
        )


# --------------------------------------------------------------------------- entry point


def authenticate(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    credentials: CredentialStore,
    region: str,
    now: datetime,
    *,
    virtual_host_bucket: str | None = None,
) -> AuthResult:
    """Verify the SigV4 or SigV2 signature of a request; see the module docstring.

    ``raw_path`` and ``raw_query`` are the request target exactly as received (still
    percent-encoded); ``headers`` must look up case-insensitively (a multidict preserves repeated
    headers). ``virtual_host_bucket`` is the bucket a virtual-host style request names in its
    ``Host`` header (SigV2 signs it as a prefix of the path); None for path style. Raises
    :class:`S3Error` on any authentication failure; returns an anonymous result
    (``access_key is None``) when the request carries no credentials at all.
    """
    now = _utc(now)
    params = _parse_query(raw_query)
    authorization = _header(headers, "Authorization")
    query_signature = _query_value(params, "X-Amz-Signature")
    v4_query = query_signature is not None or _query_value(params, "X-Amz-Algorithm") is not None
    v2_query = not v4_query and any(
        _query_value(params, name) is not None for name in ("AWSAccessKeyId", "Signature")
    )
    content_sha256 = _header(headers, "x-amz-content-sha256")
    if content_sha256 is not None:
        content_sha256 = content_sha256.strip()

    if authorization is not None and (query_signature is not None or v2_query):
        raise S3Error(
            "InvalidArgument",
            "Only one auth mechanism allowed; only the X-Amz-Algorithm"
            " query parameter, Signature query string parameter or the Authorization"
            " header should be specified",
            ArgumentName="Authorization",
        )
    if authorization is not None:
        if authorization.strip().partition(" ")[0] == V2_ALGORITHM:
            return _authenticate_v2_header(
                method,
                raw_path,
                params,
                headers,
                authorization,
                content_sha256,
                credentials,
                now,
                virtual_host_bucket,
            )
        return _authenticate_header(
            method,
            raw_path,
            params,
            headers,
            authorization,
            content_sha256,
            credentials,
            region,
            now,
        )
    if v4_query:
        return _authenticate_query(
            method, raw_path, params, headers, content_sha256, credentials, region, now
        )
    if v2_query:
        return _authenticate_v2_query(
            method,
            raw_path,
            params,
            headers,
            content_sha256,
            credentials,
            now,
            virtual_host_bucket,
        )
    _check_content_sha256(content_sha256)
    return AuthResult(access_key=None, content_sha256=content_sha256 or UNSIGNED_PAYLOAD)


def _check_request_time(
    raw: str | None, parsed: datetime | None, now: datetime
) -> tuple[str, datetime]:
    """The header-auth request time (SigV4 and SigV2): present, parseable and within
    MAX_SKEW of ``now``."""
    if raw is None or parsed is None:
        raise S3Error(
            "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header"
        )
    if abs(parsed - now) > MAX_SKEW:
        raise S3Error(
            "RequestTimeTooSkewed",
            RequestTime=raw,
            ServerTime=_format_iso(now),
            MaxAllowedTimeSkewMilliseconds=MAX_SKEW_MS,
        )
    return raw, parsed


def _authenticate_header(
    method: str,
    raw_path: str,
    params: list[_QueryParam],
    headers: Mapping[str, str],
    authorization: str,
    content_sha256: str | None,
    credentials: CredentialStore,
    region: str,
    now: datetime,
) -> AuthResult:
    error = "AuthorizationHeaderMalformed"
    algorithm, _, rest = authorization.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise S3Error("InvalidRequest", _UNSUPPORTED_MECHANISM)
    fields: dict[str, str] = {}
    for part in rest.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        if not sep or name.strip() in fields:
            raise S3Error(error, f"The authorization header is malformed; '{part}' is invalid.")
        fields[name.strip()] = value.strip()
    missing = [f for f in ("Credential", "SignedHeaders", "Signature") if f not in fields]
    if missing:
        raise S3Error(
            error, f"The authorization header is malformed; missing {', '.join(missing)}."
        )
    cred = _parse_credential(fields["Credential"], error, region)
    signed_headers = _parse_signed_headers(fields["SignedHeaders"], error)
    provided = fields["Signature"]
    if not _SIGNATURE_RE.fullmatch(provided):
        raise S3Error(error, "The authorization header is malformed; invalid Signature.")

    # Request time: X-Amz-Date, else Date.
    raw_date = _header(headers, "x-amz-date")
    if raw_date is not None:
        request_time = _parse_amz_date(raw_date.strip())
        amz_date = raw_date.strip()
    else:
        raw_date = _header(headers, "Date")
        request_time = _parse_http_date(raw_date) if raw_date is not None else None
        amz_date = request_time.strftime(_AMZ_DATE_FORMAT) if request_time else ""
    raw_date, request_time = _check_request_time(raw_date, request_time, now)
    if cred.date != amz_date[:8]:
        raise S3Error(
            error,
            "The authorization header is malformed; Invalid credential date."
            " Date is not the same as X-Amz-Date.",
        )

    if content_sha256 is None:
        raise S3Error(
            "InvalidRequest", "Missing required header for this request: x-amz-content-sha256"
        )
    _check_content_sha256(content_sha256)

    secret = _secret_for(credentials, cred.access_key)
    signing_key = derive_signing_key(secret, cred.date, cred.region, cred.service)
    _verify_signature(
        method=method,
        uris=_canonical_uris(raw_path),
        queries=_canonical_queries(params, exclude=None),
        canonical_headers=_canonical_headers(headers, signed_headers),
        signed_headers=fields["SignedHeaders"],
        payload_hashes=[content_sha256],
        amz_date=amz_date,
        scope=cred.scope,
        signing_key=signing_key,
        provided=provided,
        access_key=cred.access_key,
    )
    return AuthResult(
        access_key=cred.access_key,
        content_sha256=content_sha256,
        signing_key=signing_key,
        seed_signature=provided.lower(),
        amz_date=amz_date,
        scope=cred.scope,
    )


def _authenticate_query(
    method: str,
    raw_path: str,
    params: list[_QueryParam],
    headers: Mapping[str, str],
    content_sha256: str | None,
    credentials: CredentialStore,
    region: str,
    now: datetime,
) -> AuthResult:
    error = "AuthorizationQueryParametersError"
    values = {name: _query_value(params, name) for name in _QUERY_AUTH_PARAMS}
    if any(v is None for v in values.values()):
        raise S3Error(error, _MISSING_QUERY_PARAMS)
    algorithm = values["X-Amz-Algorithm"] or ""
    credential = values["X-Amz-Credential"] or ""
    amz_date = values["X-Amz-Date"] or ""
    expires_raw = values["X-Amz-Expires"] or ""
    signed_headers_raw = values["X-Amz-SignedHeaders"] or ""
    provided = values["X-Amz-Signature"] or ""

    if algorithm != ALGORITHM:
        raise S3Error(error, 'X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"')
    cred = _parse_credential(credential, error, region)
    request_time = _parse_amz_date(amz_date)
    if request_time is None:
        raise S3Error(
            error,
            "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"",
        )
    if not expires_raw.isdigit():
        raise S3Error(error, "X-Amz-Expires should be a number")
    expires = int(expires_raw)
    if expires < 1:
        raise S3Error(error, "X-Amz-Expires must be non-negative")
    if expires > MAX_PRESIGNED_EXPIRES:
        raise S3Error(
            error,
            "X-Amz-Expires must be less than a week (in seconds) that is 604800",
        )
    signed_headers = _parse_signed_headers(signed_headers_raw, error)
    if not _SIGNATURE_RE.fullmatch(provided):
        raise S3Error(error, "Error parsing the X-Amz-Signature parameter.")
    if cred.date != amz_date[:8]:
        raise S3Error(
            error,
            "Error parsing the X-Amz-Credential parameter; Invalid credential date."
            " Date is not the same as X-Amz-Date.",
        )
    if request_time - now > MAX_SKEW:
        raise S3Error("AccessDenied", "Request is not valid yet")
    if now > request_time + timedelta(seconds=expires):
        raise S3Error(
            "AccessDenied",
            "Request has expired",
            Expires=_format_iso(request_time + timedelta(seconds=expires)),
            ServerTime=_format_iso(now),
        )
    _check_content_sha256(content_sha256)

    secret = _secret_for(credentials, cred.access_key)
    signing_key = derive_signing_key(secret, cred.date, cred.region, cred.service)
    payload_hashes = [content_sha256] if content_sha256 is not None else []
    if UNSIGNED_PAYLOAD not in payload_hashes:
        payload_hashes.append(UNSIGNED_PAYLOAD)
    _verify_signature(
        method=method,
        uris=_canonical_uris(raw_path),
        queries=_canonical_queries(params, exclude="X-Amz-Signature"),
        canonical_headers=_canonical_headers(headers, signed_headers),
        signed_headers=signed_headers_raw,
        payload_hashes=payload_hashes,
        amz_date=amz_date,
        scope=cred.scope,
        signing_key=signing_key,
        provided=provided,
        access_key=cred.access_key,
    )
    return AuthResult(
        access_key=cred.access_key,
        content_sha256=content_sha256 or UNSIGNED_PAYLOAD,
        signing_key=signing_key,
        seed_signature=provided.lower(),
        amz_date=amz_date,
        scope=cred.scope,
    )


# --------------------------------------------------------------------------- SigV2


def sign_v2(secret_key: str, string_to_sign: str) -> str:
    """base64(HMAC-SHA1(secret, StringToSign)): the SigV2 signature."""
    digest = hmac.new(
        secret_key.encode("utf-8"), _wire_bytes(string_to_sign), hashlib.sha1
    ).digest()
    return base64.b64encode(digest).decode("ascii")


def _v2_canonical_amz_headers(
    headers: Mapping[str, str], extra: Iterable[tuple[str, str]] = ()
) -> str:
    """x-amz-* headers lower-cased and sorted, values trimmed, repeated ones joined with ','.

    ``extra`` are (name, value) pairs from the query string of a presigned URL (botocore moves
    the x-amz-* headers it signed there); a header of the same name takes precedence.
    """
    values: dict[str, list[str]] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered.startswith("x-amz-"):
            values.setdefault(lowered, []).append(str(value).strip())
    from_query: dict[str, list[str]] = {}
    for name, value in extra:
        lowered = name.lower()
        if lowered.startswith("x-amz-") and lowered not in values:
            from_query.setdefault(lowered, []).append(value.strip())
    values.update(from_query)
    return "".join(f"{name}:{','.join(values[name])}\n" for name in sorted(values))


def _v2_subresources(
    params: Iterable[_QueryParam], names: frozenset[str], value_form: str, bare_empty: bool
) -> str:
    """The '?'-prefixed sub-resource part of a CanonicalizedResource ('' when there is none).

    ``value_form`` is "decoded" (the documented form: values are signed unencoded, a '+' kept
    literally), "form" (decoded with '+' as a space) or "raw" (as sent, still encoded: what some
    older signers use). With ``bare_empty`` an empty value is signed without its '='.
    """
    pairs: list[tuple[str, str | None]] = []
    for param in params:
        key = _decode_query_component(param.raw_key, plus_is_space=False).decode(
            "utf-8", "surrogateescape"
        )
        if key not in names:
            continue
        value: str | None = None
        if param.has_value:
            if value_form == "raw":
                value = param.raw_value
            else:
                value = _decode_query_component(
                    param.raw_value, plus_is_space=value_form == "form"
                ).decode("utf-8", "surrogateescape")
            if bare_empty and value == "":
                value = None
        pairs.append((key, value))
    if not pairs:
        return ""
    pairs.sort(key=lambda pair: pair[0])  # stable: repeated keys keep their order
    return "?" + "&".join(key if value is None else f"{key}={value}" for key, value in pairs)


def _v2_canonical_resources(
    raw_path: str, params: list[_QueryParam], virtual_host_bucket: str | None
) -> list[str]:
    """CanonicalizedResource candidates: the documented form first, then tolerated variants."""
    path = raw_path.split("?", 1)[0] or "/"
    if virtual_host_bucket:
        path = f"/{virtual_host_bucket}{path}"
    paths = [path]
    if path.count("/") == 1 and path != "/":
        # A path-style bucket request: "/bucket" and "/bucket/" name the same resource, and
        # signers (botocore among them) sign the latter whichever they send.
        paths.append(path + "/")
    candidates: list[str] = []
    for names in (V2_SUBRESOURCES, V2_SUBRESOURCES | V2_EXTRA_SUBRESOURCES):
        for value_form in ("decoded", "form", "raw"):
            for bare_empty in (False, True):
                subresources = _v2_subresources(params, names, value_form, bare_empty)
                for base in paths:
                    if base + subresources not in candidates:
                        candidates.append(base + subresources)
    return candidates


def _verify_v2_signature(
    *,
    method: str,
    content_md5: str,
    content_type: str,
    dates: list[str],
    amz_headers: str,
    resources: list[str],
    secret_key: str,
    provided: str,
    access_key: str,
) -> None:
    """Try every StringToSign variant; raise SignatureDoesNotMatch if none matches."""
    first_sts: str | None = None
    matched = False
    provided_bytes = _wire_bytes(provided)
    for date in dates:
        for resource in resources:
            string_to_sign = f"{method}\n{content_md5}\n{content_type}\n{date}\n{amz_headers}"
            string_to_sign += resource
            if first_sts is None:
                first_sts = string_to_sign
            expected = sign_v2(secret_key, string_to_sign).encode("ascii")
            # No early exit: keeps the comparison count independent of which variant matches.
            matched |= hmac.compare_digest(expected, provided_bytes)
    if not matched:
        raise S3Error(
            "SignatureDoesNotMatch",
            AWSAccessKeyId=access_key,
            StringToSign=first_sts or "",
            SignatureProvided=provided,
        )


def _v2_content_sha256(content_sha256: str | None) -> str:
    """What a SigV2 request declares about its payload (SigV2 itself signs none of it)."""
    _check_content_sha256(content_sha256)
    if content_sha256 in _STREAMING_SIGV4_PAYLOADS:
        raise S3Error(
            "InvalidRequest",
            f"{content_sha256} requires a request signed with AWS4-HMAC-SHA256"
            " (Signature Version 4).",
        )
    # A hex digest is still checked against the body; STREAMING-UNSIGNED-PAYLOAD-TRAILER still
    # has its aws-chunked framing removed.
    return content_sha256 or UNSIGNED_PAYLOAD


def _authenticate_v2_header(
    method: str,
    raw_path: str,
    params: list[_QueryParam],
    headers: Mapping[str, str],
    authorization: str,
    content_sha256: str | None,
    credentials: CredentialStore,
    now: datetime,
    virtual_host_bucket: str | None,
) -> AuthResult:
    credential = authorization.strip().partition(" ")[2].strip()
    access_key, sep, provided = credential.partition(":")
    access_key, provided = access_key.strip(), provided.strip()
    if not sep or not access_key or not provided:
        raise S3Error(
            "InvalidArgument",
            "AWS authorization header is invalid.  Expected AwsAccessKeyId:signature",
            ArgumentName="Authorization",
            ArgumentValue=authorization,
        )

    # Request time: x-amz-date (RFC 2616 format; the ISO 8601 basic form is tolerated), else Date.
    raw_amz_date = _header(headers, "x-amz-date")
    raw_date = _header(headers, "Date")
    if raw_amz_date is not None:
        raw_time: str | None = raw_amz_date.strip()
        request_time = _parse_amz_date(raw_amz_date.strip()) or _parse_http_date(raw_amz_date)
    else:
        raw_time = raw_date
        request_time = _parse_http_date(raw_date) if raw_date is not None else None
    raw_time, request_time = _check_request_time(raw_time, request_time, now)
    # With x-amz-date the Date position is empty (x-amz-date is signed among the x-amz-*
    # headers); some signers (botocore) put the Date header there all the same.
    if raw_amz_date is None:
        dates = [raw_time.strip()]
    elif raw_date is not None and raw_date.strip():
        dates = ["", raw_date.strip()]
    else:
        dates = [""]

    secret = _secret_for(credentials, access_key)
    _verify_v2_signature(
        method=method,
        content_md5=(_header(headers, "Content-MD5") or "").strip(),
        content_type=(_header(headers, "Content-Type") or "").strip(),
        dates=dates,
        amz_headers=_v2_canonical_amz_headers(headers),
        resources=_v2_canonical_resources(raw_path, params, virtual_host_bucket),
        secret_key=secret,
        provided=provided,
        access_key=access_key,
    )
    return AuthResult(access_key, _v2_content_sha256(content_sha256))


def _authenticate_v2_query(
    method: str,
    raw_path: str,
    params: list[_QueryParam],
    headers: Mapping[str, str],
    content_sha256: str | None,
    credentials: CredentialStore,
    now: datetime,
    virtual_host_bucket: str | None,
) -> AuthResult:
    values = {name: _query_value(params, name) for name in _V2_QUERY_AUTH_PARAMS}
    if any(not v for v in values.values()):
        raise S3Error(
            "AccessDenied",
            "Query-string authentication requires the Signature, Expires and AWSAccessKeyId"
            " parameters",
        )
    access_key = values["AWSAccessKeyId"] or ""
    expires_raw = values["Expires"] or ""
    # _query_value reads '+' as a space; base64 has no spaces, so a space was an unencoded '+'.
    provided = (values["Signature"] or "").replace(" ", "+")
    if not (expires_raw.isascii() and expires_raw.isdigit()):
        raise S3Error(
            "AccessDenied", f"Invalid date (should be seconds since epoch): {expires_raw}"
        )
    expires = int(expires_raw)
    if now.timestamp() > expires:
        raise S3Error(
            "AccessDenied",
            "Request has expired",
            Expires=_format_iso(datetime.fromtimestamp(expires, UTC)),
            ServerTime=_format_iso(now),
        )

    # Presigners move the Content-Type, Content-MD5 and x-amz-* headers they signed into the
    # query string; a header actually sent takes precedence.
    query_pairs: list[tuple[str, str]] = []
    for param in params:
        key = _decode_query_component(param.raw_key, plus_is_space=True).decode(
            "utf-8", "surrogateescape"
        )
        if key.lower().startswith("x-amz-"):
            value = _decode_query_component(param.raw_value, plus_is_space=True)
            query_pairs.append((key, value.decode("utf-8", "surrogateescape")))
    content_md5 = _header(headers, "Content-MD5")
    if content_md5 is None:
        content_md5 = _query_value(params, "content-md5") or _query_value(params, "Content-MD5")
    content_type = _header(headers, "Content-Type")
    if content_type is None:
        content_type = _query_value(params, "content-type") or _query_value(params, "Content-Type")

    secret = _secret_for(credentials, access_key)
    _verify_v2_signature(
        method=method,
        content_md5=(content_md5 or "").strip(),
        content_type=(content_type or "").strip(),
        dates=[expires_raw],
        amz_headers=_v2_canonical_amz_headers(headers, query_pairs),
        resources=_v2_canonical_resources(raw_path, params, virtual_host_bucket),
        secret_key=secret,
        provided=provided,
        access_key=access_key,
    )
    return AuthResult(access_key, _v2_content_sha256(content_sha256))


# --------------------------------------------------------------------------- POST forms


def authenticate_post_form(
    fields: Mapping[str, str], credentials: CredentialStore, region: str
) -> str | None:
    """Verify the signature of a browser POST form (PostObject), which signs its base64
    ``policy`` field: SigV4 (``x-amz-algorithm``, ``x-amz-credential``, ``x-amz-date``,
    ``x-amz-signature``) or SigV2 (``AWSAccessKeyId``, ``signature``). ``fields`` are the
    form's fields with lower-case names. Returns the access key; None when the form is not
    signed at all (anonymous). The policy's own expiration and conditions are checked by
    :mod:`gateway.s3.postpolicy`."""
    policy = fields.get("policy")
    if "x-amz-signature" in fields:
        if fields.get("x-amz-algorithm") != ALGORITHM:
            raise S3Error(
                "InvalidArgument",
                "Unsupported or missing x-amz-algorithm.",
                ArgumentName="x-amz-algorithm",
                ArgumentValue=fields.get("x-amz-algorithm", ""),
            )
        for name in ("x-amz-credential", "x-amz-date", "policy"):
            if not fields.get(name):
                raise S3Error(
                    "InvalidArgument",
                    f"Bucket POST must contain a field named '{name}'.",
                    ArgumentName=name,
                    ArgumentValue="",
                )
        cred = _parse_credential(fields["x-amz-credential"], "InvalidArgument", region)
        if _parse_amz_date(fields["x-amz-date"]) is None:
            raise S3Error(
                "InvalidArgument",
                "x-amz-date must be of the form yyyyMMddTHHmmssZ.",
                ArgumentName="x-amz-date",
                ArgumentValue=fields["x-amz-date"],
            )
        secret = _secret_for(credentials, cred.access_key)
        expected = sign(derive_signing_key(secret, cred.date, cred.region), fields["policy"])
        if not signatures_equal(expected, fields["x-amz-signature"]):
            raise S3Error("SignatureDoesNotMatch")
        return cred.access_key
    if "signature" in fields or "awsaccesskeyid" in fields:
        access_key = fields.get("awsaccesskeyid", "")
        if not access_key or not policy or "signature" not in fields:
            raise S3Error(
                "InvalidArgument",
                "Bucket POST must contain the fields 'AWSAccessKeyId', 'policy' and 'signature'.",
            )
        expected = sign_v2(_secret_for(credentials, access_key), policy)
        if not hmac.compare_digest(expected.encode(), fields["signature"].encode()):
            raise S3Error("SignatureDoesNotMatch")
        return access_key
    return None
