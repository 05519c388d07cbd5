"""Bearer tokens: static tokens for small sites, kept only as hashes.

A token is 32 random bytes (URL-safe text); the server stores ``sha256(token)`` with the
user's name in a JSON file (mode 0600), so a leaked file does not leak tokens. A request
without a valid token gets 401 and never any data. (OIDC JWTs verified against a JWKS are
the other kind the transfer API accepts; they plug in here as a second verifier.)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

__all__ = ["TokenStore", "hash_token"]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """``{sha256: user}`` in a JSON file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        return {str(k): str(v) for k, v in dict(data).items()}

    def create(self, user: str) -> str:
        """A new token for ``user`` (returned once; only its hash is kept)."""
        if not user or not user.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ValueError(f"token name {user!r}: letters, digits, '-', '_' and '.' only")
        token = secrets.token_urlsafe(32)
        data = self._load()
        data[hash_token(token)] = user
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(tmp, self.path)
        return token

    def user_of(self, token: str) -> str | None:
        h = hash_token(token)
        for known, user in self._load().items():
            if hmac.compare_digest(known, h):
                return user
        return None
