"""Bearer tokens, two kinds (either is enough; a request with neither gets 401, no data):

* static tokens for small sites: 32 random bytes (URL-safe text); the server stores
  ``sha256(token)`` with the user's name in a JSON file (mode 0600), so a leaked file does not
  leak tokens;
* OIDC JWTs, as LCLS' transfer API takes them: signature checked against the issuer's JWKS
  (RS256/ES256 only, never ``none`` or HMAC), ``iss`` and ``aud`` as configured, ``exp``
  required; the owner is ``iss`` + ``sub``, so two issuers' users never share transfers.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

__all__ = ["JwtVerifier", "TokenStore", "hash_token"]

#: Asymmetric algorithms only: with HMAC a public key would become a shared secret.
JWT_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]
#: Seconds a verified JWT's owner is remembered (never past the token's ``exp``), and how
#: many tokens are remembered at most.
VERIFIED_FOR = 60.0
VERIFIED_MAX = 4096


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """``{sha256: user}`` in a JSON file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._cache: tuple[tuple[int, int], dict[str, str]] | None = None

    def _load(self) -> dict[str, str]:
        """The file's tokens; re-read only when it changed (every request checks a token)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return {}
        key = (st.st_mtime_ns, st.st_size)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        data = json.loads(self.path.read_text())
        tokens = {str(k): str(v) for k, v in dict(data).items()}
        self._cache = (key, tokens)
        return tokens

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
        # looked up by its hash: the lookup's timing tells nothing about the token
        return self._load().get(hash_token(token))


class JwtVerifier:
    """OIDC access tokens checked against a JWKS (a URL, fetched and cached by PyJWT)."""

    def __init__(self, jwks_url: str, issuer: str, audience: str) -> None:
        import jwt

        self.issuer = issuer
        self.audience = audience
        self._jwks = jwt.PyJWKClient(jwks_url, cache_keys=True, timeout=10)
        #: token -> (owner, time the answer expires): a client polling status every 100 ms
        #: would otherwise pay a signature check (~0.1 ms) per request
        self._verified: dict[str, tuple[str, float]] = {}

    def user_of(self, token: str) -> str | None:
        """``iss`` + "/" + ``sub`` of a valid token; None for anything else. A valid token's
        answer is remembered until it expires, at most ``VERIFIED_FOR`` seconds."""
        if token.count(".") != 2:
            return None  # not a JWT (a static token, or garbage)
        now = time.time()
        hit = self._verified.get(token)
        if hit is not None and now < hit[1]:
            return hit[0]
        claims = self._verify(token)
        if claims is None:
            return None
        who = f"{claims['iss']}/{claims['sub']}"
        if len(self._verified) >= VERIFIED_MAX:
            self._verified.clear()
        self._verified[token] = who, min(float(claims["exp"]), now + VERIFIED_FOR)
        return who

    def _verify(self, token: str) -> dict[str, Any] | None:
        import jwt

        try:
            key = self._jwks.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                key.key,
                algorithms=JWT_ALGORITHMS,
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iss", "sub", "aud"]},
            )
        except (jwt.PyJWTError, ValueError):
            return None
        return dict(claims)
