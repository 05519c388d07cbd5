"""DECTRIS SIMPLON stream2 messages (CBOR), spec-exact, so stock stream2 clients read us.

Follows dectris/documentation ``stream_v2/README.md`` and its reference C client
(``stream_v2/examples/stream2.c``): every message starts with the self-described CBOR tag
55799 (the client checks the 3 magic bytes), is one definite-length map whose FIRST key is
``type``, fields typed Float are CBOR floats even when whole (the client rejects integers
there), and each channel image is tag 40 ``[[y, x], typed-array]`` whose typed array
(RFC 8746 tag 64+, little endian) holds tag 56500 ``["bslz4", elem_size, chunk]`` — the
chunk in the HDF5 32008 layout that dectris-compression decodes.

One ``image`` message per event; ``start`` comes from sender 0 only (a stream2 series has
one start); every sender sends an ``end`` carrying its totals in ``user_data``. Extensions
(documented in docs/formats.md): ``image_dtype: float32`` for keV/ADU output, and a
``user_data.lclstream`` map with the stream facts our receivers use for completeness.
"""

from __future__ import annotations

import datetime as _dt
import struct
import zlib
from collections.abc import Mapping
from typing import Any

import cbor2
import numpy as np

from lclstream import codec as _codec
from lclstream.errors import FormatError
from lclstream.formats._common import (
    ChunkBuffer,
    as_frames,
    compress_events,
    declares_size,
    decompress_chunk,
    frame_bytes,
    guarded,
)
from lclstream.formats.base import SerializerBase, end_fields, totals_from_fields
from lclstream.formats.cbor_scan import scan
from lclstream.limits import DEFAULT_LIMITS, Limits
from lclstream.protocols import (
    DetectorInfo,
    EventBatch,
    Message,
    ParsedMessage,
    StreamInfo,
    StreamTotals,
    WireMessage,
)

SELF_DESCRIBED = b"\xd9\xd9\xf7"  # tag 55799
TAG_MULTIDIM = 40
TAG_DECTRIS_COMPRESSION = 56500
#: RFC 8746 typed-array tags, little endian.
TYPED_ARRAY_TAG = {
    "|u1": 64,
    "<u2": 69,
    "<u4": 70,
    "<u8": 71,
    "|i1": 72,
    "<i2": 77,
    "<i4": 78,
    "<i8": 79,
    "<f2": 84,
    "<f4": 85,
    "<f8": 86,
}
_DTYPE_OF_TAG = {v: k for k, v in TYPED_ARRAY_TAG.items()}
_DTYPE_OF_TAG.update({65: ">u2", 66: ">u4", 67: ">u8", 73: ">i2", 74: ">i4", 75: ">i8"})
_DTYPE_OF_TAG.update({68: "|u1", 80: ">f2", 81: ">f4", 82: ">f8"})
HC_KEV_ANGSTROM = 12.398419843320026
TIME_BASE = 1_000_000_000  # Rational denominators: nanoseconds

#: Keys every message of ours carries (the stream_v2 README's tables; it ships no CDDL).
START_KEYS = (
    "type", "series_id", "series_unique_id", "arm_date", "beam_center_x", "beam_center_y",
    "channels", "count_time", "countrate_correction_enabled", "detector_description",
    "detector_serial_number", "detector_translation", "flatfield_enabled", "frame_time",
    "goniometer", "image_dtype", "image_size_x", "image_size_y", "incident_energy",
    "incident_wavelength", "number_of_images", "pixel_mask_enabled", "pixel_size_x",
    "pixel_size_y", "saturation_value", "sensor_material", "sensor_thickness",
    "threshold_energy", "user_data", "virtual_pixel_interpolation_enabled",
)  # fmt: skip
IMAGE_KEYS = (
    "type", "series_id", "series_unique_id", "image_id", "real_time", "series_date",
    "start_time", "stop_time", "user_data", "data",
)  # fmt: skip
END_KEYS = ("type", "series_id", "series_unique_id")
#: Keys the spec types Float (must be CBOR floats).
FLOAT_KEYS = frozenset(
    {
        "beam_center_x", "beam_center_y", "count_time", "frame_time", "incident_energy",
        "incident_wavelength", "pixel_size_x", "pixel_size_y", "sensor_thickness",
    }
)  # fmt: skip


