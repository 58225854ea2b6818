"""Tests for gateway.s3.router: table-driven request -> operation cases, keys, errors, botocore."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import botocore.config
import botocore.session
import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.s3.errors import S3Error
from gateway.s3.router import MAX_KEY_BYTES, NOT_ROUTED, Endpoint, Op, route

FORM = {"Content-Type": "multipart/form-data; boundary=xyz"}
COPY = {"x-amz-copy-source": "/src/obj"}


def _route(
    method: str,
    target: str,
    headers: Mapping[str, str] | None = None,
    *,
    domain: str | None = None,
) -> Endpoint:
    """Route a request-target ("/path?query") the way a server hands it over: split in two."""
    path, _, query = target.partition("?")
    return route(method, path, query, headers or {}, domain=domain)


# (method, request-target, headers, expected operation). One case per distinct signature; the
# coverage test below checks that every routable Op appears at least once.
OP_CASES: list[tuple[str, str, Mapping[str, str], Op]] = [
    # service
    ("GET", "/", {}, Op.ListBuckets),
    # bucket, no sub-resource
    ("GET", "/bk", {}, Op.ListObjects),
    ("GET", "/bk/", {}, Op.ListObjects),
    ("GET", "/bk?prefix=a&delimiter=/&marker=m", {}, Op.ListObjects),
    ("GET", "/bk?list-type=2", {}, Op.ListObjectsV2),
    ("GET", "/bk?list-type=2&continuation-token=t&start-after=s", {}, Op.ListObjectsV2),
    ("GET", "/bk?list-type=1", {}, Op.ListObjects),
    ("HEAD", "/bk", {}, Op.HeadBucket),
    ("PUT", "/bk", {}, Op.CreateBucket),
    ("PUT", "/bk/", {}, Op.CreateBucket),
    ("DELETE", "/bk", {}, Op.DeleteBucket),
    ("POST", "/bk", FORM, Op.PostObject),
    ("POST", "/bk/", {"content-type": "Multipart/Form-Data;boundary=q"}, Op.PostObject),
    # bucket sub-resources
    ("GET", "/bk?versions", {}, Op.ListObjectVersions),
    ("GET", "/bk?versions&key-marker=a&version-id-marker=b", {}, Op.ListObjectVersions),
    ("GET", "/bk?uploads", {}, Op.ListMultipartUploads),
    ("GET", "/bk?uploads=", {}, Op.ListMultipartUploads),
    ("POST", "/bk?delete", {}, Op.DeleteObjects),
    ("POST", "/bk?delete", FORM, Op.DeleteObjects),
    ("GET", "/bk?location", {}, Op.GetBucketLocation),
    ("GET", "/bk?versioning", {}, Op.GetBucketVersioning),
    ("PUT", "/bk?versioning", {}, Op.PutBucketVersioning),
    ("GET", "/bk?acl", {}, Op.GetBucketAcl),
    ("GET", "/bk?acl=", {}, Op.GetBucketAcl),
    ("PUT", "/bk?acl", {}, Op.PutBucketAcl),
    ("GET", "/bk?policy", {}, Op.GetBucketPolicy),
    ("PUT", "/bk?policy", {}, Op.PutBucketPolicy),
    ("DELETE", "/bk?policy", {}, Op.DeleteBucketPolicy),
    ("GET", "/bk?policyStatus", {}, Op.GetBucketPolicyStatus),
    ("GET", "/bk?cors", {}, Op.GetBucketCors),
    ("PUT", "/bk?cors", {}, Op.PutBucketCors),
    ("DELETE", "/bk?cors", {}, Op.DeleteBucketCors),
    ("GET", "/bk?lifecycle", {}, Op.GetBucketLifecycleConfiguration),
    ("PUT", "/bk?lifecycle", {}, Op.PutBucketLifecycleConfiguration),
    ("DELETE", "/bk?lifecycle", {}, Op.DeleteBucketLifecycle),
    ("GET", "/bk?tagging", {}, Op.GetBucketTagging),
    ("PUT", "/bk?tagging", {}, Op.PutBucketTagging),
    ("DELETE", "/bk?tagging", {}, Op.DeleteBucketTagging),
    ("GET", "/bk?encryption", {}, Op.GetBucketEncryption),
    ("PUT", "/bk?encryption", {}, Op.PutBucketEncryption),
    ("DELETE", "/bk?encryption", {}, Op.DeleteBucketEncryption),
    ("GET", "/bk?accelerate", {}, Op.GetBucketAccelerateConfiguration),
    ("PUT", "/bk?accelerate", {}, Op.PutBucketAccelerateConfiguration),
    ("GET", "/bk?analytics&id=a", {}, Op.GetBucketAnalyticsConfiguration),
    ("GET", "/bk?analytics", {}, Op.ListBucketAnalyticsConfigurations),
    ("GET", "/bk?analytics&continuation-token=t", {}, Op.ListBucketAnalyticsConfigurations),
    ("PUT", "/bk?analytics&id=a", {}, Op.PutBucketAnalyticsConfiguration),
    ("DELETE", "/bk?analytics&id=a", {}, Op.DeleteBucketAnalyticsConfiguration),
    ("GET", "/bk?intelligent-tiering&id=a", {}, Op.GetBucketIntelligentTieringConfiguration),
    ("GET", "/bk?intelligent-tiering", {}, Op.ListBucketIntelligentTieringConfigurations),
    ("PUT", "/bk?intelligent-tiering&id=a", {}, Op.PutBucketIntelligentTieringConfiguration),
    (
        "DELETE",
        "/bk?intelligent-tiering&id=a",
        {},
        Op.DeleteBucketIntelligentTieringConfiguration,
    ),
    ("GET", "/bk?inventory&id=a", {}, Op.GetBucketInventoryConfiguration),
    ("GET", "/bk?inventory", {}, Op.ListBucketInventoryConfigurations),
    ("PUT", "/bk?inventory&id=a", {}, Op.PutBucketInventoryConfiguration),
    ("DELETE", "/bk?inventory&id=a", {}, Op.DeleteBucketInventoryConfiguration),
    ("GET", "/bk?metrics&id=a", {}, Op.GetBucketMetricsConfiguration),
    ("GET", "/bk?metrics", {}, Op.ListBucketMetricsConfigurations),
    ("PUT", "/bk?metrics&id=a", {}, Op.PutBucketMetricsConfiguration),
    ("DELETE", "/bk?metrics&id=a", {}, Op.DeleteBucketMetricsConfiguration),
    ("GET", "/bk?logging", {}, Op.GetBucketLogging),
    ("PUT", "/bk?logging", {}, Op.PutBucketLogging),
    ("GET", "/bk?notification", {}, Op.GetBucketNotificationConfiguration),
    ("PUT", "/bk?notification", {}, Op.PutBucketNotificationConfiguration),
    ("GET", "/bk?ownershipControls", {}, Op.GetBucketOwnershipControls),
    ("PUT", "/bk?ownershipControls", {}, Op.PutBucketOwnershipControls),
    ("DELETE", "/bk?ownershipControls", {}, Op.DeleteBucketOwnershipControls),
    ("GET", "/bk?publicAccessBlock", {}, Op.GetPublicAccessBlock),
    ("PUT", "/bk?publicAccessBlock", {}, Op.PutPublicAccessBlock),
    ("DELETE", "/bk?publicAccessBlock", {}, Op.DeletePublicAccessBlock),
    ("GET", "/bk?replication", {}, Op.GetBucketReplication),
    ("PUT", "/bk?replication", {}, Op.PutBucketReplication),
    ("DELETE", "/bk?replication", {}, Op.DeleteBucketReplication),
    ("GET", "/bk?requestPayment", {}, Op.GetBucketRequestPayment),
    ("PUT", "/bk?requestPayment", {}, Op.PutBucketRequestPayment),
    ("GET", "/bk?website", {}, Op.GetBucketWebsite),
    ("PUT", "/bk?website", {}, Op.PutBucketWebsite),
    ("DELETE", "/bk?website", {}, Op.DeleteBucketWebsite),
    ("GET", "/bk?object-lock", {}, Op.GetObjectLockConfiguration),
    ("PUT", "/bk?object-lock", {}, Op.PutObjectLockConfiguration),
    ("GET", "/bk?session", {}, Op.CreateSession),
    ("GET", "/bk?abac", {}, Op.GetBucketAbac),
    ("PUT", "/bk?abac", {}, Op.PutBucketAbac),
    ("GET", "/bk?metadataConfiguration", {}, Op.GetBucketMetadataConfiguration),
    ("POST", "/bk?metadataConfiguration", {}, Op.CreateBucketMetadataConfiguration),
    ("DELETE", "/bk?metadataConfiguration", {}, Op.DeleteBucketMetadataConfiguration),
    ("GET", "/bk?metadataTable", {}, Op.GetBucketMetadataTableConfiguration),
    ("POST", "/bk?metadataTable", {}, Op.CreateBucketMetadataTableConfiguration),
    ("DELETE", "/bk?metadataTable", {}, Op.DeleteBucketMetadataTableConfiguration),
    (
        "PUT",
        "/bk?metadataAnnotationTable",
        {},
        Op.UpdateBucketMetadataAnnotationTableConfiguration,
    ),
    ("PUT", "/bk?metadataInventoryTable", {}, Op.UpdateBucketMetadataInventoryTableConfiguration),
    ("PUT", "/bk?metadataJournalTable", {}, Op.UpdateBucketMetadataJournalTableConfiguration),
    # object, no sub-resource
    ("GET", "/bk/k", {}, Op.GetObject),
    ("GET", "/bk/k?versionId=v&partNumber=2&response-content-type=a/b", {}, Op.GetObject),
    ("GET", "/bk/k?uploadId=u", {}, Op.ListParts),
    ("GET", "/bk/k?uploadId=u&max-parts=5&part-number-marker=2", {}, Op.ListParts),
    ("HEAD", "/bk/k", {}, Op.HeadObject),
    ("HEAD", "/bk/k?versionId=v&partNumber=1", {}, Op.HeadObject),
    ("PUT", "/bk/k", {}, Op.PutObject),
    ("PUT", "/bk/k", COPY, Op.CopyObject),
    ("PUT", "/bk/k", {"X-Amz-Copy-Source": "src/obj"}, Op.CopyObject),
    ("PUT", "/bk/k?partNumber=1&uploadId=u", {}, Op.UploadPart),
    ("PUT", "/bk/k?partNumber=1", {}, Op.UploadPart),  # the handler refuses the missing id
    ("PUT", "/bk/k?uploadId=u", {}, Op.UploadPart),
    ("PUT", "/bk/k?partNumber=1&uploadId=u", COPY, Op.UploadPartCopy),
    ("PUT", "/bk/k?uploadId=u", COPY, Op.UploadPartCopy),
    ("DELETE", "/bk/k", {}, Op.DeleteObject),
    ("DELETE", "/bk/k?versionId=v", {}, Op.DeleteObject),
    ("DELETE", "/bk/k?uploadId=u", {}, Op.AbortMultipartUpload),
    ("POST", "/bk/k?uploadId=u", {}, Op.CompleteMultipartUpload),
    # object sub-resources
    ("POST", "/bk/k?uploads", {}, Op.CreateMultipartUpload),
    ("POST", "/bk/k?uploads=", {}, Op.CreateMultipartUpload),
    ("GET", "/bk/k?acl", {}, Op.GetObjectAcl),
    ("GET", "/bk/k?acl&versionId=v", {}, Op.GetObjectAcl),
    ("PUT", "/bk/k?acl", {}, Op.PutObjectAcl),
    ("PUT", "/bk/k?acl", COPY, Op.PutObjectAcl),  # a sub-resource outranks the copy header
    ("GET", "/bk/k?tagging", {}, Op.GetObjectTagging),
    ("PUT", "/bk/k?tagging", {}, Op.PutObjectTagging),
    ("DELETE", "/bk/k?tagging", {}, Op.DeleteObjectTagging),
    ("DELETE", "/bk/k?tagging&uploadId=u", {}, Op.DeleteObjectTagging),
    ("GET", "/bk/k?attributes", {"x-amz-object-attributes": "ETag"}, Op.GetObjectAttributes),
    ("GET", "/bk/k?retention", {}, Op.GetObjectRetention),
    ("PUT", "/bk/k?retention", {}, Op.PutObjectRetention),
    ("GET", "/bk/k?legal-hold", {}, Op.GetObjectLegalHold),
    ("PUT", "/bk/k?legal-hold", {}, Op.PutObjectLegalHold),
    ("GET", "/bk/k?torrent", {}, Op.GetObjectTorrent),
    ("POST", "/bk/k?restore", {}, Op.RestoreObject),
    ("POST", "/bk/k?restore&versionId=v", {}, Op.RestoreObject),
    ("POST", "/bk/k?select&select-type=2", {}, Op.SelectObjectContent),
    ("PUT", "/bk/k?renameObject", {"x-amz-rename-source": "/bk/old"}, Op.RenameObject),
    ("PUT", "/bk/k?encryption", {}, Op.UpdateObjectEncryption),
    ("GET", "/bk/k?annotation&annotationName=n", {}, Op.GetObjectAnnotation),
    ("GET", "/bk/k?annotation", {}, Op.ListObjectAnnotations),
    ("PUT", "/bk/k?annotation&annotationName=n", {}, Op.PutObjectAnnotation),
    ("DELETE", "/bk/k?annotation&annotationName=n", {}, Op.DeleteObjectAnnotation),
]


@pytest.mark.parametrize(
    ("method", "target", "headers", "op"),
    OP_CASES,
    ids=[f"{m} {t} {sorted(h)}" if h else f"{m} {t}" for m, t, h, _ in OP_CASES],
)
def test_operation(method: str, target: str, headers: Mapping[str, str], op: Op) -> None:
    endpoint = _route(method, target, headers)
    assert endpoint.op is op
    path = target.partition("?")[0]
    assert endpoint.bucket == (None if path == "/" else "bk")
    assert endpoint.key == ("k" if path.startswith("/bk/k") else None)


def test_every_routable_op_has_a_case() -> None:
    assert {op for *_, op in OP_CASES} == set(Op) - NOT_ROUTED


def test_op_values_are_aws_names() -> None:
    model = botocore.session.get_session().get_service_model("s3")
    assert all(op.value == op.name for op in Op)
    # No typos: every name is a real S3 operation (PostObject is the one the SDKs do not model).
    assert {op.value for op in Op} - set(model.operation_names) == {"PostObject"}
    assert NOT_ROUTED <= set(Op)


@pytest.mark.parametrize(
    ("raw_path", "key"),
    [
        ("/bk/a%20b", "a b"),
        ("/bk/a+b", "a+b"),  # '+' in a path is a plus, not a space
        ("/bk/a%2Bb", "a+b"),
        ("/bk/a%2bb", "a+b"),
        ("/bk/x+&=%25'(),;@$!~y", "x+&=%'(),;@$!~y"),  # sub-delimiters sent literally
        ("/bk/" + quote("x+&=%'(),;@$!~ y", safe=""), "x+&=%'(),;@$!~ y"),  # and all encoded
        ("/bk/%2525", "%25"),  # decoded exactly once
        ("/bk/a%2Fb", "a/b"),
        ("/bk/dir/", "dir/"),  # trailing slash kept
        ("/bk/dir/sub/", "dir/sub/"),
        ("/bk/a//b", "a//b"),
        ("/bk//lead", "/lead"),
        ("/bk//", "/"),
        ("/bk/./x/../y", "./x/../y"),  # dot segments are key bytes, never resolved
        ("/bk/%C3%BC%E6%97%A5%E6%9C%AC.txt", "ü日本.txt"),
        ("/bk/ü日本.txt", "ü日本.txt"),  # a server that hands over decoded non-ASCII
        ("/bk/%F0%9F%98%80", "\U0001f600"),
        ("/bk/e%CC%81", "e\u0301"),  # NFD stays NFD: never normalized
        ("/bk/%C3%A9", "\u00e9"),
        ("/bk/tab%09nl%0A", "tab\tnl\n"),
    ],
)
def test_key_decoding(raw_path: str, key: str) -> None:
    endpoint = route("GET", raw_path, "", {})
    assert endpoint.op is Op.GetObject
    assert endpoint.bucket == "bk"
    assert endpoint.key == key


def test_bucket_is_percent_decoded_but_not_validated() -> None:
    assert route("GET", "/b%6B/k", "", {}).bucket == "bk"
    assert route("GET", "/Not_A_Valid..Name/k", "", {}).bucket == "Not_A_Valid..Name"
    assert route("HEAD", "/ab", "", {}).op is Op.HeadBucket


@pytest.mark.parametrize(
    ("key", "ok"),
    [
        ("a" * MAX_KEY_BYTES, True),
        ("a" * (MAX_KEY_BYTES + 1), False),
        ("ü" * (MAX_KEY_BYTES // 2), True),  # 1024 bytes of UTF-8
        ("ü" * (MAX_KEY_BYTES // 2 + 1), False),  # 513 characters, 1026 bytes
    ],
)
def test_key_length_counts_utf8_bytes(key: str, ok: bool) -> None:
    raw_path = "/bk/" + quote(key, safe="")
    if ok:
        assert route("PUT", raw_path, "", {}).key == key
    else:
        with pytest.raises(S3Error) as caught:
            route("PUT", raw_path, "", {})
        assert caught.value.code == "KeyTooLongError"
        assert caught.value.status == 400
        assert caught.value.extra == {
            "Size": str(len(key.encode())),
            "MaxSizeAllowed": str(MAX_KEY_BYTES),
        }


@pytest.mark.parametrize(
    ("raw_query", "query"),
    [
        ("", {}),
        ("acl", {"acl": ""}),
        ("acl=", {"acl": ""}),
        ("&&acl&&", {"acl": ""}),
        ("prefix=a%20b", {"prefix": "a b"}),
        ("prefix=a+b", {"prefix": "a b"}),  # '+' in a query is a space (form encoding)
        ("prefix=a%2Bb", {"prefix": "a+b"}),
        ("prefix=%C3%BC%2F", {"prefix": "ü/"}),
        ("prefix=a=b", {"prefix": "a=b"}),
        ("prefix=1&prefix=2", {"prefix": "1"}),  # first value wins
        ("max%2Dkeys=5", {"max-keys": "5"}),
        ("list-type=2&fetch-owner=true", {"list-type": "2", "fetch-owner": "true"}),
    ],
)
def test_query_decoding(raw_query: str, query: dict[str, str]) -> None:
    assert dict(route("GET", "/bk", raw_query, {}).query) == query


def test_query_is_read_only() -> None:
    query = route("GET", "/bk", "prefix=a", {}).query
    with pytest.raises(TypeError):
        query["prefix"] = "b"  # type: ignore[index]


def test_raw_path_may_carry_the_query() -> None:
    assert route("GET", "/bk/k?acl", "", {}).op is Op.GetObjectAcl
    assert route("GET", "/bk/k?acl", "acl", {}).op is Op.GetObjectAcl
    assert route("GET", "/bk?", "", {}).op is Op.ListObjects
    with pytest.raises(ValueError):
        route("GET", "/bk/k?acl", "tagging", {})


DOMAIN = "s3.example.com"


@pytest.mark.parametrize(
    ("host", "target", "op", "bucket", "key"),
    [
        ("bk.s3.example.com", "/", Op.ListObjects, "bk", None),
        ("bk.s3.example.com:8080", "/?location", Op.GetBucketLocation, "bk", None),
        ("bk.s3.example.com", "/?list-type=2", Op.ListObjectsV2, "bk", None),
        ("bk.s3.example.com", "/k", Op.GetObject, "bk", "k"),
        ("bk.s3.example.com", "/bk/k", Op.GetObject, "bk", "bk/k"),  # whole path is the key
        ("bk.s3.example.com", "/dir/a%20b+c", Op.GetObject, "bk", "dir/a b+c"),
        ("bk.s3.example.com", "/dir/", Op.GetObject, "bk", "dir/"),
        ("bk.s3.example.com", "//x", Op.GetObject, "bk", "/x"),
        ("bk.s3.example.com", "//", Op.GetObject, "bk", "/"),
        ("bk.s3.example.com", "/k?uploads", Op.CreateMultipartUpload, "bk", "k"),
        ("BK.S3.Example.COM", "/k", Op.GetObject, "bk", "k"),  # DNS is case-insensitive
        ("bk.s3.example.com.", "/k", Op.GetObject, "bk", "k"),  # fully qualified
        ("my.dotted.bk.s3.example.com", "/k", Op.GetObject, "my.dotted.bk", "k"),
        # not <bucket>.<domain>: path style
        ("s3.example.com", "/", Op.ListBuckets, None, None),
        ("s3.example.com:443", "/bk/k", Op.GetObject, "bk", "k"),
        ("xs3.example.com", "/bk", Op.ListObjects, "bk", None),
        ("bk.other.example.org", "/", Op.ListBuckets, None, None),
        ("127.0.0.1:9000", "/bk/k", Op.GetObject, "bk", "k"),
        ("[::1]:9000", "/bk/k", Op.GetObject, "bk", "k"),
        ("", "/bk", Op.ListObjects, "bk", None),
    ],
)
def test_virtual_host(host: str, target: str, op: Op, bucket: str | None, key: str | None) -> None:
    method = "POST" if op is Op.CreateMultipartUpload else "GET"
    for headers in ({"Host": host}, {"host": host}, CIMultiDictProxy(CIMultiDict(HOST=host))):
        endpoint = _route(method, target, headers, domain=DOMAIN)
        assert (endpoint.op, endpoint.bucket, endpoint.key) == (op, bucket, key)


def test_virtual_host_needs_a_domain() -> None:
    endpoint = route("GET", "/", "", {"Host": "bk.s3.example.com"})
    assert (endpoint.op, endpoint.bucket) == (Op.ListBuckets, None)
    endpoint = route("GET", "/k", "", {"Host": "bk.s3.example.com"}, domain="s3.example.com.")
    assert (endpoint.op, endpoint.bucket, endpoint.key) == (Op.GetObject, "bk", "k")


def test_virtual_host_post_object() -> None:
    headers = {"Host": "bk.s3.example.com", **FORM}
    assert route("POST", "/", "", headers, domain=DOMAIN).op is Op.PostObject


PRECONDITION = {"Condition": "Bucket POST must be of the enclosure-type multipart/form-data"}

ErrorCase = tuple[str, str, Mapping[str, str], str, dict[str, str], str | None]


def _405(
    method: str,
    target: str,
    rtype: str,
    allow: str | None,
    headers: Mapping[str, str] | None = None,
) -> ErrorCase:
    """A MethodNotAllowed case: Method and ResourceType elements, and the Allow header."""
    extra = {"Method": method, "ResourceType": rtype}
    return (method, target, headers or {}, "MethodNotAllowed", extra, allow)


def _err(
    method: str, target: str, code: str, headers: Mapping[str, str] | None = None
) -> ErrorCase:
    extra = PRECONDITION if code == "PreconditionFailed" else {}
    return (method, target, headers or {}, code, extra, None)


ALL = "DELETE, GET, HEAD, POST, PUT"
URLENCODED = {"Content-Type": "application/x-www-form-urlencoded"}

ERROR_CASES: list[ErrorCase] = [
    # unknown methods (methods are case-sensitive)
    _405("PATCH", "/bk/k", "OBJECT", ALL),
    _405("OPTIONS", "/bk", "BUCKET", ALL),
    _405("get", "/", "SERVICE", "GET"),
    _405("PUT", "/", "SERVICE", "GET"),
    _405("DELETE", "/", "SERVICE", "GET"),
    _405("HEAD", "/", "SERVICE", "GET"),
    # IAM/STS-style POSTs to the service get what AWS answers: 405, ResourceType SERVICE, Allow GET
    _405("POST", "/?Action=AssumeRole&Version=2011-06-15", "SERVICE", "GET"),
    _405("POST", "/", "SERVICE", "GET", URLENCODED),
    _405("POST", "/", "SERVICE", "GET", FORM),
    # a POST to an object that is no known operation
    _405("POST", "/bk/k", "OBJECT", "DELETE, GET, HEAD, PUT"),
    _405("POST", "/bk/k?Action=ListUsers", "OBJECT", "DELETE, GET, HEAD, PUT", URLENCODED),
    _405("POST", "/bk/k", "OBJECT", "DELETE, GET, HEAD, PUT", FORM),
    _405("POST", "/bk/k?acl", "OBJECT", "GET, PUT"),
    _405("POST", "/bk/k?select", "OBJECT", None),
    _405("POST", "/bk/k?select&select-type=1", "OBJECT", None),
    # a bucket POST is the form upload; anything else fails that precondition, as on AWS
    _err("POST", "/bk", "PreconditionFailed"),
    _err("POST", "/bk/", "PreconditionFailed", {"Content-Type": "multipart/mixed; boundary=x"}),
    _err("POST", "/bk?Action=ListUsers", "PreconditionFailed", URLENCODED),
    # a sub-resource the method does not serve is refused, never ignored
    _405("DELETE", "/bk/k?acl", "OBJECT", "GET, PUT"),
    _405("DELETE", "/bk/k?cors", "OBJECT", None),
    _405("DELETE", "/bk?location", "BUCKET", "GET"),
    _405("DELETE", "/bk?versions", "BUCKET", "GET"),
    _405("PUT", "/bk/k?uploads", "OBJECT", "POST"),
    _405("GET", "/bk/k?location", "OBJECT", None),
    _405("HEAD", "/bk?acl", "BUCKET", "GET, PUT"),
    _405("HEAD", "/bk/k?tagging", "OBJECT", "DELETE, GET, PUT"),
    _405("GET", "/?acl", "SERVICE", None),
    # two sub-resources in one request
    _err("PUT", "/bk?acl&tagging", "InvalidRequest"),
    _err("GET", "/bk/k?retention&legal-hold", "InvalidRequest"),
    _err("DELETE", "/bk?cors&policy", "InvalidRequest"),
    # malformed percent-encoding, or not UTF-8
    _err("GET", "/bk/%ZZ", "InvalidURI"),
    _err("GET", "/bk/a%", "InvalidURI"),
    _err("GET", "/bk/a%2", "InvalidURI"),
    _err("GET", "/bk/%FF", "InvalidURI"),
    _err("GET", "/bk/%C3", "InvalidURI"),  # truncated sequence
    _err("GET", "/bk/%C0%AF", "InvalidURI"),  # overlong '/'
    _err("GET", "/bk/%ED%A0%80", "InvalidURI"),  # an encoded surrogate
    _err("GET", "/bk/\udcff", "InvalidURI"),  # raw byte 0xFF, handed over surrogate-escaped
    _err("GET", "/%ZZ/k", "InvalidURI"),
    _err("GET", "/bk?prefix=%ZZ", "InvalidURI"),
    _err("GET", "/bk?prefix=%FF", "InvalidURI"),
    _err("GET", "/bk?%FF=1", "InvalidURI"),
    # an empty bucket name
    _err("GET", "//k", "InvalidURI"),
    _err("GET", "//", "InvalidURI"),
]


@pytest.mark.parametrize(
    ("method", "target", "headers", "code", "extra", "allow"),
    ERROR_CASES,
    ids=[f"{m} {t} {sorted(h)}" if h else f"{m} {t}" for m, t, h, *_ in ERROR_CASES],
)
def test_errors(
    method: str,
    target: str,
    headers: Mapping[str, str],
    code: str,
    extra: dict[str, str],
    allow: str | None,
) -> None:
    with pytest.raises(S3Error) as caught:
        _route(method, target, headers)
    error = caught.value
    assert error.code == code
    assert error.extra == extra
    assert error.headers.get("Allow") == allow
    assert 400 <= error.status < 500


@pytest.mark.parametrize("raw_path", ["", "*", "bk/k", "http://host/bk/k"])
def test_not_origin_form(raw_path: str) -> None:
    with pytest.raises(S3Error) as caught:
        route("GET", raw_path, "", {})
    assert caught.value.code == "InvalidURI"


def test_error_statuses() -> None:
    expected = {
        ("PATCH", "/bk"): 405,
        ("POST", "/"): 405,
        ("POST", "/bk"): 412,
        ("GET", "/bk/%FF"): 400,
        ("PUT", "/bk?acl&cors"): 400,
    }
    for (method, target), status in expected.items():
        with pytest.raises(S3Error) as caught:
            _route(method, target)
        assert caught.value.status == status


# --- botocore: real SDK requests route to the operation the SDK called -------------------------

KEY = "dir/a b+c&d=e%f'(g),h;i@j$k!l~m/ü/日本.txt"
BUCKET = "my-bucket"
B: dict[str, Any] = {"Bucket": BUCKET}
BK: dict[str, Any] = {"Bucket": BUCKET, "Key": KEY}
TAGS = {"TagSet": [{"Key": "k", "Value": "v"}]}

SDK_CALLS: list[tuple[str, dict[str, Any]]] = [
    ("list_buckets", {}),
    ("create_bucket", B),
    ("delete_bucket", B),
    ("head_bucket", B),
    ("get_bucket_location", B),
    ("get_bucket_versioning", B),
    ("put_bucket_versioning", {**B, "VersioningConfiguration": {"Status": "Enabled"}}),
    ("get_bucket_acl", B),
    ("put_bucket_acl", {**B, "ACL": "private"}),
    ("get_bucket_policy", B),
    ("put_bucket_policy", {**B, "Policy": "{}"}),
    ("delete_bucket_policy", B),
    ("get_bucket_cors", B),
    (
        "put_bucket_cors",
        {
            **B,
            "CORSConfiguration": {
                "CORSRules": [{"AllowedMethods": ["GET"], "AllowedOrigins": ["*"]}]
            },
        },
    ),
    ("delete_bucket_cors", B),
    ("get_bucket_lifecycle_configuration", B),
    (
        "put_bucket_lifecycle_configuration",
        {
            **B,
            "LifecycleConfiguration": {
                "Rules": [
                    {"Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 1}}
                ]
            },
        },
    ),
    ("delete_bucket_lifecycle", B),
    ("get_bucket_tagging", B),
    ("put_bucket_tagging", {**B, "Tagging": TAGS}),
    ("delete_bucket_tagging", B),
    ("get_bucket_encryption", B),
    ("get_bucket_notification_configuration", B),
    ("get_bucket_ownership_controls", B),
    ("get_public_access_block", B),
    ("get_object_lock_configuration", B),
    ("list_bucket_inventory_configurations", B),
    ("get_bucket_inventory_configuration", {**B, "Id": "i"}),
    ("list_objects", {**B, "Prefix": "a b+c/ü", "Delimiter": "/"}),
    ("list_objects_v2", {**B, "Prefix": "a b+c/ü", "StartAfter": "x"}),
    ("list_object_versions", B),
    ("list_multipart_uploads", B),
    ("delete_objects", {**B, "Delete": {"Objects": [{"Key": KEY}]}}),
    ("get_object", BK),
    ("get_object", {**BK, "VersionId": "v", "PartNumber": 1, "ResponseContentType": "a/b"}),
    ("head_object", BK),
    ("put_object", {**BK, "Body": b"x"}),
    ("copy_object", {**BK, "CopySource": {"Bucket": "src", "Key": KEY}}),
    ("delete_object", BK),
    ("get_object_acl", BK),
    ("put_object_acl", {**BK, "ACL": "private"}),
    ("get_object_tagging", BK),
    ("put_object_tagging", {**BK, "Tagging": TAGS}),
    ("delete_object_tagging", BK),
    ("get_object_attributes", {**BK, "ObjectAttributes": ["ETag"]}),
    ("get_object_retention", BK),
    ("get_object_legal_hold", BK),
    ("create_multipart_upload", BK),
    ("upload_part", {**BK, "Body": b"x", "PartNumber": 1, "UploadId": "u"}),
    (
        "upload_part_copy",
        {**BK, "CopySource": {"Bucket": "src", "Key": KEY}, "PartNumber": 1, "UploadId": "u"},
    ),
    (
        "complete_multipart_upload",
        {**BK, "UploadId": "u", "MultipartUpload": {"Parts": [{"ETag": "e", "PartNumber": 1}]}},
    ),
    ("abort_multipart_upload", {**BK, "UploadId": "u"}),
    ("list_parts", {**BK, "UploadId": "u"}),
    ("restore_object", {**BK, "RestoreRequest": {"Days": 1}}),
    (
        "select_object_content",
        {
            **BK,
            "Expression": "select * from s3object",
            "ExpressionType": "SQL",
            "InputSerialization": {"CSV": {}},
            "OutputSerialization": {"CSV": {}},
        },
    ),
]


class _Raw:
    """Just enough of a urllib3 response for botocore to parse a canned answer."""

    def stream(self, *args: object, **kwargs: object) -> Iterator[bytes]:
        yield b"<r/>"

    def read(self, *args: object, **kwargs: object) -> bytes:
        return b""


class _Capture:
    def __init__(self) -> None:
        self.requests: list[tuple[str, AWSPreparedRequest]] = []

    def __call__(
        self, request: AWSPreparedRequest, event_name: str, **kwargs: object
    ) -> AWSResponse:
        self.requests.append((event_name.rsplit(".", 1)[-1], request))
        return AWSResponse(request.url, 200, {}, _Raw())


@pytest.fixture(scope="module", params=["path", "virtual"])
def sdk(request: pytest.FixtureRequest) -> tuple[Any, _Capture, str | None]:
    style: str = request.param
    endpoint = "http://127.0.0.1:9" if style == "path" else f"http://{DOMAIN}:9"
    client = botocore.session.get_session().create_client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="a",
        aws_secret_access_key="b",
        config=botocore.config.Config(s3={"addressing_style": style}, retries={"max_attempts": 1}),
    )
    capture = _Capture()
    client.meta.events.register("before-send", capture)
    return client, capture, DOMAIN if style == "virtual" else None


@pytest.mark.parametrize(
    ("method_name", "kwargs"), SDK_CALLS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(SDK_CALLS)]
)
def test_botocore_requests(
    sdk: tuple[Any, _Capture, str | None], method_name: str, kwargs: dict[str, Any]
) -> None:
    client, capture, domain = sdk
    capture.requests.clear()
    getattr(client, method_name)(**kwargs)
    ((event_op, request),) = capture.requests
    expected = client.meta.method_to_api_mapping[method_name]
    assert event_op == expected

    url = urlsplit(request.url)
    if domain is not None and "Bucket" in kwargs and method_name != "get_bucket_location":
        # really virtual-host style (botocore sends GetBucketLocation path style regardless)
        assert url.hostname == f"{BUCKET}.{DOMAIN}"
    headers = {
        name: value.decode() if isinstance(value, bytes) else value
        for name, value in request.headers.items()
    }
    headers["Host"] = url.netloc
    endpoint = route(request.method, url.path, url.query, headers, domain=domain)
    assert endpoint.op == expected
    assert endpoint.bucket == kwargs.get("Bucket")
    assert endpoint.key == kwargs.get("Key")
    if "Prefix" in kwargs:
        assert endpoint.query["prefix"] == kwargs["Prefix"]
