"""Writes the libFuzzer seed corpus (cpp/fuzz/corpus/<target>/): small valid chunks of every
codec and element size, plus the hostile shapes issue 19 found (bombs, truncations), so the
fuzzers start from the formats' real structure. Re-run after a format change:

    PYTHONPATH=python python cpp/fuzz/make_corpus.py
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import numpy as np
from lclstream import codec

ROOT = Path(__file__).resolve().parent / "corpus"
ELEM = {1: 0, 2: 1, 4: 2, 8: 3}  # element size -> the selector byte fuzz_chunk.cpp reads


def arrays() -> list[np.ndarray]:
    rng = np.random.default_rng(19)
    return [
        np.zeros(64, np.uint8),
        np.arange(100, dtype=np.uint16),
        (rng.normal(2000, 4, 300)).astype(np.uint16),
        rng.integers(0, 2**31, 77, dtype=np.uint32),
        rng.random(40).astype(np.float64),
        np.zeros(3, np.uint16),
    ]


def write(target: str, data: bytes) -> None:
    d = ROOT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)


def main() -> None:
    chunks: dict[str, list[tuple[int, bytes]]] = {}
    for name in ("bslz4", "bszstd", "lz4", "zstd"):
        for a in arrays():
            c = bytes(codec.compress(a, name))
            chunks.setdefault(name, []).append((a.itemsize, c))
            write(f"fuzz_{name}", bytes([ELEM[a.itemsize]]) + c)
            write(f"fuzz_{name}", bytes([ELEM[a.itemsize] | 4]) + c[: len(c) // 2])  # truncated
        if name != "zstd":
            write(f"fuzz_{name}", b"\x00" + struct.pack(">QII", 1 << 40, 8192, 4))  # 1 TiB bomb
    for k, name in enumerate(("bslz4", "bszstd", "lz4", "zstd")):
        for es, c in chunks[name][:3]:
            frames = 3
            head = bytes([k, ELEM[es], frames - 1]) + struct.pack(">H", len(c)) * frames
            write("fuzz_frames", head + c * frames)


if __name__ == "__main__":
    main()
