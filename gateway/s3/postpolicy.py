"""The policy of a browser POST upload (PostObject): a base64 JSON document with an
``expiration`` and ``conditions`` that every form field must satisfy.

Following AWS's "Creating a POST policy": conditions are ``{"field": "value"}`` or
``["eq", "$field", "value"]`` (exact), ``["starts-with", "$field", "prefix"]`` (``""``: any
value) and ``["content-length-range", min, max]``; field names are case-insensitive; every
form field except ``x-amz-signature``, ``signature``, ``awsaccesskeyid``, ``file``,
``policy`` and ``x-ignore-*`` must be named by a condition. A failure is 403 AccessDenied
"Invalid according to Policy: ..." as S3 answers it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.s3.errors import S3Error

EXEMPT = frozenset({"x-amz-signature", "signature", "awsaccesskeyid", "file", "policy"})
MAX_POLICY_BYTES = 20 * 1024


@dataclass(frozen=True)
class PostPolicy:
    expiration: datetime
    exact: tuple[tuple[str, str], ...]  # (field, value)
    prefixes: tuple[tuple[str, str], ...]  # (field, prefix)
    length: tuple[int, int] | None  # content-length-range

    def check(self, form: Mapping[str, str], bucket: str, now: datetime) -> None:
        """Refuse the form (fields by lower-case name) unless every condition holds and
        names every field. ``bucket`` is the ``bucket`` a condition may name."""
        if now >= self.expiration:
            raise _denied("Policy expired.")
        fields = {**form, "bucket": bucket}
        for name, value in self.exact:
            if fields.get(name) != value:
                raise _denied(f'Policy Condition failed: ["eq", "${name}", "{value}"]')
        for name, prefix in self.prefixes:
            if not fields.get(name, "").startswith(prefix):
                raise _denied(f'Policy Condition failed: ["starts-with", "${name}", "{prefix}"]')
        named = {n for n, _ in self.exact} | {n for n, _ in self.prefixes}
        extra = [
            n for n in form if n not in EXEMPT and n not in named and not n.startswith("x-ignore-")
        ]
        if extra:
            raise _denied(f"Extra input fields: {', '.join(extra)}")

    def check_size(self, size: int, *, final: bool) -> None:
        """content-length-range, while the file streams in (``final``: all of it is in)."""
        if self.length is None:
            return
        low, high = self.length
        if size > high:
            raise S3Error("EntityTooLarge", MaxSizeAllowed=str(high), ProposedSize=str(size))
        if final and size < low:
            raise S3Error("EntityTooSmall", MinSizeAllowed=str(low), ProposedSize=str(size))


def _denied(what: str) -> S3Error:
    return S3Error("AccessDenied", f"Invalid according to Policy: {what}")


def _invalid(what: str) -> S3Error:
    return S3Error("InvalidPolicyDocument", f"Invalid Policy: {what}")


def _field(ref: Any) -> str:
    if not isinstance(ref, str) or not ref.startswith("$"):
        raise _invalid(f"Invalid field reference {ref!r}.")
    return ref[1:].lower()


def parse(encoded: str) -> PostPolicy:
    """Decode and check the form's ``policy`` field."""
    if len(encoded) > MAX_POLICY_BYTES * 4 // 3 + 4:
        raise _invalid("Policy is too large.")
    try:
        doc = json.loads(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise _invalid("Invalid JSON.") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("expiration"), str):
        raise _invalid("Policy missing expiration.")
    try:
        expiration = datetime.fromisoformat(doc["expiration"])
    except ValueError as exc:
        raise _invalid("Invalid 'expiration' value.") from exc
    if expiration.tzinfo is None:
        expiration = expiration.replace(tzinfo=UTC)
    conditions = doc.get("conditions")
    if not isinstance(conditions, list):
        raise _invalid("Policy missing conditions.")
    exact: list[tuple[str, str]] = []
    prefixes: list[tuple[str, str]] = []
    length = None
    for cond in conditions:
        if isinstance(cond, dict):
            if len(cond) != 1:
                raise _invalid("Condition must have exactly one field.")
            ((name, value),) = cond.items()
            if not isinstance(value, str):
                raise _invalid(f"Invalid value for {name}.")
            exact.append((name.lower(), value))
        elif isinstance(cond, list) and len(cond) == 3 and isinstance(cond[0], str):
            op = cond[0].lower()
            if op == "content-length-range":
                low, high = cond[1], cond[2]
                if not all(isinstance(v, int) and v >= 0 for v in (low, high)) or low > high:
                    raise _invalid("Invalid content-length-range.")
                length = (low, high)
            elif op in ("eq", "starts-with") and isinstance(cond[2], str):
                (exact if op == "eq" else prefixes).append((_field(cond[1]), cond[2]))
            else:
                raise _invalid(f"Invalid condition {json.dumps(cond)}.")
        else:
            raise _invalid(f"Invalid condition {json.dumps(cond)}.")
    return PostPolicy(expiration, tuple(exact), tuple(prefixes), length)
