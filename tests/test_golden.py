"""Golden wire files: messages written by an earlier version still decode, to the same values.

tests/data/golden/ holds every format's messages as one version wrote them, and
tests/data/manifest.json what went into them (made together by tests/data/make_golden.py;
container in tests/data/README.md). Each message is decoded twice: by ``formats.parse``
(what lclstream's receivers use) and by an independent decoder (h5py + hdf5plugin, cbor2 +
dectris-compression, bitshuffle, numpy), so a change that breaks old streams, or that
both our writer and our parser drift into together, fails here.

The manifest records only the end-total fields that the files carry, and these tests check
every field recorded: files from before a field existed keep being checked for the rest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import bitshuffle
import cbor2
import h5py
import hdf5plugin  # noqa: F401  (registers filters 32008/32004/32015 for h5py)
import numpy as np
import pytest
from dectris.compression import decompress as dectris_decompress
from lclstream import formats

DATA = Path(__file__).resolve().parent / "data"
GOLDEN = DATA / "golden"
MANIFEST: dict[str, Any] = json.loads((DATA / "manifest.json").read_text())
STREAMS: list[dict[str, Any]] = MANIFEST["streams"]


def _messages(fmt: str | None = None) -> list[Any]:
    return [
        pytest.param(s, m, id=f"{s['name']}/{i:02d}_{m['expect']['kind']}")
        for s in STREAMS
        if fmt is None or s["format"] == fmt
        for i, m in enumerate(s["messages"])
    ]


def load(msg: Mapping[str, Any]) -> list[bytes]:
    """The message's frames, in order (one file per frame)."""
    return [(GOLDEN / p).read_bytes() for p in msg["frames"]]


# -- comparing ---------------------------------------------------------------------------------
def plain(v: Any) -> Any:
    """Decoded values as JSON would hold them (tuples → lists, numpy → Python, bytes → str)."""
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return plain(dataclasses.asdict(v))
    if isinstance(v, Mapping):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, np.ndarray):
        return plain(v.tolist())
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, bytes):
        return v.decode()
    return v


def same(actual: Any, expected: Any, where: str) -> None:
    """``actual`` equals the manifest's ``expected``, type included (floats to 1e-12)."""
    a = plain(actual)
    if isinstance(expected, float):  # a float stays a float (stream2 requires it)
        assert isinstance(a, float) and math.isclose(a, expected, rel_tol=1e-12), (
            f"{where}: {a!r} != {expected!r}"
        )
    elif isinstance(expected, dict):
        assert isinstance(a, dict), f"{where}: {a!r} is not a mapping"
        for k, e in expected.items():
            assert k in a, f"{where}: {k!r} missing (has {sorted(a)})"
            same(a[k], e, f"{where}.{k}")
    elif isinstance(expected, list):
        assert isinstance(a, list) and len(a) == len(expected), f"{where}: {a!r} != {expected!r}"
        for i, (x, e) in enumerate(zip(a, expected, strict=True)):
            same(x, e, f"{where}[{i}]")
    else:
        assert a == expected and type(a) is type(expected), f"{where}: {a!r} != {expected!r}"


def same_array(actual: Any, spec: Mapping[str, Any], where: str) -> None:
    """An array equals the manifest's ``{dtype, shape[, sum, sha256]}`` record exactly."""
    arr = np.asarray(actual)
    assert arr.dtype == np.dtype(spec["dtype"]), f"{where}: dtype {arr.dtype} != {spec['dtype']}"
    assert list(arr.shape) == spec["shape"], f"{where}: shape {arr.shape} != {spec['shape']}"
    if "sha256" in spec:
        le = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False)
        digest = hashlib.sha256(le.tobytes()).hexdigest()
        total = float(arr.sum(dtype=np.float64)) if arr.size else 0.0
        assert digest == spec["sha256"], f"{where}: content differs (sum {total}, {spec['sum']})"


def check(obj: Any, expected: Mapping[str, Any], where: str) -> None:
    """``obj`` (a ParsedMessage or a part of one) has every value the manifest expects."""
    for key, e in expected.items():
        here = f"{where}.{key}"
        if isinstance(obj, Mapping):
            assert key in obj, f"{here} missing (has {sorted(obj)})"
            a = obj[key]
        else:
            assert hasattr(obj, key), f"{here} missing on {type(obj).__name__}"
            a = getattr(obj, key)
        if key in ("arrays", "results"):
            assert sorted(a) == sorted(e), f"{here}: {sorted(a)} != {sorted(e)}"
            for name, spec in e.items():
                same_array(a[name], spec, f"{here}.{name}")
        elif isinstance(e, dict) and not isinstance(a, Mapping):
            check(a, e, here)
        else:
            same(a, e, here)


