"""Inputs the fuzzers found (tests/fuzz/known/): each must be refused or parsed quickly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from proc_helpers import cli_env

KNOWN = Path(__file__).parent / "fuzz" / "known"


@pytest.mark.xfail(
    strict=True,
    reason="open (issue 19): a 20 KB HDF5 image whose variable-length string attribute is "
    "corrupt keeps the HDF5 library busy for minutes inside H5Aread; found by fuzz_hdf5.py",
)
def test_corrupt_vlen_attribute_is_refused_quickly() -> None:
    code = (
        "import sys; from lclstream import formats\n"
        "data = open(sys.argv[1], 'rb').read()\n"
        "try:\n    formats.parse([data])\nexcept Exception:\n    pass\n"
    )
    try:
        subprocess.run(
            [sys.executable, "-c", code, str(KNOWN / "hdf5-vlen-attribute-hang.h5")],
            env=cli_env(), timeout=10, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("parsing the fuzzer's HDF5 input took more than 10 s")
