"""Corrupt input never escapes as anything but FormatError (hypothesis: cuts and bit flips)."""

from __future__ import annotations

import numpy as np
from fmt_helpers import batch, frames, info
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lclstream.errors import FormatError
from lclstream.formats import (
    HDF5BinarySerializer,
    LclstreamerSimplonSerializer,
    RawBatchSerializer,
    SimplonBinarySerializer,
    parse,
)
from lclstream.protocols import StreamTotals

SHAPE = (2, 8, 16)


def _messages() -> dict[str, list[list[bytes]]]:
    data = frames(2, SHAPE, "uint16")
    out: dict[str, list[list[bytes]]] = {}
    for name, cls in (
        ("hdf5", HDF5BinarySerializer),
        ("simplon", SimplonBinarySerializer),
        ("lclstreamer", LclstreamerSimplonSerializer),
        ("raw", RawBatchSerializer),
        ("raw_bslz4", lambda: RawBatchSerializer(compression="bslz4")),
    ):
        ser = cls()
        msgs = list(ser.start(info(SHAPE, "uint16")))
        msgs += ser.serialize(batch(data))
        msgs += ser.end(StreamTotals(2, 1))
        out[name] = [[bytes(f) for f in m] for m in msgs]
    return out


MESSAGES = _messages()
ALL = [(k, i) for k, v in MESSAGES.items() for i in range(len(v))]


def _check(frames_: list[bytes]) -> None:
    try:
        p = parse(frames_)
    except FormatError as exc:
        assert str(exc)  # a clear message
        return
    if p.batch is not None:  # accepted: arrays must be well-formed
        for a in p.batch.arrays.values():
            assert isinstance(a, np.ndarray)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(which=st.sampled_from(ALL), data=st.data())
def test_truncated_messages(which: tuple[str, int], data: st.DataObject) -> None:
    msg = MESSAGES[which[0]][which[1]]
    k = data.draw(st.integers(0, len(msg) - 1))
    cut = data.draw(st.integers(0, max(0, len(msg[k]) - 1)))
    _check([f[:cut] if i == k else f for i, f in enumerate(msg)])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(which=st.sampled_from(ALL), data=st.data())
def test_bit_flips(which: tuple[str, int], data: st.DataObject) -> None:
    msg = MESSAGES[which[0]][which[1]]
    k = data.draw(st.integers(0, len(msg) - 1))
    if not msg[k]:
        return
    b = bytearray(msg[k])
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(b) - 1))
        b[pos] ^= 1 << data.draw(st.integers(0, 7))
    _check([bytes(b) if i == k else f for i, f in enumerate(msg)])
