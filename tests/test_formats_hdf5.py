"""HDF5 messages: read back by h5py + hdf5plugin (independent decoder) and by our parser."""

from __future__ import annotations

import io
import json

import h5py
import hdf5plugin  # noqa: F401
import numpy as np
import pytest
from fmt_helpers import batch, frames, info
from lclstream.errors import ConfigError, FormatError
from lclstream.formats import HDF5BinarySerializer, detect, parse
from lclstream.protocols import StreamTotals

SHAPE = (2, 32, 64)
COMPRESSIONS = [
    "bitshuffle_with_lz4",
    "bitshuffle_with_zstd",
    "lz4",
    "zstd",
    "gzip",
    "gzip_with_shuffle",
    None,
]


def _one(ser: HDF5BinarySerializer, b) -> bytes:  # type: ignore[no-untyped-def]
    msgs = ser.serialize(b)
    assert len(msgs) == 1 and len(msgs[0]) == 1  # one single-frame message
    return bytes(msgs[0][0])


@pytest.mark.parametrize("dtype", ["uint16", "uint32", "float32"])
@pytest.mark.parametrize("comp", COMPRESSIONS)
def test_roundtrip_through_h5py(dtype: str, comp: str | None) -> None:
    data = frames(3, SHAPE, dtype)
    ser = HDF5BinarySerializer(compression=comp)
    assert ser.start(info(SHAPE, dtype)) == []
    msg = _one(ser, batch(data, first_id=40))
    with h5py.File(io.BytesIO(msg), "r") as f:
        d = f["/entry_1/data_1/data"]
        assert d.shape == data.shape and d.dtype == data.dtype
        assert d.chunks == (1, *SHAPE)
        np.testing.assert_array_equal(d[()], data)
        filters = d.id.get_create_plist()
        ids = [filters.get_filter(i)[0] for i in range(filters.get_nfilters())]
        if comp and comp.startswith("bitshuffle"):
            assert ids == [32008]
            assert filters.get_filter(0)[2][4] == (2 if comp.endswith("lz4") else 3)
        elif comp and comp.startswith("gzip"):
            assert 1 in ids
        elif comp == "lz4":
            assert ids == [32004]
        elif comp == "zstd":
            assert ids == [32015]
        else:
            assert ids == []
        np.testing.assert_array_equal(f["/LCLS/eventNumber"][()], np.arange(40, 43))
        a = f.attrs
        assert a["stream_id"] == "test-stream" and a["sequence"] == 0
        assert a["sender"] == 0 and a["senders"] == 1
        assert a["source_identifier"] == "exp=xpptut15,run=670"
        assert a["calibration"] == "photons" and a["lclstream_version"]
    p = parse([msg])
    assert p.kind == "data" and p.stream_id == "test-stream" and p.sequence == 0
    assert p.batch is not None
    np.testing.assert_array_equal(p.batch.arrays["detector_data"], data)
    np.testing.assert_array_equal(p.batch.event_ids, np.arange(40, 43))


def test_sequence_counts_per_sender_and_bitshuffle_lz4_is_default() -> None:
    data = frames(2, SHAPE, "uint16")
    ser = HDF5BinarySerializer()
    ser.start(info(SHAPE, "uint16", sender=1, senders=3))
    seqs = []
    for k in range(3):
        with h5py.File(io.BytesIO(_one(ser, batch(data, 2 * k))), "r") as f:
            seqs.append(int(f.attrs["sequence"]))
            assert f.attrs["sender"] == 1 and f.attrs["senders"] == 3
            assert "32008" in f["/entry_1/data_1/data"]._filters
    assert seqs == [0, 1, 2]


def test_compressed_chunks_are_smaller_and_written_directly() -> None:
    data = frames(2, (8, 128, 128), "uint16")
    msg = _one(_started(HDF5BinarySerializer()), batch(data))
    assert len(msg) < data.nbytes / 4
    with h5py.File(io.BytesIO(msg), "r") as f:
        d = f["/entry_1/data_1/data"]
        mask, chunk = d.id.read_direct_chunk((1, 0, 0, 0))
        assert mask == 0 and int.from_bytes(chunk[:8], "big") == data[1].nbytes


def _started(ser: HDF5BinarySerializer, shape=SHAPE, dtype="uint16"):  # type: ignore[no-untyped-def]
    ser.start(info(shape, dtype))
    return ser


