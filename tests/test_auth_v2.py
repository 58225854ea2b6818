"""SigV2 verification: requests signed by botocore's own v2 signers must pass; tampering must not.

The last part runs against a real server: boto3's default presigned URLs (SigV2 against a custom
endpoint) and a client configured with ``signature_version="s3"``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from unittest import mock
from urllib.parse import quote, urlsplit

import boto3
import pytest
from botocore.auth import HmacV1Auth, HmacV1QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config as BotoConfig
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from botocore.utils import percent_encode_sequence
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.s3.auth import (
    STREAMING_PAYLOAD,
    STREAMING_PAYLOAD_TRAILER,
    STREAMING_UNSIGNED_TRAILER,
    UNSIGNED_PAYLOAD,
    AuthResult,
    authenticate,
)
from gateway.s3.errors import S3Error
from tests.conftest import Server

REGION = "us-east-1"
ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
ENDPOINT = "http://127.0.0.1:9000"

KEYS = [
    "simple.txt",
    "with space.txt",
    "dir/sub dir/file name",
    "ünïcödé/日本語のキー.txt",
    "plus+and&amp=equals%percent",
    "quote'paren(s),semi;at@dollar$bang!tilde~",
    "star*hash#question?",
    "double//slash/",
    "emoji-\U0001f600",
]
METHODS = ["GET", "PUT", "DELETE", "HEAD"]


class Store:
    def __init__(self, keys: dict[str, str]) -> None:
        self._keys = keys

    def secret_key(self, access_key: str) -> str | None:
        return self._keys.get(access_key)


STORE = Store({ACCESS_KEY: SECRET_KEY, "AK2": "another secret"})


@dataclass
class Signed:
    method: str
    path: str
    query: str
    headers: CIMultiDict[str]

    def auth(
        self,
        *,
        now: datetime | None = None,
        path: str | None = None,
        query: str | None = None,
        method: str | None = None,
        virtual_host_bucket: str | None = None,
    ) -> AuthResult:
        return authenticate(
            method or self.method,
            self.path if path is None else path,
            self.query if query is None else query,
            CIMultiDictProxy(self.headers),
            STORE,
            REGION,
            now or datetime.now(UTC),
            virtual_host_bucket=virtual_host_bucket,
        )


def _url(bucket: str, key: str = "", query: Sequence[tuple[str, str]] | str = "") -> str:
    # botocore's S3 serializer encodes keys with safe="/~" and the query with
    # percent_encode_sequence (valueless sub-resources such as "acl" are sent bare).
    url = f"{ENDPOINT}/{bucket}/{quote(key, safe='/~')}"
    if isinstance(query, str):
        return f"{url}?{query}" if query else url
    return f"{url}?{percent_encode_sequence(list(query))}"


def _to_wire(request: AWSRequest) -> Signed:
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in request.headers.items():
        headers.add(name, value)
    parts = urlsplit(request.prepare().url)
    if "host" not in headers:
        headers["Host"] = parts.netloc
    return Signed(request.method, parts.path, parts.query, headers)


def sign_header(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    extra_headers: Sequence[tuple[str, str]] = (),
    access_key: str = ACCESS_KEY,
    secret_key: str = SECRET_KEY,
    when: datetime | None = None,
) -> Signed:
    request = AWSRequest(method=method, url=url, headers=headers or {})
    for name, value in extra_headers:
        request.headers[name] = value  # HTTPHeaders appends: repeated headers
    signer = HmacV1Auth(Credentials(access_key, secret_key))
    if when is None:
        signer.add_auth(request)
    else:
        with mock.patch.object(signer, "_get_date", return_value=format_datetime(when, True)):
            signer.add_auth(request)
    return _to_wire(request)


def presign(
    method: str,
    url: str,
    *,
    expires: int = 3600,
    headers: dict[str, str] | None = None,
    access_key: str = ACCESS_KEY,
    secret_key: str = SECRET_KEY,
) -> Signed:
    request = AWSRequest(method=method, url=url, headers=headers or {})
    HmacV1QueryAuth(Credentials(access_key, secret_key), expires).add_auth(request)
    wire = _to_wire(request)
    # A presigned URL is fetched without the headers it was made from (they are in its query).
    wire.headers = CIMultiDict({"Host": wire.headers["Host"]})
    return wire


def _raises(code: str, signed: Signed, **kwargs: Any) -> S3Error:
    with pytest.raises(S3Error) as info:
        signed.auth(**kwargs)
    assert info.value.code == code, info.value.message
    return info.value


def _spec_sign(string_to_sign: str, secret: str = SECRET_KEY) -> str:
    """An independent SigV2 signer, straight from the documented formula."""
    digest = hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


# --------------------------------------------------------------------------- header auth: accept


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("key", KEYS)
def test_header_object_keys(method: str, key: str) -> None:
    signed = sign_header(method, _url("bucket", key))
    assert signed.headers["Authorization"].startswith(f"AWS {ACCESS_KEY}:")
    result = signed.auth()
    assert result == AuthResult(
        access_key=ACCESS_KEY,
        content_sha256=UNSIGNED_PAYLOAD,
        signing_key=None,
        seed_signature=None,
        amz_date=None,
        scope=None,
    )


@pytest.mark.parametrize(
    ("method", "query"),
    [
        ("GET", "acl"),
        ("PUT", "acl"),
        ("POST", "uploads"),
        ("PUT", "partNumber=1&uploadId=x"),
        ("POST", "uploadId=2~abc_DEF-ghi.jkl"),
        ("DELETE", "uploadId=x"),
        ("GET", "uploadId=x&max-parts=10&part-number-marker=2"),
        ("POST", "delete"),
        ("GET", "versionId=3%2F4L4t"),
        ("GET", "tagging"),
        ("GET", "location"),
        ("GET", "versioning"),
        ("GET", "versions&prefix=a"),
        ("GET", "list-type=2&prefix=dir%2F&delimiter=%2F"),
        ("GET", "uploads&prefix=x"),
        ("POST", "select&select-type=2"),
    ],
)
def test_header_subresources(method: str, query: str) -> None:
    signed = sign_header(method, _url("bucket", "" if "list-type" in query else "key", query))
    assert signed.query == query
    signed.auth()


def test_header_object_subresource_on_special_key() -> None:
    key = "ünï code/plus+&=?#"
    signed = sign_header("PUT", _url("bucket", key, "partNumber=3&uploadId=u%2Fp"))
    signed.auth()


@pytest.mark.parametrize(
    "overrides",
    [
        [("response-content-type", "text/plain")],
        [
            ("response-content-disposition", 'attachment; filename="a b+c.txt"'),
            ("response-cache-control", "no-cache"),
            ("response-content-encoding", "gzip"),
            ("response-content-language", "de-CH"),
            ("response-expires", "Thu, 01 Dec 1994 16:00:00 GMT"),
        ],
        [("response-content-type", "text/plain; charset=ütf-8"), ("versionId", "v1")],
    ],
)
def test_header_response_overrides(overrides: list[tuple[str, str]]) -> None:
    signed = sign_header("GET", _url("bucket", "key", overrides))
    signed.auth()
    # The overrides are signed: changing one breaks the signature.
    value = overrides[0][1]
    tampered = signed.query.replace(quote(value, safe="-_.~"), "x", 1)
    assert tampered != signed.query
    _raises("SignatureDoesNotMatch", signed, query=tampered)


def test_header_metadata_and_content_headers() -> None:
    body = b"hello"
    signed = sign_header(
        "PUT",
        _url("bucket", "key"),
        headers={
            "Content-Type": "text/plain; charset=utf-8",
            "Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode(),
            "x-amz-meta-Author": "  Jane Doe ",
            "X-Amz-Meta-Checksum": "0x02661779",
            "x-amz-storage-class": "STANDARD",
            "Cache-Control": "no-cache",  # not signed by SigV2
        },
        extra_headers=[("x-amz-meta-reviewedby", "joe"), ("X-Amz-Meta-ReviewedBy", "jane")],
    )
    assert len(signed.headers.getall("x-amz-meta-reviewedby")) == 2
    signed.auth()
    signed.headers["Cache-Control"] = "max-age=1"  # unsigned header: still fine
    signed.auth()


def test_header_x_amz_date_with_date_slot_empty() -> None:
    # s3cmd and the AWS documentation: with x-amz-date, the Date position is empty.
    amz_date = format_datetime(datetime.now(UTC), True)
    sts = f"GET\n\n\n\nx-amz-date:{amz_date}\n/bucket/key?acl"
    headers = CIMultiDict(
        {"x-amz-date": amz_date, "Authorization": f"AWS {ACCESS_KEY}:{_spec_sign(sts)}"}
    )
    Signed("GET", "/bucket/key", "acl", headers).auth()


def test_header_x_amz_date_botocore() -> None:
    # botocore keeps the Date header in its position even when x-amz-date is present.
    amz_date = format_datetime(datetime.now(UTC), True)
    signed = sign_header("GET", _url("bucket", "key"), headers={"x-amz-date": amz_date})
    assert "Date" in signed.headers
    signed.auth()


def test_header_x_amz_date_iso_basic_is_tolerated() -> None:
    amz_date = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    sts = f"PUT\n\n\n\nx-amz-date:{amz_date}\n/bucket/key"
    headers = CIMultiDict(
        {"X-Amz-Date": amz_date, "Authorization": f"AWS {ACCESS_KEY}:{_spec_sign(sts)}"}
    )
    Signed("PUT", "/bucket/key", "", headers).auth()


def test_header_service_and_bucket_level() -> None:
    sign_header("GET", f"{ENDPOINT}/").auth()
    sign_header("PUT", _url("bucket")).auth()
    sign_header("GET", _url("bucket", "", "prefix=a&max-keys=5")).auth()


def test_header_bucket_with_or_without_trailing_slash() -> None:
    # botocore signs "/bucket/" for a path-style bucket request it sends as "/bucket?...".
    date = format_datetime(datetime.now(UTC), True)
    for signed_as, sent in (
        ("/bucket/", "/bucket"),
        ("/bucket", "/bucket"),
        ("/bucket/", "/bucket/"),
    ):
        sts = f"GET\n\n\n{date}\n{signed_as}?versioning"
        headers = CIMultiDict(
            {"Date": date, "Authorization": f"AWS {ACCESS_KEY}:{_spec_sign(sts)}"}
        )
        Signed("GET", sent, "versioning", headers).auth()
    sts = f"GET\n\n\n{date}\n/bucket/"
    headers = CIMultiDict({"Date": date, "Authorization": f"AWS {ACCESS_KEY}:{_spec_sign(sts)}"})
    _raises("SignatureDoesNotMatch", Signed("GET", "/bucket/key", "", headers))
    _raises("SignatureDoesNotMatch", Signed("GET", "/", "", headers))


def test_header_unsigned_query_parameters_are_not_bound() -> None:
    # SigV2 signs only sub-resources: other parameters may change (as with AWS).
    signed = sign_header("GET", _url("bucket", "", "prefix=a&max-keys=5"))
    signed.auth(query="prefix=b&max-keys=1000")


def test_header_valueless_subresource_sent_with_equals() -> None:
    # Sent as "uploads=", signed as "uploads" (the documented form) or as sent.
    for signed_as in ("uploads", "uploads="):
        date = format_datetime(datetime.now(UTC), True)
        sts = f"POST\n\n\n{date}\n/bucket/key?{signed_as}"
        headers = CIMultiDict(
            {"Date": date, "Authorization": f"AWS {ACCESS_KEY}:{_spec_sign(sts)}"}
        )
        Signed("POST", "/bucket/key", "uploads=", headers).auth()


def test_header_encoded_subresource_value_signed_raw() -> None:
    # Some older signers sign sub-resource values still percent-encoded.
    date = format_datetime(datetime.now(UTC), True)
    sts = f"GET\n\n\n{date}\n/bucket/key?response-content-type=text%2Fplain"
    headers = CIMultiDict({"Date": date, "Authorization": f"AWS {ACCESS_KEY}:{_spec_sign(sts)}"})
    Signed("GET", "/bucket/key", "response-content-type=text%2Fplain", headers).auth()


def test_header_virtual_host_bucket() -> None:
    request = AWSRequest(method="GET", url="http://bucket.s3.example.com/key?acl")
    request.auth_path = "/bucket/key"  # what botocore signs for virtual-host style
    HmacV1Auth(Credentials(ACCESS_KEY, SECRET_KEY)).add_auth(request)
    signed = _to_wire(request)
    assert signed.path == "/key"
    signed.auth(virtual_host_bucket="bucket")
    _raises("SignatureDoesNotMatch", signed)  # not path style
    _raises("SignatureDoesNotMatch", signed, virtual_host_bucket="other")


@pytest.mark.parametrize("content_sha256", [None, UNSIGNED_PAYLOAD, STREAMING_UNSIGNED_TRAILER])
def test_header_payload_declaration(content_sha256: str | None) -> None:
    headers = {} if content_sha256 is None else {"x-amz-content-sha256": content_sha256}
    result = sign_header("PUT", _url("bucket", "key"), headers=headers).auth()
    assert result.content_sha256 == (content_sha256 or UNSIGNED_PAYLOAD)
    assert result.signing_key is None and result.seed_signature is None


def test_header_declared_sha256_is_passed_on() -> None:
    # The payload reader checks a declared digest against the body, whatever the signature.
    digest = hashlib.sha256(b"body").hexdigest()
    result = sign_header("PUT", _url("bucket", "key"), headers={"x-amz-content-sha256": digest})
    assert result.auth().content_sha256 == digest


# --------------------------------------------------------------------------- header auth: reject


@pytest.mark.parametrize("payload", [STREAMING_PAYLOAD, STREAMING_PAYLOAD_TRAILER])
def test_header_sigv4_streaming_is_refused(payload: str) -> None:
    signed = sign_header("PUT", _url("bucket", "key"), headers={"x-amz-content-sha256": payload})
    err = _raises("InvalidRequest", signed)
    assert err.status == 400


def test_header_invalid_content_sha256() -> None:
    signed = sign_header("PUT", _url("bucket", "key"), headers={"x-amz-content-sha256": "nope"})
    _raises("InvalidArgument", signed)


def test_header_tampered_request() -> None:
    signed = sign_header("PUT", _url("bucket", "key", "partNumber=1&uploadId=x"))
    signed.auth()
    _raises("SignatureDoesNotMatch", signed, path="/bucket/other")
    _raises("SignatureDoesNotMatch", signed, path="/other/key")
    _raises("SignatureDoesNotMatch", signed, method="DELETE")
    _raises("SignatureDoesNotMatch", signed, query="partNumber=2&uploadId=x")
    _raises("SignatureDoesNotMatch", signed, query="partNumber=1&uploadId=y")
    _raises("SignatureDoesNotMatch", signed, query="partNumber=1")
    _raises("SignatureDoesNotMatch", signed, query="acl")
    err = _raises("SignatureDoesNotMatch", signed, query="")
    assert err.status == 403
    assert err.extra["AWSAccessKeyId"] == ACCESS_KEY
    assert err.extra["StringToSign"].endswith("\n/bucket/key")
    assert err.extra["SignatureProvided"] == signed.headers["Authorization"].split(":", 1)[1]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Content-Type", "text/html"),
        ("Content-MD5", "XrY7u+Ae7tCTyyK7j1rNww=="),
        ("x-amz-meta-a", "2"),
        ("x-amz-meta-new", "added"),
        ("x-amz-acl", "public-read"),
    ],
)
def test_header_tampered_signed_header(name: str, value: str) -> None:
    signed = sign_header(
        "PUT",
        _url("bucket", "key"),
        headers={
            "Content-Type": "text/plain",
            "Content-MD5": "1B2M2Y8AsgTpgAmY7PhCfg==",
            "x-amz-meta-a": "1",
        },
    )
    signed.auth()
    signed.headers[name] = value
    _raises("SignatureDoesNotMatch", signed)


def test_header_tampered_signature_and_wrong_secret() -> None:
    signed = sign_header("GET", _url("bucket", "key"))
    signature = signed.headers["Authorization"].split(":", 1)[1]
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    signed.headers["Authorization"] = f"AWS {ACCESS_KEY}:{flipped}"
    _raises("SignatureDoesNotMatch", signed)
    signed.headers["Authorization"] = f"AWS {ACCESS_KEY}:{signature.lower()}"
    _raises("SignatureDoesNotMatch", signed)
    _raises("SignatureDoesNotMatch", sign_header("GET", _url("b", "k"), secret_key="wrong"))
    # Signed with AK2's secret but claiming ACCESS_KEY.
    _raises(
        "SignatureDoesNotMatch", sign_header("GET", _url("b", "k"), secret_key="another secret")
    )
    sign_header("GET", _url("b", "k"), access_key="AK2", secret_key="another secret").auth()


def test_header_unknown_access_key() -> None:
    err = _raises("InvalidAccessKeyId", sign_header("GET", _url("b", "k"), access_key="NOPE"))
    assert err.status == 403
    assert err.extra["AWSAccessKeyId"] == "NOPE"


@pytest.mark.parametrize("offset", [timedelta(minutes=16), -timedelta(minutes=16)])
def test_header_request_time_too_skewed(offset: timedelta) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    signed = sign_header("GET", _url("bucket", "key"), when=now + offset)
    err = _raises("RequestTimeTooSkewed", signed, now=now)
    assert err.status == 403
    assert err.extra["MaxAllowedTimeSkewMilliseconds"] == "900000"
    signed.auth(now=now + offset + timedelta(minutes=14))


def test_header_x_amz_date_skew_wins_over_date() -> None:
    now = datetime.now(UTC)
    old = format_datetime(now - timedelta(hours=1), True)
    signed = sign_header("GET", _url("bucket", "key"), headers={"x-amz-date": old})
    _raises("RequestTimeTooSkewed", signed, now=now)


@pytest.mark.parametrize("date", [None, "yesterday", ""])
def test_header_missing_or_invalid_date(date: str | None) -> None:
    signed = sign_header("GET", _url("bucket", "key"))
    del signed.headers["Date"]
    if date is not None:
        signed.headers["Date"] = date
    err = _raises("AccessDenied", signed)
    assert "Date" in err.message


@pytest.mark.parametrize(
    "value", ["AWS", "AWS ", f"AWS {ACCESS_KEY}", f"AWS {ACCESS_KEY}:", "AWS :c2ln"]
)
def test_header_malformed_authorization(value: str) -> None:
    signed = sign_header("GET", _url("bucket", "key"))
    signed.headers["Authorization"] = value
    err = _raises("InvalidArgument", signed)
    assert err.extra["ArgumentName"] == "Authorization"


def test_header_and_query_signature_together() -> None:
    signed = sign_header("GET", _url("bucket", "key"))
    _raises("InvalidArgument", signed, query="AWSAccessKeyId=AK&Expires=1&Signature=c2ln")
    _raises("InvalidArgument", signed, query="Signature=c2ln")


def test_undecodable_bytes_do_not_crash() -> None:
    # aiohttp hands over undecodable bytes as lone surrogates (surrogateescape).
    signed = sign_header("GET", _url("bucket", "key"), headers={"x-amz-meta-a": "v"})
    signed.headers["x-amz-meta-a"] = "v\udcff"
    _raises("SignatureDoesNotMatch", signed)
    signed = sign_header("GET", _url("bucket", "key"))
    _raises("SignatureDoesNotMatch", signed, path="/bucket/k\udcffey", query="acl=\udcfe")
    signed.headers["Authorization"] += "\udcff"
    _raises("SignatureDoesNotMatch", signed)


# --------------------------------------------------------------------------- query auth


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("key", KEYS)
def test_presigned_object_keys(method: str, key: str) -> None:
    signed = presign(method, _url("bucket", key))
    assert "AWSAccessKeyId=" in signed.query and "Expires=" in signed.query
    result = signed.auth()
    assert result.access_key == ACCESS_KEY
    assert result.content_sha256 == UNSIGNED_PAYLOAD
    assert result.signing_key is None and result.amz_date is None and result.scope is None


@pytest.mark.parametrize(
    ("method", "query"),
    [
        ("GET", [("response-content-disposition", 'attachment; filename="ü b+c.txt"')]),
        ("GET", [("response-content-type", "text/plain"), ("response-expires", "0")]),
        ("GET", [("versionId", "v/1+2")]),
        ("PUT", [("partNumber", "7"), ("uploadId", "abc/def=")]),
        ("DELETE", [("uploadId", "abc")]),
        ("GET", "acl"),
        ("POST", "uploads"),
        ("POST", "delete"),
    ],
)
def test_presigned_subresources(method: str, query: list[tuple[str, str]] | str) -> None:
    signed = presign(method, _url("bucket", "a key/ü", query))
    signed.auth()
    original = signed.query.split("&AWSAccessKeyId=")[0]
    _raises("SignatureDoesNotMatch", signed, query=signed.query.replace(original, "torrent", 1))


def test_presigned_signed_headers_move_to_query() -> None:
    # botocore puts the Content-Type and x-amz-* headers it signed into the URL.
    signed = presign(
        "PUT",
        _url("bucket", "key"),
        headers={"Content-Type": "image/png", "x-amz-meta-owner": "me", "x-amz-acl": "private"},
    )
    assert "content-type=image%2Fpng" in signed.query
    assert "x-amz-meta-owner=me" in signed.query
    signed.auth()  # without the headers
    signed.headers["Content-Type"] = "image/png"
    signed.headers["x-amz-meta-owner"] = "me"
    signed.auth()  # with them
    signed.headers["Content-Type"] = "text/html"
    _raises("SignatureDoesNotMatch", signed)  # a header sent is what counts
    del signed.headers["Content-Type"]
    signed.headers["x-amz-meta-owner"] = "you"
    _raises("SignatureDoesNotMatch", signed)


def test_presigned_content_type_must_match() -> None:
    # Presigned without a Content-Type: a request that sends one does not match.
    signed = presign("PUT", _url("bucket", "key"))
    signed.headers["Content-Type"] = "application/x-www-form-urlencoded"
    _raises("SignatureDoesNotMatch", signed)


def test_presigned_ignores_date_headers() -> None:
    signed = presign("GET", _url("bucket", "key"))
    signed.headers["Date"] = "Tue, 27 Mar 2007 19:36:42 +0000"
    signed.auth()


def test_presigned_expired() -> None:
    signed = presign("GET", _url("bucket", "key"), expires=60)
    now = datetime.now(UTC)
    signed.auth(now=now + timedelta(seconds=30))
    err = _raises("AccessDenied", signed, now=now + timedelta(seconds=120))
    assert err.message == "Request has expired"
    assert err.status == 403
    assert err.extra["Expires"].endswith("Z") and err.extra["ServerTime"].endswith("Z")


def test_presigned_long_expiry_is_fine() -> None:
    signed = presign("GET", _url("bucket", "key"), expires=30 * 86400)
    signed.auth(now=datetime.now(UTC) + timedelta(days=29))


def test_presigned_tampered() -> None:
    signed = presign("GET", _url("bucket", "key"))
    expires = int(signed.query.split("Expires=")[1].split("&")[0])
    _raises("SignatureDoesNotMatch", signed, path="/bucket/other")
    _raises("SignatureDoesNotMatch", signed, method="PUT")
    query = signed.query.replace(f"Expires={expires}", f"Expires={expires + 3600}")
    _raises("SignatureDoesNotMatch", signed, query=query)
    query = signed.query.replace(f"AWSAccessKeyId={ACCESS_KEY}", "AWSAccessKeyId=AK2")
    _raises("SignatureDoesNotMatch", signed, query=query)
    signed.headers["x-amz-meta-x"] = "1"
    _raises("SignatureDoesNotMatch", signed)


def test_presigned_wrong_secret_and_unknown_key() -> None:
    _raises("SignatureDoesNotMatch", presign("GET", _url("b", "k"), secret_key="wrong"))
    err = _raises("InvalidAccessKeyId", presign("GET", _url("b", "k"), access_key="NOPE"))
    assert err.extra["AWSAccessKeyId"] == "NOPE"


def test_presigned_unencoded_plus_in_signature() -> None:
    # Some hand-made URLs leave the '+' of the base64 signature unencoded.
    expires = int(time.time()) + 60
    for n in range(1000):
        path = f"/bucket/key{n}"
        signature = _spec_sign(f"GET\n\n\n{expires}\n{path}")
        if "+" in signature:
            break
    query = f"AWSAccessKeyId={ACCESS_KEY}&Expires={expires}&Signature={signature}"
    Signed("GET", path, query, CIMultiDict()).auth()


@pytest.mark.parametrize(
    "query",
    [
        "AWSAccessKeyId=AK&Signature=c2ln",
        "Expires=1&Signature=c2ln",
        "AWSAccessKeyId=AK&Expires=1",
        "Signature=c2ln",
        "AWSAccessKeyId=AK&Expires=1&Signature=",
    ],
)
def test_presigned_missing_parameter(query: str) -> None:
    err = _raises("AccessDenied", Signed("GET", "/b/k", query, CIMultiDict()))
    assert "AWSAccessKeyId" in err.message


@pytest.mark.parametrize("expires", ["soon", "-1", "1.5", "\uff11\uff12"])
def test_presigned_invalid_expires(expires: str) -> None:
    query = f"AWSAccessKeyId={ACCESS_KEY}&Expires={quote(expires)}&Signature=c2ln"
    err = _raises("AccessDenied", Signed("GET", "/b/k", query, CIMultiDict()))
    assert "seconds since epoch" in err.message


def test_presigned_sigv4_streaming_is_refused() -> None:
    signed = presign(
        "PUT", _url("bucket", "key"), headers={"x-amz-content-sha256": STREAMING_PAYLOAD}
    )
    signed.headers["x-amz-content-sha256"] = STREAMING_PAYLOAD
    _raises("InvalidRequest", signed)


def test_sigv4_still_takes_precedence_in_query() -> None:
    # X-Amz-Algorithm makes it a SigV4 presigned URL, whatever else the query holds.
    err = _raises(
        "AuthorizationQueryParametersError",
        Signed("GET", "/b/k", "X-Amz-Algorithm=AWS4-HMAC-SHA256&AWSAccessKeyId=AK", CIMultiDict()),
    )
    assert err.status == 400


# --------------------------------------------------------------------------- published vectors

EXAMPLE_STORE = Store({"AKIAIOSFODNN7EXAMPLE": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"})


def _example(
    method: str,
    path: str,
    query: str,
    headers: dict[str, str],
    signature: str,
    now: datetime,
    virtual_host_bucket: str | None = None,
) -> None:
    wire = CIMultiDict(headers)
    if signature:
        wire["Authorization"] = f"AWS AKIAIOSFODNN7EXAMPLE:{signature}"
    result = authenticate(
        method,
        path,
        query,
        CIMultiDictProxy(wire),
        EXAMPLE_STORE,
        REGION,
        now,
        virtual_host_bucket=virtual_host_bucket,
    )
    assert result.access_key == "AKIAIOSFODNN7EXAMPLE"


# The examples of the AWS "Signing and authenticating REST requests" (SigV2) page, with the
# bucket name their signatures were computed for.
@pytest.mark.parametrize(
    ("method", "path", "query", "headers", "signature", "host_bucket"),
    [
        (
            "GET",
            "/photos/puppy.jpg",
            "",
            {"Date": "Tue, 27 Mar 2007 19:36:42 +0000"},
            "bWq2s1WEIj+Ydj0vQ697zp+IXMU=",
            "johnsmith",
        ),
        (
            "GET",
            "/johnsmith/photos/puppy.jpg",
            "",
            {"Date": "Tue, 27 Mar 2007 19:36:42 +0000"},
            "bWq2s1WEIj+Ydj0vQ697zp+IXMU=",
            None,
        ),
        (
            "PUT",
            "/photos/puppy.jpg",
            "",
            {"Date": "Tue, 27 Mar 2007 21:15:45 +0000", "Content-Type": "image/jpeg"},
            "MyyxeRY7whkBe+bq8fHCL/2kKUg=",
            "johnsmith",
        ),
        (
            "GET",
            "/",
            "prefix=photos&max-keys=50&marker=puppy",
            {"Date": "Tue, 27 Mar 2007 19:42:41 +0000", "User-Agent": "Mozilla/5.0"},
            "htDYFYduRNen8P9ZfE/s9SuKy0U=",
            "johnsmith",
        ),
        (
            "GET",
            "/",
            "acl",
            {"Date": "Tue, 27 Mar 2007 19:44:46 +0000"},
            "c2WLPFtWHVgbEmeEG93a4cG37dM=",
            "johnsmith",
        ),
        (
            "GET",
            "/",
            "",
            {"Date": "Wed, 28 Mar 2007 01:29:59 +0000"},
            "qGdzdERIC03wnaRNKh6OqZehG9s=",
            None,
        ),
        (
            "GET",
            "/dictionary/fran%C3%A7ais/pr%c3%a9f%c3%a8re",
            "",
            {"Date": "Wed, 28 Mar 2007 01:49:49 +0000"},
            "DNEZGsoieTZ92F3bUfSPQcbGmlM=",
            None,
        ),
    ],
    ids=["get", "get-path-style", "put", "list", "acl", "list-buckets", "unicode"],
)
def test_aws_documented_examples(
    method: str,
    path: str,
    query: str,
    headers: dict[str, str],
    signature: str,
    host_bucket: str | None,
) -> None:
    now = datetime.strptime(headers["Date"], "%a, %d %b %Y %H:%M:%S %z") + timedelta(minutes=3)
    _example(method, path, query, headers, signature, now, host_bucket)


def test_aws_documented_upload_with_metadata() -> None:
    headers = CIMultiDict(
        {
            "Date": "Tue, 27 Mar 2007 21:06:08 +0000",
            "x-amz-acl": "public-read",
            "content-type": "application/x-download",
            "Content-MD5": "4gJE4saaMU4BqNR0kLY+lw==",
        }
    )
    headers.add("X-Amz-Meta-ReviewedBy", "joe@johnsmith.net")
    headers.add("X-Amz-Meta-ReviewedBy", "jane@johnsmith.net")
    headers.add("X-Amz-Meta-FileChecksum", "0x02661779")
    headers.add("X-Amz-Meta-ChecksumAlgorithm", "crc32")
    headers.add("Content-Disposition", "attachment; filename=database.dat")
    headers.add("Content-Encoding", "gzip")
    headers.add("Authorization", "AWS AKIAIOSFODNN7EXAMPLE:ilyl83RwaSoYIEdixDQcA4OnAnc=")
    now = datetime(2007, 3, 27, 21, 10, tzinfo=UTC)
    result = authenticate(
        "PUT",
        "/db-backup.dat.gz",
        "",
        CIMultiDictProxy(headers),
        EXAMPLE_STORE,
        REGION,
        now,
        virtual_host_bucket="static.johnsmith.net",
    )
    assert result.access_key == "AKIAIOSFODNN7EXAMPLE"


def test_aws_documented_presigned_url() -> None:
    query = (
        "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=NpgCjnDzrM%2BWFzoENXmpNDUsSn8%3D"
        "&Expires=1175139620"
    )
    before = datetime.fromtimestamp(1175139620 - 60, UTC)
    _example("GET", "/johnsmith/photos/puppy.jpg", query, {}, "", before)
    with pytest.raises(S3Error) as info:
        _example("GET", "/johnsmith/photos/puppy.jpg", query, {}, "", before + timedelta(hours=1))
    assert info.value.message == "Request has expired"


# --------------------------------------------------------------------------- real server


@pytest.fixture
def v2_bucket(server: Server) -> str:
    name = f"v2-{uuid.uuid4().hex[:12]}"
    server.client().create_bucket(Bucket=name)
    return name


def _fetch(url: str, method: str = "GET", data: bytes | None = None, **headers: str) -> bytes:
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as reply:
        body: bytes = reply.read()
        return body


@pytest.mark.parametrize("signature_version", [None, "s3"], ids=["default", "s3"])
@pytest.mark.parametrize("key", ["plain.bin", "dir/ü n+i&c=o?d#e~.bin"])
def test_server_presigned_get(
    server: Server, v2_bucket: str, signature_version: str | None, key: str
) -> None:
    body = bytes(range(256)) * 40
    server.client().put_object(Bucket=v2_bucket, Key=key, Body=body)
    config = {} if signature_version is None else {"signature_version": signature_version}
    presigner = server.client(**config)
    url = presigner.generate_presigned_url("get_object", Params={"Bucket": v2_bucket, "Key": key})
    assert "AWSAccessKeyId=" in url and "X-Amz-Signature" not in url
    assert _fetch(url) == body
    url = presigner.generate_presigned_url(
        "get_object",
        Params={
            "Bucket": v2_bucket,
            "Key": key,
            "ResponseContentType": "text/plain; charset=utf-8",
            "ResponseContentDisposition": 'attachment; filename="a b.txt"',
        },
    )
    request = urllib.request.Request(url)
    with urllib.request.urlopen(request, timeout=30) as reply:
        assert reply.read() == body
        assert reply.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert reply.headers["Content-Disposition"] == 'attachment; filename="a b.txt"'


def test_server_presigned_get_tampered_and_expired(server: Server, v2_bucket: str) -> None:
    s3 = server.client()
    s3.put_object(Bucket=v2_bucket, Key="k", Body=b"data")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": v2_bucket, "Key": "k"})
    with pytest.raises(urllib.error.HTTPError) as info:
        _fetch(url.replace("/k?", "/j?"))
    assert info.value.code == 403
    assert b"<Code>SignatureDoesNotMatch</Code>" in info.value.read()
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": v2_bucket, "Key": "k"}, ExpiresIn=-10
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        _fetch(url)
    assert info.value.code == 403
    assert b"Request has expired" in info.value.read()


@pytest.mark.parametrize("signature_version", [None, "s3"], ids=["default", "s3"])
def test_server_presigned_put(
    server: Server, v2_bucket: str, signature_version: str | None
) -> None:
    body = b"\x00\xff binary \r\n body " * 1000
    config = {} if signature_version is None else {"signature_version": signature_version}
    presigner = server.client(**config)
    url = presigner.generate_presigned_url(
        "put_object",
        Params={"Bucket": v2_bucket, "Key": "up/loaded file", "ContentType": "application/x-test"},
    )
    assert "AWSAccessKeyId=" in url
    _fetch(url, "PUT", body, **{"Content-Type": "application/x-test"})
    got = server.client().get_object(Bucket=v2_bucket, Key="up/loaded file")
    assert got["Body"].read() == body
    assert got["ContentType"] == "application/x-test"


def test_server_sigv2_header_client(server: Server, v2_bucket: str) -> None:
    s3 = server.client(signature_version="s3")
    body = b"hello sigv2 " * 100
    key = "dir/ü n+i&c=o d~e.txt"
    s3.put_object(
        Bucket=v2_bucket, Key=key, Body=body, ContentType="text/plain", Metadata={"Who": "me"}
    )
    head = s3.head_object(Bucket=v2_bucket, Key=key)
    assert head["ContentLength"] == len(body)
    assert head["Metadata"] == {"who": "me"}
    assert s3.get_object(Bucket=v2_bucket, Key=key)["Body"].read() == body
    ranged = s3.get_object(Bucket=v2_bucket, Key=key, Range="bytes=0-4")
    assert ranged["Body"].read() == b"hello"
    listed = s3.list_objects_v2(Bucket=v2_bucket, Prefix="dir/")
    assert [o["Key"] for o in listed["Contents"]] == [key]
    assert [o["Key"] for o in s3.list_objects(Bucket=v2_bucket)["Contents"]] == [key]
    assert v2_bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.copy_object(Bucket=v2_bucket, Key="copy", CopySource={"Bucket": v2_bucket, "Key": key})
    assert s3.get_object(Bucket=v2_bucket, Key="copy")["Body"].read() == body
    s3.delete_object(Bucket=v2_bucket, Key=key)
    deleted = s3.delete_objects(Bucket=v2_bucket, Delete={"Objects": [{"Key": "copy"}]})
    assert [d["Key"] for d in deleted["Deleted"]] == ["copy"]
    assert s3.list_objects_v2(Bucket=v2_bucket)["KeyCount"] == 0
    s3.delete_bucket(Bucket=v2_bucket)


def test_server_sigv2_multipart(server: Server, v2_bucket: str) -> None:
    s3 = server.client(signature_version="s3")
    part = b"p" * (5 * 1024 * 1024)
    upload = s3.create_multipart_upload(Bucket=v2_bucket, Key="mp")["UploadId"]
    etags = [
        s3.upload_part(Bucket=v2_bucket, Key="mp", UploadId=upload, PartNumber=n, Body=body)["ETag"]
        for n, body in ((1, part), (2, b"tail"))
    ]
    assert len(s3.list_parts(Bucket=v2_bucket, Key="mp", UploadId=upload)["Parts"]) == 2
    s3.complete_multipart_upload(
        Bucket=v2_bucket,
        Key="mp",
        UploadId=upload,
        MultipartUpload={"Parts": [{"ETag": e, "PartNumber": n} for n, e in enumerate(etags, 1)]},
    )
    assert s3.get_object(Bucket=v2_bucket, Key="mp")["Body"].read() == part + b"tail"


def test_server_sigv2_wrong_secret(server: Server, v2_bucket: str) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=server.env["S3DEDUP_ACCESS_KEY"],
        aws_secret_access_key="wrong",
        config=BotoConfig(
            region_name=REGION,
            signature_version="s3",
            retries={"max_attempts": 1, "mode": "standard"},
            s3={"addressing_style": "path"},
        ),
    )
    with pytest.raises(ClientError) as info:
        s3.put_object(Bucket=v2_bucket, Key="k", Body=b"x")
    assert info.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
