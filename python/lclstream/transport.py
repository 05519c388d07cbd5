"""ZeroMQ transport: zero-copy ``Sender`` and ``Receiver`` over the C++ core.

Framing (DESIGN.md): the transport never adds frames or messages of its own.
``Sender.send(buf)`` sends exactly one single-part message holding ``buf``'s bytes;
``send_multipart([header, payload])`` one message of two frames (raw batches). Stream ids,
sequence numbers and end-of-stream totals travel inside the format.

Zero copy: ``send`` takes any contiguous buffer (bytes, memoryview, numpy array, a
``Batch``'s data) and hands its memory to libzmq as it is. The object is kept alive until
libzmq is done with the bytes (the core's free callback, which may run on a libzmq I/O
thread and never touches the GIL, queues the owner; a daemon Python thread,
``lclstream-release``, drops it at once, and every ``send``/``recv``/``stats``/``close``
drains the queue too). So a pooled buffer returns to its pool as soon as it is on the wire,
even while the producer is blocked waiting for the pool. Do not modify a buffer after sending it until
``stats()["in_flight"]`` says libzmq let go of it (pooled buffers do this for you).

What holds (see also cpp/include/lclstream/transport.hpp):

* ``push`` + connect (the streamer's default; consumers bind): one socket per endpoint,
  messages queue only for connected consumers; ``send`` round-robins over consumers that
  can take a message and blocks (``timeout`` → ``TimeoutError`` naming the endpoints)
  rather than dropping. ``broadcast`` waits until every endpoint can take a message and
  sends one copy to each: every consumer gets the end message.
* ``push`` + bind (LCLStreamer's ``role: server``): libzmq load-balances over connected
  consumers. ``broadcast`` waits until every queued message has been taken (so no
  consumer's queue is full), then sends one copy per connected consumer (counted by a
  socket monitor); libzmq hands consecutive messages to its consumers in turn, so each
  gets one copy. A consumer that connects or leaves during the broadcast may miss it.
* ``pub``: never blocks; a message is dropped (for all subscribers) when a subscriber's
  queue is full and counted in ``stats()["dropped"]``. A message published while nobody
  is subscribed is discarded by libzmq, uncounted.
* ``close(timeout)`` waits until every queued message is handed to the kernel (inproc:
  released by the receiver) and returns how many could not be delivered in time.
* Consumer restart: what was already written to the dead consumer's connection is lost
  with it; what was still queued for it is discarded when it reconnects, never re-delivered
  (nothing arrives twice; ``close`` counts it as undelivered). Sequence numbers in the
  format show the gap (``lclstream.completeness``). With several endpoints, ``send`` goes
  on with the consumers that are up.

Blocking calls release the GIL and wake every 50 ms to check for Ctrl-C.
"""

from __future__ import annotations

import atexit
import os
import re
import threading
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

from lclstream import _core
from lclstream.errors import SecurityWarning

__all__ = [
    "Curve",
    "CurveKeys",
    "Receiver",
    "Sender",
    "curve_available",
    "generate_keys",
    "load_keys",
]

#: Default deadline of a blocking call, in seconds.
DEFAULT_TIMEOUT = 30.0
#: Default high-water mark: messages queued per peer before send blocks (push) or drops (pub).
DEFAULT_HWM = 16


def _urls(url_or_urls: str | Sequence[str]) -> list[str]:
    urls = [url_or_urls] if isinstance(url_or_urls, str) else list(url_or_urls)
    if not urls:
        raise ValueError("no endpoint given")
    return urls


# ---- CurveZMQ keys ---------------------------------------------------------------------------


def curve_available() -> bool:
    """True when the core's libzmq was built with CurveZMQ (``zmq_has("curve")``)."""
    return bool(_core.curve_available())


@dataclass(frozen=True)
class CurveKeys:
    """A CurveZMQ key pair as Z85 text; ``secret_key`` is empty for a public-only key."""

    public_key: str
    secret_key: str = ""

    @classmethod
    def generate(cls) -> CurveKeys:
        public, secret = _core.curve_keypair()
        return cls(public, secret)