def test_cxi_defaults_peaks_ids_timestamps_and_instrument() -> None:
    data = frames(3, SHAPE, "uint16")
    b = batch(data)
    b.results = {
        "nPeaks": np.array([2, 0, 1], np.int32),
        "peakXPosRaw": np.arange(3 * 4, dtype=np.float32).reshape(3, 4),
        "peakYPosRaw": np.ones((3, 4), np.float32),
        "peakTotalIntensity": np.full((3, 4), 7.0, np.float32),
    }
    msg = _one(_started(HDF5BinarySerializer()), b)
    with h5py.File(io.BytesIO(msg), "r") as f:
        for k, v in b.results.items():
            np.testing.assert_array_equal(f[f"/entry_1/result_1/{k}"][()], v)
        ts = f["/LCLS/timestamp"][()]
        np.testing.assert_array_equal(ts, b.timestamps)
        np.testing.assert_array_equal(
            f["/LCLS/machineTime"][()].astype(np.uint64) * 10**9
            + f["/LCLS/machineTimeNanoSeconds"][()],
            ts,
        )
        np.testing.assert_allclose(f["/LCLS/photon_energy_eV"][()], [9500.0] * 3)
        np.testing.assert_allclose(
            f["/entry_1/instrument_1/source_1/energy"][()], [9500 * 1.602176634e-19] * 3
        )
        det = f["/entry_1/instrument_1/detector_1"]
        assert det["distance"][()] == pytest.approx(0.12)
        assert det["x_pixel_size"][()] == pytest.approx(75e-6)
        np.testing.assert_array_equal(det["data"][()], data)  # CXI link to data_1/data
    p = parse(msg)
    assert p.batch is not None
    for k, v in b.results.items():
        np.testing.assert_array_equal(p.batch.results[k], v)
    np.testing.assert_array_equal(p.batch.timestamps, b.timestamps)
    assert p.info is not None and p.info.detectors["detector_data"].photon_energy_keV == 9.5


def test_lclstreamer_style_fields_mapping() -> None:
    data = frames(2, SHAPE, "uint32")
    energy = np.array([9.4, 9.6])
    ser = _started(
        HDF5BinarySerializer(
            compression="bitshuffle_with_lz4",
            compression_level=3,
            fields={
                "detector_data": "/data/data",
                "timestamp": "/data/timestamp",
                "photon_energy": "/data/photon_energy",
                "event_id": None,
            },
        ),
        dtype="uint32",
    )
    msg = _one(ser, batch(data, photon_energy=energy))
    with h5py.File(io.BytesIO(msg), "r") as f:
        np.testing.assert_array_equal(f["/data/data"][()], data)
        np.testing.assert_array_equal(f["/data/photon_energy"][()], energy)
        assert "/data/timestamp" in f and "/LCLS/eventNumber" not in f
        assert "/entry_1/data_1" not in f
    p = parse(msg)
    assert p.batch is not None
    np.testing.assert_array_equal(p.batch.arrays["detector_data"], data)
    np.testing.assert_array_equal(p.batch.arrays["photon_energy"], energy)


def test_fields_mapping_two_names_one_path_is_refused() -> None:
    ser = _started(HDF5BinarySerializer(fields={"detector_data": "/x", "other": "/x"}))
    with pytest.raises(FormatError, match="both"):
        ser.serialize(batch(frames(1, SHAPE, "uint16"), other=frames(1, SHAPE, "uint16")))


def test_end_message_same_datasets_zero_events_and_totals() -> None:
    data = frames(2, SHAPE, "uint16")
    ser = _started(HDF5BinarySerializer())
    b = batch(data)
    b.results = {"nPeaks": np.array([1, 2], np.int32)}
    first = _one(ser, b)
    totals = StreamTotals(events_sent=2, messages_sent=1)
    totals.drop("hit_veto", 3)
    (end,) = ser.end(totals)
    assert len(end) == 1
    with h5py.File(io.BytesIO(first), "r") as f0, h5py.File(io.BytesIO(bytes(end[0])), "r") as f:
        names0: list[str] = []
        names1: list[str] = []
        f0.visit(names0.append)
        f.visit(names1.append)
        assert names0 == names1
        d = f["/entry_1/data_1/data"]
        assert d.shape == (0, *SHAPE) and d.dtype == np.uint16
        assert f["/entry_1/result_1/nPeaks"].shape == (0,)
        a = f.attrs
        assert bool(a["end_of_stream"]) is True
        assert a["events_sent"] == 2 and a["messages_sent"] == 1 and a["events_dropped"] == 3
        assert json.loads(a["drop_reasons"]) == {"hit_veto": 3}
        assert a["stream_id"] == "test-stream" and a["sender"] == 0 and a["senders"] == 1
    p = parse(end)
    assert p.kind == "end" and p.totals == totals and p.sequence == 1
    assert p.batch is not None and len(p.batch) == 0


