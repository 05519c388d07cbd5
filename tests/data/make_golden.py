"""Write the golden wire files in tests/data/golden/ and their manifest (tests/data/manifest.json).

Why: a message written by this version must still decode in later versions (a consumer
built against today's stream, files kept on disk). tests/test_golden.py decodes these files
with the current parsers and with independent decoders (h5py + hdf5plugin, cbor2 +
dectris-compression, bitshuffle) and compares them with what this script recorded here:
the arrays, ids and timestamps that went in, the stream facts, and the end totals.

Regenerate (one command, from the repository root; replaces every file)::

    .venv/bin/python tests/data/make_golden.py

Deterministic: fixed seeds, stream ids, timestamps and clocks (the two serializers that
read the wall clock get a fixed one), small frames; only HDF5's object modification times
(written by the HDF5 library itself) differ between runs. Only the end-total fields that the
written files carry are recorded, so fields added to StreamTotals later are picked up by
regenerating (set them in ``totals()`` below) and old files keep being checked for what
they have. Container: see tests/data/README.md.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import json
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import cbor2
import h5py
import hdf5plugin  # noqa: F401  (registers the filters h5py reads back here)
import numpy as np
from lclstream import _core
from lclstream.formats import (
    HDF5BinarySerializer,
    LclstreamerSimplonSerializer,
    RawBatchSerializer,
    SimplonBinarySerializer,
    simplon,
)
from lclstream.formats.npz import NumpyBinarySerializer
from lclstream.protocols import DetectorInfo, EventBatch, Message, StreamInfo, StreamTotals

HERE = Path(__file__).resolve().parent
OUT = HERE / "golden"
MANIFEST = HERE / "manifest.json"

#: 2025-12-01T00:00:00Z: the clock of the serializers that read one, and the first event.
EPOCH_S = 1_764_547_200
T0_NS = EPOCH_S * 10**9 + 123_456_789
#: 120 Hz, LCLS' repetition rate
DT_NS = 8_333_333
SOURCE = "exp=xpptut15,run=670"
#: tag 40 typed-array tags by numpy dtype (RFC 8746, little endian)
TYPED_TAG = {"<u2": 69, "<u4": 70, "<f4": 85}


# -- inputs -----------------------------------------------------------------------------------
def photons(n: int, shape: tuple[int, ...], dtype: str, seed: int) -> np.ndarray:
    """Sparse photon counts (or keV-like floats), one saturated pixel per frame."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, *shape), dtype)
    hit = rng.random(out.shape) < 0.05
    if np.dtype(dtype).kind == "f":
        out[hit] = rng.normal(9.5, 0.3, int(hit.sum())).astype(dtype)
    else:
        out[hit] = rng.integers(1, 6, int(hit.sum()))
        out.reshape(n, -1)[:, 0] = np.iinfo(dtype).max
    return out


def peaks(n: int, seed: int, max_peaks: int = 4) -> dict[str, np.ndarray]:
    """CXI peak lists (nPeaks + fixed-width position / intensity rows)."""
    rng = np.random.default_rng(seed)
    npk = rng.integers(0, max_peaks + 1, n).astype(np.int32)
    rows = {k: np.zeros((n, max_peaks), np.float32) for k in ("peakXPosRaw", "peakYPosRaw")}
    inten = np.zeros((n, max_peaks), np.float32)
    for i, k in enumerate(npk):
        rows["peakXPosRaw"][i, :k] = rng.uniform(0, 32, k)
        rows["peakYPosRaw"][i, :k] = rng.uniform(0, 32, k)
        inten[i, :k] = rng.uniform(100, 1000, k)
    return {"nPeaks": npk, **rows, "peakTotalIntensity": inten}


def batch(
    data: np.ndarray,
    first: int,
    arrays: dict[str, np.ndarray] | None = None,
    results: dict[str, np.ndarray] | None = None,
) -> EventBatch:
    """Events ``first``, ``first + 1``, … (ids from 1000), timestamps at 120 Hz from T0."""
    n = len(data)
    return EventBatch(
        event_ids=np.arange(1000 + first, 1000 + first + n, dtype=np.uint64),
        timestamps=np.asarray(T0_NS + DT_NS * np.arange(first, first + n), np.uint64),
        arrays={"detector_data": data, **(arrays or {})},
        results=dict(results or {}),
    )


