"""GetObjectAttributes (API reference: GetObjectAttributes, GetObjectAttributesParts): the
requested attributes only; a composite checksum without its "-N" part count (as S3 answers,
unlike HEAD); parts of a multipart object paged by x-amz-max-parts /
x-amz-part-number-marker."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import Aws, Server
from tests.test_s3_objects import assert_error, instrument, raw_request

MiB = 1024 * 1024
ALL = ["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"]


@pytest.fixture
def s3(server: Server) -> Any:
    return instrument(server.client())


def test_single_put(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"hello", ChecksumAlgorithm="CRC32")
    head = s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    got = s3.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=ALL)
    assert got["ETag"] == head["ETag"].strip('"')  # without quotes, as S3
    assert got["ObjectSize"] == 5 and got["StorageClass"] == "STANDARD"
    assert got["Checksum"] == {
        "ChecksumCRC32": head["ChecksumCRC32"],
        "ChecksumType": "FULL_OBJECT",
    }
    assert "ObjectParts" not in got  # one PUT: no parts
    assert got["LastModified"] == head["LastModified"]
    only = s3.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=["ObjectSize"])
    assert only["ObjectSize"] == 5 and "ETag" not in only and "Checksum" not in only


def test_multipart_parts_and_composite_checksum(s3: Any, bucket: str) -> None:
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp", ChecksumAlgorithm="SHA256")
    sizes = [5 * MiB, 5 * MiB, 1000]
    parts = []
    for n, size in enumerate(sizes, 1):
        p = s3.upload_part(
            Bucket=bucket, Key="mp", UploadId=up["UploadId"], PartNumber=n,
            Body=bytes([n]) * size, ChecksumAlgorithm="SHA256",
        )  # fmt: skip
        parts.append({"PartNumber": n, "ETag": p["ETag"], "ChecksumSHA256": p["ChecksumSHA256"]})
    s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=up["UploadId"], MultipartUpload={"Parts": parts}
    )
    head = s3.head_object(Bucket=bucket, Key="mp", ChecksumMode="ENABLED")
    got = s3.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=ALL)
    assert head["ChecksumSHA256"].endswith("-3")
    assert got["Checksum"] == {
        "ChecksumSHA256": head["ChecksumSHA256"].split("-")[0],
        "ChecksumType": "COMPOSITE",
    }
    op = got["ObjectParts"]
    assert (op["TotalPartsCount"], op["IsTruncated"]) == (3, False)
    assert [(p["PartNumber"], p["Size"]) for p in op["Parts"]] == [
        (1, 5 * MiB),
        (2, 5 * MiB),
        (3, 1000),
    ]
    page = s3.get_object_attributes(
        Bucket=bucket, Key="mp", ObjectAttributes=["ObjectParts"], MaxParts=2
    )["ObjectParts"]
    assert [p["PartNumber"] for p in page["Parts"]] == [1, 2]
    assert (page["IsTruncated"], page["NextPartNumberMarker"], page["MaxParts"]) == (True, 2, 2)
    rest = s3.get_object_attributes(
        Bucket=bucket, Key="mp", ObjectAttributes=["ObjectParts"], PartNumberMarker=2
    )["ObjectParts"]
    assert [p["PartNumber"] for p in rest["Parts"]] == [3] and rest["IsTruncated"] is False


def test_refusals(server: Server, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    status, _, body = raw_request(server, "GET", f"/{bucket}/k", query="attributes")
    assert status == 400 and b"<Code>InvalidRequest</Code>" in body, body
    status, _, body = raw_request(
        server, "GET", f"/{bucket}/k", query="attributes",
        headers={"x-amz-object-attributes": "ETag,Colour"},
    )  # fmt: skip
    assert status == 400 and b"<Code>InvalidArgument</Code>" in body, body
    for header in ("x-amz-max-parts", "x-amz-part-number-marker"):
        for value in ("-1", "two", "9" * 5000):  # the last was a 500
            status, _, body = raw_request(
                server, "GET", f"/{bucket}/k", query="attributes",
                headers={"x-amz-object-attributes": "ObjectParts", header: value},
            )  # fmt: skip
            assert status == 400 and b"<Code>InvalidArgument</Code>" in body, (header, body)
    with pytest.raises(ClientError) as e:
        s3.get_object_attributes(Bucket=bucket, Key="missing", ObjectAttributes=["ETag"])
    assert_error(e, "NoSuchKey", 404)


def test_aws_cli(aws: Aws, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"hello")
    out = aws(
        "s3api", "get-object-attributes", "--bucket", bucket, "--key", "k",
        "--object-attributes", "ETag", "ObjectSize",
    )  # fmt: skip
    got = json.loads(out.stdout)
    assert got["ObjectSize"] == 5 and got["ETag"] == "5d41402abc4b2a76b9719d911017c592"
