"""SIMPLON stream2 (spec-exact) and LCLStreamer's SIMPLON variant, decoded independently
(cbor2 + dectris-compression; cbor2 + the bitshuffle package)."""

from __future__ import annotations

from typing import Any

import bitshuffle
import cbor2
import numpy as np
import pytest
from dectris.compression import decompress
from fmt_helpers import batch, frames, info
from lclstream.errors import FormatError
from lclstream.formats import LclstreamerSimplonSerializer, SimplonBinarySerializer, detect, parse
from lclstream.formats.simplon import END_KEYS, FLOAT_KEYS, IMAGE_KEYS, START_KEYS
from lclstream.protocols import StreamTotals

SHAPE = (4, 16, 32)  # modules stacked along y → 64 × 32
TYPED = {69: "<u2", 70: "<u4", 85: "<f4"}


def dectris_decode(msg: bytes) -> tuple[dict[str, Any], list[int]]:
    """The way DECTRIS' client.py decodes (tags 40, 64+, 56500), recording the tags seen."""
    seen: list[int] = []

    def hook(tag: Any, immutable: bool = False) -> Any:
        seen.append(tag.tag)
        if tag.tag == 56500:
            algorithm, elem_size, encoded = tag.value
            return decompress(encoded, algorithm, elem_size=elem_size)
        if tag.tag in TYPED:
            return np.frombuffer(tag.value, TYPED[tag.tag])
        if tag.tag == 40:
            dims, arr = tag.value
            return arr.reshape(dims)
        return tag

    assert msg[:3] == b"\xd9\xd9\xf7"  # self-described CBOR, as the C client requires
    return dict(cbor2.loads(msg, tag_hook=hook)), seen


def _stream(dtype: str, n: int = 3, **kw: Any) -> tuple[list[bytes], np.ndarray]:
    data = frames(n, SHAPE, dtype)
    ser = SimplonBinarySerializer(**kw)
    out = [m[0] for m in ser.start(info(SHAPE, dtype))]
    msgs = ser.serialize(batch(data, first_id=100))
    assert all(len(m) == 1 for m in msgs)  # one single-frame message per event
    out += [bytes(m[0]) for m in msgs]
    out += [m[0] for m in ser.end(StreamTotals(events_sent=n, messages_sent=n))]
    return out, data


@pytest.mark.parametrize("dtype,tag", [("uint16", 69), ("uint32", 70), ("float32", 85)])
def test_stream2_roundtrip_through_dectris_compression(dtype: str, tag: int) -> None:
    msgs, data = _stream(dtype)
    assert len(msgs) == 1 + len(data) + 1
    start, _ = dectris_decode(msgs[0])
    assert start["image_dtype"] == dtype
    assert (start["image_size_y"], start["image_size_x"]) == (64, 32)
    for i, m in enumerate(msgs[1:-1]):
        img, tags = dectris_decode(m)
        assert tags.count(56500) == 1 and tag in tags and 40 in tags
        arr = img["data"]["threshold_1"]
        assert arr.shape == (64, 32) and arr.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(arr, data[i].reshape(64, 32))
        assert img["image_id"] == i
        assert img["user_data"]["lclstream"]["event_id"] == 100 + i


def test_stream2_message_structure_follows_the_spec() -> None:
    msgs, _ = _stream("uint16")
    start = cbor2.loads(msgs[0])
    image = cbor2.loads(msgs[1])
    end = cbor2.loads(msgs[-1])
    for m, keys, t in (
        (start, START_KEYS, "start"),
        (image, IMAGE_KEYS, "image"),
        (end, END_KEYS, "end"),
    ):
        assert next(iter(m)) == "type" and m["type"] == t  # type is the FIRST key
        assert set(keys) <= set(m), set(keys) - set(m)
    for k in FLOAT_KEYS:  # Float fields are CBOR floats even when whole (C client rule)
        assert isinstance(start[k], float), k
    assert all(isinstance(v, float) for v in start["detector_translation"])
    assert all(isinstance(v, float) for v in start["threshold_energy"].values())
    assert start["incident_energy"] == 9500.0
    assert start["incident_wavelength"] == pytest.approx(12.398419843320026 / 9.5)
    assert start["threshold_energy"] == {"threshold_1": 4750.0}  # photons: half a photon
    assert start["series_unique_id"] == "test-stream" == image["series_unique_id"]
    assert start["series_id"] == image["series_id"] == end["series_id"]
    assert isinstance(start["series_id"], int)
    for k in ("real_time", "start_time", "stop_time"):
        num, den = image[k]
        assert isinstance(num, int) and den == 10**9
    assert start["saturation_value"] == 65535
    assert start["pixel_size_x"] == pytest.approx(75e-6)
    assert start["detector_translation"][2] == pytest.approx(0.12)


