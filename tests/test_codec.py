"""Codec chunks against independent decoders and encoders: the bitshuffle package, h5py +
hdf5plugin (direct chunk writes read back through the normal API, and the reverse), plus
round trips over generated arrays and corrupt-input checks."""

from __future__ import annotations

import io
from collections.abc import Iterator

import bitshuffle as bshuf
import h5py
import hdf5plugin
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from lclstream import _core, codec
from lclstream.errors import CorruptDataError

DTYPES = ["u1", "i1", "u2", "i2", "u4", "i4", "f4", "u8", "i8", "f8"]
SIZES = [0, 1, 7, 8, 9, 127, 128, 1000, 4096, 4100, 70003]


@pytest.fixture(params=_core.available_isas())
def isa(request: pytest.FixtureRequest) -> Iterator[str]:
    before = _core.isa()
    _core.set_isa(request.param)
    yield request.param
    _core.set_isa(before)


def sample(dtype: str, n: int, seed: int = 0) -> np.ndarray:
    """Detector-like values: a smooth-ish level, noise, some zeros; all bit planes exercised."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return (rng.normal(1000, 30, n) * (rng.random(n) > 0.2)).astype(dt)
    info = np.iinfo(dt)
    v = rng.normal(0, 1, n) * min(info.max, 3000) * 0.3
    v[rng.random(n) < 0.5] = 0
    return np.clip(v, info.min, info.max).astype(dt)


def photons_like(n: int, seed: int = 2) -> np.ndarray:
    """Sparse photon counts: the bit planes liblz4 handles inside our encoder."""
    rng = np.random.default_rng(seed)
    a = rng.poisson(0.05, n).astype(np.uint16)
    a[rng.integers(0, n, max(1, n // 500))] = rng.poisson(40, max(1, n // 500))
    return a


def jungfrau_like(n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ped = rng.uniform(1000, 3000, n)
    a = ped + rng.normal(0, 4, n)
    gain = (rng.random(n) < 0.001).astype(np.uint16) << 14
    return (a.astype(np.uint16) & 0x3FFF) | gain


@pytest.mark.parametrize("dtype", DTYPES)
def test_bitshuffle_matches_package_for_every_isa(isa: str, dtype: str) -> None:
    for n in SIZES:
        a = sample(dtype, n)
        ours = codec.bitshuffle(a)
        ref = bshuf.bitshuffle(a)
        assert ours.view(np.uint8).tobytes() == ref.view(np.uint8).tobytes(), (isa, dtype, n)
        assert np.array_equal(codec.bitunshuffle(ours), a)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bslz4_decoded_by_package_and_package_chunks_decoded_by_us(dtype: str) -> None:
    for n in SIZES:
        a = sample(dtype, n)
        ch = codec.compress(a, "bslz4")
        if n:
            got = bshuf.decompress_lz4(np.asarray(ch[12:]), a.shape, a.dtype)
            assert np.array_equal(got, a), (dtype, n)
        ref = bshuf.compress_lz4(a)
        bs = codec.default_block_size(a.itemsize) * a.itemsize
        header = int(a.nbytes).to_bytes(8, "big") + bs.to_bytes(4, "big")
        back = codec.decompress(header + ref.tobytes(), "bslz4", dtype=a.dtype, shape=a.shape)
        assert np.array_equal(back, a)


@pytest.mark.parametrize("name", ["bslz4", "bszstd"])
@pytest.mark.parametrize("kind", ["photons", "jungfrau", "kev", "zeros"])
def test_detector_data_decoded_by_package_and_hdf5plugin(isa: str, kind: str, name: str) -> None:
    """Our plane encoders (LZ4 sequences, hand-written zstd frames) on data that uses every path."""
    n = 3 * 4096 + 1001
    a = {
        "photons": photons_like(n),
        "jungfrau": jungfrau_like(n),
        "kev": (photons_like(n) * 9.5 + np.random.default_rng(4).normal(0, 0.3, n)).astype("f4"),
        "zeros": np.zeros(n, np.uint16),
    }[kind]
    ch = codec.compress(a, name, level=3)
    if name == "bslz4":
        got = bshuf.decompress_lz4(np.asarray(ch[12:]), a.shape, a.dtype)
        pkg = len(bshuf.compress_lz4(a)) + 12
    else:
        got = bshuf.decompress_zstd(np.asarray(ch[12:]), a.shape, a.dtype)
        pkg = len(bshuf.compress_zstd(a, comp_lvl=3)) + 12
    assert got.tobytes() == a.tobytes()
    assert len(ch) <= pkg * 1.05, (len(ch), pkg)
    assert np.array_equal(_h5_direct_roundtrip(a, name, 3)[1], a + 1)


def test_bszstd_decoded_by_package() -> None:
    for dtype in ["u2", "u4", "f4"]:
        a = sample(dtype, 9001)
        ch = codec.compress(a, "bszstd", level=5)
        got = bshuf.decompress_zstd(np.asarray(ch[12:]), a.shape, a.dtype)
        assert np.array_equal(got, a)
        ref = bshuf.compress_zstd(a)
        header = int(a.nbytes).to_bytes(8, "big") + (8192).to_bytes(4, "big")
        assert np.array_equal(
            codec.decompress(header + ref.tobytes(), "bszstd", dtype=dtype, shape=a.shape), a
        )


def _h5_direct_roundtrip(a: np.ndarray, name: str, level: int | None) -> np.ndarray:
    fid, opts = codec.hdf5_filter(name, a.dtype, level)
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        ds = f.create_dataset(
            "d",
            shape=(2, *a.shape),
            dtype=a.dtype,
            chunks=(1, *a.shape),
            compression=fid,
            compression_opts=opts,
        )
        for i in range(2):
            ds.id.write_direct_chunk(
                (i,) + (0,) * a.ndim, codec.compress(a + i, name, level=level).tobytes()
            )
    with h5py.File(io.BytesIO(buf.getvalue()), "r") as f:
        return np.asarray(f["d"][...])


@pytest.mark.parametrize("name", codec.CODECS)
@pytest.mark.parametrize("dtype", ["u1", "u2", "u4", "f4", "f8"])
def test_chunks_read_by_h5py_hdf5plugin(name: str, dtype: str) -> None:
    a = sample(dtype, 4 * 1031).reshape(4, 1031)  # not a multiple of 8 elements
    got = _h5_direct_roundtrip(a, name, level=4)
    assert np.array_equal(got[0], a) and np.array_equal(got[1], a + 1)


HDF5PLUGIN = {
    "bslz4": lambda: hdf5plugin.Bitshuffle(cname="lz4"),
    "bszstd": lambda: hdf5plugin.Bitshuffle(cname="zstd", clevel=3),
    "lz4": lambda: hdf5plugin.LZ4(),
    "zstd": lambda: hdf5plugin.Zstd(),
}


@pytest.mark.parametrize("name", codec.CODECS)
@pytest.mark.parametrize("dtype", ["u2", "i4", "f4"])
def test_hdf5plugin_chunks_decoded_by_us(name: str, dtype: str) -> None:
    a = sample(dtype, 3 * 5003).reshape(3, 5003)
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_dataset("d", data=a, chunks=(1, 5003), **HDF5PLUGIN[name]())
        for i in range(3):
            _, raw = f["d"].id.read_direct_chunk((i, 0))
            got = codec.decompress(raw, name, dtype=dtype, shape=(5003,))
            assert np.array_equal(got, a[i])


def test_hdf5_filter_options_match_hdf5plugin() -> None:
    assert codec.hdf5_filter("bslz4") == (
        32008,
        tuple(hdf5plugin.Bitshuffle(cname="lz4").filter_options),
    )
    assert codec.hdf5_filter("bszstd", "uint16", 5) == (
        32008,
        tuple(hdf5plugin.Bitshuffle(cname="zstd", clevel=5).filter_options),
    )
    assert codec.hdf5_filter("lz4") == (32004, tuple(hdf5plugin.LZ4().filter_options))
    assert codec.hdf5_filter("zstd", level=3) == (
        32015,
        tuple(hdf5plugin.Zstd(clevel=3).filter_options),
    )
    assert codec.hdf5_filter("bitshuffle_with_lz4")[0] == 32008


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=hnp.arrays(
        dtype=st.sampled_from([np.dtype(d) for d in DTYPES]),
        shape=hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=300),
    ),
    name=st.sampled_from(codec.CODECS),
)
def test_roundtrip_generated(data: np.ndarray, name: str) -> None:
    ch = codec.compress(data, name)
    assert len(ch) <= codec.compress_bound(data.nbytes, data.itemsize, name)
    back = codec.decompress(ch, name, dtype=data.dtype, shape=data.shape)
    assert back.view(np.uint8).tobytes() == data.view(np.uint8).tobytes()


def test_large_and_threads_give_identical_bytes() -> None:
    a = jungfrau_like(512 * 1024 * 2)
    one = codec.compress(a, "bslz4", threads=1).tobytes()
    two = codec.compress(a, "bslz4", threads=2).tobytes()
    assert one == two
    assert np.array_equal(
        bshuf.decompress_lz4(np.frombuffer(one[12:], np.uint8), a.shape, a.dtype), a
    )
    assert np.array_equal(codec.decompress(one, dtype=a.dtype, shape=a.shape, threads=2), a)


@pytest.mark.parametrize("name", ["bslz4", "bszstd"])
def test_every_isa_writes_the_same_chunk(name: str) -> None:
    a = jungfrau_like(100003)
    before = _core.isa()
    try:
        chunks = {}
        for i in _core.available_isas():
            _core.set_isa(i)
            chunks[i] = codec.compress(a, name).tobytes()
            assert np.array_equal(
                codec.decompress(
                    chunks["scalar" if "scalar" in chunks else i],
                    name,
                    dtype=a.dtype,
                    shape=a.shape,
                ),
                a,
            )
    finally:
        _core.set_isa(before)
    assert len(set(chunks.values())) == 1


@pytest.mark.parametrize("name", codec.CODECS)
def test_compress_frames_one_chunk_per_event(name: str) -> None:
    frames = np.stack([jungfrau_like(3 * 1005, seed=s) for s in range(5)]).reshape(5, 3, 1005)
    buf, offsets, sizes = codec.compress_frames(frames, name, threads=2)
    assert offsets[0] == 0 and list(offsets[1:]) == list(np.cumsum(sizes)[:-1])
    for i in range(5):
        chunk = buf[offsets[i] : offsets[i] + sizes[i]]
        assert chunk.tobytes() == codec.compress(frames[i], name).tobytes()
    back = codec.decompress_frames(
        buf, offsets, sizes, name, dtype=frames.dtype, frame_shape=(3, 1005)
    )
    assert np.array_equal(back, frames)


@pytest.mark.parametrize("name", codec.CODECS)
def test_corrupt_and_truncated_chunks_raise(name: str) -> None:
    a = jungfrau_like(20000)
    ch = codec.compress(a, name).tobytes()
    for cut in [0, 5, 11, 12, 15, len(ch) // 2, len(ch) - 1]:
        with pytest.raises(CorruptDataError):
            codec.decompress(ch[:cut], name, dtype=a.dtype, shape=a.shape)
    with pytest.raises(CorruptDataError, match="declares|decod|expected"):
        codec.decompress(ch, name, dtype=a.dtype, shape=(a.size - 8,))
    rng = np.random.default_rng(3)
    for _ in range(200):  # random byte flips: an error or (rarely) wrong data, never a crash
        bad = bytearray(ch)
        for pos in rng.integers(0, len(bad), 3):
            bad[pos] ^= int(rng.integers(1, 256))
        try:
            codec.decompress(bytes(bad), name, dtype=a.dtype, shape=a.shape)
        except CorruptDataError:
            pass


def test_huge_declared_size_refused_before_allocating() -> None:
    bad = (1 << 60).to_bytes(8, "big") + (8192).to_bytes(4, "big")
    with pytest.raises(CorruptDataError, match="declares"):
        codec.decompress(bad, "bslz4", dtype="uint16", shape=(10,))


def test_unknown_codec_and_non_contiguous() -> None:
    with pytest.raises(ValueError, match="unknown codec"):
        codec.compress(np.zeros(8, np.uint16), "gzip9")
    with pytest.raises(ValueError, match="contiguous"):
        codec.compress(np.zeros((8, 8), np.uint16)[:, ::2])


def test_compress_frames_into_a_pool_buffer() -> None:
    frames = np.stack([photons_like(4096 * 3, seed=s) for s in range(4)])
    need = codec.compress_frames_bound(4, frames[0].nbytes, 2)
    pool = _core.BufferPool(need, 1)
    res = codec.compress_frames_pooled(frames, pool, threads=2)
    assert pool.stats()["available"] == 0
    buf = res.buffer()
    for i in range(4):
        assert res.chunk(i).tobytes() == codec.compress(frames[i]).tobytes()
    back = codec.decompress_frames(buf, res.offsets, res.sizes, dtype="u2", frame_shape=(4096 * 3,))
    assert np.array_equal(back, frames)
    del buf, res
    assert pool.stats()["available"] == 1


@pytest.mark.parametrize("name", ["bslz4", "bszstd"])
def test_dectris_compression_decodes_our_chunks(name: str) -> None:
    from dectris.compression import decompress as dectris_decompress

    for a in [photons_like(3 * 4096 + 5), jungfrau_like(5000), sample("f4", 2049), sample("u4", 7)]:
        ch = codec.compress(a, name).tobytes()
        got = np.frombuffer(dectris_decompress(ch, name, elem_size=a.itemsize), a.dtype)
        assert np.array_equal(got, a)


_CORRUPT_SOURCE = {
    name: codec.compress(photons_like(2 * 4096 + 77), name).tobytes() for name in codec.CODECS
}


@settings(max_examples=150, deadline=None)
@given(
    name=st.sampled_from(codec.CODECS),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=6),
    cut=st.integers(0, 10**6),
)
def test_corrupt_input_generated(name: str, edits: list[tuple[int, int]], cut: int) -> None:
    """Overwritten bytes and truncation: a clean CorruptDataError or a decoded array."""
    bad = bytearray(_CORRUPT_SOURCE[name])
    for pos, value in edits:
        bad[pos % len(bad)] = value
    bad = bad[: max(0, len(bad) - cut % 64)]
    try:
        out = codec.decompress(bytes(bad), name, dtype="u2", shape=(2 * 4096 + 77,))
        assert out.shape == (2 * 4096 + 77,)
    except CorruptDataError:
        pass


def photon_frames(n: int, seed: int, rate: float) -> np.ndarray:
    """Photon-count frames as the pipeline makes them: Poisson background, a few Bragg peaks."""
    rng = np.random.default_rng(seed)
    a = rng.poisson(rate, n).astype(np.uint16)
    peaks = rng.integers(1, n - 1, max(1, n // 3000))
    for d in (-1, 0, 1):
        a[peaks + d] += rng.poisson(300, peaks.size).astype(np.uint16)
    return a


def _same_chunk_on_every_isa_read_by_package(a: np.ndarray, block: int) -> bytes:
    """The bslz4 chunk of ``a``: the same bytes on every ISA, decoded exactly by the bitshuffle
    package and by us."""
    before = _core.isa()
    try:
        chunks = set()
        for i in _core.available_isas():
            _core.set_isa(i)
            chunks.add(_core.codec_compress(a, "bslz4", 0, 1, block).tobytes())
    finally:
        _core.set_isa(before)
    assert len(chunks) == 1
    ch = chunks.pop()
    got = bshuf.decompress_lz4(np.frombuffer(ch[12:], np.uint8), a.shape, a.dtype, block)
    assert got.tobytes() == a.tobytes()
    assert np.array_equal(codec.decompress(ch, dtype=a.dtype, shape=a.shape), a)
    return ch


@pytest.mark.parametrize("rate", [0.0005, 0.02, 0.1, 0.5])
@pytest.mark.parametrize("block", [0, 64, 1024, 4000])
def test_photon_counts_same_bytes_on_every_isa_and_decoded_everywhere(
    rate: float, block: int
) -> None:
    """The sparse-plane emitter: every ISA writes the same chunk, the bitshuffle package, h5py +
    hdf5plugin and our decoder read it, and it is no more than 3% larger than the package's."""
    a = photon_frames(7 * 4096 + 811, 9, rate)
    ch = _same_chunk_on_every_isa_read_by_package(a, block)
    pkg = len(bshuf.compress_lz4(a, block)) + 12
    assert len(ch) <= pkg * 1.03, (len(ch), pkg)
    if block == 0:
        assert np.array_equal(_h5_direct_roundtrip(a, "bslz4", None)[1], a + 1)


