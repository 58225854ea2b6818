"""All S3 XML in one place: documents are built from plain Python structures with
ElementTree (never by string concatenation) and parsed with defusedxml."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import defusedxml.ElementTree as SafeET

from gateway.s3.errors import S3Error

NS = "http://s3.amazonaws.com/doc/2006-03-01/"

# A node: text (str/int/bool/datetime), a mapping of child tag -> node, or a list of nodes
# (repeated elements with the parent's tag). None omits the element.
Node = str | int | bool | datetime | None | Mapping[str, "Node"] | Sequence["Node"]


# Characters XML 1.0 cannot carry at all (not even as character references). S3 keys may hold
# them; written raw they would make the whole document unparsable.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def timestamp(ms: int) -> str:
    """ISO 8601 as S3 writes it in XML (millisecond field, always .000: second precision)."""
    return datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _text(value: str | int | bool | datetime) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return _NOT_XML.sub("\ufffd", str(value))


def _fill(parent: ET.Element, tag: str, node: Node) -> None:
    if node is None:
        return
    if isinstance(node, Mapping):
        el = ET.SubElement(parent, tag)
        for child_tag, child in node.items():
            if child_tag.startswith("@"):  # an attribute of this element
                el.set(child_tag[1:], _text(child))  # type: ignore[arg-type]
            else:
                _fill(el, child_tag, child)
    elif isinstance(node, (list, tuple)):
        for item in node:
            _fill(parent, tag, item)
    else:
        ET.SubElement(parent, tag).text = _text(node)  # type: ignore[arg-type]


def document(
    root: str, content: Mapping[str, Node], *, namespace: bool = True, text: str | None = None
) -> bytes:
    el = ET.Element(root, {"xmlns": NS} if namespace else {})
    for tag, node in content.items():
        _fill(el, tag, node)
    if text is not None:
        el.text = _text(text)
    # A raw CR would reach the client's parser as LF (XML end-of-line handling): keys that hold
    # one must keep it, so it is always written as a character reference.
    body: bytes = ET.tostring(el, encoding="utf-8")
    body = body.replace(b"\r", b"&#13;")
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body


def error_document(err: S3Error, request_id: str) -> bytes:
    content: dict[str, Node] = {"Code": err.code, "Message": err.message}
    if err.resource is not None:
        content["Resource"] = err.resource
    content.update(err.extra)
    content["RequestId"] = request_id
    return document("Error", content, namespace=False)


# -- parsing -------------------------------------------------------------------------------


def parse(body: bytes) -> ET.Element:
    """Parse a request body (hardened: no entities, no DTDs). Namespaces are stripped."""
    try:
        root: ET.Element = SafeET.fromstring(body)
    except (ET.ParseError, ValueError) as exc:
        raise S3Error("MalformedXML") from exc
    except SafeET.DefusedXmlException as exc:
        raise S3Error("MalformedXML") from exc
    for el in root.iter():
        if isinstance(el.tag, str) and "}" in el.tag:
            el.tag = el.tag.split("}", 1)[1]
    return root


_DECIMAL = re.compile(r"-?[0-9]+")


def decimal(text: str | None, *, digits: int = 10) -> int | None:
    """The value of a request's decimal numeral (XML element or header) of at most
    ``digits`` digits, else None. The bound keeps int() off numerals that Python refuses
    (over 4300 digits) and values the server cannot carry (an S3 Integer has 10 digits at
    most, a Long 19)."""
    if text is None or not _DECIMAL.fullmatch(text.strip()):
        return None
    text = text.strip()
    if len(text.lstrip("-")) > digits:
        return None
    return int(text)


def child_text(el: ET.Element, tag: str) -> str | None:
    c = el.find(tag)
    return None if c is None else (c.text or "")


def parse_delete(body: bytes) -> tuple[bool, list[tuple[str, str | None]]]:
    """DeleteObjects request: (quiet, [(key, version id or None)])."""
    root = parse(body)
    if root.tag != "Delete":
        raise S3Error("MalformedXML")
    quiet = (child_text(root, "Quiet") or "false").strip().lower() == "true"
    keys: list[tuple[str, str | None]] = []
    for obj in root.findall("Object"):
        key = child_text(obj, "Key")
        if key is None:
            raise S3Error("MalformedXML")
        keys.append((key, child_text(obj, "VersionId")))
    if not keys or len(keys) > 1000:
        raise S3Error("MalformedXML")
    return quiet, keys


def parse_location_constraint(body: bytes) -> str | None:
    """CreateBucketConfiguration: the LocationConstraint, if any."""
    if not body.strip():
        return None
    root = parse(body)
    if root.tag != "CreateBucketConfiguration":
        raise S3Error("MalformedXML")
    return child_text(root, "LocationConstraint") or None


def parse_acl_grants(body: bytes) -> list[tuple[str, str]]:
    """AccessControlPolicy: (grantee id or URI, permission) pairs."""
    root = parse(body)
    if root.tag != "AccessControlPolicy":
        raise S3Error("MalformedXML")
    grants: list[tuple[str, str]] = []
    for grant in root.iter("Grant"):
        grantee = grant.find("Grantee")
        who = (
            ""
            if grantee is None
            else (child_text(grantee, "ID") or child_text(grantee, "URI") or "")
        )
        grants.append((who, child_text(grant, "Permission") or ""))
    return grants


def parse_tagging(body: bytes) -> list[tuple[str, str]]:
    """Tagging (Put*Tagging): the (key, value) pairs in the order given. Every Tag needs a
    Key and a Value element; the limits and the characters are the handler's to check."""
    root = parse(body)
    tag_set = root.find("TagSet")
    if root.tag != "Tagging" or tag_set is None:
        raise S3Error("MalformedXML")
    tags: list[tuple[str, str]] = []
    for tag in tag_set.findall("Tag"):
        key, value = child_text(tag, "Key"), child_text(tag, "Value")
        if key is None or value is None:
            raise S3Error("MalformedXML")
        tags.append((key, value))
    return tags


