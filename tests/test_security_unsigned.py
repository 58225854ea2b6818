"""Adversarial review of what an unsigned request can do: CORS preflights, public buckets
(bucket policies granting everyone reads) and PostObject browser forms.

Tests named ``test_was_*`` reproduce weaknesses the review found (they failed before the fixes
of the same commit); every other test pins a defence that held already. Requests are sent
without a signature (``requests`` / ``http.client``), or replay a signature the owner handed
out (a presigned URL, a POST form).
"""

from __future__ import annotations

import http.client
import json
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from botocore.exceptions import ClientError

from tests.conftest import ACCESS_KEY, Server, make_client, make_server
from tests.test_s3_objects import error_xml
from tests.test_s3_policy import public_read
from tests.test_s3_post import _conditions, _signed_form

TIMEOUT = 10
DOMAIN = "s3.test"
BOUNDARY = "----s3dedup-security"


# --------------------------------------------------------------------------- helpers


def raw(
    server: Server, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """An unsigned request whose path is sent byte for byte (no client normalization)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        hdrs = {"Host": f"127.0.0.1:{server.port}", **(headers or {})}
        for name, value in hdrs.items():
            conn.putheader(name, value)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def raw_bytes(server: Server, request: bytes) -> bytes:
    """Send a hand-made HTTP/1.1 request (``Connection: close``) and read the whole answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
        sock.sendall(request)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    return out


def code(body: bytes) -> str:
    return error_xml(body)["Code"]


def multipart(parts: list[tuple[bytes, bytes | None, bytes]]) -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body from (name, filename, value), names and filenames as raw
    bytes (so that they may be anything)."""
    body = b""
    for name, filename, value in parts:
        disposition = b'form-data; name="' + name + b'"'
        if filename is not None:
            disposition += b'; filename="' + filename + b'"'
        body += f"--{BOUNDARY}\r\n".encode() + b"Content-Disposition: " + disposition
        body += b"\r\n\r\n" + value + b"\r\n"
    body += f"--{BOUNDARY}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def form_parts(fields: dict[str, str]) -> list[tuple[bytes, bytes | None, bytes]]:
    return [(k.encode(), None, v.encode()) for k, v in fields.items()]


def future(minutes: int = 5) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def absent(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        return bool(exc.response["ResponseMetadata"]["HTTPStatusCode"] == 404)
    return False


def new_bucket(s3: Any) -> str:
    name = f"sec-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def policy_doc(bucket: str, *statements: dict[str, Any]) -> str:
    base = {"Effect": "Allow", "Principal": "*"}
    return json.dumps({"Version": "2012-10-17", "Statement": [{**base, **s} for s in statements]})


@pytest.fixture(scope="module")
def vhost_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of its own with a ``domain``: virtual-host style requests."""
    tmp: Path = tmp_path_factory.mktemp("vhost")
    srv = make_server(tmp, S3DEDUP_DOMAIN=DOMAIN).start()
    yield srv
    srv.stop()


# --------------------------------------------------------------------------- found and fixed


def _sigv2_replay_setup(srv: Server) -> tuple[Any, Any, str, str, dict[str, str]]:
    s3 = srv.client()
    pub, victim = new_bucket(s3), new_bucket(s3)
    v2 = make_client(srv.endpoint, signature_version="s3")
    return s3, v2, pub, victim, {"Host": f"{victim}.{DOMAIN}:{srv.port}"}


def test_was_sigv2_presigned_get_reads_another_bucket_via_host(vhost_server: Server) -> None:
    """SigV2 does not sign the Host; it signs the bucket as the first path segment of the
    resource. With a ``domain`` configured, dispatch takes the bucket from ``Host:
    <bucket>.<domain>`` but never passes it to ``authenticate`` (``virtual_host_bucket``), so
    the signature of path-style ``/<pub>/report`` also verifies for any bucket, key
    ``<pub>/report``."""
    srv = vhost_server
    s3, v2, pub, victim, host = _sigv2_replay_setup(srv)
    s3.put_object(Bucket=victim, Key=f"{pub}/report", Body=b"PRIVATE")
    # the owner shares a read of <pub>/report (which need not even exist) ...
    url = v2.generate_presigned_url("get_object", Params={"Bucket": pub, "Key": "report"})
    assert requests.get(url, timeout=TIMEOUT).status_code == 404  # a valid signature
    # ... and its holder reads another bucket's object with it
    target = urlsplit(url)
    resp = requests.get(
        f"{srv.endpoint}{target.path}?{target.query}", headers=host, timeout=TIMEOUT
    )
    assert b"PRIVATE" not in resp.content
    assert resp.status_code == 403, resp.text


def test_sigv2_presigned_url_in_virtual_host_style(vhost_server: Server) -> None:
    """With the Host's bucket in the signed resource, a real virtual-host SigV2 presigned URL
    (boto3 signs "/<bucket>/<key>") verifies; before, only path-style ones did."""
    srv = vhost_server
    s3 = srv.client()
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="k", Body=b"virtual")
    v2 = make_client(
        f"http://{DOMAIN}:{srv.port}", signature_version="s3", s3={"addressing_style": "virtual"}
    )
    url = urlsplit(v2.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}))
    assert url.hostname == f"{bucket}.{DOMAIN}"
    resp = requests.get(
        f"{srv.endpoint}{url.path}?{url.query}",
        headers={"Host": url.netloc},
        timeout=TIMEOUT,
    )
    assert (resp.status_code, resp.content) == (200, b"virtual"), resp.text


