"""The heaps of a received HDF5 image (global heaps of variable-length data, local heaps of
groups' link names), checked before the HDF5 library reads them.

Why this module: h5py stores every ``str`` attribute (and string or ragged datasets) as
variable-length data: each element is a *heap ID* (a length, the address of a global heap
collection and an object index), and the bytes live in that collection. The HDF5 library
trusts both halves. Walking a collection with a zero-sized or wrapping object loops forever
inside one ``H5Aread``; and a heap ID whose length field says 4 G makes the type conversion
allocate and clear a 4 GiB buffer *before* it looks the object up (a 20 KB fuzzed message
took 4.1 GB of resident memory). Neither is visible through h5py's API, so this module reads
the few structures involved straight from the image: the global heap collections, each
object header's attribute messages (found from the object's address, never by searching),
and the heap IDs of variable-length datasets, and refuses any ID that does not resolve to an
object large enough to hold what it declares, before any attribute or dataset is read.

Groups get the same treatment (:func:`check_groups`): an old-style group's local heap,
B-tree and symbol nodes are walked and bounds-checked before ``H5Lvisit`` walks them (a
fuzzed symbol table crashed it).

What it refuses that a legitimate writer could produce (none of which lclstream or
LCLStreamer writes): attributes in dense storage (a fractal heap: more than 8 attributes on
one object, or one over 64 KiB, with ``libver='latest'``), shared attribute messages or
datatypes, variable-length data nested inside other types, and variable-length datasets
stored compact, filtered or with a user-defined fill value. Each gets a message saying so.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import h5py

from lclstream.errors import FormatError
from lclstream.limits import DEFAULT_LIMITS, Limits

__all__ = ["Image", "check_groups", "check_vlen", "global_heap"]

_GCOL = b"GCOL\x01"  # global heap collection signature + version 1
_GCOL_HEADER = 16  # signature 4, version 1, reserved 3, collection size 8
_GHOBJ_HEADER = 16  # heap object index 2, reference count 2, reserved 4, object size 8
_WRAP = 1 << 64
#: a hop this long wraps the library's pointer back below where it was, wherever the
#: collection sits in a 64-bit process (user-space addresses are below 2**48)
_WRAPS_BACK = _WRAP - (1 << 48)

#: object header message types (HDF5 file format specification, section IV.A.2)
_MSG_CONTINUATION = 0x10
_MSG_ATTRIBUTE = 0x0C
_MSG_ATTRIBUTE_INFO = 0x15
#: datatype class of variable-length sequences and strings
_CLASS_VLEN = 9
#: bounds on what one object header may make us walk (real headers have a few chunks)
_MAX_CHUNKS = 1024
_MAX_MESSAGES = 1 << 16


def _raw(image: memoryview) -> memoryview:
    return image.cast("B") if image.format != "B" or image.ndim != 1 else image


def global_heap(image: memoryview, at: int) -> dict[int, int] | None:
    """The global heap collection at byte ``at`` as {object index: size}; None if none is.

    Why hop by hop: the library decodes a collection by hopping from object header to
    object header by each object's declared size. A free-space object (index 0) of size 0
    makes the hop zero bytes long, and a size near 2**64 wraps the pointer back before where
    it was: in both cases the decoder loops forever inside one ``H5Aread`` (a 20 KB fuzzed
    message held the receiver for minutes, unkillable short of the process). So the
    collection is walked as the library would, before the library sees it, and a hop that
    goes nowhere or backwards is refused. Only collections that a heap ID refers to are
    walked: those are the only ones the library loads.
    """
    raw = _raw(image)
    n = len(raw)
    if at < 0 or bytes(raw[at : at + len(_GCOL)]) != _GCOL:
        return None
    size = int.from_bytes(raw[at + 8 : at + 16], "little")
    if not _GCOL_HEADER <= size <= n - at:
        return None
    objects: dict[int, int] = {}
    end = at + size
    p = at + _GCOL_HEADER
    while p < end:
        if p + _GHOBJ_HEADER > end:
            break  # the library takes the tail as free space
        idx = int.from_bytes(raw[p : p + 2], "little")
        osize = int.from_bytes(raw[p + 8 : p + 16], "little")
        # the library's size_t arithmetic, modulo 2**64
        need = (_GHOBJ_HEADER + (((osize + 7) % _WRAP) & ~7)) % _WRAP if idx else osize
        if need == 0 or need >= _WRAPS_BACK:
            raise FormatError(
                f"HDF5 message: global heap at byte {at} has object {idx} at byte "
                f"{p} of size {osize}, which would make the HDF5 library loop "
                "forever (refused)"
            )
        if idx:
            # an object's bytes must lie in the collection; the smaller size wins if an
            # index repeats (conservative for the length check)
            fits = osize if p + _GHOBJ_HEADER + osize <= end else 0
            objects[idx] = min(objects.get(idx, fits), fits)
        p += need
    return objects


@dataclass(frozen=True)
class _Attribute:
    name: str
    shared: bool
    dt: memoryview
    npoints: int
    data_start: int
    data_end: int


class Image:
    """The image's bytes and the superblock sizes needed to read its structures; object
    headers and heaps are walked once and shared by the checks."""

    def __init__(self, f: h5py.File, image: memoryview) -> None:
        self.raw = _raw(image)
        fcpl = f.id.get_create_plist()
        self.sa, self.ss = (int(x) for x in fcpl.get_sizes())
        self.base = int(fcpl.get_userblock())
        self._heaps: dict[int, dict[int, int] | None] = {}
        self._headers: dict[int, list[tuple[int, int, int, int]]] = {}

    def messages(self, header: int, what: str) -> list[tuple[int, int, int, int]]:
        """The messages of the object header at image offset ``header`` (walked once)."""
        if header not in self._headers:
            self._headers[header] = list(_messages(self, header, what))
        return self._headers[header]

    def heap_object(self, at: int, idx: int) -> int | None:
        """Size of object ``idx`` of the collection at image offset ``at`` (None: no such)."""
        if at not in self._heaps:
            self._heaps[at] = global_heap(self.raw, at)
        objects = self._heaps[at]
        return None if objects is None else objects.get(idx)

    def uint(self, at: int, size: int, what: str) -> int:
        if at < 0 or at + size > len(self.raw):
            raise FormatError(f"HDF5 message: {what} at byte {at} lies outside the image")
        return int.from_bytes(self.raw[at : at + size], "little")

    def address(self, at: int, what: str) -> int | None:
        """A file address at ``at`` as an image offset (None when undefined)."""
        a = self.uint(at, self.sa, what)
        return None if a == (1 << (8 * self.sa)) - 1 else a + self.base


def _messages(img: Image, header: int, what: str) -> Iterator[tuple[int, int, int, int]]:
    """(type, flags, data start, data end) of every message of the object header at
    ``header`` (an image offset), continuation chunks included, bounds-checked."""
    raw = img.raw
    v2 = bytes(raw[header : header + 4]) == b"OHDR"
    chunks: list[tuple[int, int]] = []
    if v2:
        flags = img.uint(header + 5, 1, what)
        p = header + 6 + (16 if flags & 0x20 else 0) + (4 if flags & 0x10 else 0)
        width = 1 << (flags & 3)
        size0 = img.uint(p, width, what)
        chunks.append((p + width, p + width + size0))
        mhead = 6 if flags & 0x04 else 4
    elif img.uint(header, 1, what) == 1:
        size0 = img.uint(header + 8, 4, what)
        chunks.append((header + 16, header + 16 + size0))
        mhead = 8
    else:
        raise FormatError(f"HDF5 message: {what} has no object header at byte {header}")
    seen = 0
    done = 0
    while done < len(chunks):
        start, end = chunks[done]
        done += 1
        if done > _MAX_CHUNKS:
            raise FormatError(f"HDF5 message: {what} has more than {_MAX_CHUNKS} header chunks")
        if end > len(raw) or start > end:
            raise FormatError(f"HDF5 message: {what} has a header chunk outside the image")
        q = start
        while q + mhead <= end:
            if v2:
                mtype, msize, mflags = raw[q], img.uint(q + 1, 2, what), raw[q + 3]
            else:
                mtype, msize, mflags = img.uint(q, 2, what), img.uint(q + 2, 2, what), raw[q + 4]
            data = q + mhead
            if data + msize > end:
                raise FormatError(
                    f"HDF5 message: {what} has a header message at byte {q} running past its chunk"
                )
            seen += 1
            if seen > _MAX_MESSAGES:
                raise FormatError(f"HDF5 message: {what} has over {_MAX_MESSAGES} messages")
            if mtype == _MSG_CONTINUATION:
                off = img.address(data, what)
                length = img.uint(data + img.sa, img.ss, what)
                if off is None:
                    raise FormatError(f"HDF5 message: {what} continues at an undefined address")
                if v2:
                    if bytes(raw[off : off + 4]) != b"OCHK":
                        raise FormatError(
                            f"HDF5 message: {what} continues at byte {off}, not a header chunk"
                        )
                    chunks.append((off + 4, off + length - 4))
                else:
                    chunks.append((off, off + length))
            yield mtype, mflags, data, data + msize
            q = data + msize


def _npoints(img: Image, ds: memoryview, what: str) -> int:
    """Elements of an encoded dataspace (versions 1 and 2)."""
    if len(ds) < 4:
        raise FormatError(f"HDF5 message: {what} has a truncated dataspace")
    version, rank = ds[0], ds[1]
    if version == 2 and ds[3] == 2:  # null dataspace
        return 0
    if version not in (1, 2) or rank > 32:
        raise FormatError(f"HDF5 message: {what} has an unreadable dataspace")
    p = 8 if version == 1 else 4
    if p + rank * img.ss > len(ds):
        raise FormatError(f"HDF5 message: {what} has a truncated dataspace")
    n = 1
    for i in range(rank):
        n *= int.from_bytes(ds[p + i * img.ss : p + (i + 1) * img.ss], "little")
    return n


def _attribute(img: Image, start: int, end: int, what: str) -> _Attribute:
    raw = img.raw
    version = raw[start]
    if version == 1:
        head, pad = 8, 8
    elif version in (2, 3):
        head, pad = (8 if version == 2 else 9), 1
    else:
        raise FormatError(f"HDF5 message: {what} has an attribute of unknown version {version}")
    if start + head > end:
        raise FormatError(f"HDF5 message: {what} has a truncated attribute")
    flags = raw[start + 1] if version > 1 else 0
    nsize, dtsize, dssize = (img.uint(start + 2 + 2 * i, 2, what) for i in range(3))

    def padded(n: int) -> int:
        return (n + pad - 1) // pad * pad

    p = start + head
    name = bytes(raw[p : p + max(nsize - 1, 0)]).decode("utf-8", "replace")
    dt_at = p + padded(nsize)
    ds_at = dt_at + padded(dtsize)
    data = ds_at + padded(dssize)
    if data > end:
        raise FormatError(f"HDF5 message: {what} attribute {name!r} runs past its message")
    ds = raw[ds_at : ds_at + dssize]
    return _Attribute(
        name=name,
        shared=bool(flags & 0x03),
        dt=raw[dt_at : dt_at + dtsize],
        npoints=_npoints(img, ds, f"{what} attribute {name!r}") if not flags & 0x02 else -1,
        data_start=data,
        data_end=end,
    )


def _vlen_base_size(dt: memoryview, what: str) -> int:
    """Bytes per element of a top-level variable-length type's base (1 for a string)."""
    if len(dt) < 8:
        raise FormatError(f"HDF5 message: {what} has a truncated datatype")
    kind, padding, charset = dt[1] & 0x0F, dt[1] >> 4, dt[2] & 0x0F
    if kind > 1 or padding > 2 or charset > 1 or not 1 <= dt[0] >> 4 <= 5:
        # undefined variants crash the HDF5 library (a fuzzed kind 6 segfaulted H5Aread)
        raise FormatError(
            f"HDF5 message: {what} has an undefined variable-length datatype "
            f"({bytes(dt[:4]).hex()})"
        )
    if kind == 1:  # variable-length string
        return 1
    base = dt[8:]
    if len(base) < 8:
        raise FormatError(f"HDF5 message: {what} has a truncated datatype")
    if base[0] & 0x0F == _CLASS_VLEN:
        raise FormatError(
            f"HDF5 message: {what} nests variable-length data (refused: cannot be verified "
            "before reading)"
        )
    return int.from_bytes(base[4:8], "little")


