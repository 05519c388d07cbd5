"""Sparse photon lists: the kernels against numpy, hostile lists refused, and a stream whose
frames travel as lists that h5py + hdf5plugin read and that decode to the dense stream's frames."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin  # noqa: F401
import numpy as np
import pytest
from lclstream import _core, sparse
from lclstream.errors import ConfigError, FormatError
from lclstream.formats import hdf5
from lclstream.pipeline import Pipeline
from proc_helpers import ReceiverThread

EVENTS = 12


@pytest.fixture(params=_core.available_isas())
def isa(request: pytest.FixtureRequest) -> Any:
    before = _core.isa()
    _core.set_isa(request.param)
    yield request.param
    _core.set_isa(before)


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32])
@pytest.mark.parametrize("occupancy", [0.0, 0.002, 0.03, 0.4, 1.0])
def test_lists_are_numpys_nonzero_pixels_on_every_isa(
    isa: str, dtype: Any, occupancy: float
) -> None:
    rng = np.random.default_rng(5)
    shape = (4, 3, 37, 91)  # frames not a multiple of any vector width
    frames = (rng.random(shape) < occupancy) * rng.integers(1, 2**16 - 1, shape)
    frames = frames.astype(dtype)
    if dtype == np.uint32:
        frames[frames > 0] += 1 << 20  # counts past uint16
    sp = sparse.encode(frames, threads=2)
    assert len(sp) == 4 and sp.frame_shape == (3, 37, 91)
    for e in range(4):
        idx, val = sp.event(e)
        ref = np.flatnonzero(frames[e])
        np.testing.assert_array_equal(idx, ref)
        np.testing.assert_array_equal(val, frames[e].ravel()[ref])
    np.testing.assert_array_equal(sp.to_dense(threads=2), frames)


def test_float_frames_are_refused() -> None:
    with pytest.raises(ValueError, match="photon counts"):
        sparse.encode(np.ones((2, 4, 4), np.float32))


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"index": np.array([3, 16], np.uint32)}, "pixel index 16"),
        ({"offsets": np.array([0, 2, 1], np.uint64)}, "offsets"),
        ({"offsets": np.array([0, 1, 3], np.uint64)}, "offsets run from 0 to 3"),
        ({"values": np.array([1], np.uint16)}, "2 indices but 1 values"),
    ],
)
def test_hostile_lists_are_refused_naming_the_fault(change: dict[str, Any], words: str) -> None:
    parts: dict[str, Any] = {
        "offsets": np.array([0, 1, 2], np.uint64),
        "index": np.array([3, 15], np.uint32),
        "values": np.array([1, 2], np.uint16),
    }
    parts.update(change)
    sp = sparse.SparseFrames(parts["offsets"], parts["index"], parts["values"], (4, 4))
    with pytest.raises(FormatError, match=words):
        sp.to_dense()


def test_the_kernel_checks_the_frame_count_against_the_offsets() -> None:
    out = np.zeros((2, 16), np.uint16)
    one = np.array([1], np.uint16)
    with pytest.raises(ValueError, match="2 offsets for 2 frames"):
        _core.sparse_decode(np.array([0, 1], np.uint64), np.array([3], np.uint32), one, out, 16)


def config(url: str, reduction: dict[str, Any], output: str = "photons") -> dict[str, Any]:
    return {
        "source_identifier": "exp=xpptut15,run=670",
        "event_source": {"type": "InternalEventSource", "number_of_events_to_generate": EVENTS},
        "data_sources": {"detector_data": {"type": "SyntheticDetector", "detector": "jungfrau4M",
                                           "hit_fraction": 0.3, "seed": 9,
                                           "background_photons": 0.004}},
        "processing_pipeline": {
            "type": "BatchProcessingPipeline",
            "batch_size": 5,
            "calibration": {"detector_data": {"constants": "synthetic", "output": output}},
            "reduction": {"detector_data": reduction},
        },
        "data_serializer": {"type": "HDF5BinarySerializer"},
        "data_handlers": [{"type": "BinaryDataStreamingDataHandler", "urls": [url]}],
    }  # fmt: skip


def stream(tmp_path: Path, reduction: dict[str, Any]) -> tuple[Any, Any]:
    rx = ReceiverThread("tcp://127.0.0.1:0", out=tmp_path, timeout=30)
    sent = Pipeline(config(rx.endpoint(), reduction)).run()
    return sent, rx.join()


def frames_of(files: list[str]) -> tuple[np.ndarray, np.ndarray]:
    ids, frames = [], []
    for name in sorted(files):
        with h5py.File(name) as f:
            if "entry_1/data_1/data" in f and len(f["LCLS/eventNumber"]):
                ids.append(f["LCLS/eventNumber"][()])
                frames.append(sparse.read_frames(f))
    return np.concatenate(ids), np.concatenate(frames)


def test_a_sparse_stream_decodes_to_the_dense_streams_frames(tmp_path: Path) -> None:
    dense_sent, dense = stream(tmp_path / "dense", {})
    sent, got = stream(tmp_path / "sparse", {"sparse": True})
    assert got.complete and got.events == EVENTS and sent.events_read == EVENTS
    assert got.bytes < dense.bytes / 2  # 0.4% occupancy: lists beat bslz4 frames
    assert sent.bytes_in == dense_sent.bytes_in  # the reduction counts the frames it took in
    ids, frames = frames_of(got.files)
    ref_ids, ref = frames_of(dense.files)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_array_equal(frames, ref)
    # the layout, read with nothing but h5py + hdf5plugin
    with h5py.File(sorted(got.files)[0]) as f:
        g = f["entry_1/data_1/data"]
        assert isinstance(g, h5py.Group) and g.attrs["lclstream_sparse"] == sparse.LAYOUT
        shape = tuple(g.attrs["frame_shape"])
        off, idx, val = g["offsets"][()], g["index"][()], g["values"][()]
        assert "32008" in g["index"]._filters  # bitshuffle, decoded by hdf5plugin
        e0 = np.zeros(int(np.prod(shape)), val.dtype)
        e0[idx[off[0] : off[1]]] = val[off[0] : off[1]]
        np.testing.assert_array_equal(e0.reshape(shape), ref[0])


def test_sparse_after_the_hit_veto(tmp_path: Path) -> None:
    sent, got = stream(
        tmp_path,
        {"sparse": True, "peakfinder": {"adc_threshold": 2}, "hit_veto": {"min_peaks": 30}},
    )
    assert got.complete and 0 < got.events < EVENTS
    assert got.drop_reasons == {"miss": EVENTS - got.events}
    ids, frames = frames_of(got.files)
    assert len(ids) == got.events and frames.shape[1:] == (8, 512, 1024)


def test_parse_returns_frames_and_refuses_a_group_that_declares_too_much() -> None:
    ser = hdf5.HDF5BinarySerializer()
    from lclstream.protocols import EventBatch, StreamInfo

    ser.start(StreamInfo(stream_id="s", sender=0, senders=1))
    frames = np.zeros((3, 2, 64, 64), np.uint16)
    frames[1, 1, 5, 7] = 4
    sp = sparse.encode(frames)
    batch = EventBatch(np.arange(3, dtype=np.uint64), np.zeros(3, np.uint64), {}, sparse={"d": sp})
    (msg,) = ser.serialize(batch)
    parsed = hdf5.parse(list(msg))
    assert parsed.batch is not None
    np.testing.assert_array_equal(parsed.batch.arrays["d"], frames)
    # the same image, its frame_shape rewritten to claim terabytes of frames
    image = io.BytesIO(bytes(msg[-1]))
    with h5py.File(image, "r+") as f:
        f["entry_1/data_1/data"].attrs["frame_shape"] = np.array([10**6, 10**6], np.int64)
    with pytest.raises(FormatError, match="declare"):
        hdf5.parse(image.getvalue())


@pytest.mark.parametrize(
    ("reduction", "output", "serializer", "words"),
    [
        ({"sparse": True}, "keV", "HDF5BinarySerializer", "photon counts"),
        ({"sparse": True}, "photons", "RawBatchSerializer", "HDF5 messages only"),
        ({"sparse": True, "peaks_only": True, "peakfinder": {}}, "photons",
         "HDF5BinarySerializer", "sparse has nothing to send"),
    ],
)  # fmt: skip
def test_bad_sparse_configs_say_why(
    reduction: dict[str, Any], output: str, serializer: str, words: str
) -> None:
    cfg = config("tcp://127.0.0.1:1", reduction, output)
    cfg["data_serializer"] = {"type": serializer}
    with pytest.raises(ConfigError, match=words):
        Pipeline(cfg)


@pytest.mark.parametrize(("background", "as_lists"), [(0.004, True), (0.6, False)])
def test_auto_sends_whichever_is_smaller_on_the_first_batch(
    tmp_path: Path, background: float, as_lists: bool
) -> None:
    """``sparse: auto``: lists at 0.4% occupancy, frames at ~45% (where bslz4 frames are the
    smaller), decided once from the first batch's exact sizes; the frames arrive either way."""
    rx = ReceiverThread("tcp://127.0.0.1:0", out=tmp_path, timeout=30)
    cfg = config(rx.endpoint(), {"sparse": "auto"})
    cfg["data_sources"]["detector_data"]["background_photons"] = background
    sent = Pipeline(cfg).run()
    got = rx.join()
    assert got.complete and got.events == EVENTS == sent.events
    with h5py.File(sorted(got.files)[0]) as f:
        assert sparse.is_sparse_group(f["entry_1/data_1/data"]) is as_lists
    ids, frames = frames_of(got.files)
    assert len(ids) == EVENTS and frames.shape == (EVENTS, 8, 512, 1024)
