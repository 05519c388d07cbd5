"""atheris: the raw batch parser (CBOR header + payload frame) on arbitrary bytes.

Input layout: 2 bytes big-endian header length, the header, then the payload."""

from __future__ import annotations

import atheris

with atheris.instrument_imports(include=["lclstream"]):
    from lclstream.errors import FormatError
    from lclstream.formats import raw

from _target import main


def split(data: bytes) -> list[bytes]:
    n = int.from_bytes(data[:2], "big") if len(data) >= 2 else 0
    return [data[2 : 2 + n], data[2 + n :]]


def one_input(data: bytes) -> None:
    try:
        raw.parse(split(data))
    except FormatError:
        pass


if __name__ == "__main__":
    main(one_input)