def _contains_vlen(tid: Any, depth: int = 0) -> bool:
    """Whether a datatype holds variable-length data anywhere inside it."""
    if depth > 32:
        return True  # deeper than any real type: treat as unverifiable
    cls = tid.get_class()
    if cls == h5py.h5t.VLEN:
        return True
    if cls == h5py.h5t.STRING:
        return bool(tid.is_variable_str())
    if cls == h5py.h5t.COMPOUND:
        return any(
            _contains_vlen(tid.get_member_type(i), depth + 1) for i in range(tid.get_nmembers())
        )
    if cls in (h5py.h5t.ARRAY, h5py.h5t.ENUM):
        return _contains_vlen(tid.get_super(), depth + 1)
    return False


class _Budget:
    """Bytes the library would allocate converting every heap ID seen so far."""

    def __init__(self, nbytes: int, limits: Limits) -> None:
        self.limits, self.nbytes, self.total = limits, nbytes, 0

    def ids(self, img: Image, at: int, count: int, base_size: int, what: str) -> None:
        """Check ``count`` heap IDs stored from image offset ``at``."""
        step = 8 + img.sa
        raw = img.raw
        if count < 0 or at + count * step > len(raw):
            raise FormatError(f"HDF5 message: {what} has heap IDs outside the image")
        for i in range(count):
            p = at + i * step
            length = int.from_bytes(raw[p : p + 4], "little")
            if length == 0:
                continue  # an empty or null element: nothing is read or allocated
            addr = int.from_bytes(raw[p + 4 : p + 4 + img.sa], "little") + img.base
            idx = int.from_bytes(raw[p + 4 + img.sa : p + step], "little")
            size = img.heap_object(addr, idx)
            if size is None:
                raise FormatError(
                    f"HDF5 message: {what} element {i} refers to global heap object {idx} at "
                    f"byte {addr}, which the image does not hold (refused before reading)"
                )
            need = length * max(base_size, 1)
            if need > size:
                raise FormatError(
                    f"HDF5 message: {what} element {i} declares {length} elements "
                    f"({need} bytes) but its heap object holds {size} bytes (refused before "
                    "the library allocates for it)"
                )
            self.total += need
        self.limits.check_decoded(self.total, self.nbytes, "HDF5 message variable-length data")


