"""The credentials of the embedded server: from the configuration (environment), or a key
pair generated on first start and kept in the data directory (mode 0600)."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

from gateway.config import Config

FILE = "credentials.json"


@dataclass(frozen=True)
class StaticCredentials:
    access_key: str
    secret: str

    def secret_key(self, access_key: str) -> str | None:
        return self.secret if secrets.compare_digest(access_key, self.access_key) else None

    @property
    def owner_id(self) -> str:
        """The canonical user id shown as Owner in listings and ACLs."""
        return hashlib.sha256(b"s3dedup-owner:" + self.access_key.encode()).hexdigest()


def load_or_create(config: Config) -> tuple[StaticCredentials, bool]:
    """Returns the credentials and whether they were generated just now."""
    if config.access_key and config.secret_key:
        return StaticCredentials(config.access_key, config.secret_key), False
    path = config.data / FILE
    if path.exists():
        raw = json.loads(path.read_text())
        return StaticCredentials(raw["access_key"], raw["secret_key"]), False
    alphabet = string.ascii_uppercase + string.digits
    creds = StaticCredentials(
        "S3D" + "".join(secrets.choice(alphabet) for _ in range(17)),
        secrets.token_urlsafe(30)[:40],
    )
    config.data.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"access_key": creds.access_key, "secret_key": creds.secret}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    return creds, True


def read_for_client(data: Path | None) -> tuple[str, str]:
    """Credentials for the admin CLI: environment first, then the data directory."""
    ak, sk = os.environ.get("S3DEDUP_ACCESS_KEY"), os.environ.get("S3DEDUP_SECRET_KEY")
    if ak and sk:
        return ak, sk
    if data is not None and (data / FILE).exists():
        raw = json.loads((data / FILE).read_text())
        return raw["access_key"], raw["secret_key"]
    raise SystemExit("set S3DEDUP_ACCESS_KEY and S3DEDUP_SECRET_KEY (or pass --data DIR)")
