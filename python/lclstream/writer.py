"""Write received (or produced) messages as numbered HDF5 files, atomically.

Each file is written under a hidden temporary name in the target directory, fsync'ed and
renamed, so a crash never leaves a half-written file under a final name (at worst a
``.*.tmp`` file that readers skip). HDF5 messages are written as they arrived; stream2,
LCLStreamer-SIMPLON and raw-batch messages go through parse → EventBatch → the HDF5
serializer, so every format ends up as the same CXI-style files. With ``img_per_file`` the
events are regrouped into files of that many events (the last file may hold fewer).

Names follow LCLStreamer's file handler: ``{prefix}_r{sender}_{counter:06d}.h5``. Each
sender's end message becomes ``{prefix}_r{sender}_end.h5`` (zero events, the totals as
root attributes) unless ``write_end=False``, so a directory proves its own completeness
(``lclstream.inspect``).
"""

from __future__ import annotations

import errno
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lclstream.errors import ConfigError, FormatError, WriteError
from lclstream.formats import detect, parse
from lclstream.formats._common import as_frames, frame_bytes
from lclstream.formats.hdf5 import HDF5_SIGNATURE, HDF5BinarySerializer, check_image, open_image
from lclstream.protocols import EventBatch, Message, ParsedMessage, StreamInfo, StreamTotals

#: Temporary files older than this, named as ours, are left by a crash: removed at start.
STALE_TEMP_SECONDS = 3600.0


def _temp_name(path: Path) -> Path:
    """A hidden, unique temporary name next to ``path`` (PIDs repeat across containers and
    restarts, so a random part makes it unique; O_EXCL makes sure of it)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")


def _write_error(path: Path, exc: OSError) -> WriteError:
    name = errno.errorcode.get(exc.errno, "") if exc.errno else ""
    why = exc.strerror or str(exc)
    return WriteError(
        exc.errno or 0, f"cannot write {path}: {why}" + (f" ({name})" if name else "")
    )


def atomic_write(path: Path, chunks: list[Any], *, overwrite: bool = False) -> None:
    """Write ``chunks`` (bytes-likes) to ``path`` via a unique temp file + fsync + link.

    The final name is created with ``os.link`` (fails if it exists): a file is never
    overwritten, so two writers in one folder cannot destroy each other's files; the loser
    gets ``FileExistsError`` and takes the next name. ``overwrite=True`` renames instead.
    Any other failure (disk full, read-only folder) is a :class:`WriteError`; the temp file
    is removed and nothing appears under the final name.
    """
    tmp = _temp_name(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError as exc:
        raise _write_error(path, exc) from exc
    try:
        with os.fdopen(fd, "wb") as f:
            for c in chunks:
                f.write(c)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                    raise
                # no hard links on this filesystem: exclusive-create the name, then rename
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
                os.replace(tmp, path)
            os.unlink(tmp)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and not isinstance(exc, (FileExistsError, WriteError)):
            raise _write_error(path, exc) from exc
        raise
    try:  # make the link itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def remove_stale_temps(directory: Path, prefix: str, age: float = STALE_TEMP_SECONDS) -> int:
    """Remove temp files named as this writer's (``.PREFIX*.tmp``) older than ``age`` s."""
    removed = 0
    now = time.time()
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return 0
    for e in entries:
        if not (e.name.startswith(f".{prefix}") and e.name.endswith(".tmp")):
            continue
        try:
            if e.is_file(follow_symlinks=False) and now - e.stat().st_mtime > age:
                os.unlink(e.path)
                removed += 1
        except OSError:
            pass
    return removed


@dataclass
class _SenderState:
    info: StreamInfo
    serializer: HDF5BinarySerializer | None = None
    pending: list[EventBatch] = field(default_factory=list)
    pending_events: int = 0
    counter: int = 0