def raw_family(
    n: int, *, spread: float, sigma: float, photons: float, gain: float, seed: int
) -> np.ndarray:
    """Raw Jungfrau ADC words as the codec family benchmark draws them: pedestal 3000 ADU
    (flat, or per pixel within +-spread), noise sigma, photon pixels (~380 ADU), gain stage 1."""
    rng = np.random.default_rng(seed)
    ped = 3000 + (rng.uniform(-spread, spread, n) if spread else 0)
    adu = ped + rng.normal(0, sigma, n) + (rng.random(n) < photons) * rng.normal(380, 20, n)
    w = np.clip(adu, 0, 0x3FFF).astype(np.uint16)
    g = rng.random(n) < gain
    w[g] = (w[g] & 0x3FFF) | (1 << 14)
    return w


@pytest.mark.parametrize(
    "params",
    [
        {"spread": 0, "sigma": 2, "photons": 0.02, "gain": 0.0},  # 0xFF-dominant and copied planes
        {"spread": 0, "sigma": 5, "photons": 0.02, "gain": 0.001},
        {"spread": 0, "sigma": 20, "photons": 0.1, "gain": 0.0},
        {"spread": 1000, "sigma": 5, "photons": 0.1, "gain": 0.001},
        # pedestal bits that 10% of pixels flip: the encoder's own LZ4 match finder
        {"spread": 0, "sigma": 2, "photons": 0.1, "gain": 0.0},
        {"spread": 0, "sigma": 5, "photons": 0.1, "gain": 0.001},
    ],
)
@pytest.mark.parametrize("block", [0, 1024, 40000])  # 40000: 80 KB blocks, past 16-bit positions
def test_raw_frames_with_copied_and_ff_planes_decode_everywhere(
    params: dict[str, float], block: int
) -> None:
    """Planes that repeat an earlier plane (photons flip several bits of a pixel together) are
    matches back to it, planes of mostly 0xFF bytes runs of 0xFF, the rest our own match
    finder's sequences (blocks over 64 KiB: liblz4 whole): every ISA writes the same
    chunk, the bitshuffle package, dectris-compression, h5py + hdf5plugin and our decoder read
    it, and it is within 3% of the package's size."""
    from dectris.compression import decompress as dectris_decompress

    a = raw_family(5 * 4096 + 333, seed=3, **params)
    ch = _same_chunk_on_every_isa_read_by_package(a, block)
    if block == 0:
        back = np.frombuffer(dectris_decompress(ch, "bslz4", elem_size=2), np.uint16)
        assert np.array_equal(back, a)
        assert np.array_equal(_h5_direct_roundtrip(a, "bslz4", None)[1], a + 1)
    pkg = len(bshuf.compress_lz4(a, block)) + 12
    assert len(ch) <= pkg * 1.03, (len(ch), pkg)


