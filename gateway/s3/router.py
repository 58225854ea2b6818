"""Request routing: an HTTP request becomes a typed :class:`Endpoint` named after its S3 operation.

Modelled on Garage's S3 router. :func:`route` does three things and nothing else:

1. finds the bucket and key, from the path (path style) or from the ``Host`` header (virtual-host
   style, only when a ``domain`` is configured), percent-decoding each exactly once;
2. decodes the query string into a mapping (first value of each parameter wins);
3. looks the request up in one table keyed by ``(level, method, sub-resource)``, where the level
   is service, bucket or object and the sub-resource is the one query keyword such as ``acl`` or
   ``uploads`` (``""`` when there is none). A table entry is an ordered tuple of rules; the first
   rule whose conditions (query parameters present, query values, a header, the media type) hold
   names the operation.

It checks no bucket names (handlers do that on create; other operations answer NoSuchBucket),
no signatures and no parameter values beyond what dispatch needs: ``UploadPart`` still has to
check ``partNumber`` and ``uploadId``, for instance.

Refusals, following what Amazon S3 itself answers:

* an unknown method, a sub-resource the method does not serve (``DELETE /b/k?acl`` must never
  become ``DeleteObject``), and a ``POST`` that matches nothing at the service or object level
  answer **405 MethodNotAllowed** with ``Method`` and ``ResourceType`` elements and an ``Allow``
  header. AWS answers e.g. an IAM/STS-style ``POST /`` (``Action=...`` in the form body or query)
  with exactly this: ``405``, ``<Method>POST</Method><ResourceType>SERVICE</ResourceType>``,
  ``Allow: GET`` (as captured in versity/versitygw issues #1487 and #1810), and a ``POST`` to an
  object without a sub-resource with ``<ResourceType>OBJECT</ResourceType>``;
* a ``POST`` to a bucket that is neither a known sub-resource nor ``multipart/form-data`` (the
  browser upload, :attr:`Op.PostObject`) answers **412 PreconditionFailed** with
  ``<Condition>Bucket POST must be of the enclosure-type multipart/form-data</Condition>``, which
  is AWS's answer there, since a bucket ``POST`` is by definition the form upload;
* two different sub-resources in one query (``?acl&tagging``) answer 400 InvalidRequest rather
  than letting table order pick one silently;
* malformed percent-encoding (``%`` not followed by two hex digits) or bytes that are not UTF-8,
  in the path or the query, answer 400 InvalidURI;
* a key longer than 1024 bytes of UTF-8 answers 400 KeyTooLongError.

``OPTIONS`` (CORS preflight) is not an S3 API operation and is refused here like any other
unknown method; :mod:`gateway.s3.handlers.cors` answers it before routing, finding the bucket
with :func:`locate`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum, StrEnum, auto
from types import MappingProxyType
from urllib.parse import unquote_to_bytes

from gateway.s3.errors import S3Error

__all__ = ["MAX_KEY_BYTES", "NOT_ROUTED", "Endpoint", "Op", "host_bucket", "locate", "route"]

MAX_KEY_BYTES = 1024


class Op(StrEnum):
    """Every Amazon S3 API operation, by its AWS name (the value equals the name).

    The names are those of the S3 API reference / the botocore service model, plus
    ``PostObject`` (the browser form upload, which the SDKs do not model). See
    :data:`NOT_ROUTED` for the few that :func:`route` never returns.
    """

    @staticmethod
    def _generate_next_value_(name: str, start: int, count: int, last_values: list[str]) -> str:
        return name

    AbortMultipartUpload = auto()
    CompleteMultipartUpload = auto()
    CopyObject = auto()
    CreateBucket = auto()
    CreateBucketMetadataConfiguration = auto()
    CreateBucketMetadataTableConfiguration = auto()
    CreateMultipartUpload = auto()
    CreateSession = auto()
    DeleteBucket = auto()
    DeleteBucketAnalyticsConfiguration = auto()
    DeleteBucketCors = auto()
    DeleteBucketEncryption = auto()
    DeleteBucketIntelligentTieringConfiguration = auto()
    DeleteBucketInventoryConfiguration = auto()
    DeleteBucketLifecycle = auto()
    DeleteBucketMetadataConfiguration = auto()
    DeleteBucketMetadataTableConfiguration = auto()
    DeleteBucketMetricsConfiguration = auto()
    DeleteBucketOwnershipControls = auto()
    DeleteBucketPolicy = auto()
    DeleteBucketReplication = auto()
    DeleteBucketTagging = auto()
    DeleteBucketWebsite = auto()
    DeleteObject = auto()
    DeleteObjectAnnotation = auto()
    DeleteObjectTagging = auto()
    DeleteObjects = auto()
    DeletePublicAccessBlock = auto()
    GetBucketAbac = auto()
    GetBucketAccelerateConfiguration = auto()
    GetBucketAcl = auto()
    GetBucketAnalyticsConfiguration = auto()
    GetBucketCors = auto()
    GetBucketEncryption = auto()
    GetBucketIntelligentTieringConfiguration = auto()
    GetBucketInventoryConfiguration = auto()
    GetBucketLifecycle = auto()
    GetBucketLifecycleConfiguration = auto()
    GetBucketLocation = auto()
    GetBucketLogging = auto()
    GetBucketMetadataConfiguration = auto()
    GetBucketMetadataTableConfiguration = auto()
    GetBucketMetricsConfiguration = auto()
    GetBucketNotification = auto()
    GetBucketNotificationConfiguration = auto()
    GetBucketOwnershipControls = auto()
    GetBucketPolicy = auto()
    GetBucketPolicyStatus = auto()
    GetBucketReplication = auto()
    GetBucketRequestPayment = auto()
    GetBucketTagging = auto()
    GetBucketVersioning = auto()
    GetBucketWebsite = auto()
    GetObject = auto()
    GetObjectAcl = auto()
    GetObjectAnnotation = auto()
    GetObjectAttributes = auto()
    GetObjectLegalHold = auto()
    GetObjectLockConfiguration = auto()
    GetObjectRetention = auto()
    GetObjectTagging = auto()
    GetObjectTorrent = auto()
    GetPublicAccessBlock = auto()
    HeadBucket = auto()
    HeadObject = auto()
    ListBucketAnalyticsConfigurations = auto()
    ListBucketIntelligentTieringConfigurations = auto()
    ListBucketInventoryConfigurations = auto()
    ListBucketMetricsConfigurations = auto()
    ListBuckets = auto()
    ListDirectoryBuckets = auto()
    ListMultipartUploads = auto()
    ListObjectAnnotations = auto()
    ListObjectVersions = auto()
    ListObjects = auto()
    ListObjectsV2 = auto()
    ListParts = auto()
    PostObject = auto()
    PutBucketAbac = auto()
    PutBucketAccelerateConfiguration = auto()
    PutBucketAcl = auto()
    PutBucketAnalyticsConfiguration = auto()
    PutBucketCors = auto()
    PutBucketEncryption = auto()
    PutBucketIntelligentTieringConfiguration = auto()
    PutBucketInventoryConfiguration = auto()
    PutBucketLifecycle = auto()
    PutBucketLifecycleConfiguration = auto()
    PutBucketLogging = auto()
    PutBucketMetricsConfiguration = auto()
    PutBucketNotification = auto()
    PutBucketNotificationConfiguration = auto()
    PutBucketOwnershipControls = auto()
    PutBucketPolicy = auto()
    PutBucketReplication = auto()
    PutBucketRequestPayment = auto()
    PutBucketTagging = auto()
    PutBucketVersioning = auto()
    PutBucketWebsite = auto()
    PutObject = auto()
    PutObjectAcl = auto()
    PutObjectAnnotation = auto()
    PutObjectLegalHold = auto()
    PutObjectLockConfiguration = auto()
    PutObjectRetention = auto()
    PutObjectTagging = auto()
    PutPublicAccessBlock = auto()
    RenameObject = auto()
    RestoreObject = auto()
    SelectObjectContent = auto()
    UpdateBucketMetadataAnnotationTableConfiguration = auto()
    UpdateBucketMetadataInventoryTableConfiguration = auto()
    UpdateBucketMetadataJournalTableConfiguration = auto()
    UpdateObjectEncryption = auto()
    UploadPart = auto()
    UploadPartCopy = auto()
    WriteGetObjectResponse = auto()


NOT_ROUTED: frozenset[Op] = frozenset(
    {
        # Deprecated: same wire signature as their successors, which route() returns instead
        # (GetBucketLifecycleConfiguration, PutBucketLifecycleConfiguration,
        # GetBucketNotificationConfiguration, PutBucketNotificationConfiguration).
        Op.GetBucketLifecycle,
        Op.PutBucketLifecycle,
        Op.GetBucketNotification,
        Op.PutBucketNotification,
        # Same wire signature as ListBuckets (GET /); AWS tells them apart by endpoint
        # (s3express-control), which this gateway does not have.
        Op.ListDirectoryBuckets,
        # S3 Object Lambda: served by its own endpoint, never by a bucket endpoint.
        Op.WriteGetObjectResponse,
    }
)
"""Operations :func:`route` never returns (documented above each)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A routed request: the operation and the decoded bucket, key and query."""

    op: Op
    bucket: str | None
    key: str | None
    """Decoded UTF-8 object key, byte for byte as the client sent it (never normalized)."""
    query: Mapping[str, str]
    """Decoded query parameters, first value of each; valueless keywords map to ``""``."""


class _Level(Enum):
    SERVICE = "SERVICE"
    BUCKET = "BUCKET"
    OBJECT = "OBJECT"


@dataclass(frozen=True, slots=True)
class _Rule:
    """Conditions under which a request is ``op``; all of them must hold."""

    op: Op
    params: frozenset[str] = frozenset()
    """Query parameters that must be present (any value)."""
    values: tuple[tuple[str, str], ...] = ()
    """Query parameters that must be present with exactly this value."""
    header: str | None = None
    """A request header (lower-case name) that must be present."""
    media_type: str | None = None
    """The ``Content-Type`` the request must have, parameters ignored."""


def _when(
    op: Op,
    *params: str,
    values: Mapping[str, str] | None = None,
    header: str | None = None,
    media_type: str | None = None,
) -> _Rule:
    return _Rule(op, frozenset(params), tuple((values or {}).items()), header, media_type)


_COPY_SOURCE = "x-amz-copy-source"

# What a table cell holds: one operation (always matches) or rules tried in order.
_Cell = Op | tuple[_Rule, ...]

# sub-resource keyword -> method -> cell, per level. "" is "no sub-resource".
_SERVICE: dict[str, dict[str, _Cell]] = {
    "": {"GET": Op.ListBuckets},
}

_BUCKET: dict[str, dict[str, _Cell]] = {
    "": {
        "GET": (_when(Op.ListObjectsV2, values={"list-type": "2"}), _when(Op.ListObjects)),
        "HEAD": Op.HeadBucket,
        "PUT": Op.CreateBucket,
        "DELETE": Op.DeleteBucket,
        # Anything else answers 412 PreconditionFailed (see _REFUSALS).
        "POST": (_when(Op.PostObject, media_type="multipart/form-data"),),
    },
    "abac": {"GET": Op.GetBucketAbac, "PUT": Op.PutBucketAbac},
    "accelerate": {
        "GET": Op.GetBucketAccelerateConfiguration,
        "PUT": Op.PutBucketAccelerateConfiguration,
    },
    "acl": {"GET": Op.GetBucketAcl, "PUT": Op.PutBucketAcl},
    "analytics": {
        "GET": (
            _when(Op.GetBucketAnalyticsConfiguration, "id"),
            _when(Op.ListBucketAnalyticsConfigurations),
        ),
        "PUT": Op.PutBucketAnalyticsConfiguration,
        "DELETE": Op.DeleteBucketAnalyticsConfiguration,
    },
    "cors": {"GET": Op.GetBucketCors, "PUT": Op.PutBucketCors, "DELETE": Op.DeleteBucketCors},
    "delete": {"POST": Op.DeleteObjects},
    "encryption": {
        "GET": Op.GetBucketEncryption,
        "PUT": Op.PutBucketEncryption,
        "DELETE": Op.DeleteBucketEncryption,
    },
    "intelligent-tiering": {
        "GET": (
            _when(Op.GetBucketIntelligentTieringConfiguration, "id"),
            _when(Op.ListBucketIntelligentTieringConfigurations),
        ),
        "PUT": Op.PutBucketIntelligentTieringConfiguration,
        "DELETE": Op.DeleteBucketIntelligentTieringConfiguration,
    },
    "inventory": {
        "GET": (
            _when(Op.GetBucketInventoryConfiguration, "id"),
            _when(Op.ListBucketInventoryConfigurations),
        ),
        "PUT": Op.PutBucketInventoryConfiguration,
        "DELETE": Op.DeleteBucketInventoryConfiguration,
    },
    "lifecycle": {
        "GET": Op.GetBucketLifecycleConfiguration,
        "PUT": Op.PutBucketLifecycleConfiguration,
        "DELETE": Op.DeleteBucketLifecycle,
    },
    "location": {"GET": Op.GetBucketLocation},
    "logging": {"GET": Op.GetBucketLogging, "PUT": Op.PutBucketLogging},
    "metadataAnnotationTable": {"PUT": Op.UpdateBucketMetadataAnnotationTableConfiguration},
    "metadataConfiguration": {
        "GET": Op.GetBucketMetadataConfiguration,
        "POST": Op.CreateBucketMetadataConfiguration,
        "DELETE": Op.DeleteBucketMetadataConfiguration,
    },
    "metadataInventoryTable": {"PUT": Op.UpdateBucketMetadataInventoryTableConfiguration},
    "metadataJournalTable": {"PUT": Op.UpdateBucketMetadataJournalTableConfiguration},
    "metadataTable": {
        "GET": Op.GetBucketMetadataTableConfiguration,
        "POST": Op.CreateBucketMetadataTableConfiguration,
        "DELETE": Op.DeleteBucketMetadataTableConfiguration,
    },
    "metrics": {
        "GET": (
            _when(Op.GetBucketMetricsConfiguration, "id"),
            _when(Op.ListBucketMetricsConfigurations),
        ),
        "PUT": Op.PutBucketMetricsConfiguration,
        "DELETE": Op.DeleteBucketMetricsConfiguration,
    },
    "notification": {
        "GET": Op.GetBucketNotificationConfiguration,
        "PUT": Op.PutBucketNotificationConfiguration,
    },
    "object-lock": {"GET": Op.GetObjectLockConfiguration, "PUT": Op.PutObjectLockConfiguration},
    "ownershipControls": {
        "GET": Op.GetBucketOwnershipControls,
        "PUT": Op.PutBucketOwnershipControls,
        "DELETE": Op.DeleteBucketOwnershipControls,
    },
    "policy": {
        "GET": Op.GetBucketPolicy,
        "PUT": Op.PutBucketPolicy,
        "DELETE": Op.DeleteBucketPolicy,
    },
    "policyStatus": {"GET": Op.GetBucketPolicyStatus},
    "publicAccessBlock": {
        "GET": Op.GetPublicAccessBlock,
        "PUT": Op.PutPublicAccessBlock,
        "DELETE": Op.DeletePublicAccessBlock,
    },
    "replication": {
        "GET": Op.GetBucketReplication,
        "PUT": Op.PutBucketReplication,
        "DELETE": Op.DeleteBucketReplication,
    },
    "requestPayment": {"GET": Op.GetBucketRequestPayment, "PUT": Op.PutBucketRequestPayment},
    "session": {"GET": Op.CreateSession},
    "tagging": {
        "GET": Op.GetBucketTagging,
        "PUT": Op.PutBucketTagging,
        "DELETE": Op.DeleteBucketTagging,
    },
    "uploads": {"GET": Op.ListMultipartUploads},
    "versioning": {"GET": Op.GetBucketVersioning, "PUT": Op.PutBucketVersioning},
    "versions": {"GET": Op.ListObjectVersions},
    "website": {
        "GET": Op.GetBucketWebsite,
        "PUT": Op.PutBucketWebsite,
        "DELETE": Op.DeleteBucketWebsite,
    },
}

_OBJECT: dict[str, dict[str, _Cell]] = {
    "": {
        "GET": (_when(Op.ListParts, "uploadId"), _when(Op.GetObject)),
        "HEAD": Op.HeadObject,
        # Either multipart parameter alone still makes an UploadPart(Copy), which then refuses
        # the missing one: a stray part must never silently overwrite the whole object.
        "PUT": (
            _when(Op.UploadPartCopy, "partNumber", header=_COPY_SOURCE),
            _when(Op.UploadPartCopy, "uploadId", header=_COPY_SOURCE),
            _when(Op.UploadPart, "partNumber"),
            _when(Op.UploadPart, "uploadId"),
            _when(Op.CopyObject, header=_COPY_SOURCE),
            _when(Op.PutObject),
        ),
        "DELETE": (_when(Op.AbortMultipartUpload, "uploadId"), _when(Op.DeleteObject)),
        # Anything else answers 405 MethodNotAllowed.
        "POST": (_when(Op.CompleteMultipartUpload, "uploadId"),),
    },
    "acl": {"GET": Op.GetObjectAcl, "PUT": Op.PutObjectAcl},
    "annotation": {
        "GET": (
            _when(Op.GetObjectAnnotation, "annotationName"),
            _when(Op.ListObjectAnnotations),
        ),
        "PUT": Op.PutObjectAnnotation,
        "DELETE": Op.DeleteObjectAnnotation,
    },
    "attributes": {"GET": Op.GetObjectAttributes},
    "encryption": {"PUT": Op.UpdateObjectEncryption},
    "legal-hold": {"GET": Op.GetObjectLegalHold, "PUT": Op.PutObjectLegalHold},
    "renameObject": {"PUT": Op.RenameObject},
    "restore": {"POST": Op.RestoreObject},
    "retention": {"GET": Op.GetObjectRetention, "PUT": Op.PutObjectRetention},
    "select": {"POST": (_when(Op.SelectObjectContent, values={"select-type": "2"}),)},
    "tagging": {
        "GET": Op.GetObjectTagging,
        "PUT": Op.PutObjectTagging,
        "DELETE": Op.DeleteObjectTagging,
    },
    "torrent": {"GET": Op.GetObjectTorrent},
    "uploads": {"POST": Op.CreateMultipartUpload},
}


def _flatten(
    levels: Mapping[_Level, Mapping[str, Mapping[str, _Cell]]],
) -> dict[tuple[_Level, str, str], tuple[_Rule, ...]]:
    return {
        (level, method, keyword): (_when(cell),) if isinstance(cell, Op) else cell
        for level, keywords in levels.items()
        for keyword, methods in keywords.items()
        for method, cell in methods.items()
    }


# (level, method, sub-resource keyword) -> rules, first match wins.
_ROUTES = _flatten({_Level.SERVICE: _SERVICE, _Level.BUCKET: _BUCKET, _Level.OBJECT: _OBJECT})

# Every sub-resource keyword at any level: one the (level, method) does not serve is refused
# rather than ignored, so that e.g. DELETE /bucket/key?cors can never delete the object.
_KEYWORDS = frozenset(keyword for _, _, keyword in _ROUTES if keyword)

# (level, keyword) -> methods served, for the Allow header of a 405.
_ALLOWED: dict[tuple[_Level, str], frozenset[str]] = {
    (level, keyword): frozenset(m for lv, m, kw in _ROUTES if lv is level and kw == keyword)
    for level, _, keyword in _ROUTES
}

# Cells whose rules can all fail and whose refusal is not the default 405.
_REFUSALS: dict[tuple[_Level, str, str], Callable[[], S3Error]] = {
    # A bucket POST is the browser form upload; AWS states the enclosure type as the failed
    # precondition when the body is anything else (message and Condition as AWS words them).
    (_Level.BUCKET, "POST", ""): lambda: S3Error(
        "PreconditionFailed",
        "At least one of the pre-conditions you specified did not hold",
        Condition="Bucket POST must be of the enclosure-type multipart/form-data",
    ),
}

_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def route(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    *,
    domain: str | None = None,
) -> Endpoint:
    """Name the S3 operation a request is for.

    ``raw_path`` is the path as sent, still percent-encoded (aiohttp: ``request.raw_path``, which
    may carry the query: whatever follows the first ``?`` is then the query, and ``raw_query``
    must be empty or the same). ``raw_query`` is the query string as sent, without ``?``.
    ``headers`` may be case-insensitive (aiohttp's) or a plain dict. With ``domain`` set (e.g.
    ``"s3.example.com"``), a ``Host`` of ``<bucket>.<domain>[:port]`` selects virtual-host style:
    the bucket comes from the host and the whole path is the key.

    Raises :class:`S3Error` (MethodNotAllowed, PreconditionFailed, InvalidRequest, InvalidURI,
    KeyTooLongError) as described in the module docstring.
    """
    path, has_query, target_query = raw_path.partition("?")
    if has_query:
        if raw_query and raw_query != target_query:
            raise ValueError("route(): raw_path carries a query that differs from raw_query")
        raw_query = target_query
    bucket, key = locate(path, headers, domain=domain)
    level = _Level.SERVICE if bucket is None else _Level.BUCKET if key is None else _Level.OBJECT
    query = _parse_query(raw_query, raw_path)
    keyword = _keyword(query)
    rules = _ROUTES.get((level, method, keyword))
    if rules is None:
        raise _method_not_allowed(method, level, keyword)
    for rule in rules:
        if _matches(rule, query, headers):
            return Endpoint(rule.op, bucket, key, MappingProxyType(query))
    raise _no_match(method, level, keyword)


def locate(
    raw_path: str, headers: Mapping[str, str], *, domain: str | None = None
) -> tuple[str | None, str | None]:
    """The decoded (bucket, key) a request path (without its query) names, as :func:`route`
    finds them; also for the CORS preflight, which is no S3 operation."""
    path = raw_path
    if not path.startswith("/"):
        raise S3Error("InvalidURI", resource=raw_path)

    vhost = host_bucket(_header(headers, "host"), domain) if domain else None
    if vhost is not None:
        bucket: str | None = vhost
        raw_key = path[1:]
    else:
        raw_bucket, slash, raw_key = path[1:].partition("/")
        if not raw_bucket:
            if slash:  # "//" or "//key": an empty bucket name
                raise S3Error("InvalidURI", resource=raw_path)
            bucket = None
        else:
            bucket = _decode(raw_bucket, raw_path, plus_is_space=False)

    key: str | None = None
    if raw_key:
        key = _decode(raw_key, raw_path, plus_is_space=False)
        size = len(key.encode("utf-8"))
        if size > MAX_KEY_BYTES:
            raise S3Error(
                "KeyTooLongError",
                resource=raw_path,
                Size=str(size),
                MaxSizeAllowed=str(MAX_KEY_BYTES),
            )
    return bucket, key


def host_bucket(host: str | None, domain: str) -> str | None:
    """The bucket named by ``Host: <bucket>.<domain>[:port]``, else None (path style)."""
    if not host or host.startswith("["):  # absent, or an IPv6 literal
        return None
    name = host.partition(":")[0].strip().rstrip(".").lower()
    suffix = "." + domain.strip().rstrip(".").lower()
    if len(name) > len(suffix) and name.endswith(suffix):
        return name[: -len(suffix)]
    return None


def _decode(raw: str, uri: str, *, plus_is_space: bool) -> str:
    """Percent-decode once, strictly: malformed escapes and non-UTF-8 bytes are InvalidURI."""
    if plus_is_space:
        raw = raw.replace("+", " ")
    if raw.isascii() and "%" not in raw:
        return raw
    if _BAD_PERCENT.search(raw):
        raise S3Error("InvalidURI", resource=uri)
    try:
        # surrogateescape: a server may hand over undecodable raw bytes as lone surrogates.
        return unquote_to_bytes(raw.encode("utf-8", "surrogateescape")).decode("utf-8")
    except UnicodeError:
        raise S3Error("InvalidURI", resource=uri) from None


def _parse_query(raw_query: str, uri: str) -> dict[str, str]:
    """``a=1&b&a=2`` -> ``{"a": "1", "b": ""}``; ``+`` is a space here (form encoding)."""
    query: dict[str, str] = {}
    for part in raw_query.split("&"):
        if part:
            name, _, value = part.partition("=")
            query.setdefault(
                _decode(name, uri, plus_is_space=True), _decode(value, uri, plus_is_space=True)
            )
    return query


def _keyword(query: Mapping[str, str]) -> str:
    found = [name for name in query if name in _KEYWORDS]
    if len(found) > 1:
        raise S3Error(
            "InvalidRequest", f"Conflicting sub-resources in one request: {', '.join(found)}"
        )
    return found[0] if found else ""


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive lookup that also works on a plain dict; ``name`` is lower-case."""
    value = headers.get(name)
    if value is None:
        for candidate, candidate_value in headers.items():
            if candidate.lower() == name:
                return candidate_value
    return value


def _matches(rule: _Rule, query: Mapping[str, str], headers: Mapping[str, str]) -> bool:
    if not query.keys() >= rule.params:
        return False
    if any(query.get(name) != value for name, value in rule.values):
        return False
    if rule.header is not None and _header(headers, rule.header) is None:
        return False
    if rule.media_type is not None:
        content_type = _header(headers, "content-type") or ""
        if content_type.partition(";")[0].strip().lower() != rule.media_type:
            return False
    return True


def _method_not_allowed(method: str, level: _Level, keyword: str) -> S3Error:
    allowed = sorted(_ALLOWED.get((level, keyword), frozenset()) - {method})
    return S3Error(
        "MethodNotAllowed",
        headers={"Allow": ", ".join(allowed)} if allowed else None,
        Method=method,
        ResourceType=level.value,
    )


def _no_match(method: str, level: _Level, keyword: str) -> S3Error:
    refusal = _REFUSALS.get((level, method, keyword))
    return refusal() if refusal is not None else _method_not_allowed(method, level, keyword)