def test_was_sigv2_presigned_put_overwrites_another_bucket_via_host(
    vhost_server: Server,
) -> None:
    """The same replay for a write: a presigned upload of <pub>/upload overwrites
    <victim>/"<pub>/upload"."""
    srv = vhost_server
    s3, v2, pub, victim, host = _sigv2_replay_setup(srv)
    s3.put_object(Bucket=victim, Key=f"{pub}/upload", Body=b"ORIGINAL")
    url = v2.generate_presigned_url("put_object", Params={"Bucket": pub, "Key": "upload"})
    target = urlsplit(url)
    resp = requests.put(
        f"{srv.endpoint}{target.path}?{target.query}", data=b"EVIL", headers=host, timeout=TIMEOUT
    )
    assert s3.get_object(Bucket=victim, Key=f"{pub}/upload")["Body"].read() == b"ORIGINAL"
    assert resp.status_code == 403, resp.text


def test_was_post_field_names_escape_the_pre_data_limit(server: Server, bucket: str) -> None:
    """The 20 KiB limit on what precedes the file counts field values only: names (and part
    headers) are read without limit, before any signature is checked. Here 200 KB of names,
    unsigned; any number of parts may follow, each kept in memory as a dict key."""
    parts = [(b"x-ignore-" + str(i).encode() + b"n" * 4000, None, b"") for i in range(50)]
    body, headers = multipart([*parts, (b"file", b"f", b"data")])
    assert len(body) > 200_000
    resp = requests.post(f"{server.endpoint}/{bucket}", data=body, headers=headers, timeout=TIMEOUT)
    assert resp.status_code == 400, resp.text
    assert code(resp.content) == "MaxPostPreDataLengthExceeded"


def test_was_post_non_utf8_filename_is_an_internal_error(server: Server, bucket: str) -> None:
    """A form handed out for ``up/${filename}``: a file name that is not UTF-8 reaches
    ``key.encode()`` as a lone surrogate (aiohttp decodes headers with surrogateescape) and
    the answer is 500 InternalError instead of a 400."""
    s3 = make_client(server.endpoint, signature_version="s3v4")
    post = s3.generate_presigned_post(bucket, "up/${filename}", ExpiresIn=600)
    body, headers = multipart([*form_parts(post["fields"]), (b"file", b"bad\xff.txt", b"x")])
    resp = requests.post(post["url"], data=body, headers=headers, timeout=TIMEOUT)
    assert resp.status_code < 500, resp.text


def test_was_anonymous_listing_discloses_the_access_key_id(server: Server, bucket: str) -> None:
    """A policy granting s3:ListBucket lets anyone list keys; the listing's Owner
    DisplayName is the server's access key id, which the policy does not grant."""
    s3 = server.client()
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    s3.put_bucket_policy(Bucket=bucket, Policy=public_read(bucket, "", "s3:ListBucket"))
    for path in (f"/{bucket}", f"/{bucket}?list-type=2&fetch-owner=true"):
        status, _, body = raw(server, "GET", path)
        assert status == 200 and b"<Key>k</Key>" in body, body
        assert ACCESS_KEY.encode() not in body, body


# --------------------------------------------------------------------------- defences: signatures


