"""Decompression bombs are refused before allocation (cpp/include/lclstream/decode_limits.hpp).

Chunk bytes come from the network: the size a chunk declares, and the dtype x shape a
message declares around it, are checked against configurable limits and against what the
chunk's own bytes can produce (LZ4 255:1, zstd 32768:1, 5 bytes per bitshuffle block) before
anything is allocated; decoder scratch above a cap is released after the call that needed it.
Memory is measured in a fresh interpreter (an earlier test may have tuned malloc).
"""

from __future__ import annotations

import struct
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from lclstream import _core, codec

TIB = 1 << 40
NO_LIMIT = codec.DecodeLimits(max_chunk_bytes=1 << 62, max_message_bytes=1 << 62)


def bomb(declared: int, block: int = 8192, first: int = 4) -> bytes:
    """A 16-byte 32008/32004 chunk: header, then one block-size word."""
    return struct.pack(">QII", declared, block, first)


def run_child(code: str) -> str:
    """Runs ``code`` in a fresh interpreter (same sys.path) and returns its stdout."""
    prelude = "import sys; sys.path[:0] = " + repr(sys.path) + "\n"
    out = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.parametrize("name", ["bslz4", "bszstd", "lz4"])
def test_16_byte_chunk_claiming_1_tib_is_refused_at_once(name: str) -> None:
    chunk = bomb(TIB)
    t0 = time.perf_counter()
    with pytest.raises(_core.CapacityError, match="limit"):
        codec.decompress(chunk, name, dtype=np.uint8, shape=(TIB,))
    # Even with no configured limit the header is impossible: corrupt, not allocated.
    with pytest.raises(_core.CorruptDataError, match="cannot hold"):
        codec.decompress(chunk, name, dtype=np.uint8, shape=(TIB,), limits=NO_LIMIT)
    assert time.perf_counter() - t0 < 0.1


def test_bomb_costs_no_resident_memory() -> None:
    # 1 TiB, and a 111-byte chunk whose message shape asks for 512 MiB (within the limit,
    # so only the header check can refuse it): RSS must barely move.
    out = run_child(
        """
        import struct, numpy as np
        from lclstream import _core, codec
        def rss():
            return int(open("/proc/self/statm").read().split()[1]) * 4096
        before = rss()
        for name in ("bslz4", "bszstd", "lz4", "zstd"):
            for declared, chunk in (
                (1 << 40, struct.pack(">QII", 1 << 40, 8192, 4)),
                (512 << 20, struct.pack(">QII", 512 << 20, 8192, 95) + bytes(95)),
            ):
                if name == "zstd":  # a zstd frame declaring its size (single segment)
                    chunk = b"\\x28\\xb5\\x2f\\xfd\\xe0" + struct.pack("<Q", declared) + bytes(8)
                for lim in (None, codec.DecodeLimits(max_chunk_bytes=1 << 62,
                                                    max_message_bytes=1 << 62)):
                    try:
                        codec.decompress(chunk, name, dtype=np.uint8, shape=(declared,),
                                         limits=lim)
                    except (_core.CorruptDataError, _core.CapacityError):
                        pass
                    else:
                        raise SystemExit(f"{name}: {declared} accepted")
        print(rss() - before)
        """
    )
    assert int(out) < 8 << 20


def test_message_limit_covers_all_frames_before_allocation() -> None:
    frame = np.zeros((256, 256), np.uint16)
    one = codec.compress(frame, "bslz4")
    chunks = np.concatenate([one] * 4)
    sizes = np.full(4, one.size)
    offsets = np.arange(4) * one.size
    back = codec.decompress_frames(chunks, offsets, sizes, dtype=np.uint16, frame_shape=(256, 256))
    assert back.shape == (4, 256, 256) and not back.any()
    small = codec.DecodeLimits(max_chunk_bytes=1 << 20, max_message_bytes=3 * frame.nbytes)
    with pytest.raises(_core.CapacityError, match="per message|limit"):
        codec.decompress_frames(
            chunks, offsets, sizes, dtype=np.uint16, frame_shape=(256, 256), limits=small
        )
    # One chunk of a batch is a bomb: the whole call is refused before the output exists.
    bad = np.concatenate([one, np.frombuffer(bomb(frame.nbytes, 8192, 1), np.uint8)])
    with pytest.raises(_core.CorruptDataError):
        codec.decompress_frames(
            bad, [0, one.size], [one.size, 16], dtype=np.uint16, frame_shape=(256, 256)
        )


def test_shape_overflow_and_limit_are_capacity_errors() -> None:
    chunk = codec.compress(np.zeros(16, np.uint8), "bslz4")
    with pytest.raises(_core.CapacityError):
        codec.decompress(chunk, "bslz4", dtype=np.uint64, shape=(1 << 40, 1 << 40))
    lim = codec.DecodeLimits(max_chunk_bytes=8, max_message_bytes=8)
    with pytest.raises(_core.CapacityError):
        codec.decompress(chunk, "bslz4", dtype=np.uint8, shape=(16,), limits=lim)
    assert codec.decompress(chunk, "bslz4", dtype=np.uint8, shape=(16,)).sum() == 0
    assert codec.DEFAULT_LIMITS.max_chunk_bytes == 1 << 30
    assert codec.max_decoded_bytes(16, "bslz4") == 4 * 255


def test_decoder_scratch_is_released_after_a_large_block() -> None:
    # A legal chunk with one 64 MiB bitshuffle block, then a hostile one whose 64 MiB block
    # passes the ratio check but does not decode: neither may leave 64 MiB of thread-local
    # scratch behind (the cap is MAX_RETAINED_SCRATCH).
    out = run_child(
        """
        import struct, numpy as np
        from lclstream import _core, codec
        def rss():
            return int(open("/proc/self/statm").read().split()[1]) * 4096
        n = 32 << 20  # uint16 elements: 64 MiB
        frame = np.zeros(n, np.uint16)
        frame[::4097] = 7
        chunk = _core.codec_compress(frame, "bslz4", 0, 1, n, None).copy()
        dst = np.ones(n, np.uint16)
        del frame
        before = rss()
        codec.decompress(chunk, "bslz4", dtype=np.uint16, shape=(n,), out=dst)
        assert dst[::4097].min() == 7
        grown_ok = rss() - before
        payload = (64 << 20) // 255 + 64
        evil = struct.pack(">QII", 64 << 20, 64 << 20, payload) + b"\\x1f" * payload
        try:
            codec.decompress(evil, "bslz4", dtype=np.uint16, shape=(n,), out=dst)
        except _core.CorruptDataError:
            pass
        else:
            raise SystemExit("evil chunk decoded")
        print(grown_ok, rss() - before)
        """
    )
    grown_ok, grown_evil = (int(v) for v in out.split())
    assert grown_ok < 16 << 20
    assert grown_evil < 16 << 20
