"""Bucket operations against a real `s3dedup serve` with real boto3 (issue #2):
ListBuckets, CreateBucket, DeleteBucket, HeadBucket, GetBucketLocation, GetBucketVersioning,
ACLs, and the sub-resources that answer 501 NotImplemented."""

from __future__ import annotations

import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import Server
from tests.test_s3_objects import assert_error, error_xml, instrument, raw_request

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


@pytest.fixture
def s3(server: Server) -> Any:
    return instrument(server.client())


def new_name(prefix: str = "b") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# -- ListBuckets ---------------------------------------------------------------------------


def test_list_buckets(s3: Any) -> None:
    names = sorted(new_name("list") for _ in range(3))
    before = int(time.time())
    for n in names:
        s3.create_bucket(Bucket=n)
    after = time.time()
    resp = s3.list_buckets()
    listed = [b["Name"] for b in resp["Buckets"]]
    assert set(names) <= set(listed)
    assert listed == sorted(listed)
    assert resp["Owner"]["ID"]
    for b in resp["Buckets"]:
        if b["Name"] in names:
            assert before <= b["CreationDate"].timestamp() <= after
            assert b["CreationDate"].microsecond == 0
    s3.delete_bucket(Bucket=names[0])
    assert names[0] not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_list_buckets_prefix_and_pagination(s3: Any) -> None:
    tag = uuid.uuid4().hex[:8]
    names = [f"page-{tag}-{i}" for i in range(3)]
    for n in names:
        s3.create_bucket(Bucket=n)
    resp = s3.list_buckets(Prefix=f"page-{tag}-")
    assert [b["Name"] for b in resp["Buckets"]] == names
    assert resp["Prefix"] == f"page-{tag}-"
    seen: list[str] = []
    kw: dict[str, Any] = {"Prefix": f"page-{tag}-", "MaxBuckets": 2}
    while True:
        page = s3.list_buckets(**kw)
        assert len(page["Buckets"]) <= 2
        seen += [b["Name"] for b in page["Buckets"]]
        if "ContinuationToken" not in page:
            break
        kw["ContinuationToken"] = page["ContinuationToken"]
    assert seen == names


# -- CreateBucket --------------------------------------------------------------------------

VALID_NAMES = [
    "abc",
    "a" * 63,
    "a.b-c",
    "0123456789",
    "my.bucket.name",
    "a-b-c-d",
    "xn-single-dash",
    "s3alias-prefix-ok",
]

INVALID_NAMES = [
    "ab",
    "a" * 64,
    "UPPER",
    "upperCase",
    "under_score",
    "-leading",
    "trailing-",
    ".leading",
    "trailing.",
    "dou..ble",
    "dot.-dash",
    "dash-.dot",
    "192.168.5.4",
    "xn--punycode",
    "sthree-reserved",
    "name-s3alias",
    "name--ol-s3",
]


@pytest.mark.parametrize("base", VALID_NAMES)
def test_create_bucket_valid_names(s3: Any, base: str) -> None:
    suffix = uuid.uuid4().hex[:6]
    name = f"{base}-{suffix}" if len(base) <= 56 else suffix + base[len(suffix) :]
    assert len(name) <= 63
    resp = s3.create_bucket(Bucket=name)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert resp["Location"] == f"/{name}"
    s3.head_bucket(Bucket=name)
    s3.delete_bucket(Bucket=name)


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_create_bucket_invalid_names(s3: Any, name: str) -> None:
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket=name)
    assert_error(e, "InvalidBucketName", 400)
    assert e.value.response["Error"].get("BucketName") == name
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_create_bucket_again_by_owner_is_ok(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"kept")
    resp = s3.create_bucket(Bucket=bucket)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    # the bucket and its content are untouched
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"kept"


