"""One handler module per operation family; HANDLERS maps each operation to its handler.
Operations absent from the table answer 501 NotImplemented."""

from __future__ import annotations

from gateway.s3.context import Handler
from gateway.s3.handlers import (
    absent,
    acl,
    bucket,
    cors,
    lifecycle,
    listing,
    multipart,
    objects,
    policy,
    post,
    service,
    tagging,
    website,
)
from gateway.s3.router import Op

HANDLERS: dict[Op, Handler] = {
    **absent.HANDLERS,
    **service.HANDLERS,
    **bucket.HANDLERS,
    **acl.HANDLERS,
    **cors.HANDLERS,
    **lifecycle.HANDLERS,
    **listing.HANDLERS,
    **objects.HANDLERS,
    **multipart.HANDLERS,
    **policy.HANDLERS,
    **post.HANDLERS,
    **tagging.HANDLERS,
    **website.HANDLERS,
}
