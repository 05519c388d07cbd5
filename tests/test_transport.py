"""Transport over real sockets on loopback (tcp 127.0.0.1, ipc, inproc); every wait is bounded."""

from __future__ import annotations

import gc
import io
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import cbor2
import h5py
import numpy as np
import pytest
import zmq
import zmq.auth
from lclstream import transport
from lclstream.transport import Curve, CurveKeys, Receiver, Sender

T = 5.0  # seconds: generous bound for every blocking call in these tests


def tcp() -> str:
    return "tcp://127.0.0.1:*"


def ipc(tmp_path: Path, name: str = "s") -> str:
    return f"ipc://{tmp_path}/{name}.ipc"


def wait_peers(s: Sender, n: int) -> None:
    deadline = time.monotonic() + T
    while s.stats()["peers"] < n and time.monotonic() < deadline:
        time.sleep(0.01)
    assert s.stats()["peers"] == n


# ---- basics and framing ----------------------------------------------------------------------


def test_inproc_send_is_zero_copy() -> None:
    """Over inproc libzmq passes the message itself: the receiver sees our buffer's address."""
    with Receiver("inproc://zc", timeout=T) as r, Sender("inproc://zc", timeout=T) as s:
        a = np.arange(1 << 20, dtype=np.uint16)
        s.send(a)
        (f,) = r.recv_frames()
        assert f.address == a.ctypes.data  # the very same bytes: no copy on the send path
        assert np.array_equal(np.frombuffer(f, dtype=np.uint16), a)
        # The owner (the array) stays referenced while the receiver holds the frame.
        assert s.stats()["in_flight"] == 1
        del f
        gc.collect()
        assert s.stats()["in_flight"] == 0


def test_batch_data_is_sent_without_copy() -> None:
    """A pooled lclstream Batch goes out as it is; the pool gets it back once delivered."""
    from lclstream import Batch, pool_for

    pool = pool_for(2, (64, 64), np.uint16, count=1)
    with Receiver("inproc://batch", timeout=T) as r, Sender("inproc://batch", timeout=T) as s:
        b = Batch(2, (64, 64), np.uint16, pool=pool)
        b.append(np.full((64, 64), 3, np.uint16), event_id=1, timestamp=0)
        b.append(np.full((64, 64), 4, np.uint16), event_id=2, timestamp=0)
        addr = b.data.ctypes.data
        s.send(b.data)
        del b  # the in-flight message keeps the pooled buffer
        assert pool.stats()["available"] == 0
        (f,) = r.recv_frames()
        assert f.address == addr
        assert np.frombuffer(f, np.uint16).reshape(2, 64, 64)[1, 5, 5] == 4
        del f
        gc.collect()
        s.stats()  # releases the owner on this thread
        assert pool.stats()["available"] == 1


def test_pooled_buffer_returns_while_the_producer_waits_on_the_pool() -> None:
    """The owner of a sent buffer is released by a background Python thread: a producer
    blocked on an empty pool gets the buffer back without calling into lclstream again."""
    from lclstream import Batch, pool_for

    pool = pool_for(1, (256, 256), np.uint16, count=1)
    pull = zmq.Context.instance().socket(zmq.PULL)  # pyzmq: receiving does not touch our queue
    pull.linger = 0
    pull.rcvtimeo = int(T * 1000)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    with Sender(f"tcp://127.0.0.1:{port}", timeout=T) as s:
        b = Batch(1, (256, 256), np.uint16, pool=pool)
        b.append(np.ones((256, 256), np.uint16), event_id=0, timestamp=0)
        s.send(b.data)
        del b
        got: list[Any] = []
        t = threading.Thread(target=lambda: got.append(Batch(1, (256, 256), np.uint16, pool=pool)))
        t.start()  # blocks in pool.acquire until the sent buffer comes back
        assert len(pull.recv()) == 256 * 256 * 2
        t.join(T)
        assert not t.is_alive() and len(got) == 1
    pull.close()


def test_owner_kept_alive_until_libzmq_is_done() -> None:
    import sys

    with Receiver("inproc://own", timeout=T) as r, Sender("inproc://own", timeout=T) as s:
        a = np.ones(4096, dtype=np.uint8)
        before = sys.getrefcount(a)
        s.send(a)
        assert sys.getrefcount(a) > before  # held by the in-flight message (buffer export)
        frames = r.recv()
        del frames
        s.stats()  # drains released owners on this (Python) thread
        assert sys.getrefcount(a) == before


