"""schemathesis against the service's own OpenAPI schema: every route, generated
parameters (bounded examples), never a server error (5xx), with and without a token."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis (requirements.txt)")
from hypothesis import HealthCheck, settings  # noqa: E402
from lclstream.server.app import create_app  # noqa: E402
from lclstream.server.auth import TokenStore  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

STATE = Path(tempfile.mkdtemp(prefix="lclstream-schemathesis-"))
APP = create_app(STATE)
TOKEN = TokenStore(STATE / "tokens.json").create("fuzz")
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_route_answers_with_a_server_error(case: object) -> None:
    for headers in ({"Authorization": f"Bearer {TOKEN}"}, {}):
        response = case.call(headers=headers)  # type: ignore[attr-defined]
        case.validate_response(response, checks=(not_a_server_error,))  # type: ignore[attr-defined]
