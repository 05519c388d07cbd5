"""Human output: summary tables, the stage table and progress bars (rich, on stderr, so a
command's stdout stays clean for ``--json``). Imported only when something is shown."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any


def console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def fmt_mb(n: float) -> str:
    return f"{n / 1e6:,.1f}"


def summary_table(title: str, rows: list[tuple[str, str]]) -> Any:
    from rich.table import Table

    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    for k, v in rows:
        table.add_row(k, v)
    return table


def pipeline_rows(d: dict[str, Any]) -> list[tuple[str, str]]:
    ratio = d["bytes_in"] / d["bytes_out"] if d.get("bytes_out") else 0.0
    eps = d["events"] / d["seconds"] if d.get("seconds") else 0.0
    rows = [
        ("events", f"{d['events']:,}"),
        ("MB in (raw)", fmt_mb(d["bytes_in"])),
        ("MB out", fmt_mb(d["bytes_out"])),
        ("compression ratio", f"{ratio:.1f}x"),
        ("events/s", f"{eps:,.1f}"),
        *(
            [("events/s once warm", f"{d['warm_events_per_second']:,.1f}")]
            if d.get("warm_events_per_second") and d.get("warm_events")
            else []
        ),
        ("MB/s in", f"{d['bytes_in'] / d['seconds'] / 1e6:,.0f}" if d.get("seconds") else "-"),
        ("seconds (steady state)", f"{d['seconds']:.2f}"),
        ("start-up seconds", f"{d['startup_seconds']:.2f}"),
    ]
    if "hits" in d:
        rows.append(("hits", f"{d['hits']:,}"))
    if d.get("events_dropped"):
        rows.append(("dropped", f"{d['events_dropped']:,} {d.get('drop_reasons', {})}"))
    read = d.get("events_read")
    if read and read != d["events"]:  # a reduction at the source: what it kept
        rows.append(("kept", f"{d['events']:,} of {read:,} read ({100 * d['events'] / read:.0f}%)"))
        if d.get("seconds"):
            rows.append(("events read/s", f"{read / d['seconds']:,.1f}"))
    return rows


def receive_rows(d: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [
        ("events", f"{d['events']:,}"),
        ("messages", f"{d['messages']:,}"),
        ("MB received", fmt_mb(d["bytes"])),
        ("seconds", f"{d['seconds']:.2f}"),
        ("senders ended", f"{d['senders_ended']}/{d['senders'] or '?'}"),
        ("events sent (end totals)", f"{d['events_sent']:,}"),
        ("complete", "yes" if d["complete"] else "NO"),
    ]
    if d.get("events_dropped"):
        rows.append(("dropped by sender", f"{d['events_dropped']:,} {d['drop_reasons']}"))
    read = d.get("events_sent", 0) + d.get("events_dropped", 0)
    if d.get("bytes_read") and read:  # the senders' reduction, from their end messages
        rows.append(("hits (senders)", f"{d.get('hits', 0):,} of {read:,} read "
                     f"({100 * d.get('hits', 0) / read:.0f}%)"))  # fmt: skip
        rows.append(("MB read -> sent (senders)",
                     f"{fmt_mb(d['bytes_read'])} -> {fmt_mb(d.get('bytes_sent', 0))}"))  # fmt: skip
    if d.get("files"):
        rows.append(("files", f"{len(d['files'])} in {Path(d['files'][0]).parent}"))
    if d.get("rejected"):
        rows.append(("rejected messages", f"{d['rejected']:,} {d.get('rejected_reasons', {})}"))
    return rows


def stage_table(stages: dict[str, dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table(title="stages", title_justify="left")
    for col in ("stage", "events", "MB in", "MB out", "busy s"):
        table.add_column(col, justify="right" if col != "stage" else "left")
    for name, s in stages.items():
        if name == "model" and not s.get("items"):
            continue  # no batch model in this run
        table.add_row(
            name,
            f"{s['events']:,}",
            fmt_mb(s["bytes_in"]),
            fmt_mb(s["bytes_out"]),
            f"{s['busy_seconds']:.2f}",
        )
    return table


class Progress:
    """A rich progress display with one bar per named task (nothing in quiet mode)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._p: Any = None
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
            )
            from rich.progress import Progress as RichProgress

            self._p = RichProgress(
                TextColumn("{task.description:<9}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                console=console(),
                transient=False,
            )
            self._p.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._p is not None:
            self._p.__exit__(*exc)

    def update(self, name: str, done: int, total: int | None, info: str = "") -> None:
        if self._p is None:
            return
        if name not in self._tasks:
            self._tasks[name] = self._p.add_task(name, total=total, info=info)
        self._p.update(self._tasks[name], completed=done, total=total, info=info)

    def sent(self, total: int | None) -> Callable[[dict[str, Any]], None]:
        """A pipeline progress callback that moves the ``sent`` bar."""

        def cb(st: dict[str, Any]) -> None:
            secs = st["seconds"]
            rate = f"{st['bytes_in'] / secs / 1e6:,.0f} MB/s in" if secs > 0 else ""
            self.update("sent", st["events_sent"], total, rate)

        return cb