@dataclass(frozen=True)
class Curve:
    """CurveZMQ settings for one socket.

    The *server* side (usually the one that binds, i.e. the consumer) holds its key pair;
    *clients* hold the server's public key and their own pair (fresh by default), and
    refuse a server that cannot prove it holds the matching secret key. Traffic is
    encrypted both ways. A server given ``allowed_clients`` also authenticates clients
    (a ZAP handler checks their public keys); without it any client that knows the
    server's public key may connect.
    """

    keys: CurveKeys
    server_key: str | None = None  # set on clients
    allowed_clients: tuple[str, ...] = ()  # servers only: Z85 public keys

    @classmethod
    def server(
        cls,
        keys: CurveKeys | str | os.PathLike[str],
        allowed_clients: Sequence[CurveKeys | str | os.PathLike[str]]
        | str
        | os.PathLike[str]
        | None = None,
    ) -> Curve:
        """Server side, from a key pair or a ``*.key_secret`` file.

        ``allowed_clients``: client public keys (Z85 text, ``CurveKeys``, key files) or a
        directory whose ``*.key`` files are the allowed clients (as ``zmq.auth`` does).
        """
        k = keys if isinstance(keys, CurveKeys) else load_keys(keys)
        if not k.secret_key:
            raise ValueError("Curve.server needs a secret key (a .key_secret file)")
        return cls(k, None, _client_keys(allowed_clients))

    @classmethod
    def client(
        cls,
        server_key: CurveKeys | str | os.PathLike[str],
        keys: CurveKeys | str | os.PathLike[str] | None = None,
    ) -> Curve:
        """Client side: the server's public key (Z85 text, a key file or CurveKeys)."""
        sk = _public_key(server_key)
        own = (
            CurveKeys.generate()
            if keys is None
            else keys
            if isinstance(keys, CurveKeys)
            else load_keys(keys)
        )
        return cls(own, sk)

    def _as_dict(self) -> dict[str, Any]:
        return {
            "server": self.server_key is None,
            "public_key": self.keys.public_key,
            "secret_key": self.keys.secret_key,
            "server_key": self.server_key,
            "allowed_clients": list(self.allowed_clients),
        }


def _client_keys(
    spec: Sequence[CurveKeys | str | os.PathLike[str]] | str | os.PathLike[str] | None,
) -> tuple[str, ...]:
    if spec is None:
        return ()
    if isinstance(spec, str | os.PathLike) and Path(spec).is_dir():
        files = sorted(Path(spec).glob("*.key"))
        if not files:
            raise ValueError(f"allowed_clients: no *.key files in {spec}")
        return tuple(load_keys(f).public_key for f in files)
    items = [spec] if isinstance(spec, str | os.PathLike) else list(spec)
    return tuple(_public_key(item) for item in items)


def _public_key(key: CurveKeys | str | os.PathLike[str]) -> str:
    """A public key given as CurveKeys, 40-character Z85 text or a key file."""
    if isinstance(key, CurveKeys):
        return key.public_key
    if isinstance(key, str) and len(key) == 40 and not os.path.exists(key):
        return key
    return load_keys(key).public_key


def _curve_dict(curve: Curve | None) -> dict[str, Any] | None:
    return None if curve is None else curve._as_dict()


def _warn_if_open(curve: Curve | None, what: str) -> None:
    """A CURVE server without an allow-list encrypts, but lets any client that knows its
    public key connect (and send or take data): say so once, at start."""
    if curve is not None and curve.server_key is None and not curve.allowed_clients:
        warnings.warn(
            f"{what}: CURVE server without an allow-list (allowed_clients): traffic is "
            "encrypted but any client that has the server's public key may connect",
            SecurityWarning,
            stacklevel=3,
        )


_KEY_RE = re.compile(r'^\s*(public|secret)-key\s*=\s*"([^"]{40})"\s*$', re.MULTILINE)


def _write_key_file(path: Path, public: str, secret: str | None) -> None:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    lines = [
        f"#   ****  Generated on {stamp} by lclstream  ****",
        "#   ZeroMQ CURVE " + ("**Secret** Certificate" if secret else "Public Certificate"),
        "#   " + ("DO NOT PROVIDE THIS FILE TO OTHER USERS" if secret else "Exchange securely"),
        "",
        "metadata",
        "curve",
        f'    public-key = "{public}"',
    ]
    if secret:
        lines.append(f'    secret-key = "{secret}"')
    mode = 0o600 if secret else 0o644
    # O_NOFOLLOW: a symlink planted at the name is not followed; fchmod: O_CREAT's mode only
    # applies to a new file, and an existing 0644 file must not keep its mode for a secret
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)
        os.ftruncate(fd, 0)
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")