def test_create_bucket_location_constraint(s3: Any) -> None:
    name = new_name()
    resp = s3.create_bucket(
        Bucket=name, CreateBucketConfiguration={"LocationConstraint": "us-east-1"}
    )
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    s3.head_bucket(Bucket=name)
    other = new_name()
    for constraint in ("eu-west-1", "nowhere"):
        with pytest.raises(ClientError) as e:
            s3.create_bucket(
                Bucket=other, CreateBucketConfiguration={"LocationConstraint": constraint}
            )
        code = e.value.response["Error"]["Code"]
        assert code in ("InvalidLocationConstraint", "IllegalLocationConstraintException")
        assert_error(e, code, 400)
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket=other)
    assert_error(e, "404", 404)


def test_create_bucket_malformed_configuration(server: Server) -> None:
    name = new_name()
    status, _, body = raw_request(server, "PUT", f"/{name}", body=b"<NotAConfig/>")
    assert status == 400
    assert error_xml(body)["Code"] == "MalformedXML"
    status, _, body = raw_request(server, "PUT", f"/{name}", body=b"<<<not xml")
    assert status == 400
    assert error_xml(body)["Code"] == "MalformedXML"
    status, _, _ = raw_request(server, "HEAD", f"/{name}")
    assert status == 404


def test_create_bucket_empty_configuration(server: Server, s3: Any) -> None:
    name = new_name()
    body = (
        b'<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"</CreateBucketConfiguration>"
    )
    status, h, resp = raw_request(server, "PUT", f"/{name}", body=body)
    assert status == 200, resp
    assert h["location"] == f"/{name}"
    s3.head_bucket(Bucket=name)


def test_create_bucket_object_lock_not_implemented(s3: Any) -> None:
    name = new_name()
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    assert_error(e, "NotImplemented", 501)
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket=name)
    assert_error(e, "404", 404)
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=False)
    s3.head_bucket(Bucket=name)


# -- DeleteBucket --------------------------------------------------------------------------


def test_delete_bucket(s3: Any) -> None:
    name = new_name()
    s3.create_bucket(Bucket=name)
    resp = s3.delete_bucket(Bucket=name)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket=name)
    assert_error(e, "404", 404)
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket=name)
    assert_error(e, "NoSuchBucket", 404)
    assert e.value.response["Error"]["BucketName"] == name


def test_delete_bucket_not_empty(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="x", Body=b"x")
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket=bucket)
    assert_error(e, "BucketNotEmpty", 409)
    assert e.value.response["Error"]["BucketName"] == bucket
    s3.head_bucket(Bucket=bucket)
    s3.delete_object(Bucket=bucket, Key="x")
    assert s3.delete_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_recreate_after_delete_is_empty(s3: Any) -> None:
    name = new_name()
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="x", Body=b"x")
    s3.delete_object(Bucket=name, Key="x")
    s3.delete_bucket(Bucket=name)
    s3.create_bucket(Bucket=name)
    assert s3.list_objects_v2(Bucket=name)["KeyCount"] == 0


# -- HeadBucket ----------------------------------------------------------------------------


def test_head_bucket(server: Server, s3: Any, bucket: str) -> None:
    resp = s3.head_bucket(Bucket=bucket)
    h = resp["ResponseMetadata"]["HTTPHeaders"]
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert h["x-amz-bucket-region"] == "us-east-1"
    assert h["x-amz-request-id"]
    status, h, body = raw_request(server, "HEAD", f"/{bucket}")
    assert (status, body) == (200, b"")
    assert h.get("content-length", "0") == "0"
    missing = new_name("missing")
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket=missing)
    assert_error(e, "404", 404)
    status, h, body = raw_request(server, "HEAD", f"/{missing}")
    assert (status, body) == (404, b"")
    assert h["x-amz-request-id"]
    assert h.get("content-length") == "0"


# -- location, versioning ------------------------------------------------------------------


