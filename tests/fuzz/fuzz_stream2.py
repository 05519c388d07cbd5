"""atheris: the SIMPLON stream2 parser (``formats.simplon.parse``) on arbitrary bytes."""

from __future__ import annotations

import atheris

with atheris.instrument_imports(include=["lclstream"]):
    from lclstream.errors import FormatError
    from lclstream.formats import simplon


from _target import main


def one_input(data: bytes) -> None:
    msg = data if data.startswith(simplon.SELF_DESCRIBED) else simplon.SELF_DESCRIBED + data
    try:
        simplon.parse([msg])
    except FormatError:
        pass


if __name__ == "__main__":
    main(one_input)