def test_end_before_any_batch_uses_stream_detectors() -> None:
    ser = _started(HDF5BinarySerializer(), shape=(8, 512, 1024))
    (end,) = ser.end(StreamTotals())
    with h5py.File(io.BytesIO(bytes(end[0])), "r") as f:
        assert f["/entry_1/data_1/data"].shape == (0, 8, 512, 1024)
        assert f.attrs["end_of_stream"]


def test_layout_change_within_stream_is_refused() -> None:
    ser = _started(HDF5BinarySerializer())
    ser.serialize(batch(frames(1, SHAPE, "uint16")))
    with pytest.raises(FormatError, match="changed"):
        ser.serialize(batch(frames(1, SHAPE, "uint32")))


def test_unknown_compression_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="allowed"):
        HDF5BinarySerializer(compression="snappy")


def test_zfp_as_lclstreamer_uses_it() -> None:
    data = frames(2, SHAPE, "float32")
    ser = _started(HDF5BinarySerializer(compression="zfp"), dtype="float32")
    with h5py.File(io.BytesIO(_one(ser, batch(data))), "r") as f:
        d = f["/entry_1/data_1/data"]
        assert "32013" in d._filters and d.shape == data.shape


def test_with_fields_exactly_those_entries_are_written() -> None:
    """LCLStreamer's consumers open the first key: nothing of ours may come first."""
    data = frames(2, SHAPE, "uint16")
    ser = _started(
        HDF5BinarySerializer(fields={"detector_data": "/data", "timestamp": "/timestamp"})
    )
    b = batch(data, timestamp=np.array([1.5, 2.5]), photon_wavelength=np.array([1.3, 1.3]))
    with h5py.File(io.BytesIO(_one(ser, b)), "r") as f:
        assert list(f.keys()) == ["data", "timestamp"]
        first = f[list(f.keys())[0]]
        assert first[:].shape[0] == 2  # LCLStreamer's pull_script_hdf5_zmq.py
        np.testing.assert_array_equal(f["/timestamp"][()], [1.5, 2.5])  # the data source wins
        assert f.attrs["stream_id"] == "test-stream"


def test_corrupt_and_truncated_messages_raise_format_error() -> None:
    data = frames(2, SHAPE, "uint16")
    msg = _one(_started(HDF5BinarySerializer()), batch(data))
    assert detect([msg]) == "hdf5"
    with pytest.raises(FormatError, match="truncated or corrupt"):
        parse([msg[: len(msg) // 3]])
    with pytest.raises(FormatError, match="unrecognised"):
        parse([b"GARBAGE" * 10])
    with pytest.raises(FormatError):
        parse([])
    # damage the compressed chunk of event 1: decoding must fail loudly, not return garbage
    with h5py.File(io.BytesIO(msg), "r") as f:
        off = f["/entry_1/data_1/data"].id.get_chunk_info(1).byte_offset
    bad = bytearray(msg)
    bad[off + 12 : off + 16] = b"\xff\xff\xff\x7f"  # first block's compressed size
    with pytest.raises(FormatError):
        parse([bytes(bad)])


def test_foreign_hdf5_image_parses_by_walking_datasets() -> None:
    bio = io.BytesIO()
    with h5py.File(bio, "w") as f:  # LCLStreamer's way
        f.create_dataset("detector_data", data=np.ones((2, 4, 4), np.uint16), chunks=(1, 4, 4))
        f.create_dataset("timestamp", data=np.arange(2.0))
    p = parse([bio.getvalue()])
    assert p.kind == "data" and p.batch is not None
    np.testing.assert_array_equal(p.batch.arrays["/detector_data"], np.ones((2, 4, 4)))


def test_two_open_images_do_not_alias() -> None:
    from lclstream.formats.hdf5 import open_image

    msgs = []
    for sid in ("A", "B"):
        ser = HDF5BinarySerializer()
        ser.start(info(SHAPE, "uint16", stream_id=sid))
        msgs.append(_one(ser, batch(frames(1, SHAPE, "uint16"))))
    fa, fb = open_image(msgs[0]), open_image(msgs[1])
    try:
        assert (fa.attrs["stream_id"], fb.attrs["stream_id"]) == ("A", "B")
    finally:
        fa.close()
        fb.close()