def _check_attributes(
    img: Image, obj: Any, addr: int, name: str, budget: _Budget, h5attrs: int
) -> None:
    what = f"object {name}"
    header = addr + img.base
    found = 0
    for mtype, mflags, start, end in img.messages(header, what):
        if mtype == _MSG_ATTRIBUTE_INFO:
            # version, flags, [max creation index], fractal heap address, ...
            flags = img.uint(start + 1, 1, what)
            if img.address(start + 2 + (2 if flags & 1 else 0), what) is not None:
                raise FormatError(
                    f"HDF5 message: {what} keeps its attributes in dense storage (refused: "
                    "cannot be verified before reading; lclstream writes compact attributes)"
                )
        if mtype != _MSG_ATTRIBUTE:
            continue
        found += 1
        if mflags & 0x02:
            raise FormatError(f"HDF5 message: {what} has a shared attribute message (refused)")
        a = _attribute(img, start, end, what)
        awhat = f"{what} attribute {a.name!r}"
        if a.shared:
            raise FormatError(
                f"HDF5 message: {awhat} uses a shared datatype or dataspace (refused)"
            )
        if len(a.dt) < 8:
            raise FormatError(f"HDF5 message: {awhat} has a truncated datatype")
        vlen = a.dt[0] & 0x0F == _CLASS_VLEN
        elem = 8 + img.sa if vlen else int.from_bytes(a.dt[4:8], "little")
        if a.npoints * elem > a.data_end - a.data_start:
            raise FormatError(
                f"HDF5 message: {awhat} declares {a.npoints} elements of {elem} bytes but its "
                f"message holds {a.data_end - a.data_start} (refused)"
            )
        if vlen:
            budget.ids(img, a.data_start, a.npoints, _vlen_base_size(a.dt, awhat), awhat)
        elif a.dt[0] & 0x0F in (6, 10):  # compound, array: vlen inside is not verified
            aid = h5py.h5a.open(obj, a.name.encode())
            if _contains_vlen(aid.get_type()):
                raise FormatError(
                    f"HDF5 message: {awhat} nests variable-length data (refused: cannot be "
                    "verified before reading)"
                )
    if found != h5attrs:
        raise FormatError(
            f"HDF5 message: {what} has {h5attrs} attributes but its header holds {found} "
            "(refused: cannot be verified before reading)"
        )


