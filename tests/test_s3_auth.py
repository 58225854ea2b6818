"""Authentication against a real server: SigV4 headers, presigned URLs, and the shape of errors."""

from __future__ import annotations

import email.parser
import hashlib
import http.client
import socket
import time
import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config as BotoConfig
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.conftest import ACCESS_KEY, REGION, SECRET_KEY, Server, make_client

# --------------------------------------------------------------------------- helpers


class Reply:
    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def xml(self) -> ET.Element:
        return ET.fromstring(self.body)

    @property
    def code(self) -> str | None:
        return self.xml.findtext("Code")


def send(
    server: Server,
    method: str,
    target: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> Reply:
    if method == "HEAD":
        return _send_head(server, target, headers or {})
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        if body or method in ("PUT", "POST"):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body or None)
        resp = conn.getresponse()
        return Reply(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


def _send_head(server: Server, target: str, headers: dict[str, str]) -> Reply:
    """HEAD over a raw socket, reading until the server closes: every byte after the headers
    would be a (forbidden) body."""
    lines = [f"HEAD {target} HTTP/1.1", f"Host: 127.0.0.1:{server.port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() != "host"]
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, _, header_block = head.decode("latin-1").partition("\r\n")
    parsed = email.parser.Parser(_class=http.client.HTTPMessage).parsestr(header_block + "\r\n")
    return Reply(int(status_line.split()[1]), parsed, rest)  # type: ignore[arg-type]


def client_as(server: Server, access_key: str, secret_key: str, region: str = REGION) -> Any:
    """A client that presigns with SigV4 (boto3's default presigned URL is SigV2)."""
    return boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=BotoConfig(
            region_name=region,
            retries={"max_attempts": 1, "mode": "standard"},
            s3={"addressing_style": "path"},
            signature_version="s3v4",
        ),
    )


@pytest.fixture
def presigner(server: Server) -> Any:
    return client_as(server, ACCESS_KEY, SECRET_KEY)


class _Signer(S3SigV4Auth):  # type: ignore[misc]
    def __init__(self, creds: Credentials, region: str, payload: str) -> None:
        super().__init__(creds, "s3", region)
        self._payload = payload

    def payload(self, request: AWSRequest) -> str:
        return self._payload


def signed_headers(
    server: Server,
    method: str,
    target: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    *,
    access_key: str = ACCESS_KEY,
    secret_key: str = SECRET_KEY,
    region: str = REGION,
    skew: timedelta = timedelta(0),
) -> dict[str, str]:
    req = AWSRequest(method=method, url=server.endpoint + target, headers=dict(headers or {}))
    signer = _Signer(Credentials(access_key, secret_key), region, hashlib.sha256(body).hexdigest())
    when = datetime.now(UTC).replace(tzinfo=None) + skew
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        signer.add_auth(req)
    return dict(req.headers.items())


def signed(server: Server, method: str, target: str, body: bytes = b"", **kw: Any) -> Reply:
    headers = kw.pop("headers", None)
    return send(
        server, method, target, signed_headers(server, method, target, headers, body, **kw), body
    )


def target_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def assert_error(reply: Reply, status: int, code: str) -> ET.Element:
    assert reply.status == status, reply.body
    assert reply.headers["Content-Type"].startswith("application/xml")
    root = reply.xml
    assert root.tag == "Error"
    assert root.findtext("Code") == code
    assert root.findtext("Message")
    request_id = root.findtext("RequestId")
    assert request_id
    assert reply.headers["x-amz-request-id"] == request_id
    return root


def assert_head_error(reply: Reply, status: int) -> None:
    assert reply.status == status
    assert reply.body == b""
    assert reply.headers["x-amz-request-id"]


@pytest.fixture
def obj(s3: Any, bucket: str) -> tuple[str, str]:
    s3.put_object(Bucket=bucket, Key="k", Body=b"secret data")
    return bucket, "k"


# --------------------------------------------------------------------------- header auth


def test_signed_request_works(server: Server, obj: tuple[str, str]) -> None:
    bucket, key = obj
    reply = signed(server, "GET", f"/{bucket}/{key}")
    assert reply.status == 200 and reply.body == b"secret data"
    assert reply.headers["x-amz-request-id"]


def test_anonymous_is_denied(server: Server, obj: tuple[str, str]) -> None:
    bucket, key = obj
    assert_error(send(server, "GET", f"/{bucket}/{key}"), 403, "AccessDenied")
    assert_error(send(server, "GET", f"/{bucket}"), 403, "AccessDenied")
    assert_error(send(server, "GET", "/"), 403, "AccessDenied")
    assert_error(send(server, "PUT", f"/{bucket}/anon", body=b"x"), 403, "AccessDenied")
    assert_error(send(server, "DELETE", f"/{bucket}/{key}"), 403, "AccessDenied")
    assert_head_error(send(server, "HEAD", f"/{bucket}/{key}"), 403)
    assert signed(server, "GET", f"/{bucket}/{key}").body == b"secret data"
    assert signed(server, "GET", f"/{bucket}/anon").status == 404


def test_unknown_access_key(server: Server, obj: tuple[str, str]) -> None:
    bucket, key = obj
    reply = signed(server, "GET", f"/{bucket}/{key}", access_key="AKIAUNKNOWNKEY000000")
    root = assert_error(reply, 403, "InvalidAccessKeyId")
    assert root.findtext("AWSAccessKeyId") == "AKIAUNKNOWNKEY000000"
    s3 = client_as(server, "AKIAUNKNOWNKEY000000", SECRET_KEY)
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key=key)
    assert exc.value.response["Error"]["Code"] == "InvalidAccessKeyId"


