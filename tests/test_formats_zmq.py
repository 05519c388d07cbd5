"""Our messages over real ZeroMQ sockets (pyzmq, loopback): HDF5 and stream2 are single-part
messages that stock consumers read directly; raw batches are header + payload."""

from __future__ import annotations

import io

import cbor2
import h5py
import hdf5plugin  # noqa: F401
import numpy as np
import zmq
from fmt_helpers import batch, frames, info
from lclstream.formats import (
    HDF5BinarySerializer,
    RawBatchSerializer,
    SimplonBinarySerializer,
    parse,
)
from lclstream.protocols import StreamTotals

SHAPE = (2, 16, 32)


def _pair() -> tuple[zmq.Context, zmq.Socket, zmq.Socket]:
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.bind("tcp://127.0.0.1:*")
    push = ctx.socket(zmq.PUSH)
    push.connect(pull.getsockopt_string(zmq.LAST_ENDPOINT))
    pull.setsockopt(zmq.RCVTIMEO, 5000)
    return ctx, push, pull


def test_messages_over_zeromq() -> None:
    data = frames(3, SHAPE, "uint16")
    ctx, push, pull = _pair()
    try:
        # HDF5: the LCLStreamer consumer's way, h5py.File(BytesIO(sock.recv()))
        ser = HDF5BinarySerializer()
        ser.start(info(SHAPE, "uint16"))
        for m in ser.serialize(batch(data)) + ser.end(StreamTotals(3, 1)):
            push.send_multipart(m, copy=False)
        with h5py.File(io.BytesIO(pull.recv()), "r") as f:
            np.testing.assert_array_equal(f["/entry_1/data_1/data"][()], data)
        end = pull.recv_multipart(copy=False)
        assert len(end) == 1 and parse([end[0].buffer]).kind == "end"
        # stream2: one frame per message, a stream2 client's cbor2.loads(sock.recv())
        s2 = SimplonBinarySerializer()
        msgs = s2.start(info(SHAPE, "uint16")) + s2.serialize(batch(data)) + s2.end(StreamTotals())
        for m in msgs:
            push.send_multipart(m)
        types = [cbor2.loads(pull.recv())["type"] for _ in msgs]
        assert types == ["start", "image", "image", "image", "end"]
        # raw: header + the batch's memory, received as a view of the frame
        raw = RawBatchSerializer()
        raw.start(info(SHAPE, "uint16"))
        (m,) = raw.serialize(batch(data))
        push.send_multipart(m, copy=False)
        got = pull.recv_multipart(copy=False)
        p = parse(got)
        assert p.batch is not None
        arr = p.batch.arrays["detector_data"]
        np.testing.assert_array_equal(arr, data)
        assert np.shares_memory(arr, np.frombuffer(got[1].buffer, np.uint8))
    finally:
        push.close(0)
        pull.close(0)
        ctx.term()
