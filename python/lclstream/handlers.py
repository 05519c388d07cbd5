"""Data handlers: where serialized messages go (ZeroMQ streams, files), by LCLStreamer type name.

A handler receives each message once, in order, from the pipeline's sender thread:
``start(info)``, ``handle(message)`` per message, ``end(message)`` for the end-of-stream
message and ``close()``, which must deliver (or write) everything accepted before it returns.
"""

from __future__ import annotations

import queue
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lclstream.errors import ConfigError, TransportError
from lclstream.protocols import DataHandler, Message, StreamInfo

if TYPE_CHECKING:
    from lclstream.transport import Curve

__all__ = [
    "BinaryDataStreamingDataHandler",
    "BinaryFileWritingDataHandler",
    "InProcessDataHandler",
    "create_handler",
    "create_handlers",
]


def curve_settings(
    server_key: str | Path | None,
    secret_key: str | Path | None,
    allowed_clients: str | Path | None,
) -> Curve | None:
    """CurveZMQ settings from key files: with the peer's public key this side is the CURVE
    client (its own pair optional); with only a secret key it is the CURVE server."""
    from lclstream.transport import Curve, curve_available

    if server_key is None and secret_key is None:
        if allowed_clients is not None:
            raise ConfigError("curve_allowed_clients needs curve_secret_key (the server's pair)")
        return None
    if not curve_available():
        raise ConfigError("CurveZMQ keys are configured but this libzmq has no CURVE support")
    if server_key is not None:
        if allowed_clients is not None:
            raise ConfigError("curve_allowed_clients applies to the CURVE server only")
        return Curve.client(Path(server_key), None if secret_key is None else Path(secret_key))
    assert secret_key is not None
    return Curve.server(
        Path(secret_key), None if allowed_clients is None else Path(allowed_clients)
    )


class BinaryDataStreamingDataHandler:
    """Streams messages over ZeroMQ (LCLStreamer's ``BinaryDataStreamingDataHandler``).

    ``role="client"`` (LCLStreamer v0.8's default) connects to consumers that bind,
    ``"server"`` binds the URLs. ``socket_type`` is ``push`` (load-balanced among consumers)
    or ``pub`` (may drop by design: :meth:`handle` then returns False and the pipeline counts
    the events as dropped). The end-of-stream message is broadcast, so every connected
    consumer gets it. The socket is created at construction so that a server is listening
    before the first message is ready.
    """

    type_name = "BinaryDataStreamingDataHandler"

    def __init__(
        self,
        urls: str | Iterable[str],
        *,
        role: str = "client",
        socket_type: str = "push",
        high_water_mark: int | None = None,
        send_timeout_s: float | None = None,
        close_timeout_s: float = 30.0,
        curve: Curve | None = None,
        sndbuf: int = 0,
    ) -> None:
        from lclstream.transport import Sender

        url_list = [urls] if isinstance(urls, str) else [str(u) for u in urls]
        if not url_list:
            raise ConfigError("BinaryDataStreamingDataHandler.urls: at least one URL is needed")
        if role not in ("server", "client"):
            raise ConfigError(
                f"BinaryDataStreamingDataHandler.role: {role!r} is not one of server, client"
            )
        if socket_type not in ("push", "pub"):
            raise ConfigError(
                f"BinaryDataStreamingDataHandler.socket_type: {socket_type!r} is not one of "
                "push, pub"
            )
        self.urls = url_list
        self.role = role
        self.socket_type = socket_type
        self.close_timeout_s = close_timeout_s
        opts: dict[str, Any] = {}
        if high_water_mark is not None:  # else the transport's default
            opts["sndhwm"] = high_water_mark
        if send_timeout_s is not None:  # else the transport's default deadline
            opts["timeout"] = send_timeout_s
        if sndbuf:  # else the OS default
            opts["sndbuf"] = int(sndbuf)
        self.sender = Sender(
            url_list, bind=role == "server", socket_type=socket_type, curve=curve, **opts
        )
        self.bytes_sent = 0
        self.messages_sent = 0

    @property
    def endpoints(self) -> list[str]:
        """Where the socket is bound or connected (wildcard ports resolved where known)."""
        eps = getattr(self.sender, "endpoints", None)
        return list(eps) if eps else list(self.urls)

    def start(self, info: StreamInfo) -> None:
        pass

    def handle(self, message: Message) -> bool:
        if self.socket_type == "pub" and not self.sender.stats()["peers"]:
            return False  # libzmq discards a PUB message nobody is connected for
        if len(message) == 1:
            delivered = self.sender.send(message[0])
        else:
            delivered = self.sender.send_multipart(list(message))
        if delivered:
            self.messages_sent += 1
        return delivered

    def end(self, message: Message) -> None:
        frames = list(message)
        if len(frames) == 1:
            self.sender.broadcast(frames[0])
        else:
            self.sender.broadcast(frames)
        self.messages_sent += 1

    def close(self) -> None:
        """Deliver what is queued (up to ``close_timeout_s``); undelivered messages are an error."""
        lost = self.sender.close(self.close_timeout_s)
        if lost:
            raise TransportError(
                f"{lost} message(s) still queued for {', '.join(self.endpoints)} after "
                f"{self.close_timeout_s:g} s (no consumer took them); the stream is incomplete"
            )


