"""A small client for the transfer API (what ``lclstream request`` uses)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from lclstream.errors import LclstreamError

__all__ = ["TransferClient", "TransferError"]

FINAL = ("completed", "failed", "canceled")


class TransferError(LclstreamError):
    """The server refused a request (the message is the server's ``detail``)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status


class TransferClient:
    def __init__(self, server: str, token: str | None = None, *, timeout: float = 30.0) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=server.rstrip("/"), headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> TransferClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        import httpx

        try:
            r = self._http.request(method, f"/api/v2{path}", **kw)
        except httpx.HTTPError as e:
            raise TransferError(0, f"cannot reach the server: {e}") from None
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail", r.text)
            except ValueError:
                detail = r.text
            raise TransferError(r.status_code, str(detail))
        ctype = r.headers.get("content-type", "")
        return r.json() if ctype.startswith("application/json") else r.text

    def start(self, body: dict[str, Any]) -> dict[str, Any]:
        doc: dict[str, Any] = self._call("POST", "/transfers/", json=body)
        return doc

    def status(self, transfer_id: str) -> dict[str, Any]:
        doc: dict[str, Any] = self._call("GET", f"/transfers/{transfer_id}")
        return doc

    def list(self, state: str | None = None) -> dict[str, Any]:
        params = {"state": state} if state else {}
        doc: dict[str, Any] = self._call("GET", "/transfers/", params=params)
        return doc

    def cancel(self, transfer_id: str) -> dict[str, Any]:
        doc: dict[str, Any] = self._call("DELETE", f"/transfers/{transfer_id}")
        return doc

    def logs(self, transfer_id: str, lines: int = 100) -> str:
        text: str = self._call(
            "GET", f"/transfers/{transfer_id}/logs/transitions", params={"lines": lines}
        )
        return text

    def wait(
        self,
        transfer_id: str,
        *,
        timeout: float | None = None,
        period: float = 0.5,
        on_status: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the transfer reaches a final state; returns its last status."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            doc = self.status(transfer_id)
            if on_status is not None:
                on_status(doc)
            if doc["state"] in FINAL:
                return doc
            if deadline is not None and time.monotonic() > deadline:
                raise TransferError(0, f"transfer {transfer_id} still {doc['state']}")
            time.sleep(period)
