"""Batch assembly: contiguity, zero-copy views, pool reuse and lifetimes, typed errors."""

from __future__ import annotations

import gc

import lclstream
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lclstream import Batch, _core, pool_for

DTYPES = [np.uint16, np.int16, np.uint32, np.int32, np.float32]


def test_from_frames_is_contiguous_and_ordered() -> None:
    frames = [np.full((2, 3), i, dtype=np.uint16) for i in range(4)]
    b = Batch.from_frames(frames, event_ids=[10, 11, 12, 13], timestamps=[5, 6, 7, 8])
    assert b.data.shape == (4, 2, 3)
    assert b.data.flags.c_contiguous
    np.testing.assert_array_equal(b.data[:, 0, 0], [0, 1, 2, 3])
    np.testing.assert_array_equal(b.ids, [10, 11, 12, 13])
    np.testing.assert_array_equal(b.timestamps, [5, 6, 7, 8])
    assert b.nbytes == 4 * 6 * 2


def test_data_is_a_view_of_pooled_memory_not_a_copy() -> None:
    pool = pool_for(2, (8,), np.float32, 1)
    b = Batch(2, (8,), np.float32, pool=pool)
    b.append(np.arange(8, dtype=np.float32))
    v1, v2 = b.data, b.data
    assert v1.__array_interface__["data"][0] == v2.__array_interface__["data"][0]
    v1[0, 0] = 42.0
    assert b.data[0, 0] == 42.0
    assert np.shares_memory(np.asarray(b), v1)
    assert v1.__array_interface__["data"][0] % 4096 == 0


def test_slot_writes_in_place() -> None:
    b = Batch(3, (4,), np.uint16)
    s = b.slot()
    s[:] = [1, 2, 3, 4]
    b.commit(event_id=77, timestamp=9, metadata={"photon_energy_keV": 9.5})
    np.testing.assert_array_equal(b.data[0], [1, 2, 3, 4])
    assert b.ids.tolist() == [77]
    assert b.metadata["photon_energy_keV"] == [9.5]


def test_views_keep_the_buffer_alive_after_the_batch_is_gone() -> None:
    pool = pool_for(1, (1024,), np.uint32, 1)
    b = Batch(1, (1024,), np.uint32, pool=pool)
    b.append(np.arange(1024, dtype=np.uint32))
    view = b.data
    del b
    gc.collect()
    # The only buffer is still held by the view: the pool has none free.
    assert pool.stats()["available"] == 0
    np.testing.assert_array_equal(view[0], np.arange(1024, dtype=np.uint32))
    del view
    gc.collect()
    assert pool.stats()["available"] == 1


def test_pool_buffers_are_reused_without_new_allocation() -> None:
    pool = pool_for(2, (64, 64), np.uint16, 2)
    addrs = set()
    for i in range(20):
        b = Batch.from_frames([np.full((64, 64), i, np.uint16)] * 2, pool=pool)
        addrs.add(b.data.__array_interface__["data"][0])
        del b
    stats = pool.stats()
    assert stats["allocated"] == 2
    assert stats["acquires"] == 20
    assert len(addrs) <= 2


def test_release_refused_while_views_exist_then_returns_buffer() -> None:
    pool = pool_for(1, (16,), np.uint16, 1)
    b = Batch(1, (16,), np.uint16, pool=pool)
    v = b.data
    with pytest.raises(ValueError, match="views"):
        b.release()
    del v
    b.release()
    assert pool.stats()["available"] == 1


def test_wrong_dtype_shape_and_overflow_are_typed_errors() -> None:
    b = Batch(1, (2, 2), np.uint16)
    with pytest.raises(lclstream.errors.LclstreamValueError, match="dtype float32"):
        b.append(np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match=r"frame shape \(2, 3\)"):
        b.append(np.zeros((2, 3), np.uint16))
    with pytest.raises(ValueError, match="C-contiguous"):
        b.append(np.zeros((2, 4), np.uint16)[:, ::2])
    b.append(np.zeros((2, 2), np.uint16))
    with pytest.raises(lclstream.CapacityError, match="full"):
        b.append(np.zeros((2, 2), np.uint16))
    with pytest.raises(ValueError, match="big-endian"):
        Batch(1, (2,), ">u2")
    with pytest.raises(ValueError, match="pool"):
        Batch(4, (100,), np.float32, pool=_core.BufferPool(16, 1))


def test_dlpack_round_trip_shares_memory() -> None:
    b = Batch.from_frames(np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    arr = np.from_dlpack(b)
    assert np.shares_memory(arr, b.data)
    assert b.__dlpack_device__() == (1, 0)


def test_extend_large_frames_with_threads_matches_numpy_stack() -> None:
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 2**14, size=(2, 512, 1024), dtype=np.uint16) for _ in range(3)]
    b = Batch.from_frames(frames, threads=0)
    np.testing.assert_array_equal(b.data, np.stack(frames))


@settings(max_examples=60, deadline=None)
@given(
    dtype=st.sampled_from(DTYPES),
    shape=st.lists(st.integers(1, 9), min_size=1, max_size=3),
    n=st.integers(1, 5),
    seed=st.integers(0, 2**16),
)
def test_any_shape_and_dtype_round_trips(dtype: type, shape: list[int], n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    stacked = (rng.random((n, *shape)) * 1000).astype(dtype)
    b = Batch(n + 1, shape, dtype)
    b.extend(stacked)
    b.append(stacked[0], event_id=99)
    np.testing.assert_array_equal(b.data[:n], stacked)
    np.testing.assert_array_equal(b.data[n], stacked[0])
    assert b.ids.tolist() == [*range(n), 99]
    assert b.data.dtype == np.dtype(dtype)