def test_stream2_jungfrau_4m_is_4096_by_1024() -> None:
    ser = SimplonBinarySerializer()
    start = cbor2.loads(ser.start(info((8, 512, 1024), "uint16"))[0][0])
    assert (start["image_size_y"], start["image_size_x"]) == (4096, 1024)
    assert start["detector_description"] == "JUNGFRAU 4M"
    img = np.zeros((1, 8, 512, 1024), np.uint16)
    img[0, 7, 511, 1023] = 3
    (msg,) = ser.serialize(batch(img))
    out, _ = dectris_decode(bytes(msg[0]))
    assert out["data"]["threshold_1"].shape == (4096, 1024)
    assert out["data"]["threshold_1"][4095, 1023] == 3


def test_stream2_uncompressed_and_our_parser() -> None:
    msgs, data = _stream("uint16", compression=None)
    img, tags = dectris_decode(msgs[1])
    assert 56500 not in tags
    np.testing.assert_array_equal(img["data"]["threshold_1"], data[0].reshape(64, 32))
    kinds = [parse([m]).kind for m in msgs]
    assert kinds == ["start", "data", "data", "data", "end"]
    p = parse([msgs[2]])
    assert p.batch is not None
    np.testing.assert_array_equal(p.batch.arrays["detector_data"][0], data[1])


def test_stream2_parser_roundtrip_and_totals() -> None:
    msgs, data = _stream("float32")
    assert detect([msgs[1]]) == "simplon"
    s = parse([msgs[0]])
    assert s.kind == "start" and s.info is not None
    assert s.info.detectors["detector_data"].frame_shape == SHAPE
    for i, m in enumerate(msgs[1:-1]):
        p = parse([m])
        assert p.kind == "data" and p.sequence == i and p.batch is not None
        np.testing.assert_array_equal(p.batch.arrays["detector_data"][0], data[i])
        assert int(p.batch.event_ids[0]) == 100 + i
    e = parse([msgs[-1]])
    assert e.kind == "end" and e.totals is not None and e.totals.events_sent == 3


def test_stream2_several_senders() -> None:
    data = frames(2, SHAPE, "uint16")
    ids = {}
    for sender in range(3):
        ser = SimplonBinarySerializer()
        start = ser.start(info(SHAPE, "uint16", sender=sender, senders=3))
        assert len(start) == (1 if sender == 0 else 0)  # one start per series
        for k, m in enumerate(ser.serialize(batch(data))):
            ids[(sender, k)] = cbor2.loads(m[0])["image_id"]
        end = parse(ser.end(StreamTotals(2, 2))[0])
        assert end.sender == sender and end.senders == 3
    assert ids[(0, 0)] == 0 and ids[(1, 0)] == 1 and ids[(2, 1)] == 5
    assert len(set(ids.values())) == 6