def detector(shape: tuple[int, ...], dtype: str, **kw: Any) -> DetectorInfo:
    base: dict[str, Any] = dict(
        pixel_size_m=75e-6,
        detector_distance_m=0.125,
        photon_energy_keV=9.5,
        beam_center_px=(16.5, 15.25),
        serial="jf-golden-0001",
    )
    base.update(kw)
    return DetectorInfo("detector_data", "jungfrau", shape, dtype, **base)


def stream_info(
    stream_id: str, dets: dict[str, DetectorInfo], calibration: str = "photons", **kw: Any
) -> StreamInfo:
    return StreamInfo(
        stream_id=stream_id,
        source_identifier=SOURCE,
        calibration=calibration,  # type: ignore[arg-type]
        detectors=dets,
        **kw,
    )


def totals(sent: int, messages: int, drops: dict[str, int], state: str) -> StreamTotals:
    """End totals; fields this version's StreamTotals lacks are left out (see module doc)."""
    dropped = sum(drops.values())
    wanted: dict[str, Any] = {
        "events_sent": sent,
        "messages_sent": messages,
        "events_dropped": dropped,
        "drop_reasons": dict(drops),
        "cancelled": state == "cancelled",
        "events_read": sent + dropped,
        "end_state": state,
        "error": "",
    }
    names = {f.name for f in dataclasses.fields(StreamTotals)}
    return StreamTotals(**{k: v for k, v in wanted.items() if k in names})


# -- recording ----------------------------------------------------------------------------------
def array_spec(a: np.ndarray) -> dict[str, Any]:
    """How the manifest pins an array: dtype, shape, sum (for people) and sha256 (exact)."""
    a = np.ascontiguousarray(a)
    le = a.astype(a.dtype.newbyteorder("<"), copy=False)
    total = float(a.sum(dtype=np.float64)) if a.size else 0.0
    return {
        "dtype": le.dtype.str,
        "shape": list(a.shape),
        "sum": total,
        "sha256": hashlib.sha256(le.tobytes()).hexdigest(),
    }


def jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return jsonable(v.tolist())
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, bytes):
        return v.decode()
    return v


def batch_expect(b: EventBatch) -> dict[str, Any]:
    return {
        "event_ids": [int(x) for x in b.event_ids],
        "timestamps": [int(x) for x in b.timestamps],
        "arrays": {k: array_spec(v) for k, v in b.arrays.items()},
        "results": {k: array_spec(v) for k, v in b.results.items()},
    }


def facts(info: StreamInfo, *fields: str) -> dict[str, Any]:
    return {f: getattr(info, f) for f in fields}


def end_totals(t: StreamTotals, present: set[str]) -> dict[str, Any]:
    """The totals fields the written end message carries (under their own names)."""
    return {k: v for k, v in dataclasses.asdict(t).items() if k in present}


class Writer:
    """Collects one stream's messages: writes each frame to a file, records expectations."""

    def __init__(self, name: str, fmt: str, serializer: str, options: dict[str, Any]) -> None:
        self.name = name
        self.entry: dict[str, Any] = {
            "name": name,
            "format": fmt,
            "serializer": serializer,
            "options": options,
            "messages": [],
        }
        (OUT / name).mkdir(parents=True)

    def add(
        self, frames: Message, kind: str, exts: list[str], expect: dict[str, Any], **extra: Any
    ) -> list[bytes]:
        i = len(self.entry["messages"])
        paths = []
        blobs = [bytes(memoryview(f).cast("B")) for f in frames]
        for k, (blob, ext) in enumerate(zip(blobs, exts, strict=True)):
            suffix = f".f{k}" if len(blobs) > 1 else ""
            rel = f"{self.name}/{i:02d}_{kind}{suffix}.{ext}"
            (OUT / rel).write_bytes(blob)
            paths.append(rel)
        self.entry["messages"].append(
            {"frames": paths, "expect": jsonable({"kind": kind, **expect}), **jsonable(extra)}
        )
        return blobs


