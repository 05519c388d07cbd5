"""``lclstream request start|status|list|cancel|logs``: the REST service's client."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from lclstream.cli._common import EXIT_ERROR, EXIT_INCOMPLETE, emit_json, errors, fail

request_app = typer.Typer(help="Ask an lclstream server for a run.", no_args_is_help=True)

Server = Annotated[
    str, typer.Option("--server", envvar="LCLSTREAM_SERVER", help="The server's base URL.")
]
Token = Annotated[
    str | None, typer.Option("--token", envvar="LCLSTREAM_TOKEN", help="Bearer token.")
]


def _client(server: str, token: str | None) -> Any:
    from lclstream.server.client import TransferClient

    return TransferClient(server, token)


@request_app.command("start")
def start(
    addr: Annotated[
        str, typer.Option(help="Where the data go: your bound socket (tcp://host:port).")
    ],
    server: Server,
    token: Token = None,
    exp: Annotated[str, typer.Option(help="Experiment.")] = "xpptut15",
    run: Annotated[int, typer.Option(help="Run number.")] = 670,
    detector: Annotated[str, typer.Option("--detector", help="Detector name.")] = "jungfrau4M",
    mode: Annotated[str, typer.Option(help="raw or calib.")] = "calib",
    format_: Annotated[str, typer.Option("--format", help="hdf5, simplon, raw or npz.")] = "hdf5",
    events: Annotated[int | None, typer.Option(min=0, help="Stop after this many events.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the end; show progress.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Request a run streamed to ADDR (the consumer binds, e.g. lclstream receive ADDR).

    Exit codes (with --wait): 0 completed, 1 failed or error, 3 canceled.
    """
    from lclstream.server.client import TransferError

    body: dict[str, Any] = {"exp": exp, "run": run, "detector_name": detector, "mode": mode,
                            "addr": addr, "format": format_}  # fmt: skip
    if events is not None:
        body["events"] = events
    with errors():
        with _client(server, token) as c:
            try:
                doc = c.start(body)
                if not json_:
                    typer.echo(f"transfer {doc['id']}: {doc['state']}")
                if wait:
                    doc = _follow(c, doc["id"], show=not json_, total=events)
            except TransferError as e:
                raise fail(str(e)) from None
    if json_:
        emit_json(doc)
    elif wait:
        typer.echo(f"transfer {doc['id']}: {doc['state']}")
    if wait and doc["state"] == "failed":
        raise typer.Exit(EXIT_ERROR)
    if wait and doc["state"] == "canceled":
        raise typer.Exit(EXIT_INCOMPLETE)


def _follow(client: Any, transfer_id: str, *, show: bool, total: int | None) -> dict[str, Any]:
    """Wait for the end, with a live progress bar fed by the server-sent events."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    if not show:
        doc: dict[str, Any] = client.wait(transfer_id)
        return doc
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), transient=True
    ) as bar:
        task = bar.add_task("provisioning", total=total)

        def update(st: dict[str, Any]) -> None:
            p = st.get("progress", {})
            bar.update(task, completed=p.get("events_sent", 0),
                       description=f"{st['state']} {p.get('rate', 0.0):.0f} events/s")  # fmt: skip

        doc = client.wait(transfer_id, on_status=update)
    return doc


def _simple(call: str, transfer_id: str | None, server: str, token: str | None) -> Any:
    from lclstream.server.client import TransferError

    with errors(), _client(server, token) as c:
        try:
            return getattr(c, call)(transfer_id) if transfer_id is not None else c.list()
        except TransferError as e:
            raise fail(str(e)) from None


@request_app.command("status")
def status(transfer_id: str, server: Server, token: Token = None) -> None:
    """A transfer's state, transitions and progress (JSON)."""
    emit_json(_simple("status", transfer_id, server, token))


@request_app.command("list")
def list_(server: Server, token: Token = None) -> None:
    """Your transfers (JSON: data, count)."""
    emit_json(_simple("list", None, server, token))


@request_app.command("cancel")
def cancel(transfer_id: str, server: Server, token: Token = None) -> None:
    """Cancel a transfer (its stream ends with an end message saying so)."""
    emit_json(_simple("cancel", transfer_id, server, token))


@request_app.command("logs")
def logs(
    transfer_id: str,
    server: Server,
    token: Token = None,
    stream: Annotated[
        str, typer.Option(help="transitions (its states) or worker (what its process wrote)")
    ] = "transitions",
    lines: Annotated[int, typer.Option(min=1, help="How many lines.")] = 100,
    head: Annotated[bool, typer.Option(help="The first lines, not the last.")] = False,
) -> None:
    """A transfer's log: its state transitions, or its worker's output (kept after failure)."""
    from lclstream.server.client import TransferError

    with errors(), _client(server, token) as c:
        try:
            text = c.logs(transfer_id, stream=stream, lines=lines, head=head)
        except TransferError as e:
            raise fail(str(e)) from None
    typer.echo(text, nl=False)