def test_sigv4_presigned_url_is_bound_to_its_host(vhost_server: Server) -> None:
    srv = vhost_server
    s3 = srv.client()
    pub, victim = new_bucket(s3), new_bucket(s3)
    s3.put_object(Bucket=victim, Key=f"{pub}/report", Body=b"PRIVATE")
    v4 = make_client(srv.endpoint, signature_version="s3v4")
    url = v4.generate_presigned_url("get_object", Params={"Bucket": pub, "Key": "report"})
    target = urlsplit(url)
    resp = requests.get(
        f"{srv.endpoint}{target.path}?{target.query}",
        headers={"Host": f"{victim}.{DOMAIN}:{srv.port}"},
        timeout=TIMEOUT,
    )
    assert resp.status_code == 403 and code(resp.content) == "SignatureDoesNotMatch"


def test_virtual_host_anonymous_reads_follow_the_host_buckets_policy(
    vhost_server: Server,
) -> None:
    srv = vhost_server
    s3 = srv.client()
    pub, priv = new_bucket(s3), new_bucket(s3)
    s3.put_object(Bucket=pub, Key="public/a", Body=b"A")
    s3.put_object(Bucket=priv, Key="public/a", Body=b"S")
    s3.put_bucket_policy(Bucket=pub, Policy=public_read(pub, "/public/*"))
    for host, expected in ((pub, 200), (pub.upper(), 200), (priv, 403)):
        status, _, body = raw(srv, "GET", "/public/a", {"Host": f"{host}.{DOMAIN}"})
        assert status == expected, (host, body)
    # the path names the key only: /<pub>/public/a on the private bucket's host
    status, _, _ = raw(srv, "GET", f"/{pub}/public/a", {"Host": f"{priv}.{DOMAIN}"})
    assert status == 403


# --------------------------------------------------------------------------- defences: policies


def test_policy_arns_of_other_buckets_and_wildcard_buckets_are_refused(
    server: Server, bucket: str
) -> None:
    s3 = server.client()
    for resource in (
        f"arn:aws:s3:::{bucket}-other/*",
        f"arn:aws:s3:::{bucket}*",
        f"arn:aws:s3:::{bucket}*/*",
        "arn:aws:s3:::*/*",
        f"ARN:AWS:S3:::{bucket}/*",
        f"arn:aws:s3::123456789012:{bucket}/*",
        "*",
    ):
        doc = policy_doc(bucket, {"Action": "s3:GetObject", "Resource": resource})
        with pytest.raises(ClientError) as e:
            s3.put_bucket_policy(Bucket=bucket, Policy=doc)
        assert e.value.response["Error"]["Code"] == "MalformedPolicy", resource


