"""Inputs the fuzzers found (tests/fuzz/known/): each must be refused or parsed quickly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from lclstream.errors import FormatError
from lclstream.formats import hdf5
from lclstream.formats.hdf5_heaps import global_heap
from proc_helpers import cli_env

KNOWN = Path(__file__).parent / "fuzz" / "known"
HANGS = sorted(KNOWN.glob("hdf5-*.h5"))


@pytest.mark.parametrize("path", HANGS, ids=lambda p: p.name)
def test_fuzzer_finding_is_refused_quickly_and_cheaply(path: Path) -> None:
    """Two of these held HDF5 inside H5Aread for minutes, one (a heap ID whose length says
    4 G) made the library allocate and clear 4 GiB before looking at the heap, one (an
    undefined variable-length kind) segfaulted it. Each runs in a child, so a hang or a
    crash is a fail and the child's peak memory is its own."""
    code = (
        "import sys; from lclstream import formats\n"
        "from lclstream.errors import FormatError\n"
        "data = open(sys.argv[1], 'rb').read()\n"
        "try:\n    formats.parse([data])\nexcept FormatError as e:\n    print('refused:', e)\n"
        # VmHWM: this process's own peak (ru_maxrss would include the parent's, kept
        # across exec)
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
        "print('maxrss_mib', int(hwm.split()[1]) >> 10)\n"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, str(path)],
            env=cli_env(), timeout=20, check=False, capture_output=True, text=True,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail(f"parsing the fuzzer's HDF5 input {path.name} took more than 20 s")
    assert done.returncode == 0, done.stderr  # a segfault in HDF5 is -11
    assert "refused:" in done.stdout, done.stdout
    rss = int(done.stdout.rsplit("maxrss_mib", 1)[1])
    assert rss < 400, f"refusing {path.name} cost {rss} MiB of resident memory"


def _heap_image(free_size: int) -> bytes:
    """A valid image with a vlen string attribute, its heap's free-space object resized."""
    import io

    import h5py

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.attrs["note"] = "a variable-length string lives in the global heap"
        f["x"] = np.arange(4)
    image = bytearray(buf.getvalue())
    at = image.find(b"GCOL\x01")
    assert at > 0, "h5py wrote no global heap"
    size = int.from_bytes(image[at + 8 : at + 16], "little")
    p, end = at + 16, at + size
    while p + 16 <= end:  # find the free-space object (index 0)
        idx = int.from_bytes(image[p : p + 2], "little")
        osize = int.from_bytes(image[p + 8 : p + 16], "little")
        if idx == 0:
            image[p + 8 : p + 16] = free_size.to_bytes(8, "little")
            return bytes(image)
        p += 16 + ((osize + 7) & ~7)
    raise AssertionError("no free-space object in the heap")


def test_valid_global_heap_passes_and_forged_ones_do_not() -> None:
    import io

    import h5py

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.attrs["note"] = "fine"
    image = buf.getvalue()
    assert global_heap(memoryview(image), image.find(b"GCOL\x01"))  # walks to its end
    with pytest.raises(FormatError, match="global heap"):
        hdf5.parse([_heap_image(0)])  # zero hop: endless loop
    with pytest.raises(FormatError, match="global heap"):
        hdf5.parse([_heap_image((1 << 64) - 4096)])  # wraps backwards