# -- HDF5 -----------------------------------------------------------------------------------
H5_FACTS = ("stream_id", "sender", "senders", "source_identifier", "calibration")


def h5_attrs(blob: bytes) -> dict[str, Any]:
    with h5py.File(io.BytesIO(blob), "r") as f:
        return {k: jsonable(v) for k, v in f.attrs.items()}


def h5_stream(
    name: str,
    options: dict[str, Any],
    info: StreamInfo,
    batches: list[EventBatch],
    end: StreamTotals,
    filter_id: int | None,
) -> dict[str, Any]:
    ser = HDF5BinarySerializer(**options)
    w = Writer(name, "hdf5", "HDF5BinarySerializer", options)
    assert ser.start(info) == []  # HDF5 streams have no start message
    dets = {k: dataclasses.asdict(d) for k, d in info.detectors.items()}
    expect_info = {**facts(info, *H5_FACTS), "detectors": dets}
    attrs_expect = {
        **facts(info, *H5_FACTS),
        "lclstream_version": _core.__version__,
    }
    fields: dict[str, Any] = {}
    for seq, b in enumerate(batches):
        (msg,) = ser.serialize(b)
        (blob,) = msg
        with h5py.File(io.BytesIO(blob), "r") as f:
            fields = json.loads(f.attrs["lclstream_fields"])
        datasets = {fields["arrays"][k]: array_spec(v) for k, v in b.arrays.items()}
        datasets.update({fields["results"][k]: array_spec(v) for k, v in b.results.items()})
        if fields["event_id"]:
            datasets[fields["event_id"]] = array_spec(np.asarray(b.event_ids, np.uint64))
        if fields["timestamp"]:
            datasets[fields["timestamp"]] = array_spec(np.asarray(b.timestamps, np.uint64))
        expect_batch = batch_expect(b)
        if not fields["event_id"]:  # ids/timestamps not written: the parser numbers events
            del expect_batch["event_ids"], expect_batch["timestamps"]
        w.add(
            msg,
            "data",
            ["h5"],
            {"sequence": seq, **facts(info, "stream_id", "sender", "senders")}
            | {"info": expect_info, "batch": expect_batch},
            h5={
                "attrs": {**attrs_expect, "sequence": seq},
                "datasets": datasets,
                "filters": {fields["arrays"]["detector_data"]: filter_id},
            },
        )
    (msg,) = ser.end(end)
    (blob,) = msg
    present = set(h5_attrs(blob))
    tot = end_totals(end, present)
    empty = {p: {**s, "shape": [0, *s["shape"][1:]]} for p, s in datasets.items()}
    for s in empty.values():
        s.pop("sha256"), s.pop("sum")
    w.add(
        msg,
        "end",
        ["h5"],
        {"sequence": len(batches), **facts(info, "stream_id", "sender", "senders")}
        | {"info": expect_info, "totals": tot},
        h5={
            "attrs": {**attrs_expect, "sequence": len(batches), "end_of_stream": True, **tot},
            "datasets": empty,
        },
    )
    return w.entry


# -- SIMPLON stream2 --------------------------------------------------------------------------
S2_FACTS = ("stream_id", "sender", "senders", "source_identifier", "calibration")


def series_id(stream_id: str) -> int:
    return int(stream_id) if stream_id.isdecimal() else simplon.series_id_of(stream_id)


def image_of(frame: np.ndarray, layout: tuple[int, int] | None) -> np.ndarray:
    """The 2-D stream2 image of one frame, by the documented rule (plain numpy)."""
    if layout is None:  # modules stacked along y
        return frame.reshape(-1, frame.shape[-1])
    rows, cols = layout
    m, h, wd = frame.shape
    return frame.reshape(rows, cols, h, wd).transpose(0, 2, 1, 3).reshape(rows * h, cols * wd)


