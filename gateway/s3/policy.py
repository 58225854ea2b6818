"""Bucket policies, to the extent s3dedup can honour them exactly: public reads.

s3dedup has one user, the owner, who may do everything; a bucket policy can only open a
bucket to anonymous readers. So a policy is accepted when each statement *allows* everyone
(``"Principal": "*"`` or ``{"AWS": "*"}``) some of ``s3:GetObject`` / ``s3:GetObjectVersion``
on object ARNs of this bucket (``*`` and ``?`` wildcards in the key part), ``s3:ListBucket``
or ``s3:GetBucketLocation`` on the bucket's ARN. That covers the usual "public read" and
"public download" policies (AWS's user guide examples, MinIO's ``download`` preset).

Anything this cannot enforce — Deny, Condition, NotPrincipal/NotAction/NotResource, a named
principal, another action — answers 501 NotImplemented rather than being stored and
silently ignored. A document that is not a valid policy answers 400 MalformedPolicy with
AWS's messages.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from gateway.s3.errors import S3Error

MAX_POLICY_BYTES = 20 * 1024
VERSIONS = ("2012-10-17", "2008-10-17")
OBJECT_ACTIONS = frozenset({"s3:GetObject", "s3:GetObjectVersion"})
BUCKET_ACTIONS = frozenset({"s3:ListBucket", "s3:GetBucketLocation"})
STATEMENT_KEYS = frozenset(
    {"Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource"}
    | {"NotResource", "Condition"}
)
ARN = "arn:aws:s3:::"
_ACTION = re.compile(r"s3:[A-Za-z0-9*?]+", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class PublicAccess:
    """What anyone may do in one bucket, by its policy."""

    read_patterns: tuple[str, ...] = ()  # object key patterns anyone may GET / HEAD
    list_bucket: bool = False
    bucket_location: bool = False

    def can_read(self, key: str) -> bool:
        return any(_glob(p, key) for p in self.read_patterns)

    @property
    def is_public(self) -> bool:
        return bool(self.read_patterns or self.list_bucket or self.bucket_location)


def _glob(pattern: str, text: str) -> bool:
    """IAM resource matching: ``*`` any run of characters (``/`` included), ``?`` one."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, re.DOTALL) is not None


def _malformed(message: str) -> S3Error:
    return S3Error("MalformedPolicy", message)


def _unsupported(what: str) -> S3Error:
    return S3Error(
        "NotImplemented",
        f"{what}: s3dedup's bucket policies only grant everyone reads (s3:GetObject,"
        " s3:GetObjectVersion, s3:ListBucket, s3:GetBucketLocation).",
    )


def _strings(value: Any, field: str) -> list[str]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, str) for v in items):
        raise _malformed(f"Policy has invalid {field.lower()}")
    return items


def _everyone(principal: Any) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, dict) and set(principal) == {"AWS"}:
        aws = principal["AWS"]
        return bool(aws == "*" or aws == ["*"])
    return False


def parse(text: bytes, bucket: str) -> PublicAccess:
    """Check a policy document for ``bucket``; the access it grants, or the S3 error."""
    if len(text) > MAX_POLICY_BYTES:
        raise _malformed("Policies must be less than 20 KB")
    try:
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _malformed("This policy contains invalid Json") from exc
    if not isinstance(doc, dict):
        raise _malformed("This policy contains invalid Json")
    if "Version" in doc and doc["Version"] not in VERSIONS:
        raise _malformed("The policy must contain a valid version string")
    if "Statement" not in doc:
        raise _malformed("Missing required field Statement")
    statements = doc["Statement"] if isinstance(doc["Statement"], list) else [doc["Statement"]]
    if not statements or not all(isinstance(s, dict) for s in statements):
        raise _malformed("Missing required field Statement")
    patterns: list[str] = []
    list_bucket = location = False
    for st in statements:
        for key in st:
            if key not in STATEMENT_KEYS:
                raise _malformed(f"Unknown field {key}")
        if "Effect" not in st:
            raise _malformed("Missing required field Effect")
        for field in ("Principal", "Action", "Resource"):
            if field not in st and "Not" + field not in st:
                raise _malformed(f"Missing required field {field}")
        if st["Effect"] not in ("Allow", "Deny"):
            raise _malformed(f"Invalid effect: {st['Effect']}")
        for field in ("NotPrincipal", "NotAction", "NotResource", "Condition"):
            if field in st:
                raise _unsupported(field)
        if st["Effect"] == "Deny":
            raise _unsupported("Deny")
        if not _everyone(st["Principal"]):
            raise _unsupported("A principal other than everyone ('*')")
        actions = _strings(st["Action"], "Action")
        if not all(_ACTION.fullmatch(a) for a in actions):
            raise _malformed("Policy has invalid action")
        resources = _strings(st["Resource"], "Resource")
        keys: list[str] = []
        on_bucket = False
        for res in resources:
            name, slash, key = res.removeprefix(ARN).partition("/")
            if not res.startswith(ARN) or name != bucket:
                raise _malformed("Policy has invalid resource")
            if slash:
                keys.append(key)
            else:
                on_bucket = True
        applies = False
        for action in actions:
            if action in OBJECT_ACTIONS:
                patterns += keys
                applies |= bool(keys)
            elif action in BUCKET_ACTIONS:
                list_bucket |= on_bucket and action == "s3:ListBucket"
                location |= on_bucket and action == "s3:GetBucketLocation"
                applies |= on_bucket
            else:
                raise _unsupported(f"The action {action}")
        if not applies:
            raise _malformed("Action does not apply to any resource(s) in statement")
    return PublicAccess(tuple(dict.fromkeys(patterns)), list_bucket, location)


@lru_cache(maxsize=256)
def access_of(text: str, bucket: str) -> PublicAccess:
    """The access a stored (already checked) policy grants; cached, for every anonymous
    request to the bucket needs it."""
    return parse(text.encode(), bucket)
