"""One source per fact: the C++ codec table and the detector table, and the layers that read them.

Codec rows are checked against what reads our chunks without our code (h5py + hdf5plugin,
dectris-compression); detector rows against the synthetic source's frames and constants,
calibration's shape checks, the config's choices, and literal numbers from the detectors'
own documentation (PSI's Jungfrau, SLAC's ePix10ka).
"""

from __future__ import annotations

import io
from typing import Any

import cbor2
import h5py
import hdf5plugin
import numpy as np
import pytest
from dectris.compression import decompress as dectris_decompress
from fmt_helpers import batch, frames, info
from lclstream import _core, calib, codec, detectors
from lclstream.config import Hdf5DatasetParameters, SyntheticDetectorParameters
from lclstream.errors import ConfigError, FormatError
from lclstream.formats import COMPRESSION_NAMES, SimplonBinarySerializer, compression, parse
from lclstream.formats.hdf5 import read_dataset
from lclstream.protocols import StreamTotals
from lclstream.sources.synthetic import DETECTORS, SyntheticDetector
from pydantic import ValidationError

ROWS = _core.codecs()
#: How hdf5plugin, written independently of us, spells each codec's filter.
HDF5PLUGIN: dict[str, Any] = {
    "bslz4": hdf5plugin.Bitshuffle(cname="lz4"),
    "bszstd": hdf5plugin.Bitshuffle(cname="zstd"),
    "lz4": hdf5plugin.LZ4(),
    "zstd": hdf5plugin.Zstd(),
}


# ---- codecs -------------------------------------------------------------------------------


def test_python_codec_names_are_the_core_table() -> None:
    assert [r.name for r in ROWS] == list(codec.CODECS) == list(codec.TABLE)
    assert {r.name for r in ROWS} == {"bslz4", "bszstd", "lz4", "zstd"}
    assert codec.FILTER_IDS == {r.name: r.hdf5_filter_id for r in ROWS}


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
def test_every_core_codec_is_reachable_by_name(row: _core.CodecInfo) -> None:
    a = np.arange(3 * 1000, dtype=np.uint16).reshape(3, 1000) * 7
    assert codec.resolve(row.name) == row.name
    chunk = codec.compress(a, row.name)
    assert np.array_equal(codec.decompress(chunk, row.name, dtype=a.dtype, shape=a.shape), a)
    # the formats' compression choices reach it too, with the filter the core names
    comp = compression(row.name)
    assert comp.codec == row.name and comp.direct
    assert (comp.h5_filter, comp.h5_opts) == _core.codec_hdf5_filter(row.name, 0)
    assert comp.h5_opts == row.hdf5_options
    assert (comp.level is not None) == (row.default_level > 0)


@pytest.mark.parametrize("alias,target", list(codec.ALIASES.items()))
def test_every_alias_maps_to_one_core_codec(alias: str, target: str) -> None:
    assert target in codec.TABLE
    assert codec.resolve(alias) == target
    assert compression(alias).codec == target == compression(target).codec
    assert compression(alias).name == compression(target).name == alias  # normalised
    with pytest.raises(ValueError):  # the core knows only its own names
        _core.codec_compress(np.zeros(8, np.uint16), alias)


def test_every_compression_choice_resolves() -> None:
    codecs_reached = set()
    for name in COMPRESSION_NAMES:
        comp = compression(None if name == "None" else name)
        if comp.codec is not None:
            codecs_reached.add(comp.codec)
    assert codecs_reached == set(codec.CODECS)
    with pytest.raises(ConfigError, match="allowed: bitshuffle_with_lz4, bitshuffle_with_zstd"):
        compression("lzma")


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
def test_table_hdf5_facts_match_hdf5plugin_and_stored_filters(row: _core.CodecInfo) -> None:
    plugin = HDF5PLUGIN[row.name]
    assert plugin.filter_id == row.hdf5_filter_id
    assert tuple(plugin.filter_options) == row.hdf5_options
    assert row.bitshuffled == isinstance(plugin, hdf5plugin.Bitshuffle)
    # what HDF5 stores after set_local is what from_hdf5_filter recognises our codec by,
    # and a dataset hdf5plugin wrote is read back by our decoder
    a = np.arange(2 * 4096, dtype=np.uint16).reshape(2, 64, 64) % 251
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        d = f.create_dataset("d", data=a, chunks=(1, 64, 64), **plugin)
        fid, _flags, vals, _ = d.id.get_create_plist().get_filter(0)
        assert codec.from_hdf5_filter(fid, vals) == row.name
        assert np.array_equal(read_dataset(d), a)
        # the size header the table promises is where a reader finds it
        _, raw = d.id.read_direct_chunk((0, 0, 0))
        assert (int.from_bytes(bytes(raw[:8]), "big") == a[0].nbytes) == row.size_header