def _check_dataset(img: Image, did: Any, name: str, budget: _Budget) -> None:
    tid = did.get_type()
    if not _contains_vlen(tid):
        return
    what = f"dataset {name}"
    cls = tid.get_class()
    if cls == h5py.h5t.STRING:
        base = 1
    elif cls == h5py.h5t.VLEN and not _contains_vlen(tid.get_super()):
        base = int(tid.get_super().get_size())
    else:
        raise FormatError(
            f"HDF5 message: {what} nests variable-length data (refused: cannot be verified "
            "before reading)"
        )
    dcpl = did.get_create_plist()
    if dcpl.fill_value_defined() == h5py.h5d.FILL_VALUE_USER_DEFINED:
        raise FormatError(f"HDF5 message: {what} is variable-length with a fill value (refused)")
    layout = dcpl.get_layout()
    npoints = int(did.get_space().get_simple_extent_npoints())
    if layout == h5py.h5d.CONTIGUOUS:
        offset = did.get_offset()
        if offset is not None:
            budget.ids(img, int(offset) + img.base, npoints, base, what)
        return
    if layout == h5py.h5d.CHUNKED and dcpl.get_nfilters() == 0:
        per_chunk = 1
        for d in dcpl.get_chunk():
            per_chunk *= int(d)
        nchunks = int(did.get_num_chunks())
        if nchunks > len(img.raw) // max(per_chunk * (8 + img.sa), 1):
            raise FormatError(f"HDF5 message: {what} declares more chunks than the image holds")
        for i in range(nchunks):
            info = did.get_chunk_info(i)
            if info.byte_offset is not None:
                budget.ids(img, int(info.byte_offset) + img.base, per_chunk, base, what)
        return
    raise FormatError(
        f"HDF5 message: {what} is variable-length and stored compact or filtered (refused: "
        "cannot be verified before reading)"
    )