def test_large_outputs_stream_past_the_cache_and_decode_the_same() -> None:
    """Decoded frames of 1 MB and more are written with streaming stores (into a 64-byte
    aligned array when the decoder allocates it); a caller's misaligned ``out`` takes the
    plain stores. Both give the frame, on every ISA, with photons and raw words."""
    rng = np.random.default_rng(3)
    frames = [
        rng.poisson(0.07, (8, 512, 1024)).astype(np.uint16),
        (3000 + rng.normal(0, 5, (2, 512, 1024))).astype(np.uint16),
    ]
    saved = _core.isa()
    try:
        for isa in _core.available_isas():
            _core.set_isa(isa)
            for a in frames:
                chunk = codec.compress(a, "bslz4")
                got = codec.decompress(chunk, "bslz4", dtype=a.dtype, shape=a.shape)
                assert got.ctypes.data % 64 == 0
                np.testing.assert_array_equal(got, a)
                raw = np.empty(a.nbytes + 16, np.uint8)[16:]  # 16 bytes past an allocation
                out = raw.view(np.uint16).reshape(a.shape)
                codec.decompress(chunk, "bslz4", dtype=a.dtype, shape=a.shape, out=out)
                np.testing.assert_array_equal(out, a)
                np.testing.assert_array_equal(
                    bshuf.decompress_lz4(np.asarray(chunk[12:]), a.shape, a.dtype), a
                )
    finally:
        _core.set_isa(saved)
