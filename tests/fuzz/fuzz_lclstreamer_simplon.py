"""atheris: LCLStreamer's prefixed-CBOR SIMPLON parser on arbitrary bytes."""

from __future__ import annotations

import atheris

with atheris.instrument_imports(include=["lclstream"]):
    from lclstream.errors import FormatError
    from lclstream.formats import lclstreamer_simplon

from _target import main


def one_input(data: bytes) -> None:
    msg = data if data[:1] in (b"c", b"m") else b"m" + data
    try:
        lclstreamer_simplon.parse([msg])
    except FormatError:
        pass


if __name__ == "__main__":
    main(one_input)