def check_vlen(
    img: Image,
    objects: list[tuple[str, Any]],
    limits: Limits = DEFAULT_LIMITS,
) -> None:
    """Refuse variable-length data whose heap IDs do not resolve within the image.

    ``objects`` are (path, low-level h5py ObjectID) pairs for every object reachable by hard
    links, the root group included; an object reachable twice is checked once. Runs before any
    attribute or dataset of the image is read (opening objects reads only their headers).
    """
    budget = _Budget(len(img.raw), limits)
    seen: set[int] = set()
    for name, oid in objects:
        info = h5py.h5o.get_info(oid)
        addr = int(info.addr)
        if addr in seen:
            continue
        seen.add(addr)
        _check_attributes(img, oid, addr, name, budget, int(info.num_attrs))
        if isinstance(oid, h5py.h5d.DatasetID):
            _check_dataset(img, oid, name, budget)


#: object header message: symbol table (an old-style group's B-tree and local heap)
_MSG_SYMBOL_TABLE = 0x11
#: bounds on the walk (real messages hold a few dozen groups and nodes)
_MAX_GROUP_OBJECTS = 1 << 14
_MAX_TREE_NODES = 1 << 16


def _local_heap(img: Image, at: int | None, what: str) -> tuple[int, int, int]:
    """(image offset, size, offset of its last NUL) of a local heap's data segment, checked
    to lie in the image."""
    raw = img.raw
    if at is None or bytes(raw[at : at + 4]) != b"HEAP" or img.uint(at + 4, 1, what) != 0:
        raise FormatError(f"HDF5 message: {what} names no local heap (at byte {at})")
    size = img.uint(at + 8, img.ss, what)
    data = img.address(at + 8 + 2 * img.ss, what)
    if data is None or size == 0 or data + size > len(raw):
        raise FormatError(
            f"HDF5 message: {what} has a local heap of {size} bytes at {data}, outside the "
            "image (refused)"
        )
    return data, size, bytes(raw[data : data + size]).rfind(b"\0")