# -- this version's parsers ---------------------------------------------------------------------
@pytest.mark.parametrize(("stream", "msg"), _messages())
def test_current_parser_decodes_golden_message(stream: dict[str, Any], msg: dict[str, Any]) -> None:
    frames = load(msg)
    assert formats.detect(frames) == stream["format"]
    parsed = formats.parse(frames)
    check(parsed, msg["expect"], stream["name"])


def test_every_format_has_golden_streams_and_the_files_stay_small() -> None:
    assert {s["serializer"] for s in STREAMS} == set(formats.SERIALIZERS.names())
    listed = {p for s in STREAMS for m in s["messages"] for p in m["frames"]}
    on_disk = {p.relative_to(GOLDEN).as_posix() for p in GOLDEN.rglob("*") if p.is_file()}
    assert listed == on_disk, (
        f"not in the manifest: {on_disk - listed}; missing: {listed - on_disk}"
    )
    assert sum((GOLDEN / p).stat().st_size for p in on_disk) < 1 << 20
    kinds = {(s["format"], m["expect"]["kind"]) for s in STREAMS for m in s["messages"]}
    for fmt in ("hdf5", "simplon", "lclstreamer_simplon", "raw", "npz"):
        assert {(fmt, "data"), (fmt, "end")} <= kinds
    assert {("simplon", "start"), ("lclstreamer_simplon", "start")} <= kinds
    assert any("totals" in m["expect"] for s in STREAMS for m in s["messages"])


# -- independent decoders -------------------------------------------------------------------------
def _field(actual: Any, key: str) -> Any:
    """A totals field as the file stores it (HDF5 keeps drop_reasons as a JSON string)."""
    a = plain(actual)
    return json.loads(a) if key == "drop_reasons" and isinstance(a, str) else a


@pytest.mark.parametrize(("stream", "msg"), _messages("hdf5"))
def test_hdf5_golden_opens_with_plain_h5py(stream: dict[str, Any], msg: dict[str, Any]) -> None:
    (blob,) = load(msg)
    with h5py.File(io.BytesIO(blob), "r") as f:
        for key, e in msg["h5"]["attrs"].items():
            assert key in f.attrs, f"root attribute {key!r} missing"
            same(_field(f.attrs[key], key), e, f"attrs.{key}")
        for path, spec in msg["h5"]["datasets"].items():
            d = f[path]
            assert isinstance(d, h5py.Dataset), path
            same_array(d[()], spec, path)
        for path, fid in msg["h5"].get("filters", {}).items():
            plist = f[path].id.get_create_plist()
            ids = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
            assert (fid in ids) if fid is not None else ids == [], f"{path}: filters {ids}"


def _s2_image(value: Any, spec: Mapping[str, Any]) -> np.ndarray:
    """tag 40 [[y, x], tagT(tag 56500 [algo, elem_size, bytes]) or tagT(bytes)] → array."""
    assert isinstance(value, cbor2.CBORTag) and value.tag == 40, value
    dims, typed = value.value
    assert isinstance(typed, cbor2.CBORTag) and typed.tag == spec["typed_tag"], typed
    inner = typed.value
    if spec["compression"] is None:
        raw = bytes(inner)
    else:
        assert isinstance(inner, cbor2.CBORTag) and inner.tag == 56500, inner
        algo, elem_size, data = inner.value
        assert algo == spec["compression"]
        assert elem_size == np.dtype(spec["dtype"]).itemsize
        raw = dectris_decompress(data, algo, elem_size=elem_size)
    return np.frombuffer(raw, np.dtype(spec["dtype"])).reshape([int(d) for d in dims])


