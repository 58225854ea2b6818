"""s3cmd (SigV4, path style) against a real server: mb, put (single and multipart), get, ls,
la, du, info, cp, mv, modify, sync up and down, setacl, del, del --recursive, rb; and the
commands s3dedup does not support fail with an S3 error instead of crashing s3cmd.

s3cmd uploads files above ``multipart_chunk_size_mb`` (15 MiB) in parts, so the 20 MiB file
is a multipart upload and ``--disable-multipart`` a single PUT of the same size.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import random
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ACCESS_KEY, REGION, SECRET_KEY, Server, require_client

MiB = 1024 * 1024

S3cmd = Callable[..., subprocess.CompletedProcess[str]]

CONFIG = """\
[default]
access_key = {access_key}
secret_key = {secret_key}
host_base = 127.0.0.1:{port}
host_bucket = 127.0.0.1:{port}
use_https = False
signature_v2 = False
bucket_location = {region}
"""


@pytest.fixture
def s3cmd(server: Server, tmp_path: Path) -> S3cmd:
    exe = require_client("s3cmd")
    home = tmp_path / "home"
    home.mkdir()
    config = tmp_path / "s3cfg"
    config.write_text(
        CONFIG.format(access_key=ACCESS_KEY, secret_key=SECRET_KEY, port=server.port, region=REGION)
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3CMD_"))}
    env["HOME"] = str(home)  # no ~/.s3cfg leaks in

    def run(
        *args: str,
        check: bool = True,
        stdin: bytes = b"",
        stdout: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        with open(stdout, "wb") if stdout else contextlib.nullcontext() as sink:
            raw = subprocess.run(
                [exe, "-c", str(config), *args],
                env=env,
                input=stdin,
                stdout=sink if sink else subprocess.PIPE,
                stderr=subprocess.PIPE,
                timeout=300,
            )
        out = subprocess.CompletedProcess(
            raw.args,
            raw.returncode,
            (raw.stdout or b"").decode(errors="replace"),
            raw.stderr.decode(errors="replace"),
        )
        text = f"s3cmd {' '.join(args)}: rc={out.returncode}\n{out.stdout}\n{out.stderr}"
        # s3cmd reports its own crashes as "An unexpected error has occurred" + a traceback
        assert "Traceback" not in out.stderr and "unexpected error" not in out.stderr, text
        if check:
            assert out.returncode == 0, text
        return out

    return run


def new_bucket() -> str:
    return f"s3cmd-{uuid.uuid4().hex[:12]}"


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def tree(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root``."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def keys(s3: Any, bucket: str, prefix: str = "") -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def test_mb_put_get_ls_info_del_rb(s3cmd: S3cmd, s3: Any, tmp_path: Path) -> None:
    rng = random.Random(1)
    b = new_bucket()
    assert f"Bucket 's3://{b}/' created" in s3cmd("mb", f"s3://{b}").stdout
    assert f"s3://{b}" in s3cmd("ls").stdout

    small, big = tmp_path / "small.bin", tmp_path / "big.bin"
    small_data, big_data = rng.randbytes(1000), rng.randbytes(20 * MiB)
    small.write_bytes(small_data)
    big.write_bytes(big_data)
    s3cmd("put", str(small), f"s3://{b}/small.bin")
    s3cmd("put", str(big), f"s3://{b}/dir/big.bin")
    s3cmd("put", "--disable-multipart", str(big), f"s3://{b}/dir/big-single.bin")
    assert s3.head_object(Bucket=b, Key="dir/big.bin")["ETag"].endswith('-2"')  # 15 + 5 MiB
    assert s3.head_object(Bucket=b, Key="dir/big-single.bin")["ETag"] == f'"{md5(big_data)}"'
    assert s3.get_object(Bucket=b, Key="small.bin")["Body"].read() == small_data

    for key, data in (("small.bin", small_data), ("dir/big.bin", big_data)):
        for name in (key, "dir/big-single.bin"):
            target = tmp_path / "get" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            s3cmd("get", "--force", f"s3://{b}/{name}", str(target))
            assert target.read_bytes() == (data if name == key else big_data), name

    listing = s3cmd("ls", f"s3://{b}").stdout
    assert f"DIR  s3://{b}/dir/" in listing
    assert f"1000  s3://{b}/small.bin" in listing
    recursive = s3cmd("ls", "--recursive", f"s3://{b}").stdout
    assert f"{20 * MiB}  s3://{b}/dir/big.bin" in recursive
    assert f"{20 * MiB}  s3://{b}/dir/big-single.bin" in recursive
    assert f"s3://{b}/small.bin" in s3cmd("la").stdout
    assert f"{40 * MiB + 1000}       3 objects s3://{b}/" in s3cmd("du", f"s3://{b}").stdout

    info = s3cmd("info", f"s3://{b}/dir/big.bin").stdout
    assert f"File size: {20 * MiB}" in info
    assert f"MD5 sum:   {md5(big_data)}" in info  # from s3cmd's own x-amz-meta-s3cmd-attrs
    assert f"ACL:       {ACCESS_KEY}: FULL_CONTROL" in info
    info = s3cmd("info", f"s3://{b}").stdout
    assert f"Location:  {REGION}" in info
    assert f"ACL:       {ACCESS_KEY}: FULL_CONTROL" in info

    # cp and mv copy on the server (CopyObject, then PutObjectAcl with the source's ACL)
    s3cmd("cp", f"s3://{b}/small.bin", f"s3://{b}/copy.bin")
    s3cmd("mv", f"s3://{b}/copy.bin", f"s3://{b}/moved.bin")
    s3cmd("modify", "--add-header=Cache-Control:max-age=60", f"s3://{b}/moved.bin")
    head = s3.head_object(Bucket=b, Key="moved.bin")
    assert head["CacheControl"] == "max-age=60"
    assert s3.get_object(Bucket=b, Key="moved.bin")["Body"].read() == small_data
    assert sorted(keys(s3, b)) == ["dir/big-single.bin", "dir/big.bin", "moved.bin", "small.bin"]

    assert f"delete: 's3://{b}/small.bin'" in s3cmd("del", f"s3://{b}/small.bin").stdout
    out = s3cmd("rb", f"s3://{b}", check=False)
    assert out.returncode != 0 and "BucketNotEmpty" in out.stderr, out.stderr
    s3cmd("del", "--recursive", "--force", f"s3://{b}/dir/")
    assert keys(s3, b) == ["moved.bin"]
    s3cmd("del", "--recursive", "--force", f"s3://{b}")
    assert keys(s3, b) == []
    assert f"Bucket 's3://{b}/' removed" in s3cmd("rb", f"s3://{b}").stdout
    assert b not in [x["Name"] for x in s3.list_buckets()["Buckets"]]


def test_put_from_stdin_and_get_to_stdout(s3cmd: S3cmd, s3: Any, tmp_path: Path) -> None:
    """`put -` streams stdin as a multipart upload of unknown size."""
    b = new_bucket()
    s3cmd("mb", f"s3://{b}")
    rng = random.Random(2)
    for key, data in (("stdin-big", rng.randbytes(17 * MiB)), ("stdin-small", b"tiny\n")):
        s3cmd("put", "-", f"s3://{b}/{key}", stdin=data)
        assert s3.get_object(Bucket=b, Key=key)["Body"].read() == data
        s3cmd("get", f"s3://{b}/{key}", "-", stdout=tmp_path / key)
        assert (tmp_path / key).read_bytes() == data
    s3cmd("rb", "--recursive", "--force", f"s3://{b}")


def test_multipart_list_resume_abort_and_copy(s3cmd: S3cmd, s3: Any, tmp_path: Path) -> None:
    """`multipart`, `listmp`, `abortmp`, `put --continue-put` (ListMultipartUploads and
    ListParts, then only the missing part), `get --continue` (a Range GET), and `cp` / `mv`
    above multipart_copy_chunk_size_mb (UploadPartCopy)."""
    b = new_bucket()
    s3cmd("mb", f"s3://{b}")
    data = random.Random(4).randbytes(20 * MiB)
    src = tmp_path / "big.bin"
    src.write_bytes(data)

    # an interrupted s3cmd upload: its first 15 MiB part is there, the second is not
    attrs = {"s3cmd-attrs": f"md5:{md5(data)}/size:{len(data)}"}  # what s3cmd would send
    upload = s3.create_multipart_upload(Bucket=b, Key="resume", Metadata=attrs)["UploadId"]
    s3.upload_part(Bucket=b, Key="resume", UploadId=upload, PartNumber=1, Body=data[: 15 * MiB])
    listed = s3cmd("multipart", f"s3://{b}").stdout
    assert f"s3://{b}/resume\t{upload}" in listed, listed
    parts = s3cmd("listmp", f"s3://{b}/resume", upload).stdout
    assert f'\t1\t"{hashlib.md5(data[: 15 * MiB]).hexdigest()}"\t{15 * MiB}' in parts, parts
    out = s3cmd("put", "--continue-put", str(src), f"s3://{b}/resume")
    assert "size and md5sum match for" in out.stderr and "part 1, skipping" in out.stderr
    assert s3.get_object(Bucket=b, Key="resume")["Body"].read() == data
    assert s3.list_multipart_uploads(Bucket=b).get("Uploads", []) == []

    upload = s3.create_multipart_upload(Bucket=b, Key="aborted")["UploadId"]
    s3cmd("abortmp", f"s3://{b}/aborted", upload)
    assert s3.list_multipart_uploads(Bucket=b).get("Uploads", []) == []

    partial = tmp_path / "partial.bin"
    partial.write_bytes(data[: 5 * MiB])
    s3cmd("get", "--continue", f"s3://{b}/resume", str(partial))
    assert partial.read_bytes() == data

    copy_config = tmp_path / "s3cfg-copy"
    copy_config.write_text((tmp_path / "s3cfg").read_text() + "multipart_copy_chunk_size_mb = 5\n")
    s3cmd("-c", str(copy_config), "cp", f"s3://{b}/resume", f"s3://{b}/copy")
    s3cmd("-c", str(copy_config), "mv", f"s3://{b}/copy", f"s3://{b}/moved")
    assert s3.head_object(Bucket=b, Key="moved")["ETag"].endswith('-4"')  # 4 copied parts
    assert s3.get_object(Bucket=b, Key="moved")["Body"].read() == data
    info = s3cmd("info", f"s3://{b}/moved").stdout
    assert f"MD5 sum:   {md5(data)}" in info, info  # the metadata came along
    s3cmd("rb", "--recursive", "--force", f"s3://{b}")


def test_signurl(s3cmd: S3cmd, s3: Any) -> None:
    """`signurl` always makes a SigV2 query-string URL (Expires, Signature)."""
    b = new_bucket()
    s3cmd("mb", f"s3://{b}")
    key = "dir/a b+c&ü.txt"
    s3.put_object(Bucket=b, Key=key, Body=b"shared")
    url = s3cmd("signurl", f"s3://{b}/{key}", "+600").stdout.strip()
    with urllib.request.urlopen(url, timeout=30) as resp:
        assert resp.read() == b"shared"
    expired = s3cmd("signurl", f"s3://{b}/{key}", str(int(time.time()) - 10)).stdout.strip()
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(expired, timeout=30)
    assert e.value.code == 403
    e.value.close()
    s3cmd("rb", "--recursive", "--force", f"s3://{b}")


def _make_tree(root: Path) -> None:
    rng = random.Random(3)
    names = [
        "plain.txt",
        "empty",
        "a+b=c&d.txt",
        "ünïcödé ✓.txt",
        "100%.txt",
        "tilde~(paren)[x].txt",
        "hash#frag?query*.txt",
        "dir with space/q'uote.txt",
        "deep/er/and/deeper/x;y,z.txt",
    ]
    for i, name in enumerate(names):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(i * 1000))
    for i in range(20):
        (root / "many").mkdir(exist_ok=True)
        (root / "many" / f"f{i:02d}").write_bytes(rng.randbytes(rng.randint(1, 50_000)))
    (root / "large.bin").write_bytes(rng.randbytes(16 * MiB))  # a multipart upload


def _transfers(out: subprocess.CompletedProcess[str], verb: str) -> list[str]:
    return [line for line in out.stdout.splitlines() if line.startswith(f"{verb}: ")]


def test_sync_up_and_down(s3cmd: S3cmd, s3: Any, tmp_path: Path) -> None:
    b = new_bucket()
    s3cmd("mb", f"s3://{b}")
    up, down = tmp_path / "up", tmp_path / "down"
    _make_tree(up)
    expected = tree(up)

    out = s3cmd("sync", f"{up}/", f"s3://{b}/backup/")
    assert len(_transfers(out, "upload")) == len(expected), out.stdout
    assert sorted(keys(s3, b)) == sorted(f"backup/{k}" for k in expected)
    out = s3cmd("sync", f"{up}/", f"s3://{b}/backup/")
    assert _transfers(out, "upload") == [], out.stdout  # nothing changed: nothing sent

    down.mkdir()
    out = s3cmd("sync", f"s3://{b}/backup/", f"{down}/")
    assert len(_transfers(out, "download")) == len(expected), out.stdout
    assert tree(down) == expected
    out = s3cmd("sync", f"s3://{b}/backup/", f"{down}/")
    assert _transfers(out, "download") == [], out.stdout

    # one file changed, one removed: --delete-removed sends exactly that
    (up / "many" / "f03").write_bytes(b"changed")
    (up / "many" / "f04").unlink()
    out = s3cmd("sync", "--delete-removed", f"{up}/", f"s3://{b}/backup/")
    assert [line.split()[1] for line in _transfers(out, "upload")] == [f"'{up}/many/f03'"]
    assert _transfers(out, "delete") == [f"delete: 's3://{b}/backup/many/f04'"], out.stdout
    out = s3cmd("sync", "--delete-removed", f"s3://{b}/backup/", f"{down}/")
    assert len(_transfers(out, "download")) == 1, out.stdout
    assert tree(down) == tree(up)
    s3cmd("rb", "--recursive", "--force", f"s3://{b}")


def test_ls_and_del_page_through_many_keys(s3cmd: S3cmd, s3: Any, bucket: str) -> None:
    """s3cmd lists with ListObjects (V1) pages of 1000 and deletes in DeleteObjects batches."""
    names = [f"d{i % 3}/k{i:05d}" for i in range(2100)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=k.encode()), names))
    recursive = s3cmd("ls", "--recursive", f"s3://{bucket}").stdout.splitlines()
    assert sorted(line.split()[-1] for line in recursive) == [
        f"s3://{bucket}/{k}" for k in sorted(names)
    ]
    assert len(s3cmd("ls", f"s3://{bucket}/d1/").stdout.splitlines()) == 700
    assert s3cmd("ls", f"s3://{bucket}").stdout.split() == [
        "DIR",
        f"s3://{bucket}/d0/",
        "DIR",
        f"s3://{bucket}/d1/",
        "DIR",
        f"s3://{bucket}/d2/",
    ]
    out = s3cmd("del", "--recursive", "--force", f"s3://{bucket}/d0/")
    assert len(out.stdout.splitlines()) == 700
    assert len(keys(s3, bucket)) == 1400
    s3cmd("rb", "--recursive", "--force", f"s3://{bucket}")


def _grants(grants: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(g["Grantee"].get("ID", g["Grantee"].get("URI", "")), g["Permission"]) for g in grants]


def test_setacl(s3cmd: S3cmd, s3: Any, tmp_path: Path) -> None:
    b = new_bucket()
    s3cmd("mb", f"s3://{b}")
    (tmp_path / "f").write_bytes(b"x")
    s3cmd("put", "--acl-private", str(tmp_path / "f"), f"s3://{b}/f")
    owner = s3.get_bucket_acl(Bucket=b)["Owner"]["ID"]
    private = [(owner, "FULL_CONTROL")]

    s3cmd("setacl", "--acl-private", f"s3://{b}/f")
    s3cmd("setacl", "--acl-private", f"s3://{b}")
    s3cmd("setacl", "--acl-private", "--recursive", f"s3://{b}")
    # sharing is not supported: an S3 error, and nothing changed
    for args in (
        ("--acl-public", f"s3://{b}/f"),
        ("--acl-public", f"s3://{b}"),
        ("--acl-grant=read:someone@example.com", f"s3://{b}/f"),
    ):
        out = s3cmd("setacl", *args, check=False)
        assert out.returncode != 0 and "ERROR: S3 error: " in out.stderr, out.stderr
    assert _grants(s3.get_object_acl(Bucket=b, Key="f")["Grants"]) == private
    assert _grants(s3.get_bucket_acl(Bucket=b)["Grants"]) == private
    # put --acl-public: the canned ACL is accepted and ignored (no 5xx, so no s3cmd retries)
    started = time.monotonic()
    s3cmd("put", "--acl-public", str(tmp_path / "f"), f"s3://{b}/g")
    assert time.monotonic() - started < 15
    assert _grants(s3.get_object_acl(Bucket=b, Key="g")["Grants"]) == private
    s3cmd("rb", "--recursive", "--force", f"s3://{b}")


UNSUPPORTED = [
    ("payer", "s3://{b}"),
    ("restore", "s3://{b}/f"),
]


CORS = (
    "<CORSConfiguration><CORSRule><AllowedOrigin>https://app.example</AllowedOrigin>"
    "<AllowedMethod>GET</AllowedMethod><AllowedMethod>PUT</AllowedMethod>"
    "<AllowedHeader>*</AllowedHeader><MaxAgeSeconds>600</MaxAgeSeconds></CORSRule>"
    "</CORSConfiguration>"
)
LIFECYCLE = (
    "<LifecycleConfiguration><Rule><ID>tmp</ID><Filter><Prefix>tmp/</Prefix></Filter>"
    "<Status>Enabled</Status><Expiration><Days>2</Days></Expiration></Rule>"
    "</LifecycleConfiguration>"
)


def test_cors_and_lifecycle(s3cmd: S3cmd, s3: Any, bucket: str, tmp_path: Path) -> None:
    cors, rules = tmp_path / "cors.xml", tmp_path / "lifecycle.xml"
    cors.write_text(CORS)
    rules.write_text(LIFECYCLE)
    info = s3cmd("info", f"s3://{bucket}").stdout
    assert "CORS:      none" in info and "Expiration Rule: none" in info, info

    s3cmd("setcors", str(cors), f"s3://{bucket}")
    (rule,) = s3.get_bucket_cors(Bucket=bucket)["CORSRules"]
    assert rule["AllowedOrigins"] == ["https://app.example"]
    assert rule["AllowedMethods"] == ["GET", "PUT"] and rule["MaxAgeSeconds"] == 600
    assert (
        "<AllowedOrigin>https://app.example</AllowedOrigin>"
        in s3cmd("info", f"s3://{bucket}").stdout
    )
    assert "CORS deleted" in s3cmd("delcors", f"s3://{bucket}").stdout
    assert "CORS:      none" in s3cmd("info", f"s3://{bucket}").stdout

    # expire: s3cmd's own rule (an ID of its making, a Filter with the prefix)
    s3cmd("expire", "--expiry-days=3", "--expiry-prefix=logs/", f"s3://{bucket}")
    (made,) = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert made["Filter"] == {"Prefix": "logs/"} and made["Expiration"] == {"Days": 3}
    assert "<Days>3</Days>" in s3cmd("getlifecycle", f"s3://{bucket}").stdout
    s3cmd("setlifecycle", str(rules), f"s3://{bucket}")
    info = s3cmd("info", f"s3://{bucket}").stdout
    assert "objects with key prefix 'tmp/' will expire in '2' day(s)" in info, info
    s3cmd("dellifecycle", f"s3://{bucket}")
    out = s3cmd("getlifecycle", f"s3://{bucket}", check=False)
    assert out.returncode != 0 and "NoSuchLifecycleConfiguration" in out.stderr, out.stderr


def test_setpolicy_opens_public_reads(
    s3cmd: S3cmd, s3: Any, bucket: str, tmp_path: Path, server: Server
) -> None:
    s3.put_object(Bucket=bucket, Key="pub/f", Body=b"public")
    doc = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/pub/*",
            }
        ],
    }
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(doc))
    s3cmd("setpolicy", str(policy), f"s3://{bucket}")
    assert json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]) == doc
    assert '"s3:GetObject"' in s3cmd("info", f"s3://{bucket}").stdout
    url = f"{server.endpoint}/{bucket}/pub/f"
    with urllib.request.urlopen(url, timeout=30) as resp:  # no signature
        assert resp.read() == b"public"
    s3cmd("delpolicy", f"s3://{bucket}")
    assert "Policy:    none" in s3cmd("info", f"s3://{bucket}").stdout
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(url, timeout=30)
    e.value.close()  # it holds the connection
    assert e.value.code == 403


def test_website_logging_and_payer(s3cmd: S3cmd, s3: Any, bucket: str) -> None:
    """ws-create / ws-info / ws-delete set, show and remove a website configuration; logging
    and the payer read as S3 answers for a bucket without them."""
    args = ("--ws-index=index.html", "--ws-error=404.html", f"s3://{bucket}")
    assert "website configuration created" in s3cmd("ws-create", *args).stdout
    assert s3.get_bucket_website(Bucket=bucket)["ErrorDocument"] == {"Key": "404.html"}
    info = s3cmd("ws-info", f"s3://{bucket}").stdout
    assert "Index document:   index.html" in info and "Error document:   404.html" in info, info
    assert "website configuration deleted" in s3cmd("ws-delete", f"s3://{bucket}").stdout
    info = s3cmd("ws-info", f"s3://{bucket}").stdout
    assert "Unable to receive website configuration" in info, info
    assert "Logging Enabled: False" in s3cmd("accesslog", f"s3://{bucket}").stdout
    assert "Payer:     BucketOwner" in s3cmd("info", f"s3://{bucket}").stdout


def test_unsupported_commands_fail_cleanly(s3cmd: S3cmd, tmp_path: Path) -> None:
    """Each answers 501 NotImplemented, which s3cmd reports as an error (exit code 11)."""
    b = new_bucket()
    s3cmd("mb", f"s3://{b}")
    f = tmp_path / "f"
    f.write_text("<x/>")
    s3cmd("put", str(f), f"s3://{b}/f")
    for args in UNSUPPORTED:
        out = s3cmd(*(a.format(b=b, file=f) for a in args), check=False)
        assert out.returncode != 0, (args, out.stdout)
        assert "ERROR: S3 error: 501 (NotImplemented)" in out.stderr, (args, out.stderr)
    s3cmd("rb", "--recursive", "--force", f"s3://{b}")


def test_put_with_content_encoding(s3cmd: S3cmd, s3: Any, bucket: str, tmp_path: Path) -> None:
    """Pre-compressed web assets: Content-Encoding is metadata, the bytes are stored as sent."""
    data = gzip.compress(b"body { color: red }\n" * 100)
    src = tmp_path / "style.css"
    src.write_bytes(data)
    s3cmd(
        "put",
        "--add-header=Content-Encoding:gzip",
        "--mime-type=text/css",
        str(src),
        f"s3://{bucket}/style.css",
    )
    obj = s3.get_object(Bucket=bucket, Key="style.css")
    assert obj["ContentEncoding"] == "gzip" and obj["ContentType"] == "text/css"
    assert obj["Body"].read() == data


def test_fsck(server: Server) -> None:
    assert server.fsck()["ok"]
