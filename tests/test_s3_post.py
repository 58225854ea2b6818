"""PostObject, the browser form upload: forms made by boto3's generate_presigned_post (SigV4
and SigV2) and by hand, sent with requests as a browser would.

AWS references: "Browser-based uploads using POST (AWS Signature Version 4)", "Creating a
POST policy" (conditions, content-length-range, ${filename}, fields every condition must
name, x-ignore-), "POST Object" (success_action_status 200/201/204,
success_action_redirect, the PostResponse document, fields after the file ignored).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from botocore.exceptions import ClientError

from dedup.records import HASH_LEN
from tests.conftest import ACCESS_KEY, REGION, SECRET_KEY, Server, make_client
from tests.test_s3_objects import error_xml

TIMEOUT = 30
TODAY = datetime.now(UTC).strftime("%Y%m%d")
MiB = 1024 * 1024


@pytest.fixture
def s3v4(server: Server) -> Any:
    return make_client(server.endpoint, signature_version="s3v4")


def presign(s3: Any, bucket: str, key: str, **kw: Any) -> dict[str, Any]:
    return dict(s3.generate_presigned_post(bucket, key, ExpiresIn=600, **kw))


def send(
    post: dict[str, Any], data: bytes = b"payload", filename: str = "f.bin", **extra: str
) -> requests.Response:
    fields = {**post["fields"], **extra}
    return requests.post(
        post["url"], data=fields, files={"file": (filename, data)}, timeout=TIMEOUT
    )


def refused(resp: requests.Response, status: int, code: str) -> dict[str, str]:
    assert resp.status_code == status, resp.text
    err = error_xml(resp.content)
    assert err["Code"] == code, err
    return err


def assert_absent(s3: Any, bucket: str, key: str) -> None:
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key=key)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_success_statuses_and_filename(s3v4: Any, bucket: str) -> None:
    conditions: list[Any] = [["starts-with", "$success_action_status", ""]]
    post = presign(s3v4, bucket, "up/${filename}", Conditions=conditions)
    # 204, the default: ETag and Location headers, no body
    resp = send(post, b"one", filename="one.txt")
    assert resp.status_code == 204 and resp.content == b""
    assert resp.headers["ETag"] == f'"{hashlib.md5(b"one").hexdigest()}"'
    assert resp.headers["Location"].endswith(f"/{bucket}/up/one.txt")
    assert s3v4.get_object(Bucket=bucket, Key="up/one.txt")["Body"].read() == b"one"
    # 201: a PostResponse document
    resp = send(post, b"two", filename="two.txt", success_action_status="201")
    assert resp.status_code == 201, resp.text
    assert "<Key>up/two.txt</Key>" in resp.text and f"<Bucket>{bucket}</Bucket>" in resp.text
    # 200: empty; anything else: 204
    assert send(post, b"3", filename="3", success_action_status="200").status_code == 200
    assert send(post, b"4", filename="4", success_action_status="302").status_code == 204


def test_redirect(s3v4: Any, bucket: str) -> None:
    target = "https://app.example/done?from=form"
    post = presign(
        s3v4,
        bucket,
        "r",
        Fields={"success_action_redirect": target},
        Conditions=[{"success_action_redirect": target}],
    )
    resp = requests.post(
        post["url"],
        data=post["fields"],
        files={"file": ("r", b"redirected")},
        timeout=TIMEOUT,
        allow_redirects=False,
    )
    assert resp.status_code == 303, resp.text
    where = urlsplit(resp.headers["Location"])
    assert where.netloc == "app.example" and where.path == "/done"
    query = parse_qs(where.query)
    assert query["from"] == ["form"] and query["bucket"] == [bucket] and query["key"] == ["r"]
    assert query["etag"] == [f'"{hashlib.md5(b"redirected").hexdigest()}"']


def test_metadata_content_type_and_tags(s3v4: Any, bucket: str) -> None:
    tagging = "<Tagging><TagSet><Tag><Key>k</Key><Value>v</Value></Tag></TagSet></Tagging>"
    fields = {
        "Content-Type": "text/csv",
        "Cache-Control": "max-age=9",
        "x-amz-meta-owner": "form",
        "tagging": tagging,
        "acl": "private",
    }
    post = presign(
        s3v4, bucket, "meta", Fields=fields, Conditions=[{k: v} for k, v in fields.items()]
    )
    assert send(post, b"a,b\n").status_code == 204
    head = s3v4.head_object(Bucket=bucket, Key="meta")
    assert head["ContentType"] == "text/csv" and head["CacheControl"] == "max-age=9"
    assert head["Metadata"] == {"owner": "form"}
    assert s3v4.get_object_tagging(Bucket=bucket, Key="meta")["TagSet"] == [
        {"Key": "k", "Value": "v"}
    ]


def test_large_file_streams_and_deduplicates(server: Server, s3v4: Any, bucket: str) -> None:
    data = hashlib.sha256(b"seed").digest() * (3 * MiB // HASH_LEN)
    post = presign(s3v4, bucket, "${filename}")
    assert send(post, data, filename="big1").status_code == 204
    before = server.stats()
    assert send(post, data, filename="big2").status_code == 204
    after = server.stats()
    assert after["logical_bytes"] - before["logical_bytes"] == len(data)
    assert after["stored_bytes"] == before["stored_bytes"]  # the same chunks: stored once
    assert s3v4.get_object(Bucket=bucket, Key="big2")["Body"].read() == data


def test_content_length_range(server: Server, s3v4: Any, bucket: str) -> None:
    post = presign(s3v4, bucket, "sized", Conditions=[["content-length-range", 10, 2 * MiB]])
    refused(send(post, b"short"), 400, "EntityTooSmall")
    refused(send(post, b"x" * (3 * MiB)), 400, "EntityTooLarge")
    assert_absent(s3v4, bucket, "sized")
    assert send(post, b"just right").status_code == 204
    report = server.fsck()  # the refused uploads left no pinned chunks behind
    assert report["ok"] and report["pinned_references"] == 0, report


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"x-amz-meta-sneaky": "1"}, 403, "AccessDenied"),  # a field no condition names
        ({"key": "elsewhere"}, 403, "AccessDenied"),  # fails the key condition
        ({"x-amz-signature": "0" * 64}, 403, "SignatureDoesNotMatch"),
        (
            {"x-amz-credential": "NOSUCHKEY/20260101/us-east-1/s3/aws4_request"},
            403,
            "InvalidAccessKeyId",
        ),
        ({"x-amz-algorithm": "AWS4-HMAC-SHA1"}, 400, "InvalidArgument"),
    ],
    ids=["extra-field", "key", "signature", "access-key", "algorithm"],
)
def test_refused_forms(
    s3v4: Any, bucket: str, change: dict[str, str], status: int, code: str
) -> None:
    post = presign(s3v4, bucket, "k")
    refused(send(post, **change), status, code)
    assert_absent(s3v4, bucket, "k")
    assert_absent(s3v4, bucket, "elsewhere")


def test_x_ignore_fields_need_no_condition(s3v4: Any, bucket: str) -> None:
    post = presign(s3v4, bucket, "ignored")
    assert send(post, **{"x-ignore-tracking": "abc"}).status_code == 204


def _signed_form(policy: dict[str, Any], key: str, **fields: str) -> dict[str, str]:
    """A form signed by hand (SigV4), for policies boto3 would not write."""
    date = datetime.now(UTC).strftime("%Y%m%d")
    encoded = base64.b64encode(json.dumps(policy).encode()).decode()
    k = ("AWS4" + SECRET_KEY).encode()
    for part in (date, REGION, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return {
        "key": key,
        "x-amz-algorithm": "AWS4-HMAC-SHA256",
        "x-amz-credential": f"{ACCESS_KEY}/{date}/{REGION}/s3/aws4_request",
        "x-amz-date": date + "T000000Z",
        "policy": encoded,
        "x-amz-signature": hmac.new(k, encoded.encode(), hashlib.sha256).hexdigest(),
        **fields,
    }


def _conditions(bucket: str) -> list[Any]:
    return [
        {"bucket": bucket},
        ["starts-with", "$key", ""],
        ["starts-with", "$x-amz-algorithm", ""],
        ["starts-with", "$x-amz-credential", ""],
        ["starts-with", "$x-amz-date", ""],
    ]


def test_expired_policy_and_other_bucket(server: Server, s3v4: Any, bucket: str) -> None:
    url = f"{server.endpoint}/{bucket}"
    past = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    form = _signed_form({"expiration": past, "conditions": _conditions(bucket)}, "old")
    resp = requests.post(url, data=form, files={"file": ("f", b"x")}, timeout=TIMEOUT)
    assert "expired" in refused(resp, 403, "AccessDenied")["Message"]
    future = (datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    form = _signed_form({"expiration": future, "conditions": _conditions("other")}, "k")
    resp = requests.post(url, data=form, files={"file": ("f", b"x")}, timeout=TIMEOUT)
    refused(resp, 403, "AccessDenied")
    # a policy that is not a policy
    form = _signed_form({"conditions": []}, "k")
    resp = requests.post(url, data=form, files={"file": ("f", b"x")}, timeout=TIMEOUT)
    refused(resp, 400, "InvalidPolicyDocument")
    assert_absent(s3v4, bucket, "old")


def test_malformed_requests(server: Server, s3v4: Any, bucket: str) -> None:
    post = presign(s3v4, bucket, "k")
    # no file part
    resp = requests.post(
        post["url"], files={**{k: (None, v) for k, v in post["fields"].items()}}, timeout=TIMEOUT
    )
    refused(resp, 400, "InvalidArgument")
    # no signature at all: anonymous, and no bucket lets anyone write
    resp = requests.post(
        post["url"], data={"key": "k"}, files={"file": ("f", b"x")}, timeout=TIMEOUT
    )
    refused(resp, 403, "AccessDenied")
    # fields before the file over 20 KiB
    resp = send(post, **{"x-ignore-pad": "p" * (21 * 1024)})
    refused(resp, 400, "MaxPostPreDataLengthExceeded")
    # a bucket that does not exist
    other = presign(s3v4, "no-such-bucket-post", "k")
    refused(send(other), 404, "NoSuchBucket")
    # not multipart at all: the router's answer for a bucket POST
    resp = requests.post(
        post["url"], data=b"plain", headers={"Content-Type": "text/plain"}, timeout=TIMEOUT
    )
    assert resp.status_code == 412, resp.text
    assert_absent(s3v4, bucket, "k")


def test_fields_after_the_file_are_ignored(s3v4: Any, bucket: str) -> None:
    post = presign(s3v4, bucket, "order")
    # requests sends data fields before files; build the body by hand to put one after
    boundary = "----s3dedup-test"
    parts = [(k, None, v.encode()) for k, v in post["fields"].items()]
    parts += [("file", "f", b"content"), ("x-amz-meta-late", None, b"ignored")]
    body = b""
    for name, filename, value in parts:
        disposition = f'form-data; name="{name}"'
        if filename:
            disposition += f'; filename="{filename}"'
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        body += value + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    resp = requests.post(
        post["url"],
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        timeout=TIMEOUT,
    )
    assert resp.status_code == 204, resp.text
    assert s3v4.head_object(Bucket=bucket, Key="order")["Metadata"] == {}
