"""File writer: numbered files, atomic writes, img_per_file regrouping, format conversion."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401
import numpy as np
import pytest
from fmt_helpers import batch, frames, info
from lclstream.errors import ConfigError
from lclstream.formats import (
    HDF5BinarySerializer,
    LclstreamerSimplonSerializer,
    RawBatchSerializer,
    SimplonBinarySerializer,
)
from lclstream.protocols import StreamTotals
from lclstream.writer import FileWriter, atomic_write

SHAPE = (2, 16, 32)


def _messages(ser_cls, n_batches: int = 3, per: int = 4, dtype: str = "uint16"):  # type: ignore[no-untyped-def]
    ser = ser_cls()
    out = list(ser.start(info(SHAPE, dtype)))
    data = frames(n_batches * per, SHAPE, dtype)
    for k in range(n_batches):
        out += ser.serialize(batch(data[k * per : (k + 1) * per], first_id=k * per))
    out += ser.end(StreamTotals(events_sent=len(data), messages_sent=n_batches))
    return out, data


def _data_files(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if not p.name.endswith("_end.h5"))


def _read_all(files: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    arrs, ids = [], []
    for p in files:
        with h5py.File(p, "r") as f:
            arrs.append(f["/entry_1/data_1/data"][()])
            ids.append(f["/LCLS/eventNumber"][()])
    return np.concatenate(arrs), np.concatenate(ids)


def test_hdf5_messages_written_as_numbered_files(tmp_path: Path) -> None:
    msgs, data = _messages(HDF5BinarySerializer)
    with FileWriter(tmp_path, prefix="run670") as w:
        for m in msgs[:-1]:
            w.handle(m)
        w.end(msgs[-1])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"run670_r0_{i:06d}.h5" for i in range(3)] + ["run670_r0_end.h5"]
    for p, m in zip(sorted(tmp_path.iterdir()), msgs, strict=True):
        assert p.read_bytes() == bytes(m[0])  # as received, the end message included
    got, ids = _read_all(_data_files(tmp_path))
    np.testing.assert_array_equal(got, data)
    np.testing.assert_array_equal(ids, np.arange(12))
    assert w.totals[("test-stream", 0)].events_sent == 12


def test_img_per_file_regroups_events(tmp_path: Path) -> None:
    msgs, data = _messages(HDF5BinarySerializer, n_batches=3, per=4)
    w = FileWriter(tmp_path, img_per_file=5)
    for m in msgs:
        w.write_message(m)
    assert len(w.files) == 4  # 5 + 5, then at the end message the last 2 + the end file
    w.close()
    files = _data_files(tmp_path)
    counts = []
    for p in files:
        with h5py.File(p, "r") as f:
            counts.append(f["/entry_1/data_1/data"].shape[0])
            assert "32008" in f["/entry_1/data_1/data"]._filters
    assert counts == [5, 5, 2]
    got, ids = _read_all(files)
    np.testing.assert_array_equal(got, data)
    np.testing.assert_array_equal(ids, np.arange(12))


@pytest.mark.parametrize(
    "ser_cls", [SimplonBinarySerializer, RawBatchSerializer, LclstreamerSimplonSerializer]
)
def test_other_formats_are_converted_to_hdf5(tmp_path: Path, ser_cls: type) -> None:
    msgs, data = _messages(ser_cls, n_batches=2, per=3)
    with FileWriter(tmp_path, img_per_file=3) as w:
        for m in msgs:
            w.write_message(m)
    files = _data_files(tmp_path)
    assert len(files) == 2
    with h5py.File(tmp_path / "lclstream_r0_end.h5", "r") as f:
        assert f.attrs["end_of_stream"] and f.attrs["events_sent"] == 6
        assert f["/entry_1/data_1/data"].shape == (0, *SHAPE)
    got, ids = _read_all(files)
    np.testing.assert_array_equal(got, data)
    np.testing.assert_array_equal(ids, np.arange(6))


def test_crash_mid_write_leaves_no_final_named_file(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    msgs, _ = _messages(HDF5BinarySerializer, n_batches=1)
    w = FileWriter(tmp_path)

    def boom(fd: int) -> None:
        raise OSError("simulated crash during fsync")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="simulated"):
        w.write_message(msgs[0])
    assert list(tmp_path.iterdir()) == []  # no partial file, final or temporary
    monkeypatch.undo()
    w.write_message(msgs[0])
    assert [p.name for p in tmp_path.iterdir()] == ["lclstream_r0_000000.h5"]


def test_atomic_write_exception_between_chunks(tmp_path: Path) -> None:
    class Bad:
        def __buffer__(self, flags: int) -> memoryview:
            raise RuntimeError("source died")

    target = tmp_path / "x.h5"
    with pytest.raises(TypeError):
        atomic_write(target, [b"half of it", Bad()])
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_names_cannot_escape_the_directory(tmp_path: Path) -> None:
    for prefix in ("../evil", "a/b", ".."):
        with pytest.raises(ConfigError, match="escape"):
            FileWriter(tmp_path, prefix=prefix)
    with pytest.raises(ConfigError):
        FileWriter(tmp_path, img_per_file=0)


def test_existing_files_are_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "lclstream_r0_000000.h5").write_bytes(b"keep me")
    msgs, _ = _messages(HDF5BinarySerializer, n_batches=1)
    w = FileWriter(tmp_path)
    (path,) = w.write_message(msgs[0])
    assert path.name == "lclstream_r0_000001.h5"
    assert (tmp_path / "lclstream_r0_000000.h5").read_bytes() == b"keep me"


def test_failed_regrouped_write_keeps_the_events(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    msgs, data = _messages(RawBatchSerializer, n_batches=2, per=3)
    w = FileWriter(tmp_path, img_per_file=4)
    w.write_message(msgs[0])

    def boom(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        w.write_message(msgs[1])
    monkeypatch.undo()
    w.close()
    got, ids = _read_all(_data_files(tmp_path))
    np.testing.assert_array_equal(got, data)
    np.testing.assert_array_equal(ids, np.arange(6))


def test_write_parsed_skips_a_second_parse(tmp_path: Path) -> None:
    from lclstream.formats import parse

    msgs, data = _messages(HDF5BinarySerializer, n_batches=2, per=2)
    w = FileWriter(tmp_path)
    for m in msgs:
        w.write_parsed(parse(m), m)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["lclstream_r0_000000.h5", "lclstream_r0_000001.h5", "lclstream_r0_end.h5"]
    assert (tmp_path / "lclstream_r0_000001.h5").read_bytes() == bytes(msgs[1][0])
    got, _ = _read_all(_data_files(tmp_path))
    np.testing.assert_array_equal(got, data)