def test_stream2_corrupt_messages() -> None:
    msgs, _ = _stream("uint16")
    with pytest.raises(FormatError, match="CBOR|truncated"):  # a message cut in half
        parse([msgs[1][: len(msgs[1]) // 2]])
    with pytest.raises(FormatError, match="55799"):
        from lclstream.formats import simplon

        simplon.parse([msgs[1][3:]])
    not_first = b"\xd9\xd9\xf7" + cbor2.dumps({"series_id": 1, "type": "end"})
    with pytest.raises(FormatError, match="first key"):
        parse([not_first])
    with pytest.raises(FormatError, match="not a stream2"):
        SimplonBinarySerializer(compression="gzip")


# -- LCLStreamer's variant -------------------------------------------------------------------
def test_lclstreamer_simplon_as_its_consumers_read_it() -> None:
    data = frames(3, SHAPE, "uint16")
    ser = LclstreamerSimplonSerializer(detector_name="jungfrau", polarization_axis=[1.0, 0, 0])
    ser.start(info(SHAPE, "uint16"))
    msgs = [bytes(m[0]) for m in ser.serialize(batch(data))]
    msgs += [bytes(m[0]) for m in ser.end(StreamTotals(3, 3))]
    assert [m[:1] for m in msgs] == [b"c", b"m", b"m", b"m", b"c"]
    start = cbor2.loads(msgs[0][1:])
    assert start["type"] == "start" and start["shape"] == "4x16x32"
    assert start["experiment"] == "xpptut15" and start["run_number"] == 670
    assert start["algorithm"] == "bitshuffle-lz4"
    for i, m in enumerate(msgs[1:4]):
        content = cbor2.loads(m[1:])
        assert content["type"] == "image" and content["dtype"] == "uint16"
        assert content["sum"] == int(data[i].sum())
        raw = bitshuffle.decompress_lz4(
            np.frombuffer(content["compressed_data"], np.uint8), SHAPE, np.dtype("uint16"), 4096
        )
        np.testing.assert_array_equal(raw, data[i])
        assert detect([m]) == "lclstreamer_simplon"
        p = parse([m])
        assert p.batch is not None
        np.testing.assert_array_equal(p.batch.arrays["detector_data"][0], data[i])
    stop = parse([msgs[-1]])
    assert stop.kind == "end" and stop.totals is not None and stop.totals.events_sent == 3


def test_lclstreamer_simplon_start_from_last_sender_only() -> None:
    data = frames(1, SHAPE, "uint16")
    for sender, expect in ((0, [b"m"]), (1, [b"c", b"m"])):
        ser = LclstreamerSimplonSerializer()
        ser.start(info(SHAPE, "uint16", sender=sender, senders=2))
        assert [bytes(m[0])[:1] for m in ser.serialize(batch(data))] == expect
    with pytest.raises(FormatError, match="prefix"):
        from lclstream.formats import lclstreamer_simplon

        lclstreamer_simplon.parse([b"x\xa0"])


# ------------------------------------------------------------------ detector overrides


def test_stream2_detector_overrides_replace_source_metadata() -> None:
    ser = SimplonBinarySerializer(
        detector_distance_m=0.25,
        beam_center_x_px=100.5,
        beam_center_y_px=200.25,
        pixel_size_m=1e-4,
        incident_energy_keV=12.0,
    )
    start = cbor2.loads(ser.start(info(SHAPE, "uint16"))[0][0])  # source says 0.12 m, 9.5 keV
    assert list(start["detector_translation"]) == [0.0, 0.0, 0.25]
    assert (start["beam_center_x"], start["beam_center_y"]) == (100.5, 200.25)
    assert start["pixel_size_x"] == start["pixel_size_y"] == 1e-4
    assert start["incident_energy"] == 12000.0
    assert start["incident_wavelength"] == pytest.approx(12.398419843320026 / 12.0)
    assert start["threshold_energy"]["threshold_1"] == 6000.0  # half a photon
    for k in FLOAT_KEYS & set(start):
        assert isinstance(start[k], float)
    # only some overrides given: the rest still come from the source
    part = SimplonBinarySerializer(beam_center_y_px=7.0)
    s2 = cbor2.loads(part.start(info(SHAPE, "uint16"))[0][0])
    assert (s2["beam_center_x"], s2["beam_center_y"]) == (512.0, 7.0)
    assert s2["incident_energy"] == 9500.0 and s2["detector_translation"][2] == 0.12


def test_stream2_overrides_from_the_yaml_config() -> None:
    from lclstream.config import load_config

    cfg = load_config(
        {
            "data_serializer": {
                "type": "SimplonBinarySerializer",
                "detector_distance_m": 0.3,
                "incident_energy_keV": 6.0,
                "assemble": True,
            }
        }
    )
    ser = cfg.data_serializer.build()
    start = cbor2.loads(ser.start(info(SHAPE, "uint16"))[0][0])
    assert start["detector_translation"][2] == 0.3 and start["incident_energy"] == 6000.0
    p = parse([ser.start(info(SHAPE, "uint16"))[0][0]])
    assert p.info is not None
    d = p.info.detectors["detector_data"]
    assert d.detector_distance_m == 0.3 and d.photon_energy_keV == 6.0


# ------------------------------------------------------------------ module assembly


def _layout_info(shape: tuple[int, ...], layout: tuple[int, int] | None) -> Any:
    i = info(shape, "uint16")
    i.detectors["detector_data"].module_layout = layout
    return i


def test_stream2_assemble_places_modules_by_layout_and_parser_undoes_it() -> None:
    shape = (8, 16, 32)  # a small "4M": (4, 2) modules of 16 × 32 → 64 × 64
    data = frames(3, shape, "uint16")
    ser = SimplonBinarySerializer(assemble=True)
    start_msg = ser.start(_layout_info(shape, (4, 2)))[0][0]
    start = cbor2.loads(start_msg)
    assert (start["image_size_y"], start["image_size_x"]) == (64, 64)
    assert list(start["user_data"]["lclstream"]["module_layout"]) == [4, 2]
    s = parse([start_msg])
    assert s.info is not None
    assert s.info.detectors["detector_data"].module_layout == (4, 2)
    assert s.info.detectors["detector_data"].frame_shape == shape
    msgs = ser.serialize(batch(data))
    for i, m in enumerate(msgs):
        img, _ = dectris_decode(bytes(m[0]))
        ref = np.zeros((64, 64), np.uint16)
        for mod in range(8):
            r, c = divmod(mod, 2)
            ref[r * 16 : (r + 1) * 16, c * 32 : (c + 1) * 32] = data[i, mod]
        np.testing.assert_array_equal(img["data"]["threshold_1"], ref)
        p = parse([bytes(m[0])])
        assert p.batch is not None
        np.testing.assert_array_equal(p.batch.arrays["detector_data"], data[i : i + 1])


def test_stream2_stacks_by_default_or_without_a_layout() -> None:
    shape = (8, 16, 32)
    for ser, layout in (
        (SimplonBinarySerializer(), (4, 2)),  # default: stacked even when a layout is known
        (SimplonBinarySerializer(assemble=True), None),  # no layout: stacked
        (SimplonBinarySerializer(assemble=True), (3, 2)),  # layout does not fit: stacked
    ):
        start = cbor2.loads(ser.start(_layout_info(shape, layout))[0][0])
        assert (start["image_size_y"], start["image_size_x"]) == (128, 32)
        assert "module_layout" not in start["user_data"]["lclstream"]
        (msg,) = ser.serialize(batch(frames(1, shape, "uint16")))
        img, _ = dectris_decode(bytes(msg[0]))
        assert img["data"]["threshold_1"].shape == (128, 32)


def test_stream2_assembled_jungfrau_4m_from_synthetic_source_is_2048_square() -> None:
    from lclstream.sources.synthetic import SyntheticDetector

    det = SyntheticDetector(detector="jungfrau4M", pool_frames=1).info()
    assert det.module_layout == (4, 2)
    i = info(det.frame_shape, "uint16")
    i.detectors["detector_data"] = det
    ser = SimplonBinarySerializer(assemble=True)
    start = cbor2.loads(ser.start(i)[0][0])
    assert (start["image_size_y"], start["image_size_x"]) == (2048, 2048)
    img = np.zeros((1, 8, 512, 1024), np.uint16)
    img[0, 7, 511, 1023] = 3  # last module: row 3, column 1 → bottom-right corner
    img[0, 1, 0, 0] = 5  # module 1: row 0, column 1 → (0, 1024)
    (msg,) = ser.serialize(batch(img))
    out, _ = dectris_decode(bytes(msg[0]))
    a = out["data"]["threshold_1"]
    assert a.shape == (2048, 2048) and a[2047, 2047] == 3 and a[0, 1024] == 5