def generate_keys(directory: str | os.PathLike[str], name: str = "server") -> tuple[Path, Path]:
    """Writes a fresh key pair as ``NAME.key`` (public) and ``NAME.key_secret`` (0600).

    The files use ZeroMQ's certificate format (CZMQ ``zcert``), so ``zmq.auth.load_certificate``
    reads them too. Returns (public file, secret file).
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    keys = CurveKeys.generate()
    pub, sec = d / f"{name}.key", d / f"{name}.key_secret"
    _write_key_file(pub, keys.public_key, None)
    _write_key_file(sec, keys.public_key, keys.secret_key)
    return pub, sec


def load_keys(path: str | os.PathLike[str]) -> CurveKeys:
    """Reads a ``.key`` (public only) or ``.key_secret`` file in ZeroMQ's certificate format."""
    text = Path(path).read_text()
    found = {kind: value for kind, value in _KEY_RE.findall(text)}
    if "public" not in found:
        raise ValueError(f"{path}: no public-key line (expected ZeroMQ certificate format)")
    return CurveKeys(found["public"], found.get("secret", ""))


# ---- owner release thread ---------------------------------------------------------------------

_release_lock = threading.Lock()
_release_thread: threading.Thread | None = None


def _stop_release_thread() -> None:
    global _release_thread
    t = _release_thread
    if t is not None:
        _core.transport_release_stop()
        t.join(2.0)
        _release_thread = None


def _ensure_release_thread() -> None:
    """Starts the daemon thread that drops owners of sent buffers once libzmq is done.

    Without it an owner would be released only on the next send/recv/stats/close, and a
    producer blocked on an empty pool (waiting for exactly that buffer) would wait forever.
    """
    global _release_thread
    with _release_lock:
        if _release_thread is None or not _release_thread.is_alive():
            t = threading.Thread(
                target=_core.transport_release_loop, name="lclstream-release", daemon=True
            )
            t.start()
            _release_thread = t


atexit.register(_stop_release_thread)


# ---- Sender / Receiver -----------------------------------------------------------------------