def s2_stream(
    name: str,
    options: dict[str, Any],
    info: StreamInfo,
    b: EventBatch,
    end: StreamTotals,
) -> dict[str, Any]:
    ser = SimplonBinarySerializer(**options)
    w = Writer(name, "simplon", "SimplonBinarySerializer", options)
    det = info.detectors["detector_data"]
    layout = det.module_layout if options.get("assemble") else None
    ids = {"series_id": series_id(info.stream_id), "series_unique_id": info.stream_id}
    base = facts(info, "stream_id", "sender", "senders")
    start = ser.start(info)
    arr = b.arrays["detector_data"]
    img0 = image_of(arr[0], layout)
    if info.sender == 0:
        (msg,) = start
        w.add(
            msg,
            "start",
            ["cbor"],
            {"sequence": -1, **base}
            | {
                "info": {
                    **facts(info, *S2_FACTS),
                    "detectors": {
                        "detector_data": {
                            "frame_shape": list(det.frame_shape),
                            "dtype": np.dtype(det.dtype).name,
                            "pixel_size_m": det.pixel_size_m,
                            "detector_distance_m": det.detector_distance_m,
                            "photon_energy_keV": det.photon_energy_keV,
                            "beam_center_px": det.beam_center_px,
                            "serial": det.serial,
                            "module_layout": layout,
                        }
                    },
                }
            },
            cbor={
                "type": "start",
                **ids,
                "image_dtype": np.dtype(det.dtype).name,
                "image_size_y": img0.shape[0],
                "image_size_x": img0.shape[1],
                "incident_energy": det.photon_energy_keV * 1e3 if det.photon_energy_keV else 0.0,
                "beam_center_x": det.beam_center_px[0] if det.beam_center_px else None,
                "beam_center_y": det.beam_center_px[1] if det.beam_center_px else None,
                "detector_serial_number": det.serial,
                "arm_date": "2025-12-01T00:00:00+00:00",
            },
        )
    else:
        assert start == []  # stream2: only sender 0 sends the start message
    msgs = ser.serialize(b)
    for i, msg in enumerate(msgs):
        one = EventBatch(
            b.event_ids[i : i + 1], b.timestamps[i : i + 1], {"detector_data": arr[i : i + 1]}
        )
        image = image_of(arr[i], layout)
        w.add(
            msg,
            "image",
            ["cbor"],
            {"kind": "data", "sequence": i, **base}
            | {"info": facts(info, *S2_FACTS), "batch": batch_expect(one)},
            cbor={
                "type": "image",
                **ids,
                "image_id": i * info.senders + info.sender,
                "lclstream": {
                    **base,
                    "sequence": i,
                    "event_id": int(b.event_ids[i]),
                    "timestamp": int(b.timestamps[i]),
                },
                "image": {
                    "channel": options.get("channel", "threshold_1"),
                    "typed_tag": TYPED_TAG[arr.dtype.str],
                    "compression": options.get("compression", "bslz4"),
                    **array_spec(image),
                },
            },
        )
    (msg,) = ser.end(end)
    ours = cbor2.loads(bytes(msg[0]))["user_data"]["lclstream"]
    tot = end_totals(end, set(ours))
    w.add(
        msg,
        "end",
        ["cbor"],
        {"sequence": len(msgs), **base} | {"info": facts(info, *S2_FACTS), "totals": tot},
        cbor={
            "type": "end",
            **ids,
            "lclstream": {**base, "end_of_stream": True, "sequence": len(msgs), **tot},
        },
    )
    return w.entry


# -- LCLStreamer SIMPLON ----------------------------------------------------------------------
LS_FACTS = ("stream_id", "sender", "senders", "calibration")


