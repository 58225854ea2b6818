"""Version ids in a store whose buckets are never versioned: every object is its one version
"null", as in an S3 bucket that was never versioned. ListObjectVersions lists them; a
versionId of "null" works wherever S3 takes one; any other version id is refused — never
answered with the current object.

AWS references: ListObjectVersions (API reference; key-marker / version-id-marker), "Working
with objects in a versioning-suspended bucket" and "How S3 Versioning works" (objects stored
before versioning have version id null), GetObject / DeleteObject / DeleteObjects /
CopyObject (versionId, x-amz-copy-source ?versionId=).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import Aws, Server
from tests.test_s3_objects import assert_error, instrument


@pytest.fixture
def s3(server: Server) -> Any:
    return instrument(server.client())


def fill(s3: Any, bucket: str, *keys: str) -> None:
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())


def test_list_object_versions(s3: Any, bucket: str) -> None:
    fill(s3, bucket, "a", "dir/b", "dir/c", "e f")
    out = s3.list_object_versions(Bucket=bucket)
    assert [(v["Key"], v["VersionId"], v["IsLatest"], v["Size"]) for v in out["Versions"]] == [
        ("a", "null", True, 1),
        ("dir/b", "null", True, 5),
        ("dir/c", "null", True, 5),
        ("e f", "null", True, 3),
    ]
    head = s3.head_object(Bucket=bucket, Key="a")
    assert out["Versions"][0]["ETag"] == head["ETag"]
    assert out["Versions"][0]["LastModified"] == head["LastModified"]
    assert "DeleteMarkers" not in out and out["IsTruncated"] is False
    delimited = s3.list_object_versions(Bucket=bucket, Delimiter="/", Prefix="")
    assert [v["Key"] for v in delimited["Versions"]] == ["a", "e f"]
    assert delimited["CommonPrefixes"] == [{"Prefix": "dir/"}]
    # asked for by the caller, botocore leaves the encoding (it decodes what it asked for)
    encoded = s3.list_object_versions(Bucket=bucket, Prefix="e", EncodingType="url")
    assert [v["Key"] for v in encoded["Versions"]] == ["e%20f"]


def test_list_object_versions_pages(s3: Any, bucket: str) -> None:
    keys = [f"k{i:02d}" for i in range(7)]
    fill(s3, bucket, *keys)
    page = s3.list_object_versions(Bucket=bucket, MaxKeys=3)
    assert page["IsTruncated"] is True
    assert (page["NextKeyMarker"], page["NextVersionIdMarker"]) == ("k02", "null")
    seen = []
    for page in s3.get_paginator("list_object_versions").paginate(
        Bucket=bucket, PaginationConfig={"PageSize": 3}
    ):
        seen += [v["Key"] for v in page.get("Versions", [])]
    assert seen == keys
    after = s3.list_object_versions(Bucket=bucket, KeyMarker="k03", VersionIdMarker="null")
    assert [v["Key"] for v in after["Versions"]] == keys[4:]


@pytest.mark.parametrize(
    "params",
    [{"VersionIdMarker": "null"}, {"KeyMarker": "a", "VersionIdMarker": "3HL4kqtJlcpXroDTDm"}],
    ids=["marker-without-key", "unknown-version"],
)
def test_list_object_versions_refuses(s3: Any, bucket: str, params: dict[str, str]) -> None:
    with pytest.raises(ClientError) as e:
        s3.list_object_versions(Bucket=bucket, **params)
    assert_error(e, "InvalidArgument", 400)


def test_the_null_version_is_the_object(s3: Any, bucket: str) -> None:
    fill(s3, bucket, "k")
    got = s3.get_object(Bucket=bucket, Key="k", VersionId="null")
    assert got["Body"].read() == b"k" and got["VersionId"] == "null"
    assert s3.head_object(Bucket=bucket, Key="k", VersionId="null")["VersionId"] == "null"
    s3.put_object_tagging(
        Bucket=bucket, Key="k", VersionId="null", Tagging={"TagSet": [{"Key": "t", "Value": "1"}]}
    )
    tags = s3.get_object_tagging(Bucket=bucket, Key="k", VersionId="null")
    assert tags["TagSet"] == [{"Key": "t", "Value": "1"}]
    s3.copy_object(
        Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "k", "VersionId": "null"}
    )
    assert s3.get_object(Bucket=bucket, Key="copy")["Body"].read() == b"k"
    deleted = s3.delete_object(Bucket=bucket, Key="k", VersionId="null")
    assert deleted["VersionId"] == "null"
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="k")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_other_versions_are_refused_never_served(s3: Any, bucket: str) -> None:
    fill(s3, bucket, "k")
    other = "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY"
    calls = [
        lambda: s3.get_object(Bucket=bucket, Key="k", VersionId=other),
        lambda: s3.head_object(Bucket=bucket, Key="k", VersionId=other),
        lambda: s3.delete_object(Bucket=bucket, Key="k", VersionId=other),
        lambda: s3.get_object_tagging(Bucket=bucket, Key="k", VersionId=other),
        lambda: s3.copy_object(
            Bucket=bucket, Key="c", CopySource={"Bucket": bucket, "Key": "k", "VersionId": other}
        ),
    ]
    for call in calls:
        with pytest.raises(ClientError) as e:
            call()
        if e.value.operation_name == "HeadObject":  # no body: the status tells
            assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        else:
            assert_error(e, "InvalidArgument", 400)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"k"  # not deleted
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="c")


def test_delete_objects_with_version_ids(s3: Any, bucket: str) -> None:
    fill(s3, bucket, "a", "b", "c")
    out = s3.delete_objects(
        Bucket=bucket,
        Delete={
            "Objects": [
                {"Key": "a", "VersionId": "null"},
                {"Key": "b", "VersionId": "not-a-version"},
                {"Key": "c"},
            ]
        },
    )
    assert sorted((d["Key"], d.get("VersionId")) for d in out["Deleted"]) == [
        ("a", "null"),
        ("c", None),
    ]
    assert [(e["Key"], e["VersionId"], e["Code"]) for e in out["Errors"]] == [
        ("b", "not-a-version", "InvalidArgument")
    ]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["b"]


def test_aws_cli_lists_versions(aws: Aws, s3: Any, bucket: str) -> None:
    fill(s3, bucket, "one", "two/three")
    out = json.loads(aws("s3api", "list-object-versions", "--bucket", bucket).stdout)
    assert [(v["Key"], v["VersionId"]) for v in out["Versions"]] == [
        ("one", "null"),
        ("two/three", "null"),
    ]
