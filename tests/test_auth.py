"""SigV4 verification: requests signed by botocore's own signers must pass; tampering must not."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit

import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.s3.auth import (
    STREAMING_PAYLOAD,
    UNSIGNED_PAYLOAD,
    AuthResult,
    authenticate,
    derive_signing_key,
)
from gateway.s3.errors import S3Error

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
        region: str = REGION,
        path: str | None = None,
        query: str | None = None,
        method: str | None = None,
    ) -> AuthResult:
        return authenticate(
            method or self.method,
            self.path if path is None else path,
            self.query if query is None else query,
            CIMultiDictProxy(self.headers),
            STORE,
            region,
            now or datetime.now(UTC),
        )


def _object_url(bucket: str, key: str) -> str:
    # botocore's S3 serializer encodes keys with safe="/~"
    return f"{ENDPOINT}/{bucket}/{quote(key, safe='/~')}"


def _to_wire(request: AWSRequest) -> Signed:
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in request.headers.items():
        headers.add(name, value)
    url = request.prepare().url
    parts = urlsplit(url)
    if "host" not in headers:
        headers["Host"] = parts.netloc
    return Signed(request.method, parts.path, parts.query, headers)


def sign_header(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    params: Sequence[tuple[str, str]] | dict[str, str] | None = None,
    body: bytes = b"",
    region: str = REGION,
    access_key: str = ACCESS_KEY,
    secret_key: str = SECRET_KEY,
    extra_headers: Sequence[tuple[str, str]] = (),
) -> Signed:
    request = AWSRequest(method=method, url=url, headers=headers or {}, data=body, params=params)
    for name, value in extra_headers:
        request.headers[name] = value  # HTTPHeaders appends: repeated headers
    S3SigV4Auth(Credentials(access_key, secret_key), "s3", region).add_auth(request)
    return _to_wire(request)


def presign(
    method: str,
    url: str,
    *,
    expires: int = 3600,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    region: str = REGION,
) -> Signed:
    request = AWSRequest(method=method, url=url, headers=headers or {}, params=params)
    S3SigV4QueryAuth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", region, expires).add_auth(request)
    return _to_wire(request)


def _raises(code: str, signed: Signed, **kwargs: object) -> S3Error:
    with pytest.raises(S3Error) as info:
        signed.auth(**kwargs)  # type: ignore[arg-type]
    assert info.value.code == code, info.value.message
    return info.value


# --------------------------------------------------------------------------- header auth: accept


@pytest.mark.parametrize("key", KEYS)
def test_header_auth_object_keys(key: str) -> None:
    signed = sign_header("PUT", _object_url("bucket", key), body=b"hello")
    result = signed.auth()
    assert result.access_key == ACCESS_KEY
    assert result.content_sha256 == hashlib.sha256(b"hello").hexdigest()
    assert result.signing_key == derive_signing_key(SECRET_KEY, result.scope[:8], REGION)  # type: ignore[index]
    assert result.amz_date == signed.headers["X-Amz-Date"]
    assert result.scope == f"{signed.headers['X-Amz-Date'][:8]}/{REGION}/s3/aws4_request"
    assert result.seed_signature == signed.headers["Authorization"].rsplit("=", 1)[1]


@pytest.mark.parametrize(
    "params",
    [
        [("prefix", "a b"), ("list-type", "2"), ("delimiter", "/")],
        [("prefix", "ünï cöde+plus&amp=eq%pct'()!*$,;@~"), ("max-keys", "10")],
        [("x", "2"), ("x", "1"), ("x", ""), ("a", "")],
        [("empty", ""), ("marker", "k/e/y")],
        [("response-content-disposition", 'attachment; filename="a b.txt"')],
    ],
)
def test_header_auth_query_params(params: list[tuple[str, str]]) -> None:
    signed = sign_header("GET", f"{ENDPOINT}/bucket", params=params)
    assert signed.auth().access_key == ACCESS_KEY


@pytest.mark.parametrize("subresource", ["uploads", "acl", "tagging&versionId=3", "delete"])
def test_header_auth_valueless_subresources(subresource: str) -> None:
    signed = sign_header("POST", f"{ENDPOINT}/bucket/key?{subresource}")
    assert "=" not in signed.query.split("&")[0]
    assert signed.auth().access_key == ACCESS_KEY


def test_header_auth_literal_plus_in_query() -> None:
    # A client that sends '+' unencoded and means a literal '+' signs it as %2B.
    signed = sign_header("GET", f"{ENDPOINT}/bucket?prefix=a%2Bb")
    assert signed.auth(query="prefix=a+b").access_key == ACCESS_KEY
    assert signed.auth().access_key == ACCESS_KEY


def test_header_auth_repeated_and_spaced_headers() -> None:
    signed = sign_header(
        "PUT",
        _object_url("bucket", "k"),
        headers={"x-amz-meta-spaced": "  a   b \t c  ", "Content-Type": "text/plain"},
        extra_headers=[("x-amz-meta-multi", "one"), ("x-amz-meta-multi", "two  three")],
    )
    assert len(signed.headers.getall("x-amz-meta-multi")) == 2
    assert "x-amz-meta-multi" in signed.headers["Authorization"]
    assert signed.auth().access_key == ACCESS_KEY


def test_header_auth_plain_dict_headers() -> None:
    signed = sign_header("GET", _object_url("bucket", "k"))
    lowered = {k.lower(): v for k, v in signed.headers.items()}
    result = authenticate(
        "GET", signed.path, signed.query, lowered, STORE, REGION, datetime.now(UTC)
    )
    assert result.access_key == ACCESS_KEY


def test_header_auth_unencoded_path_characters() -> None:
    key = "a(b)c!d$e'f,g;h@i=j:k"
    signed = sign_header("GET", _object_url("bucket", key))
    # The client signed the encoded form but sent the characters raw.
    assert signed.auth(path=f"/bucket/{key}").access_key == ACCESS_KEY
    unicode_key = "ünï cöde"
    signed = sign_header("GET", _object_url("bucket", unicode_key))
    assert signed.auth(path=f"/bucket/{unicode_key}").access_key == ACCESS_KEY


def test_header_auth_streaming_content_sha256() -> None:
    class StreamingSigner(S3SigV4Auth):  # type: ignore[misc]
        def payload(self, request: AWSRequest) -> str:
            return STREAMING_PAYLOAD

    request = AWSRequest(method="PUT", url=_object_url("b", "k"), headers={})
    StreamingSigner(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION).add_auth(request)
    result = _to_wire(request).auth()
    assert result.content_sha256 == STREAMING_PAYLOAD
    assert result.seed_signature is not None and len(result.seed_signature) == 64


def test_header_auth_naive_now_is_utc() -> None:
    signed = sign_header("GET", _object_url("bucket", "k"))
    assert signed.auth(now=datetime.now(UTC).replace(tzinfo=None)).access_key == ACCESS_KEY


def test_anonymous() -> None:
    result = authenticate(
        "GET", "/bucket/key", "prefix=a", CIMultiDict(Host="h"), STORE, REGION, datetime.now(UTC)
    )
    assert result == AuthResult(None, UNSIGNED_PAYLOAD, None, None, None, None)


def test_anonymous_rejects_invalid_content_sha256() -> None:
    with pytest.raises(S3Error) as info:
        authenticate(
            "PUT",
            "/b/k",
            "",
            CIMultiDict({"x-amz-content-sha256": "nope"}),
            STORE,
            REGION,
            datetime.now(UTC),
        )
    assert info.value.code == "InvalidArgument"


def test_signing_key_matches_aws_example() -> None:
    # The worked example of the AWS SigV4 documentation (key derivation).
    key = derive_signing_key(
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam"
    )
    assert key.hex() == "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"


# --------------------------------------------------------------------------- header auth: reject


def test_tampered_path_query_header_method() -> None:
    signed = sign_header(
        "PUT", _object_url("bucket", "key"), headers={"x-amz-meta-a": "1"}, params={"p": "v"}
    )
    _raises("SignatureDoesNotMatch", signed, path="/bucket/other")
    _raises("SignatureDoesNotMatch", signed, query="p=w")
    _raises("SignatureDoesNotMatch", signed, method="POST")
    signed.headers["x-amz-meta-a"] = "2"
    err = _raises("SignatureDoesNotMatch", signed)
    assert err.status == 403
    assert err.extra["AWSAccessKeyId"] == ACCESS_KEY


def test_tampered_signature() -> None:
    signed = sign_header("GET", _object_url("bucket", "key"))
    auth = signed.headers["Authorization"]
    last = auth[-1]
    signed.headers["Authorization"] = auth[:-1] + ("0" if last != "0" else "1")
    _raises("SignatureDoesNotMatch", signed)


def test_wrong_secret() -> None:
    signed = sign_header("GET", _object_url("bucket", "key"), access_key="AK2")
    _raises("SignatureDoesNotMatch", signed)


def test_unknown_access_key() -> None:
    signed = sign_header("GET", _object_url("bucket", "key"), access_key="NOPE")
    err = _raises("InvalidAccessKeyId", signed)
    assert err.status == 403


def test_wrong_region() -> None:
    signed = sign_header("GET", _object_url("bucket", "key"), region="eu-west-1")
    err = _raises("AuthorizationHeaderMalformed", signed)
    assert err.message == (
        "The authorization header is malformed; the region 'eu-west-1' is wrong;"
        " expecting 'us-east-1'"
    )
    assert err.extra == {"Region": "us-east-1"}


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("/s3/", "/ec2/"),
        ("/aws4_request", "/aws5_request"),
        (", Signature=", ", Sig="),
        ("SignedHeaders=", "Headers="),
        ("Credential=", "Cred="),
        (f"Credential={ACCESS_KEY}/", "Credential="),
    ],
)
def test_malformed_authorization(old: str, new: str) -> None:
    signed = sign_header("GET", _object_url("bucket", "key"))
    assert old in signed.headers["Authorization"]
    signed.headers["Authorization"] = signed.headers["Authorization"].replace(old, new)
    err = _raises("AuthorizationHeaderMalformed", signed)
    assert err.status == 400


def test_host_must_be_signed() -> None:
    signed = sign_header("GET", _object_url("bucket", "key"))
    signed.headers["Authorization"] = signed.headers["Authorization"].replace("host;", "")
    _raises("AuthorizationHeaderMalformed", signed)


@pytest.mark.parametrize("value", ["Bearer abc", "AWS3 AKIDEXAMPLE:c2ln", "AWS4-HMAC-SHA512 x"])
def test_unsupported_mechanism(value: str) -> None:
    signed = sign_header("GET", _object_url("bucket", "key"))
    signed.headers["Authorization"] = value
    _raises("InvalidRequest", signed)


def test_sigv2_header_is_verified() -> None:
    # "AWS <key>:<signature>" is SigV2 (see tests/test_auth_v2.py): checked, not refused.
    signed = sign_header("GET", _object_url("bucket", "key"))
    signed.headers["Authorization"] = "AWS AKIDEXAMPLE:c2lnbmF0dXJl"
    _raises("SignatureDoesNotMatch", signed)


def test_credential_date_must_match_request_date() -> None:
    signed = sign_header("GET", _object_url("bucket", "key"))
    date = signed.headers["X-Amz-Date"][:8]
    signed.headers["Authorization"] = signed.headers["Authorization"].replace(
        f"/{date}/", "/20200101/"
    )
    _raises("AuthorizationHeaderMalformed", signed)


@pytest.mark.parametrize(
    "offset", [timedelta(minutes=16), timedelta(minutes=-16), timedelta(days=3)]
)
def test_request_time_too_skewed(offset: timedelta) -> None:
    signed = sign_header("GET", _object_url("bucket", "key"))
    now = datetime.now(UTC) + offset
    err = _raises("RequestTimeTooSkewed", signed, now=now)
    assert err.status == 403
    assert err.extra["RequestTime"] == signed.headers["X-Amz-Date"]
    assert err.extra["MaxAllowedTimeSkewMilliseconds"] == "900000"
    assert err.extra["ServerTime"] == now.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_skew_within_limit_is_fine() -> None:
    signed = sign_header("GET", _object_url("bucket", "key"))
    assert signed.auth(now=datetime.now(UTC) + timedelta(minutes=14)).access_key == ACCESS_KEY


def test_skew_with_date_header() -> None:
    signed = sign_header("GET", _object_url("bucket", "key"))
    del signed.headers["X-Amz-Date"]
    signed.headers["Date"] = "Mon, 01 Jan 2001 00:00:00 GMT"
    _raises("RequestTimeTooSkewed", signed)


def test_missing_date() -> None:
    signed = sign_header("GET", _object_url("bucket", "key"))
    del signed.headers["X-Amz-Date"]
    _raises("AccessDenied", signed)
    signed.headers["X-Amz-Date"] = "yesterday"
    _raises("AccessDenied", signed)


def test_missing_content_sha256() -> None:
    signed = sign_header("GET", _object_url("bucket", "key"))
    del signed.headers["X-Amz-Content-SHA256"]
    err = _raises("InvalidRequest", signed)
    assert err.message == "Missing required header for this request: x-amz-content-sha256"


@pytest.mark.parametrize("value", ["abc", "STREAMING-FOO", "z" * 64, "UNSIGNED"])
def test_invalid_content_sha256(value: str) -> None:
    signed = sign_header("GET", _object_url("bucket", "key"))
    signed.headers["X-Amz-Content-SHA256"] = value
    _raises("InvalidArgument", signed)


def test_content_sha256_is_signed() -> None:
    signed = sign_header("PUT", _object_url("bucket", "key"), body=b"a")
    signed.headers["X-Amz-Content-SHA256"] = UNSIGNED_PAYLOAD
    _raises("SignatureDoesNotMatch", signed)


def test_both_mechanisms() -> None:
    signed = presign("GET", _object_url("bucket", "key"))
    signed.headers["Authorization"] = sign_header("GET", _object_url("b", "k")).headers[
        "Authorization"
    ]
    _raises("InvalidArgument", signed)


# --------------------------------------------------------------------------- presigned


@pytest.mark.parametrize("key", KEYS)
def test_presigned_object_keys(key: str) -> None:
    signed = presign("GET", _object_url("bucket", key))
    assert "X-Amz-Signature=" in signed.query
    result = signed.auth()
    assert result.access_key == ACCESS_KEY
    assert result.content_sha256 == UNSIGNED_PAYLOAD
    assert result.seed_signature is not None


def test_presigned_with_params_and_signed_headers() -> None:
    signed = presign(
        "PUT",
        _object_url("bucket", "a key"),
        headers={"x-amz-meta-owner": "me  too", "Content-Type": "text/plain"},
        params={
            "response-content-type": "text/plain; charset=utf-8",
            "versionId": "",
            "x": "ü +&=%",
        },
    )
    assert signed.auth().access_key == ACCESS_KEY
    signed.headers["x-amz-meta-owner"] = "someone else"
    _raises("SignatureDoesNotMatch", signed)


def test_presigned_with_content_sha256_header() -> None:
    signed = presign("PUT", _object_url("bucket", "k"))
    digest = hashlib.sha256(b"body").hexdigest()
    signed.headers["x-amz-content-sha256"] = digest  # unsigned header; not part of the signature
    assert signed.auth().content_sha256 == digest


def test_presigned_tampered() -> None:
    signed = presign("GET", _object_url("bucket", "key"))
    _raises("SignatureDoesNotMatch", signed, path="/bucket/other")
    _raises("SignatureDoesNotMatch", signed, method="PUT")
    _raises(
        "SignatureDoesNotMatch",
        signed,
        query=signed.query.replace("X-Amz-Expires=3600", "X-Amz-Expires=3601"),
    )
    _raises("SignatureDoesNotMatch", signed, query=signed.query + "&extra=1")


def test_presigned_expired_and_not_yet_valid() -> None:
    signed = presign("GET", _object_url("bucket", "key"), expires=60)
    err = _raises("AccessDenied", signed, now=datetime.now(UTC) + timedelta(seconds=120))
    assert err.message == "Request has expired"
    assert signed.auth(now=datetime.now(UTC) + timedelta(seconds=30)).access_key == ACCESS_KEY
    err = _raises("AccessDenied", signed, now=datetime.now(UTC) - timedelta(minutes=20))
    assert err.message == "Request is not valid yet"


def test_presigned_long_expiry_is_not_skew_checked() -> None:
    signed = presign("GET", _object_url("bucket", "key"), expires=604800)
    assert signed.auth(now=datetime.now(UTC) + timedelta(days=6)).access_key == ACCESS_KEY


@pytest.mark.parametrize("expires", [0, 604801])
def test_presigned_expires_out_of_range(expires: int) -> None:
    signed = presign("GET", _object_url("bucket", "key"), expires=expires)
    _raises("AuthorizationQueryParametersError", signed)


@pytest.mark.parametrize("param", ["X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders"])
def test_presigned_missing_parameter(param: str) -> None:
    signed = presign("GET", _object_url("bucket", "key"))
    query = "&".join(p for p in signed.query.split("&") if not p.startswith(param + "="))
    _raises("AuthorizationQueryParametersError", signed, query=query)


def test_presigned_bad_algorithm_and_credential() -> None:
    signed = presign("GET", _object_url("bucket", "key"))
    bad_alg = signed.query.replace("X-Amz-Algorithm=AWS4-HMAC-SHA256", "X-Amz-Algorithm=HMAC")
    _raises("AuthorizationQueryParametersError", signed, query=bad_alg)
    bad_service = signed.query.replace("%2Fs3%2F", "%2Fsqs%2F")
    assert bad_service != signed.query
    _raises("AuthorizationQueryParametersError", signed, query=bad_service)


def test_presigned_wrong_region() -> None:
    signed = presign("GET", _object_url("bucket", "key"), region="ap-south-1")
    err = _raises("AuthorizationQueryParametersError", signed)
    assert err.extra == {"Region": REGION}
    assert "the region 'ap-south-1' is wrong; expecting 'us-east-1'" in err.message


def test_presigned_unknown_key() -> None:
    signed = presign("GET", _object_url("bucket", "key"))
    query = signed.query.replace(f"X-Amz-Credential={ACCESS_KEY}", "X-Amz-Credential=UNKNOWN")
    _raises("InvalidAccessKeyId", signed, query=query)


def test_sigv2_presigned_is_verified() -> None:
    # AWSAccessKeyId/Expires/Signature is a SigV2 presigned URL (see tests/test_auth_v2.py).
    signed = presign("GET", _object_url("bucket", "key"))
    err = _raises("AccessDenied", signed, query="AWSAccessKeyId=AK&Expires=1&Signature=c2ln")
    assert err.message == "Request has expired"
    query = f"AWSAccessKeyId={ACCESS_KEY}&Expires=99999999999&Signature=c2ln"
    _raises("SignatureDoesNotMatch", signed, query=query)


# --------------------------------------------------------------------------- published vectors

EXAMPLE_STORE = Store({"AKIAIOSFODNN7EXAMPLE": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"})
EXAMPLE_NOW = datetime(2013, 5, 24, 0, 5, tzinfo=UTC)


def test_aws_documented_get_object() -> None:
    # "Example: GET Object" of the AWS sig-v4-header-based-auth page (no spaces after commas).
    headers = CIMultiDict(
        {
            "Host": "examplebucket.s3.amazonaws.com",
            "Authorization": "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1"
            "/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
            "Range": "bytes=0-9",
            "x-amz-content-sha256": hashlib.sha256(b"").hexdigest(),
            "x-amz-date": "20130524T000000Z",
        }
    )
    result = authenticate("GET", "/test.txt", "", headers, EXAMPLE_STORE, REGION, EXAMPLE_NOW)
    assert result.access_key == "AKIAIOSFODNN7EXAMPLE"
    headers["Range"] = "bytes=0-10"
    with pytest.raises(S3Error):
        authenticate("GET", "/test.txt", "", headers, EXAMPLE_STORE, REGION, EXAMPLE_NOW)


def test_aws_documented_presigned_url() -> None:
    # The example of the AWS sigv4-query-string-auth page.
    query = (
        "X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
        "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
        "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
    )
    headers = CIMultiDict({"Host": "examplebucket.s3.amazonaws.com"})
    result = authenticate("GET", "/test.txt", query, headers, EXAMPLE_STORE, REGION, EXAMPLE_NOW)
    assert result.access_key == "AKIAIOSFODNN7EXAMPLE"
    later = EXAMPLE_NOW + timedelta(days=1)
    with pytest.raises(S3Error) as info:
        authenticate("GET", "/test.txt", query, headers, EXAMPLE_STORE, REGION, later)
    assert info.value.message == "Request has expired"


def test_undecodable_bytes_do_not_crash() -> None:
    # aiohttp hands over undecodable bytes as lone surrogates (surrogateescape).
    signed = sign_header("GET", _object_url("bucket", "key"), headers={"x-amz-meta-a": "v"})
    signed.headers["x-amz-meta-a"] = "v\udcff"
    _raises("SignatureDoesNotMatch", signed)
    signed = sign_header("GET", _object_url("bucket", "key"))
    _raises("SignatureDoesNotMatch", signed, path="/bucket/k\udcffey", query="a=\udcfe")
