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


class CredentialsError(ValueError):
    """Credentials that cannot be used (the message says what to do)."""


def _read_file(path: Path) -> tuple[str, str]:
    try:
        raw = json.loads(path.read_text())
        return str(raw["access_key"]), str(raw["secret_key"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CredentialsError(
            f"{path}: not a valid credentials file ({exc}); fix or remove it"
            " (a new key pair is generated when it is missing)"
        ) from exc


def _write_file(path: Path, creds: StaticCredentials) -> None:
    """Write the key pair atomically (a crash leaves either no file or a whole one), 0600."""
    body = json.dumps({"access_key": creds.access_key, "secret_key": creds.secret}).encode()
    tmp = path.with_name(f".{FILE}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            os.write(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(tmp, path)  # fails (FileExistsError) rather than replace a key pair
    finally:
        os.unlink(tmp)
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def load_or_create(config: Config) -> tuple[StaticCredentials, bool]:
    """Returns the credentials and whether they were generated just now."""
    if bool(config.access_key) != bool(config.secret_key):
        raise CredentialsError(
            "set both S3DEDUP_ACCESS_KEY and S3DEDUP_SECRET_KEY, or neither"
            " (then a key pair is generated and kept in the data directory)"
        )
    if config.access_key and config.secret_key:
        return StaticCredentials(config.access_key, config.secret_key), False
    path = config.data / FILE
    if path.exists():
        return StaticCredentials(*_read_file(path)), False
    # letters and digits only: a double click selects the whole key in a terminal, and no
    # shell or aws cli option parser trips over it
    upper = string.ascii_uppercase + string.digits
    creds = StaticCredentials(
        "S3D" + "".join(secrets.choice(upper) for _ in range(17)),
        "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(40)),
    )
    config.data.mkdir(parents=True, exist_ok=True)
    _write_file(path, creds)
    return creds, True


def read_for_client(data: Path | None) -> tuple[str, str]:
    """Credentials for the admin CLI: environment first, then the data directory."""
    ak, sk = os.environ.get("S3DEDUP_ACCESS_KEY"), os.environ.get("S3DEDUP_SECRET_KEY")
    if ak and sk:
        return ak, sk
    if data is not None and (data / FILE).exists():
        return _read_file(data / FILE)
    where = f" (no {FILE} in {data})" if data is not None else ""
    raise CredentialsError(
        f"no credentials{where}: set S3DEDUP_ACCESS_KEY and S3DEDUP_SECRET_KEY,"
        " or pass --data DIR (the data directory of a server that generated its key pair)"
    )