def test_wrong_secret(server: Server, obj: tuple[str, str]) -> None:
    bucket, key = obj
    reply = signed(server, "GET", f"/{bucket}/{key}", secret_key="not-the-secret")
    root = assert_error(reply, 403, "SignatureDoesNotMatch")
    assert root.findtext("AWSAccessKeyId") == ACCESS_KEY
    assert root.findtext("StringToSign", "").startswith("AWS4-HMAC-SHA256\n")
    assert_head_error(signed(server, "HEAD", f"/{bucket}/{key}", secret_key="not-the-secret"), 403)
    # a PUT with a wrong secret stores nothing
    reply = signed(server, "PUT", f"/{bucket}/wrong", b"data", secret_key="nope")
    assert_error(reply, 403, "SignatureDoesNotMatch")
    assert signed(server, "GET", f"/{bucket}/wrong").status == 404


def test_tampered_request(server: Server, obj: tuple[str, str]) -> None:
    bucket, key = obj
    headers = signed_headers(server, "GET", f"/{bucket}/{key}")
    assert_error(send(server, "GET", f"/{bucket}/other", headers), 403, "SignatureDoesNotMatch")
    headers = signed_headers(server, "GET", f"/{bucket}?list-type=2")
    reply = send(server, "GET", f"/{bucket}?list-type=2&prefix=x", headers)
    assert_error(reply, 403, "SignatureDoesNotMatch")