def _heap_name(heap: tuple[int, int, int], offset: int, what: str) -> None:
    """A link name (or link value) at ``offset`` of a local heap: inside it, NUL-ended
    (some NUL at or after it, found in O(1): names share one heap)."""
    _data, size, last_nul = heap
    if offset > last_nul:
        raise FormatError(
            f"HDF5 message: {what} names a link at heap offset {offset}, outside its "
            f"{size}-byte local heap (refused)"
        )


class _GroupWalk:
    """Every old-style group's B-tree, symbol nodes and local heap, walked as HDF5 would
    walk them to list links, with every offset and count checked first."""

    def __init__(self, img: Image) -> None:
        self.img = img
        raw = img.raw
        # group B-tree K values: superblocks 0 and 1 store them, later ones use the defaults
        if raw[8] in (0, 1):
            self.leaf_k, self.node_k = img.uint(16, 2, "superblock"), img.uint(18, 2, "superblock")
        else:
            self.leaf_k, self.node_k = 4, 16
        self.nodes = 0
        self.heaps: dict[int, tuple[int, int, int]] = {}
        self.walked: dict[tuple[int | None, int | None], list[int]] = {}

    def group(self, btree: int | None, heap_at: int | None, what: str) -> list[int]:
        """Object header addresses of a group's members (file addresses)."""
        key = (btree, heap_at)
        if key in self.walked:  # a group's header and its parent's cached entry name it
            return self.walked[key]
        heap = _local_heap(self.img, heap_at, what)
        # Two heaps sharing data bytes confuse HDF5's metadata cache: the second heap is
        # left without its data and the next name read dereferences NULL (a fuzzed message)
        assert heap_at is not None
        for other, (data, size, _) in self.heaps.items():
            if other != heap_at and data < heap[0] + heap[1] and heap[0] < data + size:
                raise FormatError(
                    f"HDF5 message: {what} has a local heap whose data overlaps the heap at "
                    f"byte {other} (refused)"
                )
        self.heaps[heap_at] = heap
        members: list[int] = []
        if btree is None:
            raise FormatError(f"HDF5 message: {what} has no B-tree")
        self.walked[key] = members
        self._node(btree, None, heap, members, what)
        return members

    def _node(
        self, at: int, level: int | None, heap: tuple[int, int, int], out: list[int], what: str
    ) -> None:
        img, raw, sa, ss = self.img, self.img.raw, self.img.sa, self.img.ss
        self.nodes += 1
        if self.nodes > _MAX_TREE_NODES:
            raise FormatError(f"HDF5 message: more than {_MAX_TREE_NODES} group B-tree nodes")
        if bytes(raw[at : at + 4]) != b"TREE" or img.uint(at + 4, 1, what) != 0:
            raise FormatError(f"HDF5 message: {what} has no group B-tree node at byte {at}")
        node_level = img.uint(at + 5, 1, what)
        if level is not None and node_level != level:
            raise FormatError(
                f"HDF5 message: {what} has a B-tree node at byte {at} of level {node_level} "
                f"where level {level} belongs (a loop?)"
            )
        used = img.uint(at + 6, 2, what)
        if used > 2 * self.node_k:
            raise FormatError(
                f"HDF5 message: {what} has a B-tree node with {used} entries (at most "
                f"{2 * self.node_k})"
            )
        q = at + 8 + 2 * sa
        for _ in range(used):
            _heap_name(heap, img.uint(q, ss, what), f"{what} B-tree key")
            child = img.address(q + ss, what)
            if child is None:
                raise FormatError(f"HDF5 message: {what} has a B-tree entry with no child")
            if node_level > 0:
                self._node(child, node_level - 1, heap, out, what)
            else:
                self._symbols(child, heap, out, what)
            q += ss + sa
        img.uint(q, ss, what)  # the last key lies in the image too

    def _symbols(self, at: int, heap: tuple[int, int, int], out: list[int], what: str) -> None:
        img, raw, sa, ss = self.img, self.img.raw, self.img.sa, self.img.ss
        if bytes(raw[at : at + 4]) != b"SNOD" or img.uint(at + 4, 1, what) != 1:
            raise FormatError(f"HDF5 message: {what} has no symbol node at byte {at}")
        count = img.uint(at + 6, 2, what)
        if count > 2 * self.leaf_k:
            raise FormatError(
                f"HDF5 message: {what} has a symbol node with {count} entries (at most "
                f"{2 * self.leaf_k})"
            )
        entry = ss + sa + 24
        for i in range(count):
            e = at + 8 + i * entry
            _heap_name(heap, img.uint(e, ss, what), f"{what} symbol {i}")
            header = img.uint(e + ss, sa, what)
            cache = img.uint(e + ss + sa, 4, what)
            scratch = e + ss + sa + 8
            if cache == 2:  # soft link: its value in the local heap
                _heap_name(heap, img.uint(scratch, 4, what), f"{what} soft link {i}")
            elif cache == 1:  # cached B-tree and heap addresses of a member group
                self.group(img.address(scratch, what), img.address(scratch + sa, what), what)
            elif cache != 0:
                raise FormatError(f"HDF5 message: {what} symbol {i} has cache type {cache}")
            if cache != 2:
                out.append(header)