def _check_map(m: Mapping[str, Any], expected: Mapping[str, Any], where: str) -> None:
    for key, e in expected.items():
        if key in ("image", "prefix"):
            continue
        if key == "lclstream":  # our stream facts: stream2 keeps them in user_data
            ours = m["user_data"]["lclstream"] if "user_data" in m else m[key]
            for k, v in e.items():
                assert k in ours, f"{where}.lclstream.{k} missing"
                same(_field(ours[k], k), v, f"{where}.lclstream.{k}")
            continue
        assert key in m, f"{where}.{key} missing (has {sorted(m)})"
        if key.endswith("_date"):
            same(m[key].isoformat(), e, f"{where}.{key}")
        else:
            same(m[key], e, f"{where}.{key}")


@pytest.mark.parametrize(("stream", "msg"), _messages("simplon"))
def test_stream2_golden_decodes_with_cbor2_and_dectris(
    stream: dict[str, Any], msg: dict[str, Any]
) -> None:
    (blob,) = load(msg)
    assert blob[:3] == b"\xd9\xd9\xf7"  # self-described CBOR, as DECTRIS' clients require
    m = cbor2.loads(blob)
    e = msg["cbor"]
    assert next(iter(m)) == "type"
    _check_map(m, e, stream["name"])
    if "image" in e:
        spec = e["image"]
        (channel,) = m["data"]
        assert channel == spec["channel"]
        same_array(_s2_image(m["data"][channel], spec), spec, f"{stream['name']}.image")


@pytest.mark.parametrize(("stream", "msg"), _messages("lclstreamer_simplon"))
def test_lclstreamer_golden_decodes_with_cbor2_and_bitshuffle(
    stream: dict[str, Any], msg: dict[str, Any]
) -> None:
    (blob,) = load(msg)
    e = msg["cbor"]
    assert blob[:1] == e["prefix"].encode()
    m = cbor2.loads(blob[1:])
    _check_map(m, e, stream["name"])
    if "image" in e:
        spec = e["image"]
        # as LCLStreamer's consumers decode it: bitshuffle.decompress_lz4 on the bare blocks
        arr = bitshuffle.decompress_lz4(
            np.frombuffer(m["compressed_data"], np.uint8),
            tuple(spec["shape"]),
            np.dtype(spec["dtype"]),
            spec["block_size"],
        )
        same_array(arr, spec, f"{stream['name']}.image")


@pytest.mark.parametrize(("stream", "msg"), _messages("raw"))
def test_raw_golden_decodes_with_cbor2_and_numpy(
    stream: dict[str, Any], msg: dict[str, Any]
) -> None:
    head_b, payload = load(msg)
    head = cbor2.loads(head_b)
    e = dict(msg["cbor"])
    spec = e.pop("payload", None)
    comp = e.pop("compression", None)
    name = e.pop("name", None)
    _check_map(head, e, stream["name"])
    if spec is None:
        assert payload == b""
        return
    assert head["name"] == name and head.get("compression") == comp
    assert head["dtype"] == spec["dtype"] and head["shape"] == spec["shape"]
    dtype = np.dtype(spec["dtype"])
    if comp is None:
        arr = np.frombuffer(payload, dtype).reshape(spec["shape"])
    else:
        assert comp == "bslz4"  # 32008 chunks: 8-byte BE size, 4-byte BE block bytes, blocks
        frames, off = [], 0
        for size in head["chunk_sizes"]:
            chunk = payload[off : off + size]
            off += size
            block = int.from_bytes(chunk[8:12], "big") // dtype.itemsize
            frames.append(
                bitshuffle.decompress_lz4(
                    np.frombuffer(chunk[12:], np.uint8), tuple(spec["shape"][1:]), dtype, block
                )
            )
        assert off == len(payload)
        arr = np.stack(frames)
    same_array(arr, spec, f"{stream['name']}.payload")


@pytest.mark.parametrize(("stream", "msg"), _messages("npz"))
def test_npz_golden_opens_with_plain_numpy(stream: dict[str, Any], msg: dict[str, Any]) -> None:
    """What a numpy-only consumer (PeakNet's) does: np.load, arrays by name, no pickles."""
    (blob,) = load(msg)
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        assert sorted(npz.files) == msg["npz_entries"]
        head = json.loads(bytes(npz["lclstream"].item()))
        assert head["format"] == "lclstream-npz" and head["kind"] == msg["expect"]["kind"]
        for name, spec in msg["expect"].get("batch", {}).get("arrays", {}).items():
            assert list(npz[name].shape) == spec["shape"] and npz[name].dtype.str.endswith(
                spec["dtype"].lstrip("<>|=")
            )