@pytest.mark.parametrize("minutes", [20, -20])
def test_request_time_too_skewed(server: Server, obj: tuple[str, str], minutes: int) -> None:
    bucket, key = obj
    reply = signed(server, "GET", f"/{bucket}/{key}", skew=timedelta(minutes=minutes))
    root = assert_error(reply, 403, "RequestTimeTooSkewed")
    assert root.findtext("MaxAllowedTimeSkewMilliseconds") == "900000"
    assert root.findtext("ServerTime")
    assert root.findtext("RequestTime")
    # 10 minutes off is within the allowed skew
    reply = signed(server, "GET", f"/{bucket}/{key}", skew=timedelta(minutes=minutes // 2))
    assert reply.status == 200


def test_other_region(server: Server, obj: tuple[str, str]) -> None:
    bucket, key = obj
    reply = signed(server, "GET", f"/{bucket}/{key}", region="eu-west-1")
    root = assert_error(reply, 400, "AuthorizationHeaderMalformed")
    assert root.findtext("Region") == "us-east-1"
    assert "eu-west-1" in (root.findtext("Message") or "")
    # botocore follows the <Region> hint and retries in us-east-1
    s3 = make_client(server.endpoint, region_name="eu-west-1")
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"secret data"


def test_missing_date(server: Server, obj: tuple[str, str]) -> None:
    bucket, key = obj
    headers = signed_headers(server, "GET", f"/{bucket}/{key}")
    del headers["X-Amz-Date"]
    assert_error(send(server, "GET", f"/{bucket}/{key}", headers), 403, "AccessDenied")


def test_unsupported_signature_version(server: Server, obj: tuple[str, str]) -> None:
    bucket, key = obj
    reply = send(server, "GET", f"/{bucket}/{key}", {"Authorization": f"AWS {ACCESS_KEY}:abc="})
    assert 400 <= reply.status < 500
    assert_error(reply, reply.status, reply.code or "")


# --------------------------------------------------------------------------- presigned URLs


def test_presigned_get(server: Server, presigner: Any, obj: tuple[str, str]) -> None:
    bucket, key = obj
    url = presigner.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key})
    reply = send(server, "GET", target_of(url))
    assert reply.status == 200 and reply.body == b"secret data"
    assert reply.headers["ETag"]
    url = presigner.generate_presigned_url("head_object", Params={"Bucket": bucket, "Key": key})
    assert send(server, "HEAD", target_of(url)).status == 200
    # the signature covers the method and the key
    assert_error(send(server, "DELETE", target_of(url)), 403, "SignatureDoesNotMatch")
    other = target_of(url).replace(f"/{key}?", "/other?")
    assert_error(send(server, "GET", other), 403, "SignatureDoesNotMatch")
    # a presigned URL for a missing key is authenticated, then 404
    url = presigner.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "nope"})
    assert_error(send(server, "GET", target_of(url)), 404, "NoSuchKey")


@pytest.mark.parametrize(
    "body",
    [
        b"a=1&b=2+3&c=%20%2B;d",
        b"field=value",
        bytes(range(256)) * 3,
        b"",
    ],
    ids=["form-like", "simple", "binary", "empty"],
)
def test_presigned_put_form_content_type(
    server: Server, presigner: Any, bucket: str, body: bytes
) -> None:
    """A form content type must not make the server parse (and alter) the body."""
    key = f"form-{uuid.uuid4().hex[:8]}"
    url = presigner.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": key})
    reply = send(
        server,
        "PUT",
        target_of(url),
        {"Content-Type": "application/x-www-form-urlencoded"},
        body,
    )
    assert reply.status == 200, reply.body
    got = presigner.get_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == body
    assert got["ContentType"] == "application/x-www-form-urlencoded"
    assert got["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'


def test_presigned_put_signed_content_type(server: Server, presigner: Any, bucket: str) -> None:
    url = presigner.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "ct", "ContentType": "text/plain"}
    )
    ok = send(server, "PUT", target_of(url), {"Content-Type": "text/plain"}, b"hello")
    assert ok.status == 200
    bad = send(server, "PUT", target_of(url), {"Content-Type": "text/html"}, b"evil")
    assert_error(bad, 403, "SignatureDoesNotMatch")
    assert presigner.get_object(Bucket=bucket, Key="ct")["Body"].read() == b"hello"


def test_presigned_expired(server: Server, presigner: Any, obj: tuple[str, str]) -> None:
    bucket, key = obj
    url = presigner.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=1
    )
    time.sleep(2.1)
    root = assert_error(send(server, "GET", target_of(url)), 403, "AccessDenied")
    assert "expired" in (root.findtext("Message") or "").lower()
    assert_head_error(send(server, "HEAD", target_of(url)), 403)