def test_get_bucket_location(server: Server, s3: Any, bucket: str) -> None:
    resp = s3.get_bucket_location(Bucket=bucket)
    assert resp.get("LocationConstraint") is None  # us-east-1 is the empty constraint
    status, _, body = raw_request(server, "GET", f"/{bucket}", query="location")
    assert status == 200
    root = ET.fromstring(body)
    assert root.tag == NS + "LocationConstraint"
    assert not (root.text or "").strip()
    with pytest.raises(ClientError) as e:
        s3.get_bucket_location(Bucket=new_name("missing"))
    assert_error(e, "NoSuchBucket", 404)


def test_get_bucket_versioning(server: Server, s3: Any, bucket: str) -> None:
    resp = s3.get_bucket_versioning(Bucket=bucket)
    assert "Status" not in resp
    assert "MFADelete" not in resp
    status, _, body = raw_request(server, "GET", f"/{bucket}", query="versioning")
    assert status == 200
    root = ET.fromstring(body)
    assert root.tag == NS + "VersioningConfiguration"
    assert list(root) == []
    with pytest.raises(ClientError) as e:
        s3.get_bucket_versioning(Bucket=new_name("missing"))
    assert_error(e, "NoSuchBucket", 404)


# -- ACLs ----------------------------------------------------------------------------------


def _assert_owner_full_control(resp: dict[str, Any], owner_id: str) -> None:
    assert resp["Owner"]["ID"] == owner_id
    assert resp["Grants"] == [
        {
            "Grantee": {
                "Type": "CanonicalUser",
                "ID": owner_id,
                "DisplayName": resp["Owner"]["DisplayName"],
            },
            "Permission": "FULL_CONTROL",
        }
    ]


def test_get_bucket_and_object_acl(s3: Any, bucket: str) -> None:
    owner_id = s3.list_buckets()["Owner"]["ID"]
    _assert_owner_full_control(s3.get_bucket_acl(Bucket=bucket), owner_id)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    _assert_owner_full_control(s3.get_object_acl(Bucket=bucket, Key="k"), owner_id)
    with pytest.raises(ClientError) as e:
        s3.get_object_acl(Bucket=bucket, Key="missing")
    assert_error(e, "NoSuchKey", 404)
    with pytest.raises(ClientError) as e:
        s3.get_bucket_acl(Bucket=new_name("missing"))
    assert_error(e, "NoSuchBucket", 404)


