"""Look inside HDF5 files and received messages: datasets, compression, stream facts.

``inspect(target)`` returns a plain dict (JSON-ready) that the CLI prints with
:func:`render` (a rich renderable) or as JSON. Targets: an ``.h5`` file, a directory of
them, or a list of received messages (each a list of frames) in any of our formats.
Completeness: per stream, which senders' end messages arrived and whether their totals
match the events seen (``complete`` is None when no end message was seen); for messages,
``lclstream.completeness.StreamTracker`` (when present) adds exact per-sender accounting
(missing sequence numbers, duplicates) under ``problems``. Directories written by
``FileWriter`` hold each sender's end file, so they prove their own completeness.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin  # noqa: F401  (filter names and decoding)

from lclstream.errors import FormatError, SourceError
from lclstream.formats import detect, parse
from lclstream.formats._common import as_frames, frame_bytes
from lclstream.formats.hdf5 import open_image
from lclstream.protocols import ParsedMessage

_FILTER_NAMES = {32008: "bitshuffle", 32004: "lz4", 32015: "zstd", 1: "gzip", 2: "shuffle"}
_BSHUF_CODECS = {0: "", 2: "+lz4", 3: "+zstd"}


def _filters(dset: h5py.Dataset) -> str:
    if dset.chunks is None:
        return "none (contiguous)"
    plist = dset.id.get_create_plist()
    names = []
    for i in range(plist.get_nfilters()):
        fid, _flags, vals, _name = plist.get_filter(i)
        name = _FILTER_NAMES.get(fid, f"filter {fid}")
        if fid == 32008 and len(vals) > 4:
            name += _BSHUF_CODECS.get(int(vals[4]), f"+{vals[4]}")
        names.append(name)
    return ",".join(names) or "none"


def _attr(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode(errors="replace")
    if hasattr(v, "item") and getattr(v, "ndim", 1) == 0:
        return v.item()
    if hasattr(v, "tolist"):
        return v.tolist()
    return v


def describe_hdf5(f: h5py.File) -> dict[str, Any]:
    """Datasets (shape, dtype, chunks, filter, stored bytes, ratio) and root attributes."""
    datasets: list[dict[str, Any]] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            raw = int(obj.size) * obj.dtype.itemsize
            stored = int(obj.id.get_storage_size())
            datasets.append(
                {
                    "path": "/" + name,
                    "shape": list(obj.shape),
                    "dtype": str(obj.dtype),
                    "chunks": list(obj.chunks) if obj.chunks else None,
                    "compression": _filters(obj),
                    "bytes": raw,
                    "stored_bytes": stored,
                    "ratio": (raw / stored) if stored else None,
                }
            )

    f.visititems(visit)
    attrs = {k: _attr(v) for k, v in f.attrs.items()}
    for k in ("drop_reasons", "lclstream_fields", "lclstream_detectors"):
        if isinstance(attrs.get(k), str):
            try:
                attrs[k] = json.loads(attrs[k])
            except ValueError:
                pass
    return {"datasets": datasets, "attrs": attrs}


def _events_of(desc: dict[str, Any]) -> int:
    fields = desc["attrs"].get("lclstream_fields")
    paths = [d for d in desc["datasets"] if d["shape"]]
    if isinstance(fields, dict) and fields.get("event_id"):
        paths = [d for d in paths if d["path"] == fields["event_id"]] or paths
    return int(paths[0]["shape"][0]) if paths else 0


def inspect_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    p = Path(path)
    try:
        with h5py.File(p, "r") as f:
            desc = describe_hdf5(f)
    except OSError as exc:
        raise SourceError(f"{p}: not a readable HDF5 file: {exc}") from exc
    desc.update(source=str(p), format="hdf5", nbytes=p.stat().st_size, events=_events_of(desc))
    a = desc["attrs"]
    desc["kind"] = "end" if a.get("end_of_stream") else "data"
    return desc


def inspect_message(message: Any) -> dict[str, Any]:
    """Facts of one received message (any of our formats), without decoding image data."""
    desc, _ = _inspect_message(message)
    return desc


def _inspect_message(message: Any) -> tuple[dict[str, Any], ParsedMessage]:
    frames = as_frames(message)
    fmt = detect(frames)
    nbytes = sum(len(frame_bytes(fr)) for fr in frames)
    parsed = parse(frames, decode=False)
    if fmt == "hdf5":
        with open_image(frames[0]) as f:
            desc = describe_hdf5(f)
        a = desc["attrs"]
        desc.update(
            format=fmt, nbytes=nbytes, events=_events_of(desc),
            kind="end" if a.get("end_of_stream") else "data",
        )  # fmt: skip
        return desc, parsed
    desc = {
        "format": fmt,
        "kind": parsed.kind,
        "nbytes": nbytes,
        "events": len(parsed.batch) if parsed.batch is not None else 0,
        "attrs": {
            "stream_id": parsed.stream_id,
            "sender": parsed.sender,
            "senders": parsed.senders,
            "sequence": parsed.sequence,
        },
        "datasets": [],
    }
    if parsed.totals is not None:
        t = parsed.totals
        desc["attrs"].update(
            end_of_stream=True, events_sent=t.events_sent, messages_sent=t.messages_sent,
            events_dropped=t.events_dropped, drop_reasons=dict(t.drop_reasons),
        )  # fmt: skip
    if parsed.batch is not None:
        for name, arr in parsed.batch.arrays.items():
            desc["datasets"].append(
                {"path": name, "shape": list(arr.shape), "dtype": str(arr.dtype)}
            )
    return desc, parsed


def _tracker() -> Any:
    """lclstream.completeness.StreamTracker where it exists (the transport's accounting)."""
    try:
        from lclstream.completeness import StreamTracker
    except ImportError:
        return None
    return StreamTracker()


def _streams(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Per stream: senders seen, events seen, end totals, and whether they add up."""
    streams: dict[str, dict[str, Any]] = {}
    for it in items:
        a = it.get("attrs", {})
        sid = str(a.get("stream_id", ""))
        s = streams.setdefault(
            sid, {"senders": int(a.get("senders", 1)), "events": 0, "messages": 0, "ends": {}}
        )
        if it.get("kind") == "end":
            s["ends"][str(a.get("sender", 0))] = {
                k: a.get(k)
                for k in ("events_sent", "messages_sent", "events_dropped", "drop_reasons")
            }
        else:
            s["events"] += int(it.get("events", 0))
            s["messages"] += 1
    for s in streams.values():
        if len(s["ends"]) < s["senders"]:
            s["complete"] = None if not s["ends"] else False
            # listed up to 100: the count a message declares must not drive the work
            have = {int(k) for k in s["ends"]}
            s["missing_end_from"] = [i for i in range(min(int(s["senders"]), 100)) if i not in have]
        else:
            sent = sum(int(e.get("events_sent") or 0) for e in s["ends"].values())
            s["events_sent"] = sent
            s["complete"] = sent == s["events"]
    return streams


def inspect(target: str | os.PathLike[str] | Sequence[Any] | Iterable[Any]) -> dict[str, Any]:
    """Facts about a file, a directory of files, or a list of received messages."""
    items: list[dict[str, Any]]
    tracker: Any = None
    if isinstance(target, (str, os.PathLike)):
        p = Path(target)
        if p.is_dir():
            files = sorted(x for x in p.iterdir() if x.suffix in (".h5", ".hdf5", ".cxi"))
            items = [inspect_file(x) for x in files]
        elif p.exists():
            items = [inspect_file(p)]
        else:
            raise SourceError(f"{p}: no such file or directory")
        source = str(p)
    else:
        items = []
        tracker = _tracker()
        for i, m in enumerate(target):
            try:
                desc, parsed = _inspect_message(m)
            except FormatError as exc:
                items.append({"format": "unknown", "kind": "error", "error": f"message {i}: {exc}"})
                continue
            if tracker is not None:
                try:
                    tracker.add(parsed)
                except FormatError as exc:  # impossible counts, senders beyond the limits
                    items.append(
                        {
                            "format": desc.get("format"),
                            "kind": "error",
                            "error": f"message {i}: {exc}",
                        }
                    )
                    continue
            items.append(desc)
        source = f"{len(items)} messages"
    total = sum(int(it.get("nbytes", 0)) for it in items)
    streams = _streams([it for it in items if it.get("kind") in ("data", "end")])
    if tracker is not None:  # exact accounting (sequence gaps, duplicates) for messages
        for sid, st in streams.items():
            rep = tracker.report(sid)
            st["complete"] = bool(rep.complete) if rep.done else (False if st["ends"] else None)
            st["problems"] = rep.problems()
    return {
        "source": source,
        "items": items,
        "messages": len(items),
        "events": sum(int(it.get("events", 0)) for it in items if it.get("kind") == "data"),
        "nbytes": total,
        "streams": streams,
    }


def render(report: dict[str, Any], *, max_items: int = 5) -> Any:
    """A rich renderable of :func:`inspect`'s dict (first ``max_items`` items in detail)."""
    from rich.console import Group
    from rich.table import Table

    parts: list[Any] = []
    for it in report["items"][:max_items]:
        title = (
            f"{it.get('source', it.get('format'))} — {it.get('kind')}, {it.get('events', 0)} events"
        )
        t = Table(title=title, title_justify="left")
        for col in ("dataset", "shape", "dtype", "compression", "ratio"):
            t.add_column(col)
        for d in it.get("datasets", []):
            ratio = d.get("ratio")
            t.add_row(
                d["path"], "×".join(str(s) for s in d["shape"]), d["dtype"],
                str(d.get("compression", "")), f"{ratio:.2f}" if ratio else "",
            )  # fmt: skip
        parts.append(t)
        attrs = {k: v for k, v in it.get("attrs", {}).items() if not k.startswith("lclstream_")}
        if attrs:
            parts.append("  " + ", ".join(f"{k}={v}" for k, v in attrs.items()))
    if len(report["items"]) > max_items:
        parts.append(f"… {len(report['items']) - max_items} more")
    s = Table(title="streams", title_justify="left")
    for col in ("stream_id", "senders", "messages", "events", "end messages", "complete"):
        s.add_column(col)
    for sid, st in report["streams"].items():
        s.add_row(
            sid, str(st["senders"]), str(st["messages"]), str(st["events"]),
            str(len(st["ends"])), str(st["complete"]),
        )  # fmt: skip
    parts.append(s)
    return Group(*parts)