def test_presigned_expires_too_long(server: Server, presigner: Any, obj: tuple[str, str]) -> None:
    bucket, key = obj
    url = presigner.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=604801
    )
    assert "X-Amz-Expires=604801" in url
    assert_error(send(server, "GET", target_of(url)), 400, "AuthorizationQueryParametersError")
    url = presigner.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=604800
    )
    assert send(server, "GET", target_of(url)).status == 200


def test_presigned_other_region(server: Server, obj: tuple[str, str]) -> None:
    bucket, key = obj
    s3 = client_as(server, ACCESS_KEY, SECRET_KEY, region="eu-west-1")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key})
    root = assert_error(
        send(server, "GET", target_of(url)), 400, "AuthorizationQueryParametersError"
    )
    assert root.findtext("Region") == "us-east-1"


def test_presigned_sigv2_works(server: Server, s3: Any, obj: tuple[str, str]) -> None:
    """boto3's default presigned URL (no signature_version) is SigV2, which s3dedup accepts."""
    bucket, key = obj
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key})
    assert "AWSAccessKeyId=" in url
    reply = send(server, "GET", target_of(url))
    assert reply.status == 200, reply.body
    assert reply.body == b"secret data"


def test_presigned_wrong_secret(server: Server, obj: tuple[str, str]) -> None:
    bucket, key = obj
    s3 = client_as(server, ACCESS_KEY, "wrong")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key})
    assert_error(send(server, "GET", target_of(url)), 403, "SignatureDoesNotMatch")


# --------------------------------------------------------------------------- odd requests


@pytest.mark.parametrize("sign", [False, True], ids=["anonymous", "signed"])
@pytest.mark.parametrize(
    "target", ["/", "/?Action=ListUsers&Version=2010-05-08"], ids=["form", "query"]
)
def test_iam_style_post(server: Server, sign: bool, target: str) -> None:
    body = b"Action=ListUsers&Version=2010-05-08"
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    if sign:
        headers = signed_headers(server, "POST", target, headers, body)
    started = time.monotonic()
    reply = send(server, "POST", target, headers, body)
    assert time.monotonic() - started < 2
    assert 400 <= reply.status < 500, reply.body
    assert_error(reply, reply.status, reply.code or "")


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/{bucket}/k"), ("POST", "/{bucket}"), ("PATCH", "/{bucket}/k"), ("POST", "/")],
)
def test_unknown_operations_are_4xx(server: Server, bucket: str, method: str, path: str) -> None:
    target = path.format(bucket=bucket)
    reply = signed(server, method, target, b"<x/>")
    assert 400 <= reply.status < 500, reply.body
    assert_error(reply, reply.status, reply.code or "")


def test_errors_carry_xml_and_request_id(server: Server, bucket: str) -> None:
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    root = assert_error(signed(server, "GET", f"/{missing}/k"), 404, "NoSuchBucket")
    assert root.findtext("BucketName") == missing
    assert root.findtext("Resource") == f"/{missing}/k"
    assert_error(signed(server, "GET", f"/{bucket}/nokey"), 404, "NoSuchKey")
    assert_error(signed(server, "GET", f"/{missing}?list-type=2"), 404, "NoSuchBucket")
    assert_error(signed(server, "DELETE", f"/{missing}"), 404, "NoSuchBucket")
    assert_head_error(signed(server, "HEAD", f"/{bucket}/nokey"), 404)
    assert_head_error(signed(server, "HEAD", f"/{missing}"), 404)
    assert_head_error(signed(server, "HEAD", f"/{missing}/k"), 404)
    # request ids are unique
    ids = {signed(server, "GET", f"/{bucket}/nokey").headers["x-amz-request-id"] for _ in range(5)}
    assert len(ids) == 5


def test_success_carries_request_id(server: Server, obj: tuple[str, str]) -> None:
    bucket, key = obj
    for method in ("GET", "HEAD"):
        reply = signed(server, method, f"/{bucket}/{key}")
        assert reply.status == 200
        assert reply.headers["x-amz-request-id"]


def test_fsck(server: Server) -> None:
    server.gc(0)
    assert server.fsck()["ok"]