def check_groups(img: Image, f: h5py.File) -> None:
    """Refuse an image whose group structures would crash HDF5 while it lists links.

    Why: HDF5 trusts an old-style group's symbol table. A fuzzed message whose symbol
    node pointed a link name outside a local heap made ``H5Lvisit`` read address 0x18 and
    kill the receiver (SIGSEGV). So every group reachable from the root is walked here
    first, its local heap, B-tree nodes and symbol nodes bounds-checked, before HDF5 walks
    them. New-style groups keep their links in the object header (checked by the header
    walk) or, past 8 links with ``libver='latest'``, in a fractal heap, which HDF5 walks
    with its own checks.
    """
    walk = _GroupWalk(img)
    todo = [int(h5py.h5o.get_info(f.id).addr)]
    seen: set[int] = set()
    while todo:
        addr = todo.pop()
        if addr in seen:
            continue
        seen.add(addr)
        if len(seen) > _MAX_GROUP_OBJECTS:
            raise FormatError(f"HDF5 message: more than {_MAX_GROUP_OBJECTS} objects")
        what = f"object at byte {addr + img.base}"
        for mtype, _flags, start, _end in img.messages(addr + img.base, what):
            if mtype == _MSG_SYMBOL_TABLE:
                btree = img.address(start, what)
                heap = img.address(start + img.sa, what)
                todo.extend(walk.group(btree, heap, what))
