"""atheris: the HDF5 message reader (``formats.hdf5.parse``) on arbitrary bytes."""

from __future__ import annotations

import atheris

with atheris.instrument_imports(include=["lclstream"]):
    from lclstream.errors import FormatError
    from lclstream.formats import hdf5

from _target import main

SIGNATURE = hdf5.HDF5_SIGNATURE


def one_input(data: bytes) -> None:
    msg = data if data.startswith(SIGNATURE) else SIGNATURE + data
    try:
        hdf5.parse([msg])
    except FormatError:
        pass


if __name__ == "__main__":
    main(one_input)
