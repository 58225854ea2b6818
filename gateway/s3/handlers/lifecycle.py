"""Lifecycle: Put/GetBucketLifecycleConfiguration and DeleteBucketLifecycle. The rules are
checked here (AWS's answers) and applied by :mod:`dedup.lifecycle` (a background pass, and
``s3dedup admin lifecycle``).

Supported actions: Expiration (Days, Date; ExpiredObjectDeleteMarker is kept, with nothing to
act on in unversioned buckets), AbortIncompleteMultipartUpload and
NoncurrentVersionExpiration (kept; no noncurrent versions exist here). Transitions to other
storage classes answer 501 NotImplemented: there is one storage class, and pretending to
move objects would be a lie.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from aiohttp import web

from dedup import lifecycle
from dedup.lifecycle import Filter, Rule
from gateway.s3.context import MAX_XML_BODY, Handler, S3Request
from gateway.s3.errors import S3Error
from gateway.s3.handlers.common import (
    config_document,
    set_bucket_config,
    stored_config,
    xml_response,
)
from gateway.s3.handlers.tagging import check_tags
from gateway.s3.router import Op
from gateway.s3.xml import Node, child_text, decimal, parse, timestamp

MAX_RULES = 1000
MAX_ID_LEN = 255
FILTER_FORMS = ("Prefix", "Tag", "And", "ObjectSizeGreaterThan", "ObjectSizeLessThan")


def _malformed() -> S3Error:
    return S3Error("MalformedXML")


def _one(el: ET.Element, tag: str) -> ET.Element | None:
    found = el.findall(tag)
    if len(found) > 1:
        raise _malformed()
    return found[0] if found else None


def _positive(el: ET.Element, tag: str, action: str) -> int | None:
    text = child_text(el, tag)
    if text is None:
        return None
    value = decimal(text)
    if value is None:
        raise _malformed()
    if value <= 0:
        raise S3Error("InvalidArgument", f"'{tag}' for {action} action must be a positive integer")
    return value


def _size(el: ET.Element, tag: str) -> int | None:
    text = child_text(el, tag)
    if text is None:
        return None
    value = decimal(text, digits=19)  # a Long
    if value is None or value < 0:
        raise _malformed()
    return value


def _tag(el: ET.Element) -> tuple[str, str]:
    key, value = child_text(el, "Key"), child_text(el, "Value")
    if key is None or value is None:
        raise _malformed()
    return key, value


def _filter(rule: ET.Element) -> tuple[Filter, str]:
    """The rule's filter and the form it was given in (see Rule.filter_form)."""
    f, legacy = _one(rule, "Filter"), child_text(rule, "Prefix")
    if f is not None and legacy is not None:
        raise _malformed()
    if f is None:
        if legacy is None:
            raise _malformed()
        return Filter(prefix=legacy), "Rule.Prefix"
    children = [c for c in f if isinstance(c.tag, str)]
    if len(children) > 1 or any(c.tag not in FILTER_FORMS for c in children):
        raise _malformed()
    if not children:
        return Filter(), ""
    form = str(children[0].tag)
    body = f if form != "And" else children[0]
    if form == "And" and any(c.tag not in FILTER_FORMS[:2] + FILTER_FORMS[3:] for c in body):
        raise _malformed()
    if form == "Tag":
        tags = [_tag(children[0])]
    else:
        tags = [_tag(t) for t in body.findall("Tag")]
    keys = [k for k, _ in tags]
    if len(set(keys)) != len(keys):
        raise S3Error("InvalidRequest", "Duplicate Tag Keys are not allowed.")
    check_tags(tags, limit=None)
    flt = Filter(
        prefix=child_text(body, "Prefix") or "",
        tags=tuple(tags),
        size_gt=_size(body, "ObjectSizeGreaterThan"),
        size_lt=_size(body, "ObjectSizeLessThan"),
    )
    if flt.size_gt is not None and flt.size_lt is not None and flt.size_gt >= flt.size_lt:
        raise S3Error(
            "InvalidRequest", "ObjectSizeGreaterThan must be less than ObjectSizeLessThan"
        )
    return flt, form


def _date(text: str) -> int:
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise _malformed() from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    ms = int(when.timestamp() * 1000)
    if ms % lifecycle.DAY_MS:
        raise S3Error("InvalidArgument", "'Date' must be at midnight GMT")
    return ms


