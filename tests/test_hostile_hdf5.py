"""HDF5 messages are self-contained or refused, before any data is read: external storage,
external links, dangling soft links, virtual datasets, filters lclstream does not write, and
declared sizes beyond the limits (a 3 KB image that would materialise 768 MiB)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from fmt_helpers import batch, frames, info
from lclstream.errors import FormatError
from lclstream.formats import hdf5
from lclstream.limits import LimitExceeded
from proc_helpers import cli_env

_n = 0


def image(build: Any) -> bytes:
    """An HDF5 file image made by ``build(f)`` in memory, with our root attributes."""
    global _n
    _n += 1
    with h5py.File(f"hostile-{_n}.h5", "w", driver="core", backing_store=False) as f:
        f.attrs["stream_id"] = "s"
        f.attrs["sequence"] = 0
        build(f)
        f.flush()
        return bytes(f.id.get_file_image())


def test_our_own_messages_pass_the_check() -> None:
    ser = hdf5.HDF5BinarySerializer()
    ser.start(info((8, 16), "uint16"))
    msg = ser.serialize(batch(frames(3, (8, 16), "uint16")))[0].frames[0]
    assert hdf5.parse([msg]).batch is not None
    end = ser.end(hdf5.StreamTotals(3, 1))[0].frames[0]
    assert hdf5.parse([end]).kind == "end"
    gz = hdf5.HDF5BinarySerializer(compression="gzip_with_shuffle")
    gz.start(info((8, 16), "uint16"))
    hdf5.parse([gz.serialize(batch(frames(2, (8, 16), "uint16")))[0].frames[0]])


def test_external_storage_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"local secret" * 10)

    def build(f: h5py.File) -> None:
        f.create_dataset("data", shape=(120,), dtype="u1", external=[(str(secret), 0, 120)])

    with pytest.raises(FormatError, match="external storage"):
        hdf5.parse([image(build)])


def test_external_storage_on_a_fifo_is_never_opened(tmp_path: Path) -> None:
    """Without the check, reading blocks forever on the FIFO: run it in a child, bounded."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    code = textwrap.dedent(f"""
        import h5py
        from lclstream.formats import hdf5
        from lclstream.errors import FormatError
        with h5py.File("x.h5", "w", driver="core", backing_store=False) as f:
            f.create_dataset("data", shape=(100,), dtype="u1", external=[({str(fifo)!r}, 0, 100)])
            f.flush()
            img = bytes(f.id.get_file_image())
        try:
            hdf5.parse([img])
        except FormatError as e:
            print("refused:", e)
    """)
    cp = subprocess.run([sys.executable, "-c", code], env=cli_env(), capture_output=True,
                        text=True, timeout=30)  # fmt: skip
    assert "refused:" in cp.stdout and "external storage" in cp.stdout, cp.stderr


def test_external_link_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as g:
        g["x"] = np.arange(10)

    def build(f: h5py.File) -> None:
        f["entry"] = h5py.ExternalLink(str(other), "/x")

    with pytest.raises(FormatError, match="external link"):
        hdf5.parse([image(build)])


def test_soft_link_pointing_nowhere_is_refused() -> None:
    def build(f: h5py.File) -> None:
        f["real"] = np.arange(4)
        f["ok"] = h5py.SoftLink("/real")
        f["bad"] = h5py.SoftLink("/does/not/exist")

    with pytest.raises(FormatError, match="soft link /?bad"):
        hdf5.parse([image(build)])


def test_virtual_dataset_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "src.h5"
    with h5py.File(src, "w") as g:
        g["x"] = np.arange(10)

    def build(f: h5py.File) -> None:
        layout = h5py.VirtualLayout(shape=(10,), dtype="i8")
        layout[:] = h5py.VirtualSource(str(src), "x", shape=(10,))
        f.create_virtual_dataset("v", layout)

    with pytest.raises(FormatError, match="virtual"):
        hdf5.parse([image(build)])


def test_filter_outside_the_allow_list_is_refused() -> None:
    def build(f: h5py.File) -> None:
        f.create_dataset("d", data=np.arange(100), chunks=(10,), fletcher32=True)

    with pytest.raises(FormatError, match="filter 3"):
        hdf5.parse([image(build)])


def test_small_image_declaring_768_mib_is_refused_before_reading() -> None:
    def build(f: h5py.File) -> None:  # never written: the fill value would materialise
        f.create_dataset("d", shape=(3, 8192, 8192), dtype="<u4", chunks=(1, 8192, 8192))

    img = image(build)
    assert len(img) < 8192
    with pytest.raises(LimitExceeded, match="decoded bytes|max_chunk"):
        hdf5.parse([img])


def test_chunk_larger_than_the_dataset_is_refused() -> None:
    def build(f: h5py.File) -> None:
        f.create_dataset("d", shape=(1, 4), maxshape=(None, None), dtype="u1",
                         chunks=(1, 1 << 30))  # fmt: skip

    with pytest.raises(LimitExceeded):
        hdf5.parse([image(build)])
