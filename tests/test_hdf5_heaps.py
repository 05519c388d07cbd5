"""Variable-length data (h5py's ``str`` attributes, string and ragged datasets) is checked
against the image's global heaps before HDF5 reads it: a heap ID that claims more than its
heap object holds, or points at no object, is refused before the library allocates for it
(a forged length of 4 G cost 4 GiB of resident memory)."""

from __future__ import annotations

import io

import h5py
import numpy as np
import pytest
from lclstream.errors import FormatError
from lclstream.formats import hdf5
from lclstream.limits import DEFAULT_LIMITS

NOTE = "a variable-length string lives in the global heap"


def _image() -> bytes:
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.attrs["note"] = NOTE
        f.attrs["count"] = 3
        f["x"] = np.arange(4)
        f["x"].attrs["units"] = "ADU/keV"
        f.create_dataset("names", data=np.array(["a", "bb", "ccc"], dtype=h5py.string_dtype()))
        ragged = f.create_dataset("ragged", (3,), dtype=h5py.vlen_dtype(np.int32), chunks=(2,))
        ragged[0] = np.arange(3, dtype=np.int32)
        ragged[1] = np.arange(5, dtype=np.int32)
    return buf.getvalue()


def _heap_id(image: bytes, length: int) -> int:
    """Offset of the heap ID of a ``length``-element value in the image's first collection."""
    gcol = image.find(b"GCOL\x01")
    assert gcol > 0
    at = image.find(length.to_bytes(4, "little") + gcol.to_bytes(8, "little"))
    assert at > 0, "heap ID not found"
    return at


def _forged(image: bytes, at: int, value: int, size: int) -> bytes:
    """The image with the little-endian ``value`` written over ``size`` bytes at ``at``."""
    out = bytearray(image)
    out[at : at + size] = value.to_bytes(size, "little")
    return bytes(out)


def _parse(image: bytes) -> None:
    with hdf5.open_image(image) as f:
        hdf5.check_image(f, image, DEFAULT_LIMITS)


def test_real_variable_length_data_passes_and_reads_back() -> None:
    image = _image()
    _parse(image)
    with hdf5.open_image(image) as f:
        assert f.attrs["note"] == NOTE
        assert [s.decode() for s in f["names"][()]] == ["a", "bb", "ccc"]
        assert list(f["ragged"][1]) == [0, 1, 2, 3, 4]


def test_forged_length_is_refused_before_allocation() -> None:
    clean = _image()
    at = _heap_id(clean, len(NOTE))
    with pytest.raises(FormatError, match=r"'note'.*declares 4278190091 elements"):
        _parse(_forged(clean, at, 0xFF00000B, 4))


def test_forged_index_and_address_are_refused() -> None:
    clean = _image()
    at = _heap_id(clean, len(NOTE))
    with pytest.raises(FormatError, match="does not hold"):
        _parse(_forged(clean, at + 12, 999, 4))  # heap object index
    with pytest.raises(FormatError, match="does not hold"):
        _parse(_forged(clean, at + 4, 8, 8))  # collection address


def test_forged_dataset_element_is_refused() -> None:
    clean = _image()
    at = _heap_id(clean, 3)  # "ccc" of the contiguous string dataset
    with pytest.raises(FormatError, match="dataset names"):
        _parse(_forged(clean, at, 1 << 30, 4))


def test_forged_chunked_ragged_element_is_refused() -> None:
    clean = _image()
    at = _heap_id(clean, 5)  # ragged[1], 5 int32 in a chunk
    # 24 bytes from a 20-byte object
    with pytest.raises(FormatError, match=r"dataset ragged.*declares 6 elements \(24 bytes\)"):
        _parse(_forged(clean, at, 6, 4))


