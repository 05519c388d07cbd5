"""``lclstream serve`` and ``lclstream token``: the REST service and its static tokens."""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Annotated, Any

import typer

from lclstream.cli._common import errors, fail

#: Where the service keeps its records and token hashes unless told otherwise.
DEFAULT_STATE = Path(os.environ.get("LCLSTREAM_STATE", Path.home() / ".lclstream" / "server"))

StateDir = Annotated[
    Path, typer.Option("--state-dir", help="Transfer records and token hashes live here.")
]


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    state_dir: StateDir = DEFAULT_STATE,
    data_root: Annotated[
        Path | None,
        typer.Option(help="Serve ROOT/EXP/xtc (psana2) and ROOT/EXP/runNNNN (HDF5) runs."),
    ] = None,
    certfile: Annotated[Path | None, typer.Option(help="TLS certificate (PEM).")] = None,
    keyfile: Annotated[Path | None, typer.Option(help="TLS private key (PEM).")] = None,
    oidc_jwks_url: Annotated[
        str | None, typer.Option(help="Accept OIDC JWTs signed by the keys at this JWKS URL.")
    ] = None,
    oidc_issuer: Annotated[str | None, typer.Option(help="The JWTs' required iss.")] = None,
    oidc_audience: Annotated[str | None, typer.Option(help="The JWTs' required aud.")] = None,
    client_ca: Annotated[
        Path | None,
        typer.Option(help="Mutual TLS: require client certificates signed by this CA (PEM)."),
    ] = None,
) -> None:
    """Serve LCLS' transfer API v2 (/api/v2/transfers): a remote user requests a run and
    receives it on their own socket. Clients need a token (lclstream token create NAME)."""
    with errors():
        try:
            import uvicorn

            from lclstream.server.app import create_app
        except ImportError as e:
            raise fail(
                f"the REST service needs its extra: pip install 'lclstream[server]' ({e})"
            ) from None
        if (certfile is None) != (keyfile is None):
            raise fail("TLS needs both --certfile and --keyfile", 2)
        if client_ca is not None and certfile is None:
            raise fail("--client-ca (mutual TLS) needs --certfile and --keyfile", 2)
        oidc = (oidc_jwks_url, oidc_issuer, oidc_audience)
        if any(oidc) and not all(oidc):
            raise fail("OIDC needs --oidc-jwks-url, --oidc-issuer and --oidc-audience", 2)
        from lclstream.server.auth import JwtVerifier

        verifier = JwtVerifier(*oidc) if all(oidc) else None  # type: ignore[arg-type]
        mtls = tls_client_options(client_ca) if client_ca is not None else {}
        uvicorn.run(
            create_app(state_dir, jwt=verifier, data_root=data_root),
            host=host,
            port=port,
            log_level="info",
            ssl_certfile=str(certfile) if certfile else None,
            ssl_keyfile=str(keyfile) if keyfile else None,
            ssl_ca_certs=mtls.get("ssl_ca_certs"),
            ssl_cert_reqs=mtls.get("ssl_cert_reqs", ssl.CERT_NONE),
        )


def tls_client_options(client_ca: Path) -> dict[str, Any]:
    """uvicorn's options for mutual TLS: client certificates required, checked against
    ``client_ca`` (the handshake fails without one; no request reaches the app)."""
    return {"ssl_ca_certs": str(client_ca), "ssl_cert_reqs": ssl.CERT_REQUIRED}


token_app = typer.Typer(help="Static bearer tokens for lclstream serve.", no_args_is_help=True)


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="Who the token is for (the transfers' owner).")],
    state_dir: StateDir = DEFAULT_STATE,
) -> None:
    """Make a token for NAME: printed once, alone on the last line; the server keeps only its
    hash."""
    with errors():
        from lclstream.server.auth import TokenStore

        try:
            token = TokenStore(state_dir / "tokens.json").create(name)
        except ValueError as e:
            raise fail(str(e), 2) from None
    typer.echo(f"token for {name} (shown once; the server keeps only its hash):")
    typer.echo(token)
