"""Transport faults injected on 127.0.0.1: a port scan against a binding sender, a Sender
with no timeout dropped while its message is undelivered, CURVE servers without allow-list.

Each fault is real (raw TCP connects, a consumer that never reads) and every wait bounded.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time

import pytest
from lclstream import _core
from lclstream.transport import Curve, CurveKeys, Receiver, Sender, curve_available


def test_binding_sender_survives_2000_connect_close_cycles_then_streams() -> None:
    # ~1,100 cycles used to fill the socket monitor's queue (read only at broadcast/stats),
    # which blocks libzmq's I/O thread: nothing more was sent and close() never returned.
    t0 = time.monotonic()
    s = Sender("tcp://127.0.0.1:*", bind=True, timeout=10.0)
    host, port = s.endpoints[0].rsplit("/", 1)[-1].rsplit(":", 1)
    for _ in range(2000):
        with socket.create_connection((host, int(port)), timeout=5):
            pass
    with Receiver(s.endpoints, bind=False, timeout=10.0) as r:
        for i in range(20):
            s.send(b"event %d" % i)
        got = [bytes(r.recv()[0]) for _ in range(20)]
        assert got == [b"event %d" % i for i in range(20)]
        assert s.broadcast(b"END") == 1
        assert bytes(r.recv()[0]) == b"END"
        assert s.stats()["peers"] == 1
        t1 = time.monotonic()
        assert s.close(5.0) == 0
        assert time.monotonic() - t1 < 5.0
    assert time.monotonic() - t0 < 60


def test_unclosed_sender_without_timeout_does_not_block_its_finalizer() -> None:
    # Fresh interpreter: the consumer binds inproc and never reads, so the message stays
    # with libzmq; dropping the Sender (timeout=None) used to wait for it forever.
    prelude = "import sys; sys.path[:0] = " + repr(sys.path) + "\n"
    code = prelude + textwrap.dedent(
        """
        import gc, time
        from lclstream import _core
        from lclstream.transport import Receiver, Sender
        r = Receiver("inproc://stalled", timeout=1.0)
        s = Sender("inproc://stalled", timeout=None)
        s.send(b"never read")
        t0 = time.monotonic()
        del s
        gc.collect()
        print(time.monotonic() - t0, _core.DESTRUCTOR_LINGER_S)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    took, linger = (float(v) for v in out.stdout.split())
    assert took < linger + 2.0


@pytest.mark.skipif(not curve_available(), reason="libzmq without CURVE")
def test_curve_server_says_whether_it_checks_client_keys() -> None:
    server = CurveKeys.generate()
    client = CurveKeys.generate()
    with Receiver("tcp://127.0.0.1:*", curve=Curve.server(server)) as open_server:
        assert open_server.curve_server and not open_server.curve_allow_list_set
    with Receiver(
        "tcp://127.0.0.1:*", curve=Curve.server(server, allowed_clients=[client.public_key])
    ) as checked:
        assert checked.curve_server and checked.curve_allow_list_set
    with Sender("tcp://127.0.0.1:*", bind=True, curve=Curve.server(server)) as s:
        assert s.curve_server and not s.curve_allow_list_set
    with Sender("tcp://127.0.0.1:1", curve=Curve.client(server.public_key, client)) as c:
        assert not c.curve_server and not c.curve_allow_list_set
    plain = Sender("tcp://127.0.0.1:1")
    assert not plain.curve_server and not plain.curve_allow_list_set
    plain.close(0)
    assert _core.DESTRUCTOR_LINGER_S > 0