def test_single_part_and_multipart_framing(tmp_path: Path) -> None:
    with Receiver(ipc(tmp_path), timeout=T) as r, Sender(r.endpoints, timeout=T) as s:
        s.send(b"hello")
        assert [bytes(f) for f in r.recv()] == [b"hello"]
        hdr = cbor2.dumps({"dtype": "uint16", "shape": [4, 4]})
        payload = np.arange(16, dtype=np.uint16)
        s.send_multipart([hdr, payload])
        h, p = r.recv()
        assert cbor2.loads(h) == {"dtype": "uint16", "shape": [4, 4]}
        assert np.array_equal(np.frombuffer(p, dtype=np.uint16), payload)
        s.send(memoryview(b"view"))
        assert [bytes(f) for f in r.recv()] == [b"view"]


def test_received_frames_feed_h5py_and_numpy() -> None:
    bio = io.BytesIO()
    with h5py.File(bio, "w") as f:
        f.create_dataset("data", data=np.arange(12).reshape(3, 4))
        f.attrs["sequence"] = 7
    img = bio.getvalue()
    with Receiver(tcp(), timeout=T) as r, Sender(r.endpoints, timeout=T) as s:
        s.send(img)
        (frame,) = r.recv()
        assert frame.readonly
        with h5py.File(io.BytesIO(frame), "r") as f:
            assert f.attrs["sequence"] == 7
            assert f["data"][2, 3] == 11


def test_non_contiguous_buffer_is_rejected() -> None:
    with Sender("inproc://nc", timeout=T) as s, pytest.raises(ValueError, match="contiguous"):
        s.send(np.zeros((4, 4))[:, ::2])


_BUFFER_REUSE_PROBE = """
import resource, sys, threading
import numpy as np
from lclstream.transport import Receiver, Sender

n, keep, size = 24, 3, 32 << 20
with Receiver("tcp://127.0.0.1:*", timeout=30, rcvhwm=2, reuse_buffers=True) as r:
    payload = np.ones(size, np.uint8)

    def send():
        with Sender(r.endpoints[0], timeout=30) as s:
            for _ in range(n):
                s.send(payload)

    t = threading.Thread(target=send)
    t.start()
    held = []
    for i in range(n):
        if i == n // 2:
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        held = [*held, r.recv_frames()][-keep:]  # a pipeline holds a few messages at once
    f1 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t.join(30)
print((f1 - f0) / (n - n // 2))
"""