CORS_ELEMENTS = ("AllowedOrigin", "AllowedMethod", "AllowedHeader", "ExposeHeader")


def parse_cors(body: bytes) -> list[dict[str, list[str]]]:
    """CORSConfiguration (PutBucketCors): per CORSRule, each element name of
    :data:`CORS_ELEMENTS` and ``ID`` / ``MaxAgeSeconds`` mapped to the texts given, in order.
    Checking the values is the caller's."""
    root = parse(body)
    if root.tag != "CORSConfiguration":
        raise S3Error("MalformedXML")
    rules: list[dict[str, list[str]]] = []
    for rule in root.findall("CORSRule"):
        rules.append(
            {
                name: [(el.text or "").strip() for el in rule.findall(name)]
                for name in (*CORS_ELEMENTS, "ID", "MaxAgeSeconds")
            }
        )
    if not rules:
        raise S3Error("MalformedXML")
    return rules


_PART_CHECKSUMS = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")


def parse_complete_multipart(body: bytes) -> list[tuple[int, str, dict[str, str]]]:
    """CompleteMultipartUpload request: (part number, ETag, {algorithm: checksum}) in the
    order given (the handler checks the order)."""
    root = parse(body)
    if root.tag != "CompleteMultipartUpload":
        raise S3Error("MalformedXML")
    parts: list[tuple[int, str, dict[str, str]]] = []
    for part in root.findall("Part"):
        number, etag = child_text(part, "PartNumber"), child_text(part, "ETag")
        if number is None or etag is None or not number.strip().isdigit():
            raise S3Error("MalformedXML")
        sums = {
            a: v.strip()
            for a in _PART_CHECKSUMS
            if (v := child_text(part, "Checksum" + a)) is not None
        }
        parts.append((int(number), etag.strip(), sums))
    if not parts:
        raise S3Error("MalformedXML")
    return parts