def test_put_acl_private_accepted(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    r = s3.put_bucket_acl(Bucket=bucket, ACL="private")
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    r = s3.put_object_acl(Bucket=bucket, Key="k", ACL="private")
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    # a policy that only grants the owner FULL_CONTROL changes nothing either
    policy = s3.get_bucket_acl(Bucket=bucket)
    policy.pop("ResponseMetadata")
    s3.put_bucket_acl(Bucket=bucket, AccessControlPolicy=policy)
    s3.put_object_acl(Bucket=bucket, Key="k", AccessControlPolicy=policy)
    # PutObject / CopyObject / CreateBucket with an owner-only canned ACL are accepted too
    s3.put_object(Bucket=bucket, Key="k2", Body=b"x", ACL="private")
    for acl in ("bucket-owner-full-control", "bucket-owner-read"):
        s3.put_object(Bucket=bucket, Key="k3", Body=b"x", ACL=acl)
        s3.put_object_acl(Bucket=bucket, Key="k3", ACL=acl)
        s3.copy_object(Bucket=bucket, Key="k4", CopySource=f"{bucket}/k3", ACL=acl)
    name = new_name()
    s3.create_bucket(Bucket=name, ACL="private")
    s3.head_bucket(Bucket=name)


@pytest.mark.parametrize("acl", ["public-read", "public-read-write", "authenticated-read"])
def test_put_acl_other_canned_not_supported(s3: Any, bucket: str, acl: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    with pytest.raises(ClientError) as e:
        s3.put_bucket_acl(Bucket=bucket, ACL=acl)
    assert_error(e, "AccessControlListNotSupported", 400)
    with pytest.raises(ClientError) as e:
        s3.put_object_acl(Bucket=bucket, Key="k", ACL=acl)
    assert_error(e, "AccessControlListNotSupported", 400)


def test_put_acl_grants_not_supported(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as e:
        s3.put_bucket_acl(
            Bucket=bucket, GrantRead='uri="http://acs.amazonaws.com/groups/global/AllUsers"'
        )
    assert_error(e, "AccessControlListNotSupported", 400)
    owner = s3.list_buckets()["Owner"]
    policy = {
        "Owner": owner,
        "Grants": [
            {"Grantee": {"Type": "CanonicalUser", "ID": owner["ID"]}, "Permission": "FULL_CONTROL"},
            {
                "Grantee": {
                    "Type": "Group",
                    "URI": "http://acs.amazonaws.com/groups/global/AllUsers",
                },
                "Permission": "READ",
            },
        ],
    }
    with pytest.raises(ClientError) as e:
        s3.put_bucket_acl(Bucket=bucket, AccessControlPolicy=policy)
    assert_error(e, "AccessControlListNotSupported", 400)


def test_put_acl_missing_targets(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as e:
        s3.put_object_acl(Bucket=bucket, Key="missing", ACL="private")
    assert_error(e, "NoSuchKey", 404)
    with pytest.raises(ClientError) as e:
        s3.put_bucket_acl(Bucket=new_name("missing"), ACL="private")
    assert_error(e, "NoSuchBucket", 404)


def _private(s3: Any, **target: str) -> None:
    acl = s3.get_object_acl(**target) if "Key" in target else s3.get_bucket_acl(**target)
    assert [g["Permission"] for g in acl["Grants"]] == ["FULL_CONTROL"]
    assert acl["Grants"][0]["Grantee"]["ID"] == acl["Owner"]["ID"]


def test_public_read_on_writes_is_accepted_and_ignored(s3: Any, bucket: str) -> None:
    """As the project asked for now: x-amz-acl private|public-read on a write is accepted
    and ignored; what is stored stays private to the owner."""
    s3.put_object(Bucket=bucket, Key="pub", Body=b"x", ACL="public-read")
    _private(s3, Bucket=bucket, Key="pub")
    s3.copy_object(Bucket=bucket, Key="pub2", CopySource=f"{bucket}/pub", ACL="public-read")
    _private(s3, Bucket=bucket, Key="pub2")
    name = new_name()
    s3.create_bucket(Bucket=name, ACL="public-read")
    _private(s3, Bucket=name)
    s3.delete_bucket(Bucket=name)


def test_other_acls_on_writes_are_refused(s3: Any, bucket: str) -> None:
    for kw in ({"ACL": "public-read-write"}, {"GrantRead": 'id="someone-else"'}):
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket=bucket, Key="pub", Body=b"x", **kw)
        assert_error(e, "AccessControlListNotSupported", 400)
        with pytest.raises(ClientError) as e:
            s3.head_object(Bucket=bucket, Key="pub")
        assert_error(e, "404", 404)
    name = new_name()
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket=name, ACL="authenticated-read")
    assert_error(e, "AccessControlListNotSupported", 400)
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket=name)
    assert_error(e, "404", 404)


# -- sub-resources that are not implemented ------------------------------------------------

Call = Callable[[Any, str], Any]

NOT_IMPLEMENTED: dict[str, Call] = {
    "put_bucket_versioning": lambda s3, b: s3.put_bucket_versioning(
        Bucket=b, VersioningConfiguration={"Status": "Enabled"}
    ),
    "put_bucket_encryption": lambda s3, b: s3.put_bucket_encryption(
        Bucket=b,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    ),
    "put_bucket_logging": lambda s3, b: s3.put_bucket_logging(Bucket=b, BucketLoggingStatus={}),
    "put_public_access_block": lambda s3, b: s3.put_public_access_block(
        Bucket=b, PublicAccessBlockConfiguration={"BlockPublicPolicy": True}
    ),
    "put_bucket_request_payment": lambda s3, b: s3.put_bucket_request_payment(
        Bucket=b, RequestPaymentConfiguration={"Payer": "Requester"}
    ),
    "put_object_legal_hold": lambda s3, b: s3.put_object_legal_hold(
        Bucket=b, Key="obj", LegalHold={"Status": "ON"}
    ),
}


# What S3 answers about a feature a bucket does not have: every s3dedup bucket (absent.py)
NOT_CONFIGURED = {
    "get_bucket_encryption": "ServerSideEncryptionConfigurationNotFoundError",
    "get_bucket_replication": "ReplicationConfigurationNotFoundError",
    "get_object_lock_configuration": "ObjectLockConfigurationNotFoundError",
    "get_public_access_block": "NoSuchPublicAccessBlockConfiguration",
}
EMPTY = {
    "get_bucket_ownership_controls": {
        "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    },
    "get_bucket_request_payment": {"Payer": "BucketOwner"},
    "get_bucket_logging": {},
    "get_bucket_accelerate_configuration": {},
    "get_bucket_notification_configuration": {},
    "list_bucket_metrics_configurations": {"IsTruncated": False},
    "list_bucket_inventory_configurations": {"IsTruncated": False},
    "list_bucket_analytics_configurations": {"IsTruncated": False},
    "list_bucket_intelligent_tiering_configurations": {"IsTruncated": False},
}


@pytest.mark.parametrize("op", sorted(NOT_CONFIGURED))
def test_absent_configurations_are_not_found(s3: Any, ni_bucket: str, op: str) -> None:
    for bucket, code in ((ni_bucket, NOT_CONFIGURED[op]), ("no-such-bucket-ab", "NoSuchBucket")):
        with pytest.raises(ClientError) as e:
            getattr(s3, op)(Bucket=bucket)
        assert_error(e, code, 404)


@pytest.mark.parametrize("op", sorted(EMPTY))
def test_absent_features_read_empty(s3: Any, ni_bucket: str, op: str) -> None:
    got = getattr(s3, op)(Bucket=ni_bucket)
    got.pop("ResponseMetadata")
    assert got == EMPTY[op]


def test_no_object_lock_on_objects(s3: Any, ni_bucket: str) -> None:
    for call in (s3.get_object_retention, s3.get_object_legal_hold):
        with pytest.raises(ClientError) as e:
            call(Bucket=ni_bucket, Key="obj")
        assert_error(e, "InvalidRequest", 400)
        with pytest.raises(ClientError) as e:
            call(Bucket=ni_bucket, Key="missing")
        assert_error(e, "NoSuchKey", 404)


def test_deleting_absent_configurations(s3: Any, ni_bucket: str) -> None:
    for call in (
        s3.delete_bucket_encryption,
        s3.delete_bucket_replication,
        s3.delete_public_access_block,
    ):
        assert call(Bucket=ni_bucket)["ResponseMetadata"]["HTTPStatusCode"] == 204


@pytest.fixture(scope="module")
def ni_bucket(server: Server) -> str:
    s3 = server.client()
    name = new_name("ni")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="obj", Body=b"object")
    return name


@pytest.mark.parametrize("op", sorted(NOT_IMPLEMENTED))
def test_sub_resource_not_implemented(s3: Any, ni_bucket: str, op: str) -> None:
    with pytest.raises(ClientError) as e:
        NOT_IMPLEMENTED[op](s3, ni_bucket)
    assert_error(e, "NotImplemented", 501)
    # nothing happened to the bucket or its object
    assert s3.get_object(Bucket=ni_bucket, Key="obj")["Body"].read() == b"object"


def test_fsck_clean_after_buckets(server: Server) -> None:
    report = server.fsck()
    assert report["ok"], report["output"]