@pytest.mark.parametrize("tuning", ["1", "0"])
def test_reused_buffers_are_not_faulted_in_again(tuning: str) -> None:
    """With ``reuse_buffers`` a received 32 MiB message lands in memory already faulted in,
    even while a few messages are held at once (libzmq's I/O thread allocates from a glibc
    arena of its own, whose extra heaps glibc unmapped when empty: ~1,400 faults a message
    before the top pad); vetoed (LCLSTREAM_MALLOC_TUNING=0), every message costs its
    8,192 pages. A process of its own: the tuning is process-wide."""
    import subprocess
    import sys

    env = {**os.environ, "LCLSTREAM_MALLOC_TUNING": tuning}
    out = subprocess.run(
        [sys.executable, "-c", _BUFFER_REUSE_PROBE],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    faults = float(out.stdout.strip().splitlines()[-1])
    if tuning == "1":
        assert faults < 100, f"{faults:.0f} page faults per received 32 MiB message"
    else:  # the probe measures what it should: fresh pages are faults
        assert faults > 4000, f"{faults:.0f} page faults per message without the tuning"


# ---- pyzmq interop ---------------------------------------------------------------------------


def test_pyzmq_consumer_gets_our_bytes() -> None:
    ctx = zmq.Context.instance()
    pull = ctx.socket(zmq.PULL)
    pull.linger = 0
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    pull.rcvtimeo = int(T * 1000)
    data = np.random.default_rng(0).integers(0, 255, 3 << 20, dtype=np.uint8)
    with Sender(f"tcp://127.0.0.1:{port}", timeout=T) as s:
        s.send(data)
        s.send_multipart([b"hdr", data[:10]])
        assert pull.recv() == data.tobytes()
        assert pull.recv_multipart() == [b"hdr", data[:10].tobytes()]
    pull.close()


def test_our_receiver_gets_pyzmq_bytes() -> None:
    with Receiver(tcp(), timeout=T) as r:
        push = zmq.Context.instance().socket(zmq.PUSH)
        push.linger = 0
        push.connect(r.endpoints[0])
        push.send_multipart([b"a", b"b" * 100000], copy=False)
        push.send(b"single")
        assert [bytes(f) for f in r.recv()] == [b"a", b"b" * 100000]
        assert [bytes(f) for f in r.recv()] == [b"single"]
        push.close()


# ---- topologies ------------------------------------------------------------------------------


def test_multi_producer_one_consumer() -> None:
    with Receiver(tcp(), timeout=T) as r:
        senders = [Sender(r.endpoints, timeout=T) for _ in range(3)]

        def produce(i: int, s: Sender) -> None:
            for k in range(50):
                s.send(f"{i}:{k}".encode())

        threads = [threading.Thread(target=produce, args=(i, s)) for i, s in enumerate(senders)]
        for t in threads:
            t.start()
        got = {bytes(r.recv()[0]).decode() for _ in range(150)}
        for t in threads:
            t.join(T)
        for s in senders:
            assert s.close(T) == 0
        assert got == {f"{i}:{k}" for i in range(3) for k in range(50)}


def test_one_producer_several_consumers_load_balance_and_broadcast() -> None:
    rs = [Receiver(tcp(), timeout=T) for _ in range(3)]
    with Sender([r.endpoints[0] for r in rs], timeout=T) as s:
        wait_peers(s, 3)
        for k in range(30):
            s.send(b"m%d" % k)
        assert s.broadcast(b"END") == 3
        assert s.close(T) == 0
    seen: list[list[bytes]] = []
    for r in rs:
        msgs = []
        while True:
            m = bytes(r.recv()[0])
            if m == b"END":
                break
            msgs.append(m)
        seen.append(msgs)
        r.close()
    assert sorted(m for msgs in seen for m in msgs) == sorted(b"m%d" % k for k in range(30))
    assert all(len(msgs) == 10 for msgs in seen)  # round robin over ready consumers


def test_one_consumer_down_sends_go_on_broadcast_names_it(tmp_path: Path) -> None:
    dead = ipc(tmp_path, "dead")  # nobody binds here
    with Receiver(tcp(), timeout=T) as r, Sender([r.endpoints[0], dead], timeout=0.5) as s:
        wait_peers(s, 1)
        for k in range(10):
            s.send(b"%d" % k)  # all go to the consumer that is up; none blocks
        assert [bytes(r.recv()[0]) for _ in range(10)] == [b"%d" % k for k in range(10)]
        with pytest.raises(TimeoutError, match="dead.ipc"):
            s.broadcast(b"END")
        with pytest.raises(TimeoutError):
            r.recv(timeout=0.2)  # broadcast sent nothing when it could not reach everyone


def test_bind_sender_broadcast_reaches_each_connected_consumer() -> None:
    """Sender binds (LCLStreamer's role: server), consumers connect: after data messages
    spread over them, the end message reaches every consumer exactly once."""
    with Sender(tcp(), bind=True, timeout=T) as s:
        rs = [Receiver(s.endpoints, bind=False, timeout=T) for _ in range(3)]
        wait_peers(s, 3)
        for k in range(31):
            s.send(b"m%d" % k)
        assert s.broadcast(b"END") == 3
        data = []
        for r in rs:
            while (m := bytes(r.recv()[0])) != b"END":
                data.append(m)
            with pytest.raises(TimeoutError):
                r.recv(timeout=0.2)  # exactly one END each
            r.close()
        assert sorted(data) == sorted(b"m%d" % k for k in range(31))


def test_bind_sender_broadcast_with_a_slow_consumer() -> None:
    """A slow consumer's full queue would make libzmq's load balancer skip it: broadcast
    waits for the queues to drain, so the slow consumer still gets its end message."""
    with Sender(tcp(), bind=True, timeout=T, sndhwm=1, sndbuf=65536) as s:
        rs = [
            Receiver(s.endpoints, bind=False, timeout=T, rcvhwm=1, rcvbuf=65536) for _ in range(2)
        ]
        wait_peers(s, 2)
        ends = [0, 0]
        data = [0, 0]

        def consume(i: int, delay: float) -> None:
            while True:
                (f,) = rs[i].recv()
                if len(f) == 3:
                    ends[i] += 1
                    break
                data[i] += 1
                time.sleep(delay)
            try:
                rs[i].recv(timeout=0.3)
                ends[i] += 1  # a second END (or anything after it) is wrong
            except TimeoutError:
                pass

        threads = [
            threading.Thread(target=consume, args=(0, 0.0)),
            threading.Thread(target=consume, args=(1, 0.03)),
        ]
        for t in threads:
            t.start()
        payload = np.zeros(1 << 20, np.uint8)
        for _ in range(12):
            s.send(payload)
        assert s.broadcast(b"END") == 2
        for t in threads:
            t.join(T)
        assert ends == [1, 1]
        assert sum(data) == 12
        for r in rs:
            r.close()


def test_slow_consumer_backpressure_blocks_without_dropping() -> None:
    """A consumer that does not read: the sender blocks at the high-water mark, then times out."""
    with Receiver(tcp(), timeout=T, rcvhwm=2, rcvbuf=65536) as r:
        with Sender(r.endpoints, timeout=0.5, sndhwm=2, sndbuf=65536) as s:
            payload = np.zeros(1 << 20, dtype=np.uint8)
            sent = 0
            t0 = time.monotonic()
            with pytest.raises(TimeoutError, match=r"tcp://127\.0\.0\.1"):
                for _ in range(200):
                    s.send(payload)
                    sent += 1
            assert time.monotonic() - t0 < T
            assert sent < 20  # memory bounded by the high-water marks, not by the producer
            # Now read everything: nothing was dropped.
            for _ in range(sent):
                assert len(r.recv()[0]) == payload.nbytes
            with pytest.raises(TimeoutError):
                r.recv(timeout=0.2)  # nothing more: the timed-out message was not queued
            assert s.stats()["in_flight"] == 0
            assert s.stats()["dropped"] == 0


def test_close_delivers_queued_messages() -> None:
    with Receiver(tcp(), timeout=T, rcvhwm=1000) as r:
        s = Sender(r.endpoints, timeout=T, sndhwm=1000)
        chunk = np.zeros(256 << 10, dtype=np.uint8)
        for _ in range(40):
            s.send(chunk)
        assert s.close(T) == 0  # everything reached the kernel before close returned
        for _ in range(40):
            assert len(r.recv()[0]) == chunk.nbytes


def test_close_reports_undelivered_on_timeout() -> None:
    with Receiver(tcp(), timeout=T, rcvhwm=1, rcvbuf=65536) as r:
        s = Sender(r.endpoints, timeout=1.0, sndhwm=50, sndbuf=65536)
        chunk = np.zeros(1 << 20, dtype=np.uint8)
        n = 0
        with pytest.raises(TimeoutError):
            for _ in range(100):
                s.send(chunk)
                n += 1
        t0 = time.monotonic()
        lost = s.close(0.2)
        assert time.monotonic() - t0 < 2.0
        assert 0 < lost <= n
        assert s.send is not None and s.closed


def test_unreachable_endpoint_times_out_naming_it() -> None:
    with Sender("tcp://127.0.0.1:9", timeout=0.3) as s:
        t0 = time.monotonic()
        with pytest.raises(TimeoutError, match=r"tcp://127\.0\.0\.1:9"):
            s.send(b"x")
        assert time.monotonic() - t0 < 2.0
        assert s.close(0.1) == 0


def test_recv_timeout_and_iteration_stop() -> None:
    with Receiver(tcp(), timeout=0.2) as r:
        t0 = time.monotonic()
        with pytest.raises(TimeoutError, match="no message"):
            r.recv()
        with pytest.raises(TimeoutError):
            r.recv(timeout=0.1)
        assert list(r) == []
        assert time.monotonic() - t0 < 2.0


def test_bad_endpoint_is_a_clear_error() -> None:
    with pytest.raises(ConnectionError, match="nonsense"):
        Sender("nonsense://x")
    with pytest.raises(ValueError, match="socket type"):
        Sender("tcp://127.0.0.1:9", socket_type="dealer")


@pytest.mark.usefixtures("sigint_deliverable")
def test_ctrl_c_interrupts_a_blocking_recv() -> None:
    with Receiver(tcp(), timeout=None) as r:
        timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
        timer.start()
        t0 = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            r.recv(timeout=None)
        assert time.monotonic() - t0 < 3.0
        timer.cancel()


def test_close_from_another_thread_stops_a_waiting_recv() -> None:
    r = Receiver(tcp(), timeout=None)
    threading.Timer(0.2, r.close).start()
    t0 = time.monotonic()
    with pytest.raises(ConnectionError, match="closed"):
        r.recv(timeout=None)
    assert time.monotonic() - t0 < 2.0
    assert r.closed


def test_stats_from_another_thread_while_send_blocks() -> None:
    with Sender("tcp://127.0.0.1:9", timeout=1.0) as s:
        errors: list[BaseException] = []

        def send() -> None:
            try:
                s.send(b"x")
            except BaseException as e:  # noqa: BLE001
                errors.append(e)

        t = threading.Thread(target=send)
        t.start()
        for _ in range(20):
            assert s.stats()["peers"] == 0  # does not wait for the blocked send
            time.sleep(0.01)
        t.join(T)
        assert len(errors) == 1 and isinstance(errors[0], TimeoutError)


@pytest.mark.usefixtures("sigint_deliverable")
def test_ctrl_c_interrupts_a_blocking_send() -> None:
    with Sender("tcp://127.0.0.1:9", timeout=None) as s:
        timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
        timer.start()
        t0 = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            s.send(b"x")
        assert time.monotonic() - t0 < 3.0
        timer.cancel()
        assert s.close(0.1) == 0


def test_consumer_restart_reconnects(tmp_path: Path) -> None:
    """A consumer that goes away and binds again: the sender reconnects and goes on.

    What the dead consumer held is lost with it (the format's sequence numbers show the
    gap); nothing is sent twice.
    """
    url = ipc(tmp_path, "restart")
    r = Receiver(url, timeout=T)
    with Sender(url, timeout=T) as s:
        s.send(b"0")
        assert bytes(r.recv()[0]) == b"0"
        r.close()
        time.sleep(0.1)
        with pytest.raises(TimeoutError):  # nobody there: blocks, does not drop silently
            Sender(url, timeout=0.2).send(b"nobody")
        r2 = Receiver(url, timeout=T)
        s.send(b"1")
        s.send(b"2")
        assert [bytes(r2.recv()[0]) for _ in range(2)] == [b"1", b"2"]
        with pytest.raises(TimeoutError):
            r2.recv(timeout=0.2)  # no duplicate
        r2.close()


def test_consumer_restart_discards_what_was_queued_for_it(tmp_path: Path) -> None:
    """Messages queued for a consumer that died are not re-delivered to its successor."""
    url = ipc(tmp_path, "requeue")
    r = Receiver(url, timeout=T, rcvhwm=1, rcvbuf=65536)
    with Sender(url, timeout=0.3, sndhwm=4, sndbuf=65536) as s:
        sent = 0
        with pytest.raises(TimeoutError):
            for i in range(50):
                s.send(np.full(1 << 20, i, np.uint8))
                sent += 1
        r.close()  # dies without reading anything
        time.sleep(0.1)
        queued = s.stats()["in_flight"]
        assert queued > 0  # still held for the endpoint
        r2 = Receiver(url, timeout=T)
        s.send(np.full(16, 255, np.uint8))
        first = np.frombuffer(r2.recv()[0], np.uint8)
        assert first[0] == 255  # the old queue was dropped, not re-sent
        with pytest.raises(TimeoutError):
            r2.recv(timeout=0.2)
        assert s.stats()["in_flight"] == 0
        assert s.close(1.0) == 0
        r2.close()


# ---- pub/sub ---------------------------------------------------------------------------------


def test_pub_drops_are_counted() -> None:
    with Sender(tcp(), bind=True, socket_type="pub", sndhwm=2, sndbuf=65536, timeout=T) as s:
        sub = Receiver(
            s.endpoints, bind=False, socket_type="sub", rcvhwm=2, rcvbuf=65536, timeout=T
        )
        # Wait for the subscription to reach the publisher.
        deadline = time.monotonic() + T
        while time.monotonic() < deadline:
            s.send(b"probe")
            try:
                sub.recv(timeout=0.05)
                break
            except TimeoutError:
                continue
        while True:
            try:
                sub.recv(timeout=0.1)
            except TimeoutError:
                break
        s.stats()
        base = s.stats()
        chunk = np.zeros(1 << 20, dtype=np.uint8)
        sent = sum(bool(s.send(chunk)) for _ in range(100))  # never blocks
        st = s.stats()
        assert st["dropped"] - base["dropped"] == 100 - sent > 0
        assert st["messages"] - base["messages"] == sent
        got = 0
        while True:
            try:
                sub.recv(timeout=0.5)
                got += 1
            except TimeoutError:
                break
        assert got == sent  # what was not counted as dropped arrived
        sub.close()


# ---- CurveZMQ --------------------------------------------------------------------------------

needs_curve = pytest.mark.skipif(
    not transport.curve_available(), reason="the core's libzmq was built without CURVE"
)


@needs_curve
def test_curve_encrypted_delivery_and_key_files(tmp_path: Path) -> None:
    pub_file, sec_file = transport.generate_keys(tmp_path, "server")
    assert oct(sec_file.stat().st_mode & 0o777) == "0o600"
    # pyzmq reads our key files (ZeroMQ certificate format).
    public, secret = zmq.auth.load_certificate(str(sec_file))
    assert transport.load_keys(sec_file) == CurveKeys(public.decode(), secret.decode())
    with Receiver(tcp(), curve=Curve.server(sec_file), timeout=T) as r:
        with Sender(r.endpoints, curve=Curve.client(pub_file), timeout=T) as s:
            s.send(b"secret payload")
            assert [bytes(f) for f in r.recv()] == [b"secret payload"]


@needs_curve
def test_curve_wrong_server_key_delivers_nothing() -> None:
    server = CurveKeys.generate()
    impostor = CurveKeys.generate()
    with Receiver(tcp(), curve=Curve.server(server), timeout=T) as r:
        with Sender(r.endpoints, curve=Curve.client(impostor.public_key), timeout=0.5) as s:
            with pytest.raises(TimeoutError):
                s.send(b"x")  # the handshake never completes: no consumer ready
            assert s.close(0.1) == 0
        with pytest.raises(TimeoutError):
            r.recv(timeout=0.3)
        # A plain (unencrypted) client gets nothing through either.
        with Sender(r.endpoints, timeout=0.5) as plain:
            with pytest.raises(TimeoutError):
                plain.send(b"x")


@needs_curve
def test_curve_client_authentication(tmp_path: Path) -> None:
    server = CurveKeys.generate()
    transport.generate_keys(tmp_path / "clients", "alice")
    _, alice_secret = tmp_path / "clients" / "alice.key", tmp_path / "clients" / "alice.key_secret"
    alice_secret.rename(tmp_path / "alice.key_secret")  # keep only public keys in the folder
    curve = Curve.server(server, allowed_clients=tmp_path / "clients")
    with Receiver(tcp(), curve=curve, timeout=T) as r:
        with Sender(r.endpoints, curve=Curve.client(server), timeout=0.5) as stranger:
            with pytest.raises(TimeoutError):
                stranger.send(b"x")
        alice = Curve.client(server, tmp_path / "alice.key_secret")
        with Sender(r.endpoints, curve=alice, timeout=T) as s:
            s.send(b"from alice")
            assert [bytes(f) for f in r.recv()] == [b"from alice"]


@needs_curve
def test_curve_interop_with_pyzmq_client() -> None:
    server = CurveKeys.generate()
    with Receiver(tcp(), curve=Curve.server(server), timeout=T) as r:
        ctx = zmq.Context.instance()
        push = ctx.socket(zmq.PUSH)
        push.linger = 0
        cpub, csec = zmq.curve_keypair()
        push.curve_serverkey = server.public_key.encode()
        push.curve_publickey = cpub
        push.curve_secretkey = csec
        push.connect(r.endpoints[0])
        push.send(b"from pyzmq")
        assert [bytes(f) for f in r.recv()] == [b"from pyzmq"]
        push.close()
