"""Write the seed corpus (``corpus/<target>/``): valid messages of each format, small.

Run it again when a format changes: ``python tests/fuzz/make_corpus.py``."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from fmt_helpers import batch, frames, info  # noqa: E402
from lclstream.formats import (  # noqa: E402
    HDF5BinarySerializer,
    LclstreamerSimplonSerializer,
    RawBatchSerializer,
    SimplonBinarySerializer,
)
from lclstream.protocols import StreamTotals  # noqa: E402

SHAPE = (4, 8)


def messages(ser: object) -> list[list[bytes]]:
    msgs = list(ser.start(info(SHAPE, "uint16")))  # type: ignore[attr-defined]
    msgs += ser.serialize(batch(frames(2, SHAPE, "uint16")))  # type: ignore[attr-defined]
    msgs += ser.end(StreamTotals(2, 1, events_read=2))  # type: ignore[attr-defined]
    return [[bytes(memoryview(f)) for f in m.frames] for m in msgs]


def write(target: str, blobs: list[bytes]) -> None:
    d = HERE / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    for i, b in enumerate(blobs):
        (d / f"seed-{i}").write_bytes(b)


def main() -> None:
    write("hdf5", [m[0] for m in messages(HDF5BinarySerializer())])
    write("stream2", [m[0] for m in messages(SimplonBinarySerializer())])
    write("lclstreamer_simplon", [m[0] for m in messages(LclstreamerSimplonSerializer())])
    raw = messages(RawBatchSerializer()) + messages(RawBatchSerializer(compression="bslz4"))
    write("raw", [len(h).to_bytes(2, "big") + h + p for h, p in raw])
    examples = sorted((HERE.parents[1] / "examples").glob("*.yaml"))[:4]
    write("config", [p.read_bytes() for p in examples] + [b"a: &a [1]\nb: [*a, *a]\n"])


if __name__ == "__main__":
    main()