def _rule(el: ET.Element) -> Rule:
    if el.find("Transition") is not None or el.find("NoncurrentVersionTransition") is not None:
        raise S3Error(
            "NotImplemented",
            "Transitions are not implemented by s3dedup: it has one storage class.",
        )
    rule_id = child_text(el, "ID")
    if rule_id is not None and len(rule_id) > MAX_ID_LEN:
        raise S3Error("InvalidArgument", "ID length should not exceed allowed limit of 255")
    status = child_text(el, "Status")
    if status not in ("Enabled", "Disabled"):
        raise _malformed()
    flt, form = _filter(el)
    expire_days = expire_date = noncurrent = newer = abort_days = None
    marker: bool | None = None
    exp = _one(el, "Expiration")
    if exp is not None:
        expire_days = _positive(exp, "Days", "Expiration")
        date, marker_text = child_text(exp, "Date"), child_text(exp, "ExpiredObjectDeleteMarker")
        if sum(x is not None for x in (expire_days, date, marker_text)) != 1:
            raise _malformed()
        expire_date = None if date is None else _date(date)
        if marker_text is not None:
            if marker_text.strip() not in ("true", "false"):
                raise _malformed()
            if flt.tags:
                raise S3Error(
                    "InvalidRequest", "Tags cannot be specified with ExpiredObjectDeleteMarker."
                )
            marker = marker_text.strip() == "true"
    nve = _one(el, "NoncurrentVersionExpiration")
    if nve is not None:
        noncurrent = _positive(nve, "NoncurrentDays", "NoncurrentVersionExpiration")
        newer = _positive(nve, "NewerNoncurrentVersions", "NoncurrentVersionExpiration")
        if noncurrent is None:
            raise _malformed()
    abort = _one(el, "AbortIncompleteMultipartUpload")
    if abort is not None:
        abort_days = _positive(abort, "DaysAfterInitiation", "AbortIncompleteMultipartUpload")
        if abort_days is None:
            raise _malformed()
        if flt.tags:
            raise S3Error(
                "InvalidRequest", "AbortIncompleteMultipartUpload cannot be specified with Tags."
            )
    if exp is None and nve is None and abort is None:
        raise S3Error("InvalidRequest", "At least one action needs to be specified in a rule")
    return Rule(
        id=rule_id if rule_id else os.urandom(24).hex(),  # S3 names a rule without an ID
        enabled=status == "Enabled",
        filter=flt,
        filter_form=form,
        expire_days=expire_days,
        expire_date_ms=expire_date,
        expired_delete_marker=marker,
        noncurrent_days=noncurrent,
        newer_noncurrent=newer,
        abort_days=abort_days,
    )


def rules_from_xml(body: bytes) -> tuple[Rule, ...]:
    root = parse(body)
    if root.tag != "LifecycleConfiguration":
        raise _malformed()
    elements = root.findall("Rule")
    if not elements or len(elements) > MAX_RULES:
        raise _malformed()
    rules = tuple(_rule(el) for el in elements)
    ids = [r.id for r in rules]
    if len(set(ids)) != len(ids):
        raise S3Error(
            "InvalidArgument", "Rule ID must be unique. Found same ID for more than one rule"
        )
    return rules


def _filter_node(rule: Rule) -> dict[str, Node]:
    f = rule.filter
    tags: list[Node] = [{"Key": k, "Value": v} for k, v in f.tags]
    parts: dict[str, Node] = {
        "Prefix": f.prefix if rule.filter_form in ("Prefix", "And") else None,
        "Tag": tags,
        "ObjectSizeGreaterThan": f.size_gt,
        "ObjectSizeLessThan": f.size_lt,
    }
    if rule.filter_form == "And":
        return {"And": parts}
    return parts


def _rule_node(rule: Rule) -> dict[str, Node]:
    node: dict[str, Node] = {"ID": rule.id}
    if rule.filter_form == "Rule.Prefix":
        node["Prefix"] = rule.filter.prefix
    else:
        node["Filter"] = _filter_node(rule)
    node["Status"] = "Enabled" if rule.enabled else "Disabled"
    if rule.expire_days is not None or rule.expire_date_ms is not None:
        node["Expiration"] = {
            "Days": rule.expire_days,
            "Date": None if rule.expire_date_ms is None else timestamp(rule.expire_date_ms),
        }
    elif rule.expired_delete_marker is not None:
        node["Expiration"] = {"ExpiredObjectDeleteMarker": rule.expired_delete_marker}
    if rule.noncurrent_days is not None:
        node["NoncurrentVersionExpiration"] = {
            "NoncurrentDays": rule.noncurrent_days,
            "NewerNoncurrentVersions": rule.newer_noncurrent,
        }
    if rule.abort_days is not None:
        node["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": rule.abort_days}
    return node


async def get_bucket_lifecycle_configuration(r: S3Request) -> web.StreamResponse:
    raw = stored_config(r, lifecycle.KIND, "NoSuchLifecycleConfiguration")
    rules: list[Node] = [_rule_node(rule) for rule in lifecycle.from_json(raw)]
    return xml_response("LifecycleConfiguration", {"Rule": rules})


async def put_bucket_lifecycle_configuration(r: S3Request) -> web.StreamResponse:
    body = await config_document(r, MAX_XML_BODY)
    await set_bucket_config(r, lifecycle.KIND, lifecycle.to_json(rules_from_xml(body)))
    return web.Response(status=200)


async def delete_bucket_lifecycle(r: S3Request) -> web.StreamResponse:
    await set_bucket_config(r, lifecycle.KIND, None)
    return web.Response(status=204)


HANDLERS: dict[Op, Handler] = {
    Op.GetBucketLifecycleConfiguration: get_bucket_lifecycle_configuration,
    Op.PutBucketLifecycleConfiguration: put_bucket_lifecycle_configuration,
    Op.DeleteBucketLifecycle: delete_bucket_lifecycle,
}