class Sender:
    """Sends messages to one or more endpoints without copying their bytes.

    ``Sender(url)`` connects (the consumer binds), as the streamer does in LCLStream;
    ``bind=True`` binds instead. ``socket_type`` is ``"push"`` (work distribution: each
    message to one consumer, blocking when all are busy) or ``"pub"`` (live preview: may
    drop, counted). ``sndhwm`` is the per-peer queue length; ``timeout`` (seconds, None =
    forever) bounds every blocking call. ``hwm`` is an alias of ``sndhwm``.
    """

    def __init__(
        self,
        url_or_urls: str | Sequence[str],
        *,
        bind: bool = False,
        socket_type: str = "push",
        sndhwm: int = DEFAULT_HWM,
        timeout: float | None = DEFAULT_TIMEOUT,
        curve: Curve | None = None,
        sndbuf: int = 0,
        hwm: int | None = None,
    ) -> None:
        _ensure_release_thread()
        _warn_if_open(curve, "Sender")
        self._s = _core.Sender(
            _urls(url_or_urls),
            socket_type,
            bind,
            sndhwm if hwm is None else hwm,
            timeout,
            _curve_dict(curve),
            sndbuf,
        )
        self.timeout = timeout

    @property
    def endpoints(self) -> list[str]:
        """Endpoints as bound/connected (``tcp://host:*`` resolved to the real port)."""
        return list(self._s.endpoints)

    @property
    def closed(self) -> bool:
        return bool(self._s.closed)

    def send(self, buf: Any) -> bool:
        """Sends one single-part message holding ``buf``'s bytes (no copy).

        Returns False only for ``pub`` when the message was dropped (counted).
        """
        return bool(self._s.send((buf,)))

    def send_multipart(self, frames: Sequence[Any]) -> bool:
        """Sends one message made of ``frames`` (e.g. ``[header, payload]``), no copies."""
        return bool(self._s.send(frames))

    def broadcast(self, buf_or_frames: Any) -> int:
        """Sends one copy of the message to every peer (the end-of-stream message).

        A list or tuple is taken as the frames of one multipart message. Returns the
        number of copies sent.
        """
        frames = buf_or_frames if isinstance(buf_or_frames, list | tuple) else (buf_or_frames,)
        return int(self._s.broadcast(frames))

    def stats(self) -> dict[str, Any]:
        """messages, bytes, dropped (pub), broadcasts, in_flight, peers, blocked_seconds."""
        return dict(self._s.stats())

    def close(self, timeout: float | None = None) -> int:
        """Delivers what is queued (up to ``timeout``, default the Sender's) and closes.

        Returns how many messages could not be delivered (0 when everything went out).
        """
        return int(self._s.close(self.timeout if timeout is None else timeout))

    @property
    def curve_server(self) -> bool:
        """True when this socket is a CURVE server (holds the secret key)."""
        return bool(self._s.curve_server)

    @property
    def curve_allow_list_set(self) -> bool:
        """True when a CURVE server checks client keys; False means any client gets in."""
        return bool(self._s.curve_allow_list_set)

    def __del__(self) -> None:
        # A Sender dropped without close() still delivers what it queued, with the GIL
        # released while it waits, but for at most DESTRUCTOR_LINGER_S whatever its timeout
        # (None included): a finalizer must never block for good on a stalled consumer.
        s = getattr(self, "_s", None)
        if s is not None and not s.closed:
            linger = _core.DESTRUCTOR_LINGER_S
            t = self.timeout
            try:
                s.close(linger if t is None or t > linger else t)
            except Exception:  # noqa: BLE001 - never raise from a finalizer
                pass

    def __enter__(self) -> Sender:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Closes (delivering what is queued); messages it could not deliver are an error, as
        they are for an explicit ``close()`` whose count is checked. With an exception
        already on its way out, that one is raised, with the loss noted on it."""
        where = ", ".join(self.endpoints)
        lost = self.close()
        if not lost:
            return
        text = (
            f"{lost} message(s) could not be delivered to {where} within "
            f"{self.timeout if self.timeout is not None else 'the'} s (no consumer took them)"
        )
        if exc is not None:
            exc.add_note(f"lclstream Sender: {text}")
            return
        raise _core.TransportError(text)


class Receiver:
    """Receives messages; each frame is a read-only zero-copy ``memoryview``.

    ``Receiver(url)`` binds (the consumer's default); ``bind=False`` connects. The views
    keep libzmq's message alive, so ``numpy.frombuffer(frame, ...)``, ``cbor2.loads`` and
    ``h5py.File(io.BytesIO(frame))`` read them directly.

    ``reuse_buffers=True`` makes glibc keep freed large blocks for reuse so that large
    messages are not faulted in afresh each time (32 MiB messages stream ~2x faster), but
    it is process-wide: a process dedicated to receiving (``lclstream receive``) sets it;
    a library caller that also computes in the same process should not.
    """

    def __init__(
        self,
        url_or_urls: str | Sequence[str],
        *,
        bind: bool = True,
        socket_type: str = "pull",
        rcvhwm: int = DEFAULT_HWM,
        timeout: float | None = DEFAULT_TIMEOUT,
        curve: Curve | None = None,
        rcvbuf: int = 0,
        subscribe: Sequence[str] = ("",),
        reuse_buffers: bool = False,
    ) -> None:
        _warn_if_open(curve, "Receiver")
        self._r = _core.Receiver(
            _urls(url_or_urls),
            socket_type,
            bind,
            rcvhwm,
            timeout,
            _curve_dict(curve),
            rcvbuf,
            list(subscribe),
            reuse_buffers,
        )
        self.timeout = timeout

    @property
    def endpoints(self) -> list[str]:
        return list(self._r.endpoints)

    @property
    def closed(self) -> bool:
        return bool(self._r.closed)

    @property
    def curve_server(self) -> bool:
        """True when this socket is a CURVE server (holds the secret key)."""
        return bool(self._r.curve_server)

    @property
    def curve_allow_list_set(self) -> bool:
        """True when a CURVE server checks client keys; False means any client gets in."""
        return bool(self._r.curve_allow_list_set)

    def recv(self, timeout: float | None = -1.0) -> list[memoryview]:
        """The next message's frames; ``TimeoutError`` when none comes within ``timeout``.

        ``timeout`` in seconds; None waits forever; by default the Receiver's timeout.
        """
        return [memoryview(f) for f in self.recv_frames(timeout)]

    def try_recv(self, timeout: float | None = -1.0) -> list[memoryview] | None:
        """Like recv, but None instead of ``TimeoutError``."""
        try:
            return self.recv(timeout)
        except TimeoutError:
            return None

    def recv_frames(self, timeout: float | None = -1.0) -> list[Any]:
        """Like recv, but the core's Frame objects (``.address``, ``.nbytes``, buffer protocol)."""
        # A negative timeout (the default) asks the core for the Receiver's own deadline.
        if timeout is not None and timeout < 0:
            return list(self._r.recv(None, True))
        return list(self._r.recv(timeout, False))

    def __iter__(self) -> Iterator[list[memoryview]]:
        """Messages until the Receiver's timeout passes with none (then iteration stops)."""
        while True:
            try:
                yield self.recv()
            except TimeoutError:
                return

    def stats(self) -> dict[str, Any]:
        return dict(self._r.stats())

    def close(self) -> None:
        self._r.close()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