def ls_stream(
    name: str, options: dict[str, Any], info: StreamInfo, b: EventBatch, end: StreamTotals
) -> dict[str, Any]:
    ser = LclstreamerSimplonSerializer(**options)
    w = Writer(name, "lclstreamer_simplon", "LclstreamerSimplonSerializer", options)
    base = facts(info, "stream_id", "sender", "senders")
    assert ser.start(info) == []  # the start map comes with the first batch
    msgs = ser.serialize(b)
    arr = b.arrays["detector_data"]
    start, images = (msgs[0], msgs[1:]) if info.sender == info.senders - 1 else (None, msgs)
    if start is not None:
        w.add(
            start,
            "start",
            ["bin"],
            {"sequence": 0, **base, "info": facts(info, *LS_FACTS)},
            cbor={
                "prefix": "c",
                "type": "start",
                "run_number": 670,
                "experiment": "xpptut15",
                "datatype": arr.dtype.name,
                "shape": "x".join(str(s) for s in arr.shape[1:]),
                "start_time": float(EPOCH_S),
            },
        )
    for i, msg in enumerate(images):
        # LCLStreamer sends seconds as a float: ns survive only to float64's ~256 ns
        ts = np.array([round(int(b.timestamps[i]) / 1e9 * 1e9)], np.uint64)
        one = EventBatch(b.event_ids[i : i + 1], ts, {"detector_data": arr[i : i + 1]})
        w.add(
            msg,
            "image",
            ["bin"],
            {"kind": "data", "sequence": i, **base}
            | {"info": facts(info, *LS_FACTS), "batch": batch_expect(one)},
            cbor={
                "prefix": "m",
                "type": "image",
                "run": 670,
                "message_id": info.sender * 10000 + i + 1,
                "event_id": int(b.event_ids[i]),
                "timestamp": int(b.timestamps[i]) / 1e9,
                "sum": int(arr[i].sum()) if arr.dtype.kind in "ui" else float(arr[i].sum()),
                "image": {"block_size": 4096 // arr.dtype.itemsize, **array_spec(arr[i])},
            },
        )
    (msg,) = ser.end(end)
    ours = cbor2.loads(bytes(msg[0])[1:])["lclstream"]
    tot = end_totals(end, set(ours))
    w.add(
        msg,
        "end",
        ["bin"],
        {"sequence": len(images), **base, "info": facts(info, *LS_FACTS), "totals": tot},
        cbor={
            "prefix": "c",
            "type": "stop",
            "run": 670,
            "timestamp": float(EPOCH_S),
            "lclstream": {**base, "end_of_stream": True, "sequence": len(images), **tot},
        },
    )
    return w.entry


# -- raw batches --------------------------------------------------------------------------------
RAW_FACTS = ("stream_id", "sender", "senders", "source_identifier", "calibration")


def raw_stream(
    name: str,
    options: dict[str, Any],
    info: StreamInfo,
    batches: list[EventBatch],
    end: StreamTotals,
) -> dict[str, Any]:
    ser = RawBatchSerializer(**options)
    w = Writer(name, "raw", "RawBatchSerializer", options)
    base = facts(info, "stream_id", "sender", "senders")
    assert ser.start(info) == []
    for seq, b in enumerate(batches):
        (msg,) = ser.serialize(b)
        w.add(
            msg,
            "data",
            ["cbor", "bin"],
            {"sequence": seq, **base, "info": facts(info, *RAW_FACTS), "batch": batch_expect(b)},
            cbor={
                "format": "lclstream-raw",
                "kind": "data",
                "sequence": seq,
                **facts(info, *RAW_FACTS),
                "name": "detector_data",
                "compression": ser.compression,
                "payload": array_spec(b.arrays["detector_data"]),
            },
        )
    (msg,) = ser.end(end)
    head = cbor2.loads(bytes(msg[0]))
    tot = end_totals(end, set(head))
    dets = {
        k: {"kind": d.kind, "frame_shape": list(d.frame_shape), "dtype": d.dtype}
        for k, d in info.detectors.items()
    }
    w.add(
        msg,
        "end",
        ["cbor", "bin"],
        {"sequence": len(batches), **base}
        | {"info": {**facts(info, *RAW_FACTS), "detectors": dets}, "totals": tot},
        cbor={
            "format": "lclstream-raw",
            "kind": "end",
            "sequence": len(batches),
            **facts(info, *RAW_FACTS),
            "end_of_stream": True,
            **tot,
        },
    )
    return w.entry


# -- the streams ----------------------------------------------------------------------------------
JF = (2, 16, 32)  # two 16 x 32 "modules": small, but shaped like Jungfrau frames


def streams() -> Iterator[dict[str, Any]]:
    u16 = photons(4, JF, "uint16", seed=1)
    epix = photons(4, (1, 12, 16), "float32", seed=2)
    energy = np.full(4, 9500.0, np.float64)
    pk = peaks(4, seed=3)
    two_dets = {
        "detector_data": detector(JF, "uint16"),
        "epix10k": DetectorInfo("epix10k", "epix10ka", (1, 12, 16), "float32"),
    }
    cxi = [
        batch(
            u16[i : i + 2],
            i,
            {"epix10k": epix[i : i + 2], "photon_energy_eV": energy[i : i + 2]},
            {k: v[i : i + 2] for k, v in pk.items()},
        )
        for i in (0, 2)
    ]
    yield h5_stream(
        "hdf5_bslz4_cxi",
        {"compression": "bitshuffle_with_lz4"},
        stream_info("golden-hdf5-bslz4", two_dets),
        cxi,
        totals(4, 2, {"not_a_hit": 1}, "completed"),
        32008,
    )
    kev = photons(2, JF, "float32", seed=4)
    h5_variants: list[tuple[str, str | None, dict[str, Any], np.ndarray, str, int | None]] = [
        ("hdf5_bszstd_kev", "bitshuffle_with_zstd", {"compression_level": 5}, kev, "keV", 32008),
        ("hdf5_lz4", "lz4", {}, u16[:2], "photons", 32004),
        ("hdf5_zstd", "zstd", {"compression_level": 3}, u16[:2], "photons", 32015),
        ("hdf5_gzip_shuffle", "gzip_with_shuffle", {}, u16[:2], "photons", 1),
        ("hdf5_none_u32", None, {}, photons(2, JF, "uint32", seed=5), "photons", None),
    ]
    for name, comp, extra, data, cal, fid in h5_variants:
        yield h5_stream(
            name,
            {"compression": comp, **extra},
            stream_info(f"golden-{name}", {"detector_data": detector(JF, data.dtype.str)}, cal),
            [batch(data, 0)],
            totals(2, 1, {}, "cancelled" if name == "hdf5_lz4" else "completed"),
            fid,
        )
    yield h5_stream(
        "hdf5_fields",
        {
            "compression": "bitshuffle_with_lz4",
            "fields": {
                "detector_data": "/data/data",
                "event_id": "/data/event_id",
                "timestamp": "/data/timestamp",
                "nPeaks": "/data/npeaks",
            },
        },
        stream_info("golden-hdf5-fields", {"detector_data": detector(JF, "uint16")}),
        [batch(u16[:2], 0, results={"nPeaks": pk["nPeaks"][:2]})],
        totals(2, 1, {"calibration_failed": 1, "full_queue": 2}, "completed"),
        32008,
    )
    # stream2: decimal stream id (series_id = it), one sender; then a named stream id
    # (series_id = CRC-32), float32 keV, no compression; then sender 1 of 2, modules assembled
    yield s2_stream(
        "simplon_bslz4",
        {"compression": "bslz4"},
        stream_info("20251201", {"detector_data": detector(JF, "uint16")}),
        batch(u16[:3], 0),
        totals(3, 3, {"not_a_hit": 2}, "completed"),
    )
    yield s2_stream(
        "simplon_none_kev",
        {"compression": None},
        stream_info("golden-simplon-kev", {"detector_data": detector(JF, "float32")}, "keV"),
        batch(kev, 0),
        totals(2, 2, {}, "cancelled"),
    )
    yield s2_stream(
        "simplon_assembled_sender1",
        {"compression": "bslz4", "assemble": True},
        stream_info(
            "golden-simplon-2senders",
            {"detector_data": detector(JF, "uint32", module_layout=(1, 2))},
            sender=1,
            senders=2,
        ),
        batch(photons(2, JF, "uint32", seed=6), 0),
        totals(2, 2, {}, "completed"),
    )
    yield ls_stream(
        "lclstreamer_simplon",
        {},
        stream_info("golden-lclstreamer", {"detector_data": detector(JF, "uint16")}),
        batch(u16[:3], 0),
        totals(3, 3, {"not_a_hit": 1}, "cancelled"),
    )
    raw = [
        batch(
            u16[i : i + 2],
            i,
            {"photon_energy_eV": energy[i : i + 2]},
            {"nPeaks": pk["nPeaks"][i : i + 2]},
        )
        for i in (0, 2)
    ]
    yield raw_stream(
        "raw_plain",
        {},
        stream_info("golden-raw", {"detector_data": detector(JF, "uint16")}),
        raw,
        totals(4, 2, {"not_a_hit": 3}, "completed"),
    )
    yield npz_stream(
        "npz_plain",
        {},
        stream_info("golden-npz", {"detector_data": detector(JF, "uint16")}),
        [batch(u16[:2], 0, {"photon_energy_eV": energy[:2]})],
        totals(3, 1, {"not_a_hit": 1}, "completed"),
    )
    yield npz_stream(
        "npz_compressed",
        {"use_compression": True},
        stream_info("golden-npz-z", {"detector_data": detector(JF, "uint16")}),
        [batch(u16[:2], 0)],
        totals(2, 1, {}, "failed"),
    )
    yield raw_stream(
        "raw_bslz4",
        {"compression": "bitshuffle_with_lz4"},
        stream_info("golden-raw-bslz4", {"detector_data": detector(JF, "uint16")}),
        [batch(u16[:2], 0)],
        totals(2, 1, {}, "cancelled"),
    )


# -- npz (LCLStreamer's NumpyBinarySerializer) ---------------------------------------------------
def npz_stream(
    name: str,
    options: dict[str, Any],
    info: StreamInfo,
    batches: list[EventBatch],
    end: StreamTotals,
) -> dict[str, Any]:
    ser = NumpyBinarySerializer(**options)
    w = Writer(name, "npz", "NumpyBinarySerializer", options)
    base = facts(info, "stream_id", "sender", "senders")
    assert ser.start(info) == []
    for seq, b in enumerate(batches):
        (msg,) = ser.serialize(b)
        names = sorted(
            [*b.arrays, *b.results, "lclstream_event_id", "lclstream_timestamp", "lclstream"]
        )
        w.add(
            msg,
            "data",
            ["npz"],
            {"sequence": seq, **base, "batch": batch_expect(b)},
            npz_entries=names,
        )
    (msg,) = ser.end(end)
    w.add(
        msg,
        "end",
        ["npz"],
        {"sequence": len(batches), **base, "totals": dataclasses.asdict(end)},
        npz_entries=["lclstream"],
    )
    return w.entry


@contextmanager
def fixed_clocks() -> Iterator[None]:
    """The wall clock, as the serializers read it (stream2's series date, LCLStreamer's
    timestamps), fixed at EPOCH_S, so that regenerating gives the same bytes."""
    fixed = dt.datetime.fromtimestamp(EPOCH_S, dt.timezone.utc)
    now: Callable[[], dt.datetime] = lambda: fixed  # noqa: E731
    assert hasattr(simplon, "_now"), "simplon no longer reads the clock via _now: update me"
    with mock.patch.object(simplon, "_now", now), mock.patch("time.time", lambda: float(EPOCH_S)):
        yield


def main() -> int:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir()
    with fixed_clocks():
        entries = list(streams())
    manifest = {
        "about": "golden wire files: see README.md; made by make_golden.py",
        "lclstream_version": _core.__version__,
        "streams": entries,
    }
    MANIFEST.write_text(json.dumps(jsonable(manifest), indent=1, sort_keys=False) + "\n")
    files = sorted(p for p in OUT.rglob("*") if p.is_file())
    size = sum(p.stat().st_size for p in files)
    print(f"wrote {len(files)} files, {size} bytes, in {OUT}; manifest {MANIFEST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