def _head(major: int, n: int) -> bytes:
    """A CBOR initial byte (+ argument) for major type ``major`` and value/length ``n``."""
    m = major << 5
    if n < 24:
        return bytes((m | n,))
    if n < 0x100:
        return bytes((m | 24, n))
    if n < 0x10000:
        return bytes((m | 25,)) + struct.pack(">H", n)
    if n < 0x100000000:
        return bytes((m | 26,)) + struct.pack(">I", n)
    return bytes((m | 27,)) + struct.pack(">Q", n)


def series_id_of(stream_id: str) -> int:
    """stream2 ``series_id`` (an integer) for our string stream id: the number itself when the
    id is decimal, otherwise its CRC-32. ``series_unique_id`` carries the string."""
    s = stream_id.strip()
    if s.isdigit() and len(s) < 19:
        return int(s)
    return zlib.crc32(s.encode())


def image_shape(frame_shape: tuple[int, ...]) -> tuple[int, int]:
    """(image_size_y, image_size_x): module images stacked along y (JF4M → 4096 × 1024)."""
    if len(frame_shape) == 1:
        return 1, int(frame_shape[0])
    x = int(frame_shape[-1])
    y = int(np.prod(frame_shape[:-1], dtype=np.int64))
    return y, x


def assemble_modules(arr: np.ndarray, layout: tuple[int, int]) -> np.ndarray:
    """(n, rows*cols, my, mx) → (n, rows*my, cols*mx): module m at row m // cols, column
    m % cols, no gaps (the synthetic sources' layout)."""
    rows, cols = layout
    n, _, my, mx = arr.shape
    out = arr.reshape(n, rows, cols, my, mx).transpose(0, 1, 3, 2, 4)
    return np.ascontiguousarray(out).reshape(n, rows * my, cols * mx)