def test_plain_bitshuffle_filter_is_none_of_ours() -> None:
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        d = f.create_dataset(
            "d",
            data=np.zeros((1, 8, 8), np.uint16),
            chunks=(1, 8, 8),
            **hdf5plugin.Bitshuffle(cname="none"),
        )
        fid, _flags, vals, _ = d.id.get_create_plist().get_filter(0)
    assert fid == 32008 and codec.from_hdf5_filter(fid, vals) is None
    assert codec.from_hdf5_filter(1, (4,)) is None  # gzip


def _stream2(comp: str | None) -> list[bytes]:
    shape = (2, 16, 32)
    ser = SimplonBinarySerializer(compression=comp)
    msgs = [m[0] for m in ser.start(info(shape, "uint16"))]
    msgs += [bytes(m[0]) for m in ser.serialize(batch(frames(2, shape, "uint16")))]
    msgs += [m[0] for m in ser.end(StreamTotals(events_sent=2, messages_sent=2))]
    return msgs


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
def test_stream2_names_are_dectris_algorithms(row: _core.CodecInfo) -> None:
    if row.stream2_name is None:
        with pytest.raises(FormatError, match="not a stream2"):
            SimplonBinarySerializer(compression=row.name)
        return
    assert codec.from_stream2(row.stream2_name) == row.name
    msgs = _stream2(row.name)
    seen: list[tuple[str, int]] = []

    def hook(tag: Any, immutable: bool = False) -> Any:
        if tag.tag == 56500:  # decoded the way DECTRIS' own clients do
            algorithm, modifier, data = tag.value
            seen.append((algorithm, modifier))
            return dectris_decompress(data, algorithm, elem_size=modifier or 2)
        return tag

    cbor2.loads(msgs[1], tag_hook=hook)
    assert seen == [(row.stream2_name, 2 if row.bitshuffled else 0)]
    got = parse(msgs[1])
    assert got.batch is not None
    want = frames(2, (2, 16, 32), "uint16")[0]
    assert np.array_equal(got.batch.arrays["detector_data"][0], want)


def test_stream2_unknown_algorithm_is_refused() -> None:
    msg = _stream2("bslz4")[1].replace(b"ebslz4", b"ebszst")  # same length, unknown name
    assert parse(_stream2("bslz4")[1]).batch is not None  # the unchanged message parses
    with pytest.raises(FormatError):  # (cbor2 wraps the hook's "not supported")
        parse(msg)


# ---- detectors ----------------------------------------------------------------------------