class BinaryFileWritingDataHandler:
    """Writes messages as numbered ``.h5`` files (LCLStreamer's ``BinaryFileWritingDataHandler``).

    HDF5 messages are written as they are; other formats are decoded and written as HDF5,
    ``img_per_file`` events a file (see :class:`lclstream.writer.FileWriter`).
    """

    type_name = "BinaryFileWritingDataHandler"

    def __init__(
        self,
        write_directory: str | Path = ".",
        *,
        img_per_file: int | None = None,
        file_prefix: str = "lclstream",
        file_suffix: str = "h5",
    ) -> None:
        from lclstream.writer import FileWriter

        self.directory = Path(write_directory)
        self.writer = FileWriter(
            self.directory, img_per_file=img_per_file, prefix=file_prefix, suffix=file_suffix
        )

    @property
    def files(self) -> list[Path]:
        return list(getattr(self.writer, "files", []))

    def start(self, info: StreamInfo) -> None:
        self.writer.start(info)

    def handle(self, message: Message) -> bool:
        self.writer.handle(message)
        return True

    def end(self, message: Message) -> None:
        self.writer.end(message)

    def close(self) -> None:
        self.writer.close()


class InProcessDataHandler:
    """Hands messages to a consumer in the same process through a bounded queue.

    The consumer calls :meth:`get` (or iterates) until it sees ``None`` (after the end
    message); a full queue makes the pipeline wait, so memory stays bounded.
    """

    type_name = "InProcessDataHandler"

    def __init__(self, maxsize: int = 16) -> None:
        self.queue: queue.Queue[Message | None] = queue.Queue(maxsize)
        self.info: StreamInfo | None = None

    def start(self, info: StreamInfo) -> None:
        self.info = info

    def handle(self, message: Message) -> bool:
        self.queue.put(message)
        return True

    def end(self, message: Message) -> None:
        self.queue.put(message)

    def close(self) -> None:
        self.queue.put(None)

    def get(self, timeout: float | None = None) -> Message | None:
        """The next message, or None once the stream is over."""
        return self.queue.get(timeout=timeout)

    def __iter__(self) -> Iterator[Message]:
        while (m := self.queue.get()) is not None:
            yield m


def create_handler(spec: Any, sender: int = 0) -> DataHandler:
    """A handler from its config entry (a validated model, or a mapping validated here).

    ``sender`` is this producer's index in the stream: a streaming handler with
    ``distribute: true`` connects sender ``i`` to ``urls[i % len(urls)]`` only.
    """
    from lclstream.config import BinaryDataStreamingDataHandlerParameters, load_config

    if isinstance(spec, Mapping):
        spec = load_config({"data_handlers": [dict(spec)]}).data_handlers[0]
    if isinstance(spec, BinaryDataStreamingDataHandlerParameters):
        streaming: DataHandler = spec.build(sender)
        return streaming
    handler: DataHandler = spec.build()
    return handler


def create_handlers(specs: Iterable[Any], sender: int = 0) -> list[DataHandler]:
    """Handlers for every ``data_handlers`` entry; closes those made so far if one fails."""
    made: list[DataHandler] = []
    try:
        for spec in specs:
            made.append(create_handler(spec, sender))
    except BaseException:
        for h in made:
            try:
                h.close()
            except Exception:  # noqa: BLE001 - the original error is the one to report
                pass
        raise
    return made