class FileWriter:
    """Numbered ``.h5`` files in ``directory`` (see module docstring).

    Usable directly as a DataHandler (``start``/``handle``/``end``/``close``) or fed with
    :meth:`write_message` (any of our formats) / :meth:`write_batch`.
    ``compression``/``fields`` apply to files this writer builds itself (converted or
    regrouped events); HDF5 messages written as received keep theirs.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        img_per_file: int | None = None,
        prefix: str = "lclstream",
        suffix: str = "h5",
        compression: str | None = "bitshuffle_with_lz4",
        fields: dict[str, str | None] | None = None,
        threads: int = 0,
        write_end: bool = True,
    ) -> None:
        if img_per_file is not None and int(img_per_file) < 1:
            raise ConfigError(f"img_per_file: must be >= 1, got {img_per_file}")
        for what, text in (("prefix", prefix), ("suffix", suffix)):
            if "/" in text or "\\" in text or "\0" in text or text in (".", ".."):
                raise ConfigError(f"file {what} {text!r} would escape the write directory")
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _write_error(self.directory, exc) from exc
        self._root = self.directory.resolve()
        remove_stale_temps(self.directory, prefix)
        self.img_per_file = None if img_per_file is None else int(img_per_file)
        self.prefix = prefix
        self.suffix = suffix
        self.compression = compression
        self.fields = fields
        self.threads = threads
        self.write_end = write_end
        self.files: list[Path] = []
        self.events_written = 0
        self.totals: dict[tuple[str, int], StreamTotals] = {}
        self._senders: dict[tuple[str, int], _SenderState] = {}
        self._info: StreamInfo | None = None

    # -- naming ---------------------------------------------------------------------------
    def _path(self, sender: int, counter: int | None, again: int = 0) -> Path:
        stem = f"{self.prefix}_" if self.prefix and not self.prefix.endswith("_") else self.prefix
        num = f"{counter:06d}" if counter is not None else "end" + (f"{again}" if again else "")
        path = (self.directory / f"{stem}r{sender}_{num}.{self.suffix}").resolve()
        if path.parent != self._root:
            raise ConfigError(f"file name {path} escapes the write directory {self._root}")
        return path

    def _write_next(self, st: _SenderState, chunks: list[Any]) -> Path:
        """Write under the next free number (another writer in the same folder may take a
        number between our check and our write: the exclusive link then fails and the next
        number is tried); the number is used up only if the write succeeds."""
        while True:
            while self._path(st.info.sender, st.counter).exists():
                st.counter += 1
            path = self._path(st.info.sender, st.counter)
            try:
                self._atomic(path, chunks)
            except FileExistsError:
                st.counter += 1
                continue
            break
        st.counter += 1
        self.files.append(path)
        return path

    def _atomic(self, path: Path, chunks: list[Any]) -> None:
        try:
            atomic_write(path, chunks)
        except WriteError as exc:
            raise WriteError(
                exc.errno,
                f"{exc.strerror}; the {len(self.files)} file(s) written before it are complete",
            ) from exc.__cause__

    def _state(self, info: StreamInfo) -> _SenderState:
        key = (info.stream_id, info.sender)
        st = self._senders.get(key)
        if st is None:
            st = self._senders[key] = _SenderState(info)
        elif info.detectors and not st.info.detectors:
            st.info = info
        return st

    # -- DataHandler protocol --------------------------------------------------------------
    def start(self, info: StreamInfo) -> None:
        self._info = info
        self._state(info)

    def handle(self, message: Message) -> None:
        self.write_message(message)

    def end(self, message: Message) -> None:
        self.write_message(message)

    def close(self) -> None:
        """Write the events still waiting for a full ``img_per_file`` group."""
        for st in self._senders.values():
            self._flush(st, final=True)

    def __enter__(self) -> FileWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- writing --------------------------------------------------------------------------
    def write_message(self, message: Any) -> list[Path]:
        """Write one received message of any format; returns the files it completed."""
        frames = as_frames(message)
        kind = detect(frames)
        if kind == "hdf5" and self.img_per_file is None:
            return self._write_hdf5_as_is(frames[0])
        parsed = parse(frames, threads=self.threads)
        return self.write_parsed(parsed)

    def write_parsed(self, parsed: ParsedMessage, frames: Any = None) -> list[Path]:
        """Write a message the caller has parsed already (no second parse). Pass its
        ``frames`` too so an HDF5 message is written byte for byte as it arrived."""
        if frames is not None and self.img_per_file is None:
            fr = as_frames(frames)
            if len(fr) == 1 and bytes(frame_bytes(fr[0])[:8]) == HDF5_SIGNATURE:
                if parsed.kind == "end":
                    info = StreamInfo(parsed.stream_id, parsed.sender, parsed.senders)
                    return self._end(info, parsed.totals or StreamTotals(), fr[0])
                if parsed.kind == "data":
                    st = self._state(StreamInfo(parsed.stream_id, parsed.sender, parsed.senders))
                    return [self._write_next(st, [frame_bytes(fr[0])])]
        info = (
            parsed.info or self._info or StreamInfo(parsed.stream_id, parsed.sender, parsed.senders)
        )
        if parsed.kind == "start":
            self._state(info)
            return []
        if parsed.kind == "end":
            return self._end(info, parsed.totals or StreamTotals(), None)
        if parsed.batch is None:
            return []
        return self.write_batch(parsed.batch, info)

    def _write_hdf5_as_is(self, frame: Any) -> list[Path]:
        with open_image(frame) as f:
            check_image(f, frame)
            a = f.attrs
            sid = a.get("stream_id", "")
            info = StreamInfo(
                stream_id=sid.decode() if isinstance(sid, bytes) else str(sid),
                sender=int(a.get("sender", 0)),
                senders=int(a.get("senders", 1)),
            )
            end = bool(a.get("end_of_stream", False))
        if end:
            parsed = parse([frame], decode=False)
            return self._end(info, parsed.totals or StreamTotals(), frame)
        st = self._state(info)
        return [self._write_next(st, [frame_bytes(frame)])]

    def _end(self, info: StreamInfo, totals: StreamTotals, frame: Any | None) -> list[Path]:
        """A sender ended: write what it still has waiting, then its end file (totals)."""
        self.totals[(info.stream_id, info.sender)] = totals
        st = self._state(info)
        written = self._flush(st, final=True)
        if not self.write_end:
            return written
        if frame is not None:
            image: Any = frame_bytes(frame)
        else:
            if st.serializer is None:
                st.serializer = HDF5BinarySerializer(
                    self.compression, fields=self.fields, threads=self.threads
                )
                st.serializer.start(st.info)
            image = st.serializer.end(totals)[0][0]
        path = self._path(st.info.sender, None)
        n = 1
        while True:
            while path.exists():
                path = self._path(st.info.sender, None, n)
                n += 1
            try:
                self._atomic(path, [image])
            except FileExistsError:
                continue
            break
        self.files.append(path)
        return [*written, path]

    def write_batch(self, batch: EventBatch, info: StreamInfo | None = None) -> list[Path]:
        """Write events (regrouped by ``img_per_file`` if set) as HDF5 files."""
        st = self._state(info or self._info or StreamInfo(stream_id=""))
        if len(batch) == 0:
            return []
        st.pending.append(batch)
        st.pending_events += len(batch)
        return self._flush(st, final=False)

    def _flush(self, st: _SenderState, *, final: bool) -> list[Path]:
        written: list[Path] = []
        per = self.img_per_file
        while st.pending_events and (per is None or st.pending_events >= per or final):
            take = st.pending_events if per is None else min(per, st.pending_events)
            batch = _take(st, take)
            if st.serializer is None:
                st.serializer = HDF5BinarySerializer(
                    self.compression, fields=self.fields, threads=self.threads
                )
                st.serializer.start(st.info)
            try:
                image = st.serializer.serialize(batch)[0][0]
                written.append(self._write_next(st, [image]))
            except BaseException:  # keep the events: nothing accepted is lost
                st.pending.insert(0, batch)
                st.pending_events += len(batch)
                raise
            self.events_written += len(batch)
        return written


def _take(st: _SenderState, n: int) -> EventBatch:
    """The first ``n`` pending events as one batch (concatenating only when regrouping)."""
    parts: list[EventBatch] = []
    got = 0
    while got < n:
        b = st.pending[0]
        need = n - got
        if len(b) <= need:
            parts.append(st.pending.pop(0))
            got += len(b)
        else:
            parts.append(_slice(b, 0, need))
            st.pending[0] = _slice(b, need, len(b))
            got += need
    st.pending_events -= n
    if len(parts) == 1:
        return parts[0]
    try:
        return EventBatch(
            np.concatenate([p.event_ids for p in parts]),
            np.concatenate([p.timestamps for p in parts]),
            {k: np.concatenate([p.arrays[k] for p in parts]) for k in parts[0].arrays},
            {k: np.concatenate([p.results[k] for p in parts]) for k in parts[0].results},
        )
    except (KeyError, ValueError) as exc:
        raise FormatError(f"file writer: batches of one sender differ in layout: {exc}") from exc


def _slice(b: EventBatch, lo: int, hi: int) -> EventBatch:
    return EventBatch(
        b.event_ids[lo:hi],
        b.timestamps[lo:hi],
        {k: v[lo:hi] for k, v in b.arrays.items()},
        {k: v[lo:hi] for k, v in b.results.items()},
        owners=b.owners,
    )