def test_detector_table_against_the_detectors_documentation() -> None:
    jf, ep = detectors.KINDS["jungfrau"], detectors.KINDS["epix10ka"]
    assert jf.module_shape == (512, 1024) and jf.pixel_size_m == 75e-6
    assert ep.module_shape == (352, 384) and ep.pixel_size_m == 100e-6
    assert jf.stage_names == ("G0", "G1", "G2")
    assert [s.gain_bits for s in jf.stages] == [0, 1, 3]
    assert ep.stage_names == ("FH", "FM", "FL", "AHL_H", "AML_M", "AHL_L", "AML_L")
    assert (jf.adc_bits, jf.gain_bits, ep.adc_bits, ep.gain_bits) == (14, 2, 14, 1)
    assert (jf.asic_layout, jf.asic_shape) == ((2, 4), (256, 256))
    assert (ep.asic_layout, ep.asic_shape) == ((2, 2), (176, 192))
    assert (jf.common_mode_bank, ep.common_mode_bank) == ((1, 64), (176, 48))
    for k in (jf, ep):  # ASICs tile the module exactly
        assert k.asic_layout and k.asic_shape and k.module_shape
        assert (
            tuple(n * s for n, s in zip(k.asic_layout, k.asic_shape, strict=True)) == k.module_shape
        )
    m = detectors.MODELS
    assert m["jungfrau4M"].shape == (8, 512, 1024) and m["jungfrau16M"].shape == (32, 512, 1024)
    assert m["jungfrau1M"].shape == (2, 512, 1024) and m["epix10k2M"].shape == (16, 352, 384)
    for d in m.values():
        assert d.layout[0] * d.layout[1] == d.modules
    assert detectors.kind_of("epix10k2M") == "epix10ka" == detectors.kind_of("EPIX10K")
    assert detectors.kind_of("Jungfrau4M") == "jungfrau" and detectors.kind_of("pilatus") is None


SMALL = ["jungfrau", "jungfrau1M", "epix10ka", "epix10k2M"]


@pytest.mark.parametrize("name", SMALL)
def test_synthetic_source_and_calibration_follow_the_table(name: str) -> None:
    d = detectors.model(name)
    assert DETECTORS[name] is d
    src = SyntheticDetector(detector=name, pool_frames=2, peaks_per_hit=5)
    frame = src.get_data(0)
    assert frame.shape == d.shape and frame.dtype == np.uint16
    di = src.info()
    assert (di.kind, di.frame_shape, di.pixel_size_m, di.module_layout) == (
        d.kind,
        d.shape,
        d.pixel_size_m,
        d.layout,
    )
    k = d.kind_info
    c = src.constants()
    assert c["pedestal"].shape == c["gain"].shape == (k.n_gains, *d.shape)
    med = np.median(c["gain"].reshape(k.n_gains, -1), axis=1)
    assert np.allclose(med, k.default_gains, rtol=0.05)
    bits = set(np.unique(frame >> k.adc_bits).tolist())
    assert bits <= set(range(1 << k.gain_bits)) and 0 in bits
    if d.kind == "jungfrau":  # the stages' bits, and 0b10 only on the planted bad pixels
        assert bits <= {s.gain_bits for s in k.stages} | {2}
    # calibration expects exactly these shapes, by model name and by kind
    loaded = calib.load_constants(dict(c), detector=name)
    assert loaded["pedestal"].shape == (k.n_gains, d.modules, *d.module_shape)
    cal = calib.make_calibrator(name, dict(c), output="keV")
    assert cal(frame).shape == d.shape
    assert calib.COMMON_MODE_DEFAULTS[d.kind] == {
        "bank_rows": k.common_mode_bank[0],
        "bank_cols": k.common_mode_bank[1],
    }
    # a constants array of another detector's module shape is refused, naming the table's
    other = detectors.KINDS["epix10ka" if d.kind == "jungfrau" else "jungfrau"]
    assert other.module_shape is not None
    wrong = {
        key: np.zeros((k.n_gains, 1, *other.module_shape), np.float32)
        for key in ("pedestal", "gain")
    }
    wrong["config_bits"] = np.zeros((1, *other.module_shape), np.uint8)
    with pytest.raises(ValueError, match=f"{d.module_shape[0]}, {d.module_shape[1]}"):
        calib.load_constants(wrong, detector=d.kind, modules=1)


def test_config_choices_are_the_table_names() -> None:
    for name in detectors.MODEL_NAMES:
        p = SyntheticDetectorParameters.model_validate(
            {"type": "SyntheticDetector", "detector": name}
        )
        assert p.detector == name
    with pytest.raises(ValidationError, match="jungfrau16M"):
        SyntheticDetectorParameters.model_validate(
            {"type": "SyntheticDetector", "detector": "jungfrau8M"}
        )
    for kind in detectors.KINDS:
        p2 = Hdf5DatasetParameters.model_validate({"type": "Hdf5Dataset", "kind": kind})
        assert p2.kind == kind
    assert set(calib.DETECTORS) == set(detectors.KINDS)
