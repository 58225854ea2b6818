"""Bucket policies (public reads): the configuration API, anonymous access it opens — and
nothing more — with plain HTTP and the aws cli's --no-sign-request, and the policies refused.

AWS references: PutBucketPolicy / GetBucketPolicy / DeleteBucketPolicy /
GetBucketPolicyStatus (API reference); "Bucket policy examples" (user guide: granting
read-only permission to anonymous users); MalformedPolicy messages as S3 answers them
(versity/versitygw issues #645, #648, #649; aws-samples/aws-serverless-appsync-app#4;
hashicorp/terraform#28688); anonymous GET of a missing key is 403 without s3:ListBucket.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import Aws, Server
from tests.test_s3_objects import assert_error, error_xml, instrument


@pytest.fixture
def s3(server: Server) -> Any:
    return instrument(server.client())


def public_read(bucket: str, resource: str = "/*", *actions: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "PublicRead",
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": list(actions) or ["s3:GetObject"],
                    "Resource": [f"arn:aws:s3:::{bucket}{resource}"],
                }
            ],
        }
    )


def anon(
    server: Server, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """An unsigned request: (status, body)."""
    req = urllib.request.Request(server.endpoint + path, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, exc.read()
        finally:
            exc.close()  # it holds the connection


def code_of(body: bytes) -> str:
    return error_xml(body)["Code"]


def test_no_policy(server: Server, s3: Any, bucket: str) -> None:
    for call in (s3.get_bucket_policy, s3.get_bucket_policy_status):
        with pytest.raises(ClientError) as e:
            call(Bucket=bucket)
        assert_error(e, "NoSuchBucketPolicy", 404)
    s3.put_object(Bucket=bucket, Key="k", Body=b"private")
    status, body = anon(server, "GET", f"/{bucket}/k")
    assert (status, code_of(body)) == (403, "AccessDenied")
    resp = s3.delete_bucket_policy(Bucket=bucket)  # nothing to delete: still 204
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_public_read_opens_gets_and_nothing_else(server: Server, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="dir/file.txt", Body=b"hello world", ContentType="text/x")
    text = public_read(bucket)
    resp = s3.put_bucket_policy(Bucket=bucket, Policy=text)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert s3.get_bucket_policy(Bucket=bucket)["Policy"] == text  # as given
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"] == {"IsPublic": True}

    assert anon(server, "GET", f"/{bucket}/dir/file.txt") == (200, b"hello world")
    assert anon(server, "GET", f"/{bucket}/dir/file.txt", {"Range": "bytes=6-"}) == (206, b"world")
    assert anon(server, "HEAD", f"/{bucket}/dir/file.txt")[0] == 200
    # a missing key is not revealed without s3:ListBucket
    status, body = anon(server, "GET", f"/{bucket}/missing")
    assert (status, code_of(body)) == (403, "AccessDenied")
    # S3 refuses response-* overrides on anonymous requests
    status, body = anon(server, "GET", f"/{bucket}/dir/file.txt?response-content-type=a/b")
    assert (status, code_of(body)) == (400, "InvalidRequest")
    # everything else stays the owner's
    for method, path in (
        ("GET", f"/{bucket}"),  # ListObjects
        ("GET", f"/{bucket}?list-type=2"),
        ("PUT", f"/{bucket}/dir/file.txt"),
        ("DELETE", f"/{bucket}/dir/file.txt"),
        ("GET", f"/{bucket}/dir/file.txt?acl"),
        ("GET", f"/{bucket}/dir/file.txt?tagging"),
        ("GET", f"/{bucket}?policy"),
        ("DELETE", f"/{bucket}?policy"),
        ("GET", "/"),  # ListBuckets
    ):
        status, body = anon(server, method, path)
        assert (status, code_of(body)) == (403, "AccessDenied"), (method, path)
    assert s3.get_object(Bucket=bucket, Key="dir/file.txt")["Body"].read() == b"hello world"

    s3.delete_bucket_policy(Bucket=bucket)
    status, body = anon(server, "GET", f"/{bucket}/dir/file.txt")
    assert (status, code_of(body)) == (403, "AccessDenied")


def test_resource_patterns(server: Server, s3: Any, bucket: str) -> None:
    for key in ("public/a", "public/deep/b", "private/c", "v1.txt", "v22.txt"):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    doc = json.loads(public_read(bucket, "/public/*"))
    doc["Statement"][0]["Resource"].append(f"arn:aws:s3:::{bucket}/v?.txt")
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(doc))
    for key, readable in (
        ("public/a", True),
        ("public/deep/b", True),  # * crosses "/"
        ("private/c", False),
        ("v1.txt", True),
        ("v22.txt", False),  # ? is one character
    ):
        status, _ = anon(server, "GET", f"/{bucket}/{key}")
        assert status == (200 if readable else 403), key


def test_list_bucket_grant(server: Server, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="a", Body=b"a")
    doc = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": ["*"]},
                "Action": ["s3:GetBucketLocation", "s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{bucket}"],
            },
            {
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/*",
            },
        ],
    }
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(doc))
    status, body = anon(server, "GET", f"/{bucket}?list-type=2")
    assert status == 200 and b"<Key>a</Key>" in body, body
    assert anon(server, "HEAD", f"/{bucket}")[0] == 200
    assert anon(server, "GET", f"/{bucket}?location")[0] == 200
    # with s3:ListBucket, a missing key is a plain 404
    status, body = anon(server, "GET", f"/{bucket}/missing")
    assert (status, code_of(body)) == (404, "NoSuchKey")


def test_a_policy_opens_only_its_bucket(server: Server, s3: Any, bucket: str) -> None:
    other = f"test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=other)
    s3.put_object(Bucket=other, Key="k", Body=b"x")
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    s3.put_bucket_policy(Bucket=bucket, Policy=public_read(bucket))
    assert anon(server, "GET", f"/{bucket}/k")[0] == 200
    assert anon(server, "GET", f"/{other}/k")[0] == 403
    # and a re-created bucket starts without one
    s3.delete_object(Bucket=bucket, Key="k")
    s3.delete_bucket(Bucket=bucket)
    s3.create_bucket(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        s3.get_bucket_policy(Bucket=bucket)
    assert_error(e, "NoSuchBucketPolicy", 404)


def _statement(bucket: str, **change: Any) -> str:
    st: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/*",
    }
    for k, v in change.items():
        if v is None:
            st.pop(k)
        else:
            st[k] = v
    return json.dumps({"Version": "2012-10-17", "Statement": [st]})


MALFORMED = [
    ("invalid json", lambda b: "{not json"),
    ("no statement", lambda b: json.dumps({"Version": "2012-10-17"})),
    ("bad version", lambda b: _statement(b).replace("2012-10-17", "2011-01-01")),
    ("no principal", lambda b: _statement(b, Principal=None)),
    ("no effect", lambda b: _statement(b, Effect=None)),
    ("no action", lambda b: _statement(b, Action=None)),
    ("no resource", lambda b: _statement(b, Resource=None)),
    ("bad effect", lambda b: _statement(b, Effect="Maybe")),
    ("other bucket", lambda b: _statement(b, Resource="arn:aws:s3:::someone-else/*")),
    ("not an arn", lambda b: _statement(b, Resource="*")),
    ("bad action", lambda b: _statement(b, Action="GetObject")),
    ("action on no resource", lambda b: _statement(b, Resource=f"arn:aws:s3:::{b}")),
]


@pytest.mark.parametrize(("what", "make"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_policies(s3: Any, bucket: str, what: str, make: Any) -> None:
    s3.put_bucket_policy(Bucket=bucket, Policy=public_read(bucket))
    with pytest.raises(ClientError) as e:
        s3.put_bucket_policy(Bucket=bucket, Policy=make(bucket))
    assert_error(e, "MalformedPolicy", 400)
    assert s3.get_bucket_policy(Bucket=bucket)["Policy"] == public_read(bucket)  # unchanged


UNSUPPORTED = [
    ("deny", {"Effect": "Deny"}),
    ("condition", {"Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}),
    ("named principal", {"Principal": {"AWS": "arn:aws:iam::123456789012:root"}}),
    ("write action", {"Action": ["s3:GetObject", "s3:PutObject"]}),
    ("all actions", {"Action": "s3:*"}),
    ("not principal", {"Principal": None, "NotPrincipal": {"AWS": "x"}}),
]


@pytest.mark.parametrize(("what", "change"), UNSUPPORTED, ids=[u[0] for u in UNSUPPORTED])
def test_policies_that_cannot_be_honoured_are_refused(
    server: Server, s3: Any, bucket: str, what: str, change: dict[str, Any]
) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    with pytest.raises(ClientError) as e:
        s3.put_bucket_policy(Bucket=bucket, Policy=_statement(bucket, **change))
    assert_error(e, "NotImplemented", 501)
    with pytest.raises(ClientError) as e:
        s3.get_bucket_policy(Bucket=bucket)
    assert_error(e, "NoSuchBucketPolicy", 404)
    assert anon(server, "GET", f"/{bucket}/k")[0] == 403


def test_aws_cli_no_sign_request(
    aws: Aws, s3: Any, bucket: str, tmp_path: Any, server: Server
) -> None:
    s3.put_object(Bucket=bucket, Key="pub/file", Body=b"for everyone")
    policy = tmp_path / "policy.json"
    policy.write_text(public_read(bucket, "/pub/*"))
    aws("s3api", "put-bucket-policy", "--bucket", bucket, "--policy", f"file://{policy}")
    got = json.loads(aws("s3api", "get-bucket-policy", "--bucket", bucket).stdout)
    assert json.loads(got["Policy"]) == json.loads(policy.read_text())
    out = aws("s3", "cp", "--no-sign-request", f"s3://{bucket}/pub/file", "-")
    assert out.stdout == "for everyone"
    refused = aws("s3", "ls", "--no-sign-request", f"s3://{bucket}/", check=False)
    assert refused.returncode != 0 and "AccessDenied" in refused.stderr, refused.stderr
    aws("s3api", "delete-bucket-policy", "--bucket", bucket)
    refused = aws("s3", "cp", "--no-sign-request", f"s3://{bucket}/pub/file", "-", check=False)
    assert refused.returncode != 0, refused.stdout
    assert isinstance(refused, subprocess.CompletedProcess)