def test_attribute_declaring_more_elements_than_its_message_holds_is_refused() -> None:
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.attrs["v"] = np.arange(7, dtype=np.int64)
    image = bytearray(buf.getvalue())
    # the dataspace's one dimension (7) follows the attribute's name and datatype
    name = image.find(b"v\x00")
    dim = image.find((7).to_bytes(8, "little"), name)
    image[dim : dim + 8] = (1 << 40).to_bytes(8, "little")
    with pytest.raises(FormatError, match="declares 1099511627776 elements"):
        _parse(bytes(image))


def test_nested_variable_length_data_is_refused() -> None:
    buf = io.BytesIO()
    dt = np.dtype([("name", h5py.string_dtype()), ("n", np.int32)])
    with h5py.File(buf, "w") as f:
        f.attrs.create("pair", np.array([("a", 1)], dtype=dt))
    with pytest.raises(FormatError, match="nests variable-length data"):
        _parse(buf.getvalue())


def test_dense_attribute_storage_is_refused_with_a_reason() -> None:
    buf = io.BytesIO()
    with h5py.File(buf, "w", libver="latest") as f:
        for i in range(12):
            f.attrs[f"a{i}"] = f"value {i}"
    with pytest.raises(FormatError, match="dense storage"):
        _parse(buf.getvalue())


def test_v2_object_headers_with_compact_attributes_pass() -> None:
    buf = io.BytesIO()
    with h5py.File(buf, "w", libver="latest") as f:
        f.attrs["note"] = NOTE
        g = f.create_group("g", track_order=True)
        g.attrs["a"] = "x" * 300
        g.attrs["b"] = np.arange(3)
    _parse(buf.getvalue())


def test_chunk_stored_unfiltered_is_copied_and_bad_filter_values_refused() -> None:
    import hdf5plugin
    from lclstream import codec

    frames = np.arange(2 * 4 * 8, dtype=np.uint16).reshape(2, 4, 8)
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        d = f.create_dataset(
            "/entry_1/data_1/data", shape=frames.shape, dtype=np.uint16, chunks=(1, 4, 8),
            **hdf5plugin.Bitshuffle(nelems=0, cname="lz4"),
        )  # fmt: skip
        d.id.write_direct_chunk((0, 0, 0), codec.compress(frames[0], "bslz4").tobytes())
        # the writer skipped the filter for this chunk (filter mask bit 0): raw bytes
        d.id.write_direct_chunk((1, 0, 0), frames[1].tobytes(), filter_mask=1)
    image = buf.getvalue()
    parsed = hdf5.parse([image])
    assert parsed.batch is not None
    np.testing.assert_array_equal(parsed.batch.arrays["/entry_1/data_1/data"], frames)
    # bitshuffle told its elements are 0 bytes divides by zero (SIGFPE) in the plug-in
    with hdf5.open_image(image) as f:
        vals = f["/entry_1/data_1/data"].id.get_create_plist().get_filter(0)[2]
    assert vals[2] == 2
    needle = np.array(vals, "<u4").tobytes()
    at = image.find(needle)
    assert at > 0
    forged = bytearray(image)
    forged[at + 8 : at + 12] = (0).to_bytes(4, "little")
    with pytest.raises(FormatError, match="filter 32008 the parameters"):
        hdf5.parse([bytes(forged)])


def test_group_structures_are_walked_before_hdf5_lists_links() -> None:
    clean = _image()
    _parse(clean)
    at = clean.find(b"SNOD")
    assert at > 0
    # first symbol's link name offset, far outside the group's local heap
    with pytest.raises(FormatError, match="outside its .*local heap"):
        _parse(_forged(clean, at + 8, 1 << 20, 8))
    # a symbol node claiming more entries than the B-tree's K allows overruns HDF5's buffer
    with pytest.raises(FormatError, match="symbol node with 500 entries"):
        _parse(_forged(clean, at + 6, 500, 2))
    # a local heap whose data lies past the end of the image
    heap = clean.find(b"HEAP")
    with pytest.raises(FormatError, match="outside the image"):
        _parse(_forged(clean, heap + 24, len(clean) + 4096, 8))
