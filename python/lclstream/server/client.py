"""A small client for the transfer API (what ``lclstream request`` uses)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
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

    def logs(
        self, transfer_id: str, stream: str = "transitions", lines: int = 100, head: bool = False
    ) -> str:
        """``lines`` lines of a log stream: ``transitions`` (states) or ``worker`` (what the
        transfer's process wrote)."""
        text: str = self._call(
            "GET",
            f"/transfers/{transfer_id}/logs/{stream}",
            params={"lines": lines, "mode": "head" if head else "tail"},
        )
        return text

    def events(self, transfer_id: str) -> Iterator[dict[str, Any]]:
        """The transfer's status on every change (server-sent events), until it ends."""
        import httpx

        try:
            with self._http.stream(
                "GET", f"/api/v2/transfers/{transfer_id}/events", timeout=None
            ) as r:
                if r.status_code >= 400:
                    r.read()
                    raise TransferError(r.status_code, r.text)
                for line in r.iter_lines():
                    if line.startswith("data: "):
                        yield json.loads(line[len("data: ") :])
        except httpx.HTTPError as e:
            raise TransferError(0, f"lost the server's event stream: {e}") from None

    def wait(
        self,
        transfer_id: str,
        *,
        timeout: float | None = None,
        on_status: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Follow the transfer's server-sent events until it reaches a final state; returns
        its last status (``on_status`` sees each one, e.g. for a progress bar)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        doc: dict[str, Any] = {}
        for doc in self.events(transfer_id):
            if on_status is not None:
                on_status(doc)
            if doc["state"] in FINAL:
                return doc
            if deadline is not None and time.monotonic() > deadline:
                raise TransferError(0, f"transfer {transfer_id} still {doc['state']}")
        doc = self.status(transfer_id)  # the stream ended: the final word is the record's
        if doc["state"] not in FINAL:
            raise TransferError(0, f"the event stream ended with the transfer {doc['state']}")
        return doc