def disassemble_modules(img: np.ndarray, layout: tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`assemble_modules` for one (rows*my, cols*mx) image."""
    rows, cols = layout
    y, x = img.shape
    my, mx = y // rows, x // cols
    out = img.reshape(rows, my, cols, mx).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(out).reshape(rows * cols, my, mx)


def _describe(det: DetectorInfo) -> str:
    kind = det.kind.upper()
    if det.kind == "jungfrau" and len(det.frame_shape) == 3:
        mods = det.frame_shape[0]
        return f"JUNGFRAU {mods // 2}M" if mods % 2 == 0 else f"JUNGFRAU {mods} modules"
    return kind or "GENERIC"


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


class SimplonBinarySerializer(SerializerBase):
    """Batches → stream2 ``start``/``image``/``end`` messages (one image per event).

    Accepts LCLStreamer's options (``data_source_to_serialize``, ``polarization_*``,
    ``data_collection_rate``, ``detector_name``, ``detector_type``) and ours:
    ``compression`` (``bslz4``/``bitshuffle_with_lz4`` default, ``lz4``, or ``null``), ``channel``,
    ``count_time``/``frame_time`` (s), ``number_of_images``, ``sensor_material``,
    ``sensor_thickness`` (m), ``threads``; detector overrides ``detector_distance_m``,
    ``beam_center_x_px``/``beam_center_y_px``, ``pixel_size_m``, ``incident_energy_keV`` (they
    replace the source's DetectorInfo values in the start message); and ``assemble``: place a
    frame's modules into one 2-D image with the source's ``module_layout`` (recorded as
    ``user_data.lclstream.module_layout`` so :func:`parse` restores module frames) instead
    of stacking them along y.
    """

    type_name = "SimplonBinarySerializer"

    def __init__(
        self,
        data_source_to_serialize: str = "detector_data",
        compression: str | None = "bslz4",
        *,
        channel: str = "threshold_1",
        count_time: float | None = None,
        frame_time: float | None = None,
        number_of_images: int = 0,
        sensor_material: str = "Si",
        sensor_thickness: float | None = None,
        polarization_fraction: float | None = None,
        polarization_axis: list[float] | None = None,
        data_collection_rate: str | None = None,
        detector_name: str | None = None,
        detector_type: str | None = None,
        detector_distance_m: float | None = None,
        beam_center_x_px: float | None = None,
        beam_center_y_px: float | None = None,
        pixel_size_m: float | None = None,
        incident_energy_keV: float | None = None,
        assemble: bool = False,
        threads: int = 0,
    ) -> None:
        super().__init__()
        self.compression = _stream2_codec(compression)
        self.source = data_source_to_serialize
        self.channel = channel
        self.rate_hz = _rate(data_collection_rate)
        self.frame_time = float(frame_time) if frame_time else 1.0 / self.rate_hz
        self.count_time = float(count_time) if count_time else self.frame_time
        self.number_of_images = int(number_of_images)
        self.sensor_material = sensor_material
        self.sensor_thickness = sensor_thickness
        self.polarization = (polarization_fraction, polarization_axis)
        self.detector_name = detector_name
        self.detector_type = detector_type
        self.overrides = {
            "detector_distance_m": detector_distance_m,
            "beam_center_x_px": beam_center_x_px,
            "beam_center_y_px": beam_center_y_px,
            "pixel_size_m": pixel_size_m,
            "incident_energy_keV": incident_energy_keV,
        }
        self.assemble = bool(assemble)
        self.threads = int(threads)
        self._buffer = ChunkBuffer()
        self.series_date = _now()
        self.series_start_ns = 0
        self._series_date_cbor = b""

    # -- helpers ------------------------------------------------------------------------------
    def _det(self) -> DetectorInfo | None:
        dets = self.info.detectors
        return dets.get(self.source) or (next(iter(dets.values())) if dets else None)

    def _layout(self, frame_shape: tuple[int, ...]) -> tuple[int, int] | None:
        """The module layout to assemble ``frame_shape`` frames with, or None (stack along y)."""
        if not self.assemble or len(frame_shape) != 3:
            return None
        det = self._det()
        layout = det.module_layout if det else None
        if not layout or int(layout[0]) * int(layout[1]) != frame_shape[0]:
            return None
        return int(layout[0]), int(layout[1])

    def _image_shape(self, frame_shape: tuple[int, ...]) -> tuple[int, int]:
        layout = self._layout(frame_shape)
        if layout is None:
            return image_shape(frame_shape)
        return layout[0] * frame_shape[1], layout[1] * frame_shape[2]

    def _ids(self) -> dict[str, Any]:
        return {
            "series_id": series_id_of(self.info.stream_id),
            "series_unique_id": self.info.stream_id,
        }

    # -- Serializer protocol ------------------------------------------------------------------
    def _arm(self) -> None:
        self.series_date = _now()
        self.series_start_ns = int(self.series_date.timestamp() * 1e9)
        self._series_date_cbor = cbor2.dumps(self.series_date)

    def start(self, info: StreamInfo) -> list[WireMessage]:
        self._arm()
        return super().start(info)

    def _start_frames(self) -> list[Message]:
        """stream2 has one start message per series: sender 0 sends it."""
        if self.info.sender != 0:
            return []
        return [[SELF_DESCRIBED + cbor2.dumps(self.start_message())]]

    def start_message(self) -> dict[str, Any]:
        """The start map (also used by tests against the spec's key list)."""
        det = self._det()
        frame_shape = det.frame_shape if det else (0, 0)
        y, x = self._image_shape(tuple(frame_shape))
        layout = self._layout(tuple(frame_shape))
        dtype = np.dtype(det.dtype) if det else np.dtype(np.uint16)
        ov = self.overrides
        e_kev = ov["incident_energy_keV"] or (
            det.photon_energy_keV if det and det.photon_energy_keV else None
        )
        energy_ev = float(e_kev * 1e3) if e_kev else 0.0
        bc = det.beam_center_px if det and det.beam_center_px else (x / 2.0, y / 2.0)
        if ov["beam_center_x_px"] is not None:
            bc = (float(ov["beam_center_x_px"]), bc[1])
        if ov["beam_center_y_px"] is not None:
            bc = (bc[0], float(ov["beam_center_y_px"]))
        px = float(ov["pixel_size_m"] or (det.pixel_size_m if det and det.pixel_size_m else 0.0))
        dist = float(
            ov["detector_distance_m"]
            or (det.detector_distance_m if det and det.detector_distance_m else 0.0)
        )
        thickness = self.sensor_thickness
        if thickness is None:
            thickness = 320e-6 if det and det.kind in ("jungfrau", "epix10ka") else 0.0
        # photon counts are rounded at half a photon: that is the effective threshold
        threshold = energy_ev / 2 if self.info.calibration == "photons" else 0.0
        user: dict[str, Any] = {
            "lclstream": {**self.stream_facts(), "frame_shape": list(frame_shape)}
        }
        pf, pa = self.polarization
        if pf is not None:
            user["lclstream"]["polarization_fraction"] = float(pf)
        if pa is not None:
            user["lclstream"]["polarization_axis"] = [float(v) for v in pa]
        if self.detector_name:
            user["lclstream"]["detector_name"] = self.detector_name
        if layout is not None:
            user["lclstream"]["module_layout"] = list(layout)
        msg: dict[str, Any] = {"type": "start", **self._ids()}
        msg.update(
            arm_date=self.series_date,
            beam_center_x=float(bc[0]),
            beam_center_y=float(bc[1]),
            channels=[self.channel],
            count_time=float(self.count_time),
            countrate_correction_enabled=False,
            detector_description=self.detector_type or (_describe(det) if det else "GENERIC"),
            detector_serial_number=det.serial if det else "",
            detector_translation=[0.0, 0.0, dist],
            flatfield_enabled=False,
            frame_time=float(self.frame_time),
            goniometer={"omega": {"increment": 0.0, "start": 0.0}},
            image_dtype=dtype.name,
            image_size_x=int(x),
            image_size_y=int(y),
            incident_energy=energy_ev,
            incident_wavelength=float(HC_KEV_ANGSTROM / e_kev) if e_kev else 0.0,
            number_of_images=self.number_of_images,
            pixel_mask_enabled=False,
            pixel_size_x=px,
            pixel_size_y=px,
            saturation_value=int(np.iinfo(dtype).max) if dtype.kind in "ui" else 0,
            sensor_material=self.sensor_material,
            sensor_thickness=float(thickness),
            threshold_energy={self.channel: float(threshold)},
            user_data=user,
            virtual_pixel_interpolation_enabled=False,
        )
        return msg

    def serialize(self, batch: EventBatch) -> list[WireMessage]:
        arr = batch.arrays.get(self.source)
        if arr is None:
            if len(batch.arrays) == 1:
                arr = next(iter(batch.arrays.values()))
            else:
                raise FormatError(
                    f"SimplonBinarySerializer: the batch has no {self.source!r} "
                    f"(data_source_to_serialize); it has {sorted(batch.arrays)}"
                )
        if not self._series_date_cbor:  # serialize() without start(): still valid stream2
            self._arm()
        arr = np.ascontiguousarray(arr)
        if arr.dtype.byteorder == ">":
            raise FormatError("SimplonBinarySerializer: big-endian frames are not supported")
        frame_shape = tuple(arr.shape[1:])
        y, x = self._image_shape(frame_shape)
        layout = self._layout(frame_shape)
        if layout is not None and len(arr):
            arr = assemble_modules(arr, layout)
        tag = TYPED_ARRAY_TAG.get(arr.dtype.str)
        if tag is None:
            raise FormatError(f"SimplonBinarySerializer: dtype {arr.dtype} has no stream2 tag")
        codec = None if self.compression is None else _codec.TABLE[self.compression]
        if self.compression is not None and len(arr):
            chunks: list[Any] = compress_events(
                arr, self.compression, threads=self.threads, buffer=self._buffer
            )
        else:
            chunks = [memoryview(a).cast("B") for a in arr]
        out: list[WireMessage] = []
        sid = cbor2.dumps("series_id") + cbor2.dumps(series_id_of(self.info.stream_id))
        suid = cbor2.dumps("series_unique_id") + cbor2.dumps(self.info.stream_id)
        facts = self.stream_facts()
        count_ns = int(round(self.count_time * TIME_BASE))
        for i in range(len(arr)):
            image_id = self.sequence * self.info.senders + self.info.sender
            ts = int(batch.timestamps[i])
            start_ns = max(0, ts - self.series_start_ns) if ts else 0
            user = {
                "lclstream": {
                    **facts,
                    "sequence": self.sequence,
                    "event_id": int(batch.event_ids[i]),
                    "timestamp": ts,
                    "frame_shape": list(frame_shape),
                }
            }
            if layout is not None:
                user["lclstream"]["module_layout"] = list(layout)
            if batch.results:
                user["lclstream"]["results"] = _event_results(batch.results, i)
            head = b"".join(
                (
                    SELF_DESCRIBED,
                    _head(5, len(IMAGE_KEYS)),
                    cbor2.dumps("type"),
                    cbor2.dumps("image"),
                    sid,
                    suid,
                    cbor2.dumps("image_id"),
                    cbor2.dumps(image_id),
                    cbor2.dumps("real_time"),
                    cbor2.dumps([count_ns, TIME_BASE]),
                    cbor2.dumps("series_date"),
                    self._series_date_cbor,
                    cbor2.dumps("start_time"),
                    cbor2.dumps([start_ns, TIME_BASE]),
                    cbor2.dumps("stop_time"),
                    cbor2.dumps([start_ns + count_ns, TIME_BASE]),
                    cbor2.dumps("user_data"),
                    cbor2.dumps(user),
                    cbor2.dumps("data"),
                    _head(5, 1),
                    cbor2.dumps(self.channel),
                    _head(6, TAG_MULTIDIM),
                    _head(4, 2),
                    cbor2.dumps([y, x]),
                    _head(6, tag),
                )
            )
            chunk = chunks[i]
            n = len(memoryview(chunk).cast("B"))
            if codec is not None:
                head += b"".join(
                    (
                        _head(6, TAG_DECTRIS_COMPRESSION),
                        _head(4, 3),
                        cbor2.dumps(codec.stream2_name),
                        cbor2.dumps(arr.dtype.itemsize if codec.bitshuffled else 0),
                        _head(2, n),
                    )
                )
            else:
                head += _head(2, n)
            out.append(self._data([b"".join((head, chunk))], 1))
        return out

    def end(self, totals: StreamTotals) -> list[WireMessage]:
        user = {
            "lclstream": {
                **self.stream_facts(),
                "end_of_stream": True,
                "sequence": self.sequence,
                **end_fields(totals),
            }
        }
        msg = {"type": "end", **self._ids(), "user_data": user}
        return [WireMessage("end", [SELF_DESCRIBED + cbor2.dumps(msg)])]


def _rate(text: str | None) -> float:
    """'120Hz' / '120 Hz' / '1kHz' → Hz (LCLS default 120 Hz)."""
    if not text:
        return 120.0
    t = str(text).strip().lower().replace(" ", "")
    mult = 1.0
    for suffix, m in (("khz", 1e3), ("mhz", 1e6), ("hz", 1.0)):
        if t.endswith(suffix):
            t, mult = t[: -len(suffix)], m
            break
    try:
        v = float(t) * mult
    except ValueError:
        return 120.0
    return v if v > 0 else 120.0


def _stream2_codec(compression: str | None) -> str | None:
    """The codec for a serializer's ``compression`` (a codec name or LCLStreamer alias whose
    codec DECTRIS stream2 names in tag 56500), None for no compression."""
    if compression is None or str(compression).lower() in ("null", "none"):
        return None
    name = _codec.ALIASES.get(str(compression), str(compression))
    row = _codec.TABLE.get(name)
    if row is None or row.stream2_name is None:
        allowed = [
            f"{c.name} ({a})" if (a := _alias_of(c.name)) else c.name
            for c in _codec.TABLE.values()
            if c.stream2_name is not None
        ]
        raise FormatError(
            f"SimplonBinarySerializer: compression {compression!r} is not a stream2 "
            f"algorithm here; use {', '.join(allowed)} or null"
        )
    return name


def _alias_of(codec: str) -> str | None:
    return next((a for a, c in _codec.ALIASES.items() if c == codec), None)


# -- parsing --------------------------------------------------------------------------------
class _Compressed:
    __slots__ = ("algorithm", "elem_size", "data")

    def __init__(self, algorithm: str, elem_size: int, data: bytes) -> None:
        self.algorithm, self.elem_size, self.data = algorithm, elem_size, data


class _Typed:
    __slots__ = ("dtype", "payload")

    def __init__(self, dtype: np.dtype[Any], payload: Any) -> None:
        self.dtype, self.payload = dtype, payload


def _decode_image(
    dims: Any, typed: Any, decode: bool, limits: Limits = DEFAULT_LIMITS, nbytes: int = 0
) -> np.ndarray:
    """One tag-40 image; its declared shape is checked against ``limits``, the message size
    and the chunk's own size header before anything is allocated or decoded."""
    if not isinstance(typed, _Typed):
        raise FormatError("stream2: tag 40 array does not hold a typed array")
    if not isinstance(dims, (list, tuple)) or len(dims) != 2:
        raise FormatError(f"stream2: image dimensions {dims!r:.60} are not [y, x]")
    dt = typed.dtype
    y, x = limits.check_shape(dims, dt.itemsize, "stream2 image")
    want = y * x * dt.itemsize
    p = typed.payload
    if isinstance(p, _Compressed):
        codec = _codec.from_stream2(p.algorithm)
        if codec is None:
            raise FormatError(f"stream2: compression {p.algorithm!r} is not supported")
        if not isinstance(p.data, (bytes, bytearray, memoryview)):
            raise FormatError("stream2: tag 56500 data is not a byte string")
        limits.check_decoded(want, nbytes, "stream2 image")
        limits.check_chunk(want, "stream2 image")
        if declares_size(codec):
            declared = int.from_bytes(bytes(p.data[:8]), "big")
            if declared != want:
                raise FormatError(
                    f"stream2: {codec} chunk declares {declared} bytes, the image "
                    f"{y}x{x} {dt} has {want}"
                )
        if not decode:
            return np.empty((0,), dt)
        return decompress_chunk(p.data, codec, dt, (y, x))
    if not isinstance(p, (bytes, bytearray)):
        raise FormatError("stream2: typed array content is not a byte string")
    if len(p) != y * x * dt.itemsize:
        raise FormatError(
            f"stream2: image {y}x{x} {dt} needs {y * x * dt.itemsize} bytes, got {len(p)}"
        )
    return np.frombuffer(p, dt).reshape(y, x)


@guarded("stream2")
def parse(message: Any, *, decode: bool = True, limits: Limits = DEFAULT_LIMITS) -> ParsedMessage:
    """One stream2 message → ParsedMessage. Images come back in their original frame shape
    when ``user_data.lclstream.frame_shape`` says it, else as (1, y, x)."""
    frames = as_frames(message)
    if len(frames) != 1:
        raise FormatError(f"stream2: a message is one frame, got {len(frames)}")
    mv = frame_bytes(frames[0])
    nbytes = len(mv)
    if bytes(mv[:3]) != SELF_DESCRIBED:
        raise FormatError(f"stream2: message does not start with tag 55799 (got {bytes(mv[:3])!r})")
    limits.check_message(nbytes, "stream2")
    scan(mv, limits, "stream2")

    def hook(*args: Any) -> Any:
        # cbor2 >= 6 calls hook(tag, immutable); older versions hook(decoder, tag)
        tag = args[0] if isinstance(args[0], cbor2.CBORTag) else args[1]
        if tag.tag == TAG_DECTRIS_COMPRESSION:
            v = tag.value
            if not (isinstance(v, (list, tuple)) and len(v) == 3):
                raise FormatError("stream2: tag 56500 content is not [algorithm, elem_size, bytes]")
            return _Compressed(str(v[0]), int(v[1]), v[2])
        if tag.tag in _DTYPE_OF_TAG:
            return _Typed(np.dtype(_DTYPE_OF_TAG[tag.tag]), tag.value)
        if tag.tag == TAG_MULTIDIM:
            v = tag.value
            if not (isinstance(v, (list, tuple)) and len(v) == 2):
                raise FormatError("stream2: tag 40 content is not [dims, array]")
            return _decode_image(v[0], v[1], decode, limits, nbytes)
        return tag

    try:
        msg = cbor2.loads(mv, tag_hook=hook)
    except FormatError:
        raise
    except Exception as exc:
        cause = exc.__cause__ or exc.__context__  # cbor2 wraps what a tag hook raises
        if isinstance(cause, FormatError):
            raise cause from None
        raise FormatError(f"stream2: {nbytes}-byte message is not valid CBOR: {exc}") from exc
    if not isinstance(msg, Mapping) or not msg:
        raise FormatError("stream2: message is not a CBOR map")
    if next(iter(msg)) != "type":
        raise FormatError("stream2: 'type' is not the first key of the message map")
    kind = msg["type"]
    user = msg.get("user_data")
    ours: dict[str, Any] = dict(user.get("lclstream", {})) if isinstance(user, Mapping) else {}
    stream_id = str(msg.get("series_unique_id", ours.get("stream_id", "")))
    sender = int(ours.get("sender", 0))
    senders = int(ours.get("senders", 1))
    info = StreamInfo(
        stream_id=stream_id,
        sender=sender,
        senders=senders,
        source_identifier=str(ours.get("source_identifier", "")),
        calibration=ours.get("calibration", "raw"),
    )
    if kind == "start":
        shape = tuple(int(s) for s in ours.get("frame_shape", [])) or (
            int(msg.get("image_size_y", 0)),
            int(msg.get("image_size_x", 0)),
        )
        e_ev = float(msg.get("incident_energy", 0.0))
        px = float(msg.get("pixel_size_x", 0.0))
        dist = msg.get("detector_translation", [0.0, 0.0, 0.0])
        info.detectors["detector_data"] = DetectorInfo(
            name="detector_data",
            kind=str(msg.get("detector_description", "generic")).split(" ")[0].lower(),
            frame_shape=shape,
            dtype=str(msg.get("image_dtype", "uint16")),
            pixel_size_m=px or None,
            detector_distance_m=float(dist[2]) if len(dist) == 3 and dist[2] else None,
            photon_energy_keV=e_ev / 1e3 if e_ev else None,
            beam_center_px=(
                float(msg.get("beam_center_x", 0.0)),
                float(msg.get("beam_center_y", 0.0)),
            ),
            serial=str(msg.get("detector_serial_number", "")),
            module_layout=_layout_of(ours),
        )
        return ParsedMessage("start", stream_id, sender, senders, -1, info=info, nbytes=nbytes)
    if kind == "end":
        totals = totals_from_fields(ours)
        seq = int(ours.get("sequence", -1))
        return ParsedMessage(
            "end", stream_id, sender, senders, seq, totals=totals, info=info, nbytes=nbytes
        )
    if kind != "image":
        raise FormatError(f"stream2: unknown message type {kind!r}")
    data = msg.get("data")
    if not isinstance(data, Mapping) or not data:
        raise FormatError("stream2: image message has no data map")
    arrays: dict[str, np.ndarray] = {}
    shape = tuple(int(s) for s in ours.get("frame_shape", []))
    layout = _layout_of(ours)
    for ch, img in data.items():
        if not isinstance(img, np.ndarray):
            raise FormatError(f"stream2: channel {ch!r} is not a tag 40 array")
        name = "detector_data" if len(data) == 1 else str(ch)
        if (
            decode
            and layout is not None
            and len(shape) == 3
            and img.shape == (layout[0] * shape[1], layout[1] * shape[2])
            and layout[0] * layout[1] == shape[0]
        ):
            arrays[name] = disassemble_modules(img, layout).reshape((1, *shape))
        elif decode and shape and int(np.prod(shape)) == img.size:
            arrays[name] = img.reshape((1, *shape))
        else:
            arrays[name] = img.reshape((1, *img.shape))
    image_id = int(msg.get("image_id", 0))
    seq = int(ours.get("sequence", image_id))
    batch = EventBatch(
        np.array([int(ours.get("event_id", image_id))], np.uint64),
        np.array([int(ours.get("timestamp", 0))], np.uint64),
        arrays,
    )
    return ParsedMessage(
        "data", stream_id, sender, senders, seq, batch=batch, info=info, nbytes=nbytes
    )


def _event_results(results: Mapping[str, np.ndarray], i: int) -> dict[str, Any]:
    """Event ``i``'s results for its image's ``user_data.lclstream.results``: scalars as
    numbers, arrays as lists; peak lists (``peak*``) cut to the event's ``nPeaks`` (the
    batch pads them)."""
    n = int(results["nPeaks"][i]) if "nPeaks" in results else None
    out: dict[str, Any] = {}
    for k, v in results.items():
        a = np.asarray(v[i])
        if a.ndim == 0:
            out[k] = a.item()
        else:
            out[k] = (a[:n] if n is not None and k.startswith("peak") else a).tolist()
    return out


def _layout_of(ours: Mapping[str, Any]) -> tuple[int, int] | None:
    """``user_data.lclstream.module_layout`` as (rows, cols), if there is a valid one."""
    v = ours.get("module_layout")
    if isinstance(v, (list, tuple)) and len(v) == 2:
        try:
            rows, cols = int(v[0]), int(v[1])
        except (TypeError, ValueError):
            return None
        if rows > 0 and cols > 0:
            return rows, cols
    return None