def test_policy_key_patterns_match_literally_but_for_star_and_question(
    server: Server, bucket: str
) -> None:
    s3 = server.client()
    keys = ["a.b", "aXb", "a+", "aa", "[x]", "x", "(p|q)", "p", "d$", "d", "..\\e", "e"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    s3.put_object(Bucket=bucket, Key="secret", Body=b"S")
    resources = [f"arn:aws:s3:::{bucket}/{p}" for p in ("a.b", "a+", "[x]", "(p|q)", "d$")]
    resources.append(f"arn:aws:s3:::{bucket}/../secret")  # a key pattern, not a path
    resources.append(f"arn:aws:s3:::{bucket}/..\\e")
    s3.put_bucket_policy(
        Bucket=bucket, Policy=policy_doc(bucket, {"Action": "s3:GetObject", "Resource": resources})
    )
    readable = {"a.b", "a+", "[x]", "(p|q)", "d$", "..\\e"}
    for key in [*keys, "secret"]:
        status, _, _ = raw(server, "GET", f"/{bucket}/{requests.utils.quote(key, safe='')}")
        assert status == (200 if key in readable else 403), key


def test_dot_segments_in_the_path_are_not_resolved(server: Server, bucket: str) -> None:
    s3 = server.client()
    s3.put_object(Bucket=bucket, Key="secret", Body=b"SECRET")
    s3.put_object(Bucket=bucket, Key="public/a", Body=b"A")
    s3.put_bucket_policy(Bucket=bucket, Policy=public_read(bucket, "/public/*"))
    for path in (
        f"/{bucket}/public/../secret",
        f"/{bucket}/public/%2e%2e/secret",
        f"/{bucket}/public/..%2fsecret",
        f"/{bucket}/public/%2E%2E%2Fsecret",
    ):
        status, _, body = raw(server, "GET", path)
        assert (status, code(body)) == (403, "AccessDenied"), path
        assert b"SECRET" not in body


def test_policies_that_only_look_like_grants_grant_nothing(server: Server, bucket: str) -> None:
    """Case variants of actions, wildcard actions and other principal forms are refused
    (501/400), never stored as a wider grant."""
    s3 = server.client()
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    obj = f"arn:aws:s3:::{bucket}/*"
    for statement in (
        {"Action": "s3:getobject", "Resource": obj},
        {"Action": "S3:GetObject", "Resource": obj},
        {"Action": "s3:Get*", "Resource": obj},
        {"Action": "s3:*Object", "Resource": obj},
        {"Action": "*", "Resource": obj},
        {"Action": "s3:GetObject", "Resource": obj, "Principal": ["*"]},
        {"Action": "s3:GetObject", "Resource": obj, "Principal": {"AWS": ["*", "arn:x"]}},
        {"Action": "s3:GetObject", "Resource": obj, "Principal": {"aws": "*"}},
        {"Action": "s3:GetObject", "Resource": obj, "Principal": {"CanonicalUser": "*"}},
        {"Action": "s3:GetObject", "Resource": obj, "Effect": "allow"},
        {"Action": "s3:ListBucket", "Resource": obj},  # a bucket action on objects only
        {"Action": "s3:PutObject", "Resource": obj},
    ):
        with pytest.raises(ClientError) as e:
            s3.put_bucket_policy(Bucket=bucket, Policy=policy_doc(bucket, statement))
        assert e.value.response["Error"]["Code"] in ("MalformedPolicy", "NotImplemented")
    status, _, _ = raw(server, "GET", f"/{bucket}/k")
    assert status == 403


def test_anonymous_missing_key_stays_hidden(server: Server, bucket: str) -> None:
    s3 = server.client()
    s3.put_object(Bucket=bucket, Key="pub/here", Body=b"0123456789")
    s3.put_bucket_policy(Bucket=bucket, Policy=public_read(bucket, "/pub/*"))
    variants: list[tuple[str, str, dict[str, str]]] = [
        ("GET", "", {}),
        ("HEAD", "", {}),
        ("GET", "", {"Range": "bytes=5-"}),
        ("GET", "", {"Range": "bytes=999-"}),
        ("GET", "", {"If-Match": '"x"'}),
        ("GET", "", {"If-None-Match": "*"}),
        ("GET", "?partNumber=1", {}),
        ("GET", "?partNumber=99", {}),
        ("GET", "?versionId=null", {}),
    ]
    for method, query, headers in variants:
        status, _, body = raw(server, method, f"/{bucket}/pub/missing{query}", headers)
        assert status == 403, (method, query, headers, status)
        if method == "GET":
            assert code(body) == "AccessDenied"
    # a missing bucket looks like a private one
    status, _, body = raw(server, "GET", f"/no-such-{uuid.uuid4().hex[:8]}/pub/here")
    assert (status, code(body)) == (403, "AccessDenied")


def test_public_bucket_refuses_every_write_and_other_reads(server: Server, bucket: str) -> None:
    s3 = server.client()
    s3.put_object(Bucket=bucket, Key="k", Body=b"original")
    doc = policy_doc(
        bucket,
        {"Action": ["s3:GetObject", "s3:GetObjectVersion"], "Resource": f"arn:aws:s3:::{bucket}/*"},
        {"Action": ["s3:ListBucket", "s3:GetBucketLocation"], "Resource": f"arn:aws:s3:::{bucket}"},
    )
    s3.put_bucket_policy(Bucket=bucket, Policy=doc)
    delete = b"<Delete><Object><Key>k</Key></Object></Delete>"
    for method, path, body in (
        ("PUT", f"/{bucket}/k", b"evil"),
        ("PUT", f"/{bucket}/new", b"evil"),
        ("DELETE", f"/{bucket}/k", b""),
        ("PUT", f"/{bucket}/k?tagging", b"<Tagging><TagSet/></Tagging>"),
        ("DELETE", f"/{bucket}/k?tagging", b""),
        ("PUT", f"/{bucket}/k?acl", b""),
        ("POST", f"/{bucket}?delete", delete),
        ("POST", f"/{bucket}/k?uploads", b""),
        ("PUT", f"/{bucket}/k?partNumber=1&uploadId=x", b"evil"),
        ("PUT", f"/{bucket}?policy", b"{}"),
        ("DELETE", f"/{bucket}?policy", b""),
        ("PUT", f"/{bucket}?cors", b""),
        ("DELETE", f"/{bucket}", b""),
        ("GET", f"/{bucket}?policy", b""),
        ("GET", f"/{bucket}?policyStatus", b""),
        ("GET", f"/{bucket}?cors", b""),
        ("GET", f"/{bucket}?versions", b""),
        ("GET", f"/{bucket}?uploads", b""),
        ("GET", f"/{bucket}/k?tagging", b""),
        ("GET", f"/{bucket}/k?acl", b""),
        ("GET", f"/{bucket}/k?attributes", b""),
        ("GET", f"/{bucket}/k?uploadId=x", b""),
        ("GET", "/", b""),
    ):
        resp = requests.request(method, server.endpoint + path, data=body, timeout=TIMEOUT)
        assert resp.status_code == 403, (method, path, resp.text)
        assert code(resp.content) == "AccessDenied", (method, path)
    resp = requests.put(
        f"{server.endpoint}/{bucket}/copy",
        headers={"x-amz-copy-source": f"/{bucket}/k"},
        timeout=TIMEOUT,
    )
    assert resp.status_code == 403
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"original"
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []
    assert absent(s3, bucket, "new") and absent(s3, bucket, "copy")
    # what is granted works
    assert raw(server, "GET", f"/{bucket}/k")[0] == 200
    assert raw(server, "GET", f"/{bucket}?list-type=2")[0] == 200


def test_response_overrides_refused_however_spelled(server: Server, bucket: str) -> None:
    s3 = server.client()
    s3.put_object(Bucket=bucket, Key="k", Body=b"<script>", ContentType="text/plain")
    s3.put_bucket_policy(Bucket=bucket, Policy=public_read(bucket))
    for query in (
        "response-content-type=text/html",
        "response%2Dcontent-type=text/html",
        "%72esponse-content-type=text/html",
        "x=1&response-content-disposition=inline",
        "response-content-type",
    ):
        status, headers, body = raw(server, "GET", f"/{bucket}/k?{query}")
        assert (status, code(body)) == (400, "InvalidRequest"), query
    # a name that is not an override changes nothing
    status, headers, _ = raw(server, "GET", f"/{bucket}/k?Response-Content-Type=text/html")
    assert status == 200 and headers["Content-Type"] == "text/plain"


# --------------------------------------------------------------------------- defences: CORS


def _preflight(server: Server, bucket: str, *extra: bytes) -> bytes:
    return raw_bytes(
        server,
        f"OPTIONS /{bucket}/k HTTP/1.1\r\nHost: h\r\n".encode()
        + b"".join(line + b"\r\n" for line in extra)
        + b"Connection: close\r\n\r\n",
    )


def test_cors_preflight_reflects_only_allowed_and_never_crlf(server: Server, bucket: str) -> None:
    s3 = server.client()
    s3.put_bucket_cors(
        Bucket=bucket,
        CORSConfiguration={
            "CORSRules": [
                {
                    "AllowedOrigins": ["https://*.example.com"],
                    "AllowedMethods": ["GET"],
                    "AllowedHeaders": ["x-amz-*"],
                }
            ]
        },
    )
    ok = _preflight(
        server,
        bucket,
        b"Origin: https://app.example.com",
        b"Access-Control-Request-Method: GET",
        b"Access-Control-Request-Headers: X-Amz-Date",
    )
    assert ok.startswith(b"HTTP/1.1 200"), ok
    assert b"Access-Control-Allow-Origin: https://app.example.com\r\n" in ok
    assert b"Access-Control-Allow-Headers: x-amz-date\r\n" in ok
    # a header the rule does not allow, an origin it does not match: nothing reflected
    for extra in (
        (b"Origin: https://app.example.com", b"Access-Control-Request-Headers: evil"),
        (b"Origin: https://example.com.evil.org",),
    ):
        out = _preflight(server, bucket, b"Access-Control-Request-Method: GET", *extra)
        assert out.startswith(b"HTTP/1.1 403"), out
        assert b"Access-Control-Allow" not in out and b"evil" not in out.split(b"\r\n\r\n")[0]
    # CR / LF inside a reflected header never reach the handler
    for extra in (
        b"Origin: https://a.example.com\rSet-Cookie: x=1",
        b"Origin: https://a.example.com\nSet-Cookie: x=1",
        b"Access-Control-Request-Headers: x-amz-a\rSet-Cookie: x=1",
    ):
        out = _preflight(
            server,
            bucket,
            b"Origin: https://a.example.com",
            b"Access-Control-Request-Method: GET",
            extra,
        )
        head = out.split(b"\r\n\r\n")[0]
        assert out.startswith(b"HTTP/1.0 400") or out.startswith(b"HTTP/1.1 400"), out
        assert b"\r\nSet-Cookie" not in head


def test_cors_preflight_odd_bytes_are_no_internal_error(server: Server, bucket: str) -> None:
    s3 = server.client()
    s3.put_bucket_cors(
        Bucket=bucket,
        CORSConfiguration={
            "CORSRules": [
                {
                    "AllowedOrigins": ["https://*"],
                    "AllowedMethods": ["GET"],
                    "AllowedHeaders": ["*"],
                }
            ]
        },
    )
    for extra in (
        (b"Origin: https://a\xff", b"Access-Control-Request-Headers: x-\xfe"),
        ("Origin: https://\u00e9".encode(), "Access-Control-Request-Headers: \u00e9".encode()),
    ):
        out = _preflight(server, bucket, b"Access-Control-Request-Method: GET", *extra)
        assert not out.startswith(b"HTTP/1.1 5"), out
    # a preflight reveals no other bucket's rules: the one named answers
    other = new_bucket(s3)
    out = _preflight(server, other, b"Origin: https://a", b"Access-Control-Request-Method: GET")
    assert out.startswith(b"HTTP/1.1 403") and b"Access-Control-Allow" not in out


# --------------------------------------------------------------------------- defences: POST forms


def _post(server: Server, bucket: str, form: dict[str, str], data: bytes = b"x") -> Any:
    return requests.post(
        f"{server.endpoint}/{bucket}", data=form, files={"file": ("f", data)}, timeout=TIMEOUT
    )


def test_post_needs_the_owners_signature(server: Server, bucket: str) -> None:
    s3 = server.client()
    fields = {"key": "k", "policy": "e30=", "x-amz-algorithm": "AWS4-HMAC-SHA256"}
    bad_v4 = {**_signed_form({"expiration": future(), "conditions": []}, "k")}
    bad_v4["x-amz-signature"] = "0" * 64
    good = _signed_form({"expiration": future(), "conditions": _conditions(bucket)}, "k")
    for form, expected in (
        ({"key": "k"}, "AccessDenied"),  # no signature at all
        ({"key": "k", "x-ignore-signature": "x"}, "AccessDenied"),
        ({**fields, "x-amz-signature": "0" * 64}, None),  # no credential
        (bad_v4, "SignatureDoesNotMatch"),
        # a SigV4 signature offered as a SigV2 one
        (
            {
                "key": "k",
                "policy": good["policy"],
                "AWSAccessKeyId": ACCESS_KEY,
                "signature": good["x-amz-signature"],
            },
            "SignatureDoesNotMatch",
        ),
        ({"key": "k", "AWSAccessKeyId": ACCESS_KEY, "policy": good["policy"]}, None),
        ({"key": "k", "signature": "x"}, None),
    ):
        resp = _post(server, bucket, form)
        assert resp.status_code in (400, 403), (form, resp.text)
        if expected is not None:
            assert code(resp.content) == expected, (form, resp.text)
    assert absent(s3, bucket, "k")


def test_post_form_signed_for_one_bucket_is_refused_by_another(server: Server, bucket: str) -> None:
    s3 = server.client()
    other = new_bucket(s3)
    form = _signed_form({"expiration": future(), "conditions": _conditions(bucket)}, "k")
    for extra in ({}, {"bucket": other}, {"Bucket": other}):
        resp = _post(server, other, {**form, **extra})
        assert (resp.status_code, code(resp.content)) == (403, "AccessDenied"), extra
    assert absent(s3, other, "k")
    assert _post(server, bucket, form).status_code == 204


def test_post_fields_given_twice_or_in_other_case_check_what_is_used(
    server: Server, bucket: str
) -> None:
    s3 = server.client()
    conditions = [c for c in _conditions(bucket) if not (isinstance(c, list) and c[1] == "$key")]
    conditions.append(["starts-with", "$KEY", "up/"])
    form = _signed_form({"expiration": future(), "conditions": conditions}, "")
    del form["key"]
    fields = form_parts(form)
    # the first value wins for the check and for the write alike
    body, headers = multipart(
        [(b"Key", None, b"up/first"), *fields, (b"key", None, b"out"), (b"file", b"f", b"1")]
    )
    url = f"{server.endpoint}/{bucket}"
    assert requests.post(url, data=body, headers=headers, timeout=TIMEOUT).status_code == 204
    body, headers = multipart(
        [(b"KEY", None, b"out"), *fields, (b"key", None, b"up/second"), (b"file", b"f", b"2")]
    )
    resp = requests.post(url, data=body, headers=headers, timeout=TIMEOUT)
    assert (resp.status_code, code(resp.content)) == (403, "AccessDenied")
    # a field named in another case is still a field the policy must name
    body, headers = multipart(
        [
            (b"key", None, b"up/meta"),
            *fields,
            (b"X-Amz-Meta-Evil", None, b"1"),
            (b"file", b"f", b""),
        ]
    )
    resp = requests.post(url, data=body, headers=headers, timeout=TIMEOUT)
    assert (resp.status_code, code(resp.content)) == (403, "AccessDenied")
    assert absent(s3, bucket, "out") and absent(s3, bucket, "up/second")
    assert absent(s3, bucket, "up/meta")
    assert s3.get_object(Bucket=bucket, Key="up/first")["Body"].read() == b"1"


def test_post_filename_cannot_leave_the_key_prefix(server: Server, bucket: str) -> None:
    s3 = server.client()
    s3.put_object(Bucket=bucket, Key="secret", Body=b"SECRET")
    v4 = make_client(server.endpoint, signature_version="s3v4")
    post = v4.generate_presigned_post(bucket, "up/${filename}", ExpiresIn=600)
    for name in (b"../../secret", b"/secret", b"${filename}"):
        body, headers = multipart([*form_parts(post["fields"]), (b"file", name, b"evil")])
        resp = requests.post(post["url"], data=body, headers=headers, timeout=TIMEOUT)
        assert resp.status_code == 204, resp.text
        assert urlsplit(resp.headers["Location"]).path.startswith(f"/{bucket}/up/")
    # a key field that does not itself start with the prefix is refused before substitution
    body, headers = multipart(
        [*form_parts({**post["fields"], "key": "${filename}"}), (b"file", b"up/x", b"e")]
    )
    resp = requests.post(post["url"], data=body, headers=headers, timeout=TIMEOUT)
    assert (resp.status_code, code(resp.content)) == (403, "AccessDenied")
    assert s3.get_object(Bucket=bucket, Key="secret")["Body"].read() == b"SECRET"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]} - {"secret"}
    assert len(keys) == 3 and all(k.startswith("up/") for k in keys), keys


