"""The status document clients poll, served without the web framework.

Why: LCLS' users poll ``GET /api/v2/transfers/{id}`` (their client every few seconds, ours
every 100 ms with ``--wait``), and on a small node every request's CPU comes out of the
stream it reports on. Through FastAPI's routing, dependency injection and response classes a
status request cost 0.26 ms of server CPU (uvicorn with httptools and uvloop); served here
from the cached document it costs 0.09 ms.

Only the common case is served here: a GET for a transfer whose document is cached and
current, by its owner, with a valid bearer token. Everything else (no token, a bad token,
another user's transfer, an unknown id, a document that changed) falls through to the
FastAPI route, which builds the document, fills the cache and gives every error its
usual shape. So the two paths cannot disagree about who may see what: this one only repeats
an answer the route gave the same owner for the same version.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["StatusCache", "StatusFastPath"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class StatusCache:
    """``transfer id -> (store version, owner, JSON document)``, filled by the route."""

    def __init__(self, version_of: Callable[[str], int]) -> None:
        self._version_of = version_of
        self._docs: dict[str, tuple[int, str, bytes]] = {}

    def put(self, transfer_id: str, version: int, owner: str, body: bytes) -> None:
        self._docs[transfer_id] = (version, owner, body)

    def current(self, transfer_id: str) -> tuple[str, bytes] | None:
        """(owner, document) when the cached document is that of the store's version."""
        hit = self._docs.get(transfer_id)
        if hit is None:
            return None
        version = self._version_of(transfer_id)
        if version == 0 or hit[0] != version:
            return None
        return hit[1], hit[2]


class StatusFastPath:
    """ASGI middleware: answers current cached status documents, passes on the rest."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        cache: StatusCache,
        user_of: Callable[[str], str | None],
        prefix: str,
    ) -> None:
        self.app = app
        self.cache = cache
        self.user_of = user_of
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            path: str = scope["path"]
            if path.startswith(self.prefix):
                tid = path[len(self.prefix) :]
                if tid and "/" not in tid and await self._serve(scope, tid, send):
                    return
        await self.app(scope, receive, send)

    async def _serve(self, scope: Scope, transfer_id: str, send: Send) -> bool:
        hit = self.cache.current(transfer_id)
        if hit is None:
            return False
        auth = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                auth = value
                break
        if auth is None or not auth.startswith(b"Bearer "):
            return False
        try:
            token = auth[7:].decode("ascii").strip()
        except UnicodeDecodeError:
            return False
        owner, body = hit
        if not token or self.user_of(token) != owner:
            return False
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return True