def test_post_expiration_time_zones_and_size_range(server: Server, bucket: str) -> None:
    s3 = server.client()
    plus5 = timezone(timedelta(hours=5))
    past = (datetime.now(UTC) - timedelta(minutes=1)).astimezone(plus5).isoformat()
    naive_past = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S")
    for expiration, expected in (
        (past, "AccessDenied"),  # in the past, though its wall clock is ahead of UTC
        (naive_past, "AccessDenied"),  # no zone: UTC
        ("not a date", "InvalidPolicyDocument"),
        ("2099-01-01T00:00:00+24:00", "InvalidPolicyDocument"),
        (12345, "InvalidPolicyDocument"),
    ):
        form = _signed_form({"expiration": expiration, "conditions": _conditions(bucket)}, "t")
        resp = _post(server, bucket, form)
        assert code(resp.content) == expected, (expiration, resp.text)
    conditions = [*_conditions(bucket), ["content-length-range", 2, 4]]
    form = _signed_form({"expiration": future(), "conditions": conditions}, "t")
    for data, expected in ((b"1", "EntityTooSmall"), (b"12345", "EntityTooLarge")):
        resp = _post(server, bucket, form, data)
        assert (resp.status_code, code(resp.content)) == (400, expected)
    # the same over chunked transfer-encoding (no Content-Length to trust)
    body, headers = multipart([*form_parts(form), (b"file", b"f", b"x" * 100)])
    resp = requests.post(
        f"{server.endpoint}/{bucket}", data=iter([body]), headers=headers, timeout=TIMEOUT
    )
    assert (resp.status_code, code(resp.content)) == (400, "EntityTooLarge")
    assert absent(s3, bucket, "t")
