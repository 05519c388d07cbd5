"""The YAML configuration: LCLStreamer's schema (``models/parameters.py``) plus our options.

Every component is a mapping with a ``type:`` discriminator, as in LCLStreamer, so a config
written for LCLStreamer's generic sources (``InternalEventSource``, ``GenericRandomNumpyArray``,
...) validates and runs unchanged. Types that need psana are accepted here (so psana configs
validate) and refused when the pipeline opens them if psana is not installed. Every option we
add has a default, so ``{type: SimplonBinarySerializer}`` alone is a valid serializer.

:func:`load_config` turns any validation failure into ONE :class:`~lclstream.errors.ConfigError`
line naming every offending key path (unknown keys first, with the closest valid name), the bad
value and what is allowed.
"""

from __future__ import annotations

import difflib
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from lclstream import detectors as _detectors
from lclstream.errors import ConfigError

if TYPE_CHECKING:
    from lclstream.handlers import (
        BinaryDataStreamingDataHandler,
        BinaryFileWritingDataHandler,
        InProcessDataHandler,
    )
    from lclstream.protocols import Calibration, DetectorInfo, EventSource, Serializer
    from lclstream.reduce import Reduction


def stage_threads(requested: int) -> int:
    """The kernel threads of a run's stage: ``requested``, or for 0 half the usable cores (at
    least 1).

    Why half: the read stage (calibration) and the serialize stage (compression) run at the
    same time, each with its own kernel threads; kernels that each took every core made the two
    stages fight over them (on the 2-core machine one thread each streamed 5-10% more events).
    """
    if requested > 0:
        return requested
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, cores // 2)


class _Model(BaseModel):
    """Base of every config model: unknown keys are errors, never silently ignored."""

    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- event sources


class InternalEventSourceParameters(_Model):
    """Events generated in-process (LCLStreamer's name); data come from the data sources."""

    type: Literal["InternalEventSource"]
    number_of_events_to_generate: int = Field(1000, ge=0)
    #: Event id of the first event (ids count up from it).
    first_event: int = Field(0, ge=0)


class Hdf5EventSourceParameters(_Model):
    """Events read from HDF5/CXI files, one event per index of the first axis.

    ``files`` are paths or globs; when empty, the files come from ``source_identifier``
    (``exp=...,run=...`` under the data root, or ``files=...``/``dir=...``).
    """

    type: Literal["Hdf5EventSource"]
    files: list[str] = Field(default_factory=list)
    #: Events to read per HDF5 call (read_direct into one reused buffer).
    chunk_events: int = Field(8, ge=1)
    first_event: int = Field(0, ge=0)
    number_of_events: int | None = Field(None, ge=0)
    #: Per-event ids and timestamps (ns), used when a file has them (lclstream's own do).
    event_id_path: str = "/LCLS/eventNumber"
    timestamp_path: str = "/LCLS/timestamp"


class Psana1EventSourceParameters(_Model):
    """LCLS-I psana events (needs psana; accepted so LCLStreamer configs validate)."""

    type: Literal["Psana1EventSource"]


class Psana2EventSourceParameters(_Model):
    """LCLS-II psana events (needs psana; the psana2 source plugs in through entry points)."""

    type: Literal["Psana2EventSource"]
    #: resume: the run's events before this index are passed over, their detector data
    #: never read (one reader only: with psana's MPI event builders no rank knows an
    #: event's index in the run)
    first_event: int = Field(0, ge=0)


class PluginEventSourceParameters(BaseModel):
    """An event source a plug-in provides (entry-point group ``lclstream.sources``).

    Its options are the plug-in's own; the plug-in checks them when it opens the source.
    """

    model_config = ConfigDict(extra="allow")
    type: str


def _plugin_types(kind: str) -> set[str]:
    # imported late: lclstream.sources imports this module
    from lclstream.sources.registry import plugin_type_names

    return plugin_type_names(kind)


def _tagger(builtin: tuple[str, ...], kind: str) -> Any:
    """Discriminator: built-in type names validate with their model; a plug-in's name with
    the open plug-in model; anything else is an invalid tag (listed with what is allowed)."""

    def tag(value: Any) -> str | None:
        t = value.get("type") if isinstance(value, Mapping) else getattr(value, "type", None)
        if t is None or t in builtin:
            return t  # type: ignore[no-any-return]
        if isinstance(t, str) and t in _plugin_types(kind):
            return _PLUGIN_TAG
        return str(t)

    return Discriminator(tag)


_PLUGIN_TAG = "plugin"


def _tagged_union(members: tuple[type[BaseModel], ...], plugin: type[BaseModel], kind: str) -> Any:
    names = tuple(str(typing.get_args(m.model_fields["type"].annotation)[0]) for m in members)
    tagged = tuple(Annotated[m, Tag(n)] for m, n in zip(members, names, strict=True))
    return Annotated[
        Union[(*tagged, Annotated[plugin, Tag(_PLUGIN_TAG)])],  # noqa: UP007
        _tagger(names, kind),
    ]


if TYPE_CHECKING:  # the same union, spelled statically for type checkers
    EventSourceParameters = (
        InternalEventSourceParameters
        | Hdf5EventSourceParameters
        | Psana1EventSourceParameters
        | Psana2EventSourceParameters
        | PluginEventSourceParameters
    )
else:
    EventSourceParameters = _tagged_union(
        (
            InternalEventSourceParameters,
            Hdf5EventSourceParameters,
            Psana1EventSourceParameters,
            Psana2EventSourceParameters,
        ),
        PluginEventSourceParameters,
        "event_source",
    )

# --------------------------------------------------------------------------- data sources

# Detector choices are the detector table's names (lclstream.detectors); type checkers see str.
if TYPE_CHECKING:
    DetectorModel = str
    DetectorKindName = str
    CalibrationKind = str
else:
    DetectorModel = Literal[_detectors.MODEL_NAMES]
    DetectorKindName = Literal[tuple(_detectors.KINDS)]
    CalibrationKind = Literal[(*_detectors.CALIBRATED_KINDS, "auto")]


class SyntheticDetectorParameters(_Model):
    """Realistic synthetic SFX frames (raw, with gain bits) and matching calibration constants."""

    type: Literal["SyntheticDetector"]
    #: A model of lclstream.detectors.MODELS (jungfrau4M: 8 Jungfrau modules, ...).
    detector: DetectorModel = "jungfrau4M"
    hit_fraction: float = Field(0.1, ge=0.0, le=1.0)
    seed: int = 1
    photon_energy_keV: float = Field(9.5, gt=0.0)
    #: Base frames generated at start-up; events cycle through them (no per-event allocation).
    pool_frames: int = Field(16, ge=1, le=256)
    #: Mean number of Bragg peaks on a hit.
    peaks_per_hit: int = Field(80, ge=0)
    #: Mean photons per pixel of the water-ring/diffuse background.
    background_photons: float = Field(0.08, ge=0.0)
    #: Event rate used for timestamps (Hz).
    rate_hz: float = Field(120.0, gt=0.0)
    detector_distance_m: float = Field(0.1, gt=0.0)


class GenericRandomNumpyArrayParameters(_Model):
    """LCLStreamer's random array: ``array_shape`` "20,2", ``array_dtype`` a numpy dtype name."""

    type: Literal["GenericRandomNumpyArray"]
    array_shape: str | list[int] = "4,4"
    array_dtype: str = "float32"
    seed: int | None = None


class IntValueParameters(_Model):
    type: Literal["IntValue"]
    value: int = 0


class FloatValueParameters(_Model):
    type: Literal["FloatValue"]
    value: float = 0.0


class ConstValueParameters(_Model):
    """LCLStreamer's constant: the same scalar or small array in every event. ``value`` is a
    number, a list, or LCLStreamer's comma text (``6,1``; ``6,`` is a one-element list);
    it must be representable exactly in ``dtype``."""

    type: Literal["ConstValue"]
    value: float | int | list[float | int] | str
    dtype: str

    @field_validator("dtype")
    @classmethod
    def _numeric_dtype(cls, v: str) -> str:
        import numpy as np

        try:
            dt = np.dtype(v)
        except TypeError:
            raise ValueError(f"{v!r} is not a numpy dtype") from None
        if dt.kind not in "biuf":
            raise ValueError(f"{v!r} is not a numeric dtype")
        return v

    def values(self) -> Any:
        """The value as an array of ``dtype``; raises ValueError if it does not fit exactly."""
        import numpy as np

        raw: Any = self.value
        if isinstance(raw, str):
            parts = [p.strip() for p in raw.split(",")]
            try:
                nums = [float(p) if any(c in p for c in ".eE") else int(p) for p in parts if p]
            except ValueError:
                raise ValueError(f"value {raw!r} is not a number or comma list") from None
            if not nums:
                raise ValueError(f"value {raw!r} holds no number")
            raw = nums if "," in raw else nums[0]
        arr = np.array(raw, dtype=self.dtype)
        if not np.array_equal(arr, np.array(raw)):
            raise ValueError(f"value {self.value!r} is not exactly representable as {self.dtype}")
        return arr

    @model_validator(mode="after")
    def _fits(self) -> ConstValueParameters:
        self.values()
        return self


class SourceIdentifierParameters(_Model):
    """The config's ``source_identifier`` as a per-event string (LCLStreamer's)."""

    type: Literal["SourceIdentifier"]


class Hdf5DatasetParameters(_Model):
    """One dataset of the files of an ``Hdf5EventSource``, indexed by event along axis 0."""

    type: Literal["Hdf5Dataset"]
    path: str = "/entry_1/data_1/data"
    #: Detector kind for calibration ("jungfrau", "epix10ka", "generic").
    kind: DetectorKindName = "generic"
    photon_energy_keV: float | None = Field(None, gt=0.0)
    #: Dataset with per-event photon energies in eV (the first one is the run's); optional.
    photon_energy_path: str | None = "/LCLS/photon_energy_eV"


class _PsanaDataSource(_Model):
    psana_name: str
    psana_fields: str | list[str] | None = None
    dtype: str | None = None


class Psana1DetectorInterfaceParameters(_PsanaDataSource):
    type: Literal["Psana1DetectorInterface"]


class Psana2DetectorInterfaceParameters(_PsanaDataSource):
    type: Literal["Psana2DetectorInterface"]


class Psana1TimestampParameters(_Model):
    type: Literal["Psana1Timestamp"]


class Psana2TimestampParameters(_Model):
    type: Literal["Psana2Timestamp"]


class Psana1RunInfoParameters(_Model):
    type: Literal["Psana1RunInfo"]


class Psana2RunInfoParameters(_Model):
    type: Literal["Psana2RunInfo"]


class PluginDataSourceParameters(BaseModel):
    """A data source type a plug-in declares (entry-point group ``lclstream.data_sources``);
    the plug-in's event source reads its options."""

    model_config = ConfigDict(extra="allow")
    type: str


if TYPE_CHECKING:
    DataSourceParameters = (
        SyntheticDetectorParameters
        | GenericRandomNumpyArrayParameters
        | IntValueParameters
        | FloatValueParameters
        | ConstValueParameters
        | SourceIdentifierParameters
        | Hdf5DatasetParameters
        | Psana1DetectorInterfaceParameters
        | Psana2DetectorInterfaceParameters
        | Psana1TimestampParameters
        | Psana2TimestampParameters
        | Psana1RunInfoParameters
        | Psana2RunInfoParameters
        | PluginDataSourceParameters
    )
else:
    DataSourceParameters = _tagged_union(
        (
            SyntheticDetectorParameters,
            GenericRandomNumpyArrayParameters,
            IntValueParameters,
            FloatValueParameters,
            ConstValueParameters,
            SourceIdentifierParameters,
            Hdf5DatasetParameters,
            Psana1DetectorInterfaceParameters,
            Psana2DetectorInterfaceParameters,
            Psana1TimestampParameters,
            Psana2TimestampParameters,
            Psana1RunInfoParameters,
            Psana2RunInfoParameters,
        ),
        PluginDataSourceParameters,
        "data_source",
    )

#: Data source types that need psana (refused at run time when psana is not installed).
PSANA_TYPES = frozenset(
    {
        "Psana1EventSource",
        "Psana2EventSource",
        "Psana1DetectorInterface",
        "Psana2DetectorInterface",
        "Psana1Timestamp",
        "Psana2Timestamp",
        "Psana1RunInfo",
        "Psana2RunInfo",
    }
)

# --------------------------------------------------------------------------- processing


class CommonModeParameters(_Model):
    """psana-style common-mode correction, in ADU before the gain factor (docs/calibration.md):
    per bank of ``bank_rows`` x ``bank_cols`` pixels, the median (or mean) of the eligible-gain,
    unmasked pixels below ``threshold`` is subtracted when at least ``min_pixels`` take part
    and its magnitude is under ``cormax``. Unset bank sizes take the detector's default
    (Jungfrau 1 x 64, ePix10ka 176 x 48)."""

    method: Literal["median", "mean"] = "median"
    bank_rows: int | None = Field(None, ge=1)
    bank_cols: int | None = Field(None, ge=1)
    threshold: float = 100.0
    cormax: float = Field(100.0, ge=0.0)
    min_pixels: int = Field(10, ge=1)

    def as_options(self) -> dict[str, Any]:
        """The ``common_mode=`` mapping of :mod:`lclstream.calib` (unset keys left out)."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class CalibrationParameters(_Model):
    """Calibration of one data source.

    ``mode: calib`` (default) calibrates to ``output`` (photon counts unless asked otherwise);
    ``mode: raw`` passes raw frames through. The photon energy comes from the source's
    metadata when ``photon_energy_keV`` is not given.
    """

    detector: CalibrationKind = "auto"
    #: A constants file (.h5/.npz) or folder; ``synthetic`` (the synthetic source's own) or
    #: ``psana`` (what psana loaded for the run from LCLS' calibration database).
    constants: str = "synthetic"
    mode: Literal["calib", "raw"] = "calib"
    output: Literal["photons", "keV", "adu"] = "photons"
    photon_energy_keV: float | None = Field(None, gt=0.0)
    #: Output dtype of photon counts (uint16 saturates; uint32 for very bright data).
    dtype: Literal["uint16", "uint32", "float32"] | None = None
    #: Calibration threads; 0: half the usable cores (the serialize stage compresses meanwhile).
    threads: int = Field(0, ge=0)
    #: Common mode: ``true`` for the detector's defaults, or its parameters.
    common_mode: CommonModeParameters | None = None

    @field_validator("common_mode", mode="before")
    @classmethod
    def _common_mode_flag(cls, v: Any) -> Any:
        if v is True:
            return {}  # the detector's defaults
        return None if v is False else v

    def build(self, name: str, info: DetectorInfo, source: EventSource) -> Any:
        """The prepared calibrator of data source ``name`` (constants folded in once).

        Its ``dtype`` is the output dtype; ``constants: synthetic`` asks the source for its
        own constants (:meth:`EventSource.constants`).
        """
        from lclstream import calib

        where = f"processing_pipeline.calibration.{name}"
        detector = info.kind.lower() if self.detector == "auto" else self.detector
        energy = self.photon_energy_keV or info.photon_energy_keV
        if self.output == "photons" and energy is None:
            raise ConfigError(
                f"{where}.photon_energy_keV: needed for photon output (the source gives none)"
            )
        constants: Any = self.constants
        if constants in ("synthetic", "psana"):
            constants = dict(source.constants(name))
        options: dict[str, Any] = {"threads": stage_threads(self.threads), "output": self.output}
        if energy is not None:
            options["photon_energy_keV"] = float(energy)
        if self.dtype is not None:
            options["dtype"] = self.dtype
        if self.common_mode is not None:
            options["common_mode"] = self.common_mode.as_options()
        try:
            return calib.make_calibrator(detector, constants, **options)
        except KeyError as e:
            raise ConfigError(f"{where}.constants: no {e.args[0]} in the constants") from None
        except (OSError, ValueError) as e:
            if isinstance(e, ConfigError):
                raise
            raise ConfigError(f"{where}: {e}") from None

    @property
    def calibration(self) -> Calibration:
        """What the frames are after this step (the streams' ``calibration`` fact)."""
        if self.mode == "raw":
            return "raw"
        return "photons" if self.output == "photons" else self.output


class ThresholdParameters(_Model):
    """Values below ``min`` become 0 (in the calibrated unit)."""

    min: float = 1.0


class RoiParameters(_Model):
    """A rectangular region per module: [start, stop) along y and x; ``modules`` to keep."""

    modules: list[int] | None = None
    y: tuple[int, int] | None = None
    x: tuple[int, int] | None = None


class BinningParameters(_Model):
    """Sum ``factor``×``factor`` pixel blocks within each module."""

    factor: int = Field(2, ge=1)


class PeakfinderParameters(_Model):
    """peakfinder8 on each calibrated frame, named as OM's ``peakfinder8_peak_detection``
    names them (the ASIC layout and the radius map come from the detector model)."""

    adc_threshold: float = 0.0
    minimum_snr: float = 5.0
    min_pixel_count: int = Field(2, ge=1)
    max_pixel_count: int = Field(20, ge=1)
    local_bg_radius: int = Field(3, ge=0, le=1024)
    max_num_peaks: int = Field(2048, ge=1, le=65536)
    min_res: float = 0.0
    max_res: float = 1e30


class HitVetoParameters(_Model):
    """Keep an event when its frame has at least ``min_peaks`` peaks (OM's
    ``min_num_peaks_for_hit``); every ``keep_every_miss``-th miss is kept too (background
    studies). Every other miss is dropped and counted with reason ``miss``."""

    min_peaks: int = Field(10, ge=0)
    keep_every_miss: int | None = Field(None, ge=1)
    #: A hit also needs the frame's values (as sent: photons, keV or ADU) to sum to at least
    #: this; with ``min_peaks: 0`` it alone decides (an integrated-intensity hit finder).
    min_total_intensity: float | None = None


class ModelParameters(_Model):
    """A batch model on this detector's frames (``lclstream.models``: ``spot_segmenter``,
    ``peaknet`` or a plug-in's entry point), in its own thread behind ``queue_depth`` batches:
    a slower model makes the reader wait, it never loses events. Its peaks become the CXI
    lists (padded to ``max_num_peaks``), its mask ``/entry_1/result_1/peakMask`` with
    ``send_mask``, and its own hit flag (if it gives one) the hit veto's verdict."""

    name: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    queue_depth: int = Field(2, ge=1)
    max_num_peaks: int = Field(2048, ge=1, le=65536)
    send_mask: bool = False


class ReductionParameters(_Model):
    """Reduction steps of one data source, applied after calibration in this order.

    ``peakfinder`` runs on each frame as it will be sent (calibrated, thresholded) and needs
    the detector's whole frame (no ``roi`` or ``binning`` with it); ``hit_veto`` needs it.
    ``peaks_only`` sends the peak lists without the detector's frames (monitoring a run's hit
    rate and peak statistics at a few kB per event).
    """

    roi: RoiParameters | None = None
    threshold: ThresholdParameters | None = None
    binning: BinningParameters | None = None
    peakfinder: PeakfinderParameters | None = None
    model: ModelParameters | None = None
    hit_veto: HitVetoParameters | None = None
    peaks_only: bool = False
    #: Send the frames as sparse photon lists (pixel index + count of every nonzero pixel;
    #: layout in ``lclstream.sparse``): smaller than the bslz4 frame below about 10%
    #: occupancy (bench_sparse; docs/peaks.md). ``auto``: whichever of the two is smaller on
    #: the stream's first batch, for the whole stream. Photon-count frames, HDF5 messages only.
    sparse: bool | Literal["auto"] = False

    @model_validator(mode="after")
    def _peaks_need_whole_frames(self) -> ReductionParameters:
        finds = self.peakfinder is not None or self.model is not None
        if self.hit_veto is not None and not finds:
            raise ValueError("hit_veto needs a peakfinder or a model")
        if self.peaks_only and not finds:
            raise ValueError("peaks_only needs a peakfinder or a model")
        if self.peakfinder is not None and self.model is not None:
            raise ValueError(
                "peakfinder and model would both write the CXI peak lists of one detector: "
                "choose one"
            )
        if self.peaks_only and self.sparse:
            raise ValueError("peaks_only sends no frames: sparse has nothing to send")
        if self.peakfinder is not None and (self.roi is not None or self.binning is not None):
            raise ValueError("peakfinder needs the whole frame: no roi or binning with it")
        return self

    def build(self) -> Reduction:
        from lclstream.reduce import Reduction

        roi = self.roi or RoiParameters()
        return Reduction(
            modules=tuple(roi.modules) if roi.modules is not None else None,
            y=roi.y,
            x=roi.x,
            threshold=self.threshold.min if self.threshold is not None else None,
            binning=self.binning.factor if self.binning is not None else 1,
        )


class BatchProcessingPipelineParameters(_Model):
    type: Literal["BatchProcessingPipeline"]
    batch_size: int = Field(10, ge=1)
    calibration: dict[str, CalibrationParameters] = Field(default_factory=dict)
    reduction: dict[str, ReductionParameters] = Field(default_factory=dict)
    #: Parallel producer workers (each with its own sender index).
    workers: int = Field(1, ge=1)
    #: Pooled batch buffers per worker (at least what the stage queues can hold).
    pool_batches: int = Field(4, ge=2)
    #: Full batches waiting between the read and serialize stages (and messages between
    #: serialize and send): the slack that lets the stages overlap.
    queue_depth: int = Field(2, ge=1)


class PeaknetPreprocessingPipelineParameters(_Model):
    """LCLStreamer's PeakNet padding pipeline (accepted; run-time support may be partial)."""

    type: Literal["PeaknetPreprocessingPipeline"]
    batch_size: int = Field(16, ge=1)
    target_height: int = Field(2048, ge=1)
    target_width: int = Field(2048, ge=1)
    pad_style: Literal["center", "bottom-right"] = "center"
    add_channel_dim: bool = True
    num_channels: int = Field(1, ge=1)


ProcessingPipelineParameters = Annotated[
    (BatchProcessingPipelineParameters | PeaknetPreprocessingPipelineParameters),
    Field(discriminator="type"),
]

# --------------------------------------------------------------------------- serializers

Compression = Literal[
    "bitshuffle_with_lz4",
    "bitshuffle_with_zstd",
    "lz4",
    "zstd",
    "gzip",
    "gzip_with_shuffle",
    "zfp",
]


class HDF5BinarySerializerParameters(_Model):
    """Each message is one HDF5 file image (CXI layout by default)."""

    type: Literal["HDF5BinarySerializer"]
    compression: Compression | None = "bitshuffle_with_lz4"
    compression_level: int | None = None
    #: data source name (or event_id/timestamp/peaks) -> dataset path; empty = CXI defaults.
    fields: dict[str, str] = Field(default_factory=dict)
    #: Compression threads; 0: half the usable cores (the read stage calibrates meanwhile).
    compression_threads: int = Field(0, ge=0)

    def build(self) -> Serializer:
        from lclstream.formats.hdf5 import HDF5BinarySerializer

        return HDF5BinarySerializer(
            self.compression,
            self.compression_level,
            dict(self.fields),
            threads=stage_threads(self.compression_threads),
        )


class _DetectorOverrides(_Model):
    """Detector metadata overrides; unset means the source's DetectorInfo decides."""

    detector_distance_m: float | None = Field(None, gt=0.0)
    beam_center_x_px: float | None = None
    beam_center_y_px: float | None = None
    pixel_size_m: float | None = Field(None, gt=0.0)
    incident_energy_keV: float | None = Field(None, gt=0.0)


class SimplonBinarySerializerParameters(_DetectorOverrides):
    """DECTRIS SIMPLON stream2 (spec-exact CBOR start/image/end messages).

    LCLStreamer's options (all optional here: unset values come from the source's metadata)
    plus ours; names are the serializer's keyword arguments.
    """

    type: Literal["SimplonBinarySerializer"]
    data_source_to_serialize: str = "detector_data"
    #: stream2 image compression: bslz4 (DECTRIS' own) or none.
    compression: Literal["bitshuffle_with_lz4", "bslz4", None] = "bitshuffle_with_lz4"
    polarization_fraction: float | None = Field(None, ge=0.0, le=1.0)
    polarization_axis: list[float] | None = Field(None, min_length=3, max_length=3)
    data_collection_rate: str | None = None
    detector_name: str | None = None
    detector_type: str | None = None
    channel: str = "threshold_1"
    count_time: float | None = Field(None, gt=0.0)  # s
    frame_time: float | None = Field(None, gt=0.0)  # s
    number_of_images: int = Field(0, ge=0)
    sensor_material: str = "Si"
    sensor_thickness: float | None = Field(None, gt=0.0)  # m
    #: Place modules into one 2-D image with the source's module layout (when it has one)
    #: instead of stacking them along y.
    assemble: bool = False
    #: Compression threads; 0: half the usable cores (the read stage calibrates meanwhile).
    compression_threads: int = Field(0, ge=0)

    def build(self) -> Serializer:
        from lclstream.formats.simplon import SimplonBinarySerializer

        return SimplonBinarySerializer(
            self.data_source_to_serialize,
            self.compression,
            channel=self.channel,
            count_time=self.count_time,
            frame_time=self.frame_time,
            number_of_images=self.number_of_images,
            sensor_material=self.sensor_material,
            sensor_thickness=self.sensor_thickness,
            polarization_fraction=self.polarization_fraction,
            polarization_axis=self.polarization_axis,
            data_collection_rate=self.data_collection_rate,
            detector_name=self.detector_name,
            detector_type=self.detector_type,
            detector_distance_m=self.detector_distance_m,
            beam_center_x_px=self.beam_center_x_px,
            beam_center_y_px=self.beam_center_y_px,
            pixel_size_m=self.pixel_size_m,
            incident_energy_keV=self.incident_energy_keV,
            assemble=self.assemble,
            threads=stage_threads(self.compression_threads),
        )


class LclstreamerSimplonSerializerParameters(_Model):
    """LCLStreamer's own prefixed-CBOR SIMPLON variant, for its existing consumers."""

    type: Literal["LclstreamerSimplonSerializer"]
    data_source_to_serialize: str = "detector_data"
    polarization_fraction: float = Field(0.0, ge=0.0, le=1.0)
    polarization_axis: list[float] = Field(
        default_factory=lambda: [1.0, 0.0, 0.0], min_length=3, max_length=3
    )
    data_collection_rate: str = "120Hz"
    detector_name: str = "jungfrau"
    detector_type: str = "AreaDetector"
    #: Compression threads; 0: half the usable cores (the read stage calibrates meanwhile).
    compression_threads: int = Field(0, ge=0)

    def build(self) -> Serializer:
        from lclstream.formats.lclstreamer_simplon import LclstreamerSimplonSerializer

        return LclstreamerSimplonSerializer(
            self.data_source_to_serialize,
            self.polarization_fraction,
            list(self.polarization_axis),
            self.data_collection_rate,
            self.detector_name,
            self.detector_type,
            threads=stage_threads(self.compression_threads),
        )


class RawBatchSerializerParameters(_Model):
    """Header frame (CBOR: dtype, shape, ids, metadata) + one contiguous payload frame."""

    type: Literal["RawBatchSerializer"]
    compression: Literal["bitshuffle_with_lz4", "bitshuffle_with_zstd", "lz4", "zstd", None] = None
    compression_level: int | None = None
    #: Compression threads; 0: half the usable cores (the read stage calibrates meanwhile).
    compression_threads: int = Field(0, ge=0)

    def build(self) -> Serializer:
        from lclstream.formats.raw import RawBatchSerializer

        return RawBatchSerializer(
            self.compression,
            self.compression_level,
            threads=stage_threads(self.compression_threads),
        )


class NumpyBinarySerializerParameters(_Model):
    """LCLStreamer's numpy ``.npz`` messages (what SLAC's PeakNet consumers read)."""

    type: Literal["NumpyBinarySerializer"]
    #: ``numpy.savez_compressed`` (deflate) instead of ``numpy.savez``.
    use_compression: bool = False

    def build(self) -> Serializer:
        from lclstream.formats.npz import NumpyBinarySerializer

        return NumpyBinarySerializer(self.use_compression)


DataSerializerParameters = Annotated[
    (
        HDF5BinarySerializerParameters
        | SimplonBinarySerializerParameters
        | LclstreamerSimplonSerializerParameters
        | RawBatchSerializerParameters
        | NumpyBinarySerializerParameters
    ),
    Field(discriminator="type"),
]

# --------------------------------------------------------------------------- handlers


class BinaryDataStreamingDataHandlerParameters(_Model):
    """Sends each message over ZeroMQ: ``server`` binds, ``client`` connects."""

    type: Literal["BinaryDataStreamingDataHandler"]
    urls: list[str] = Field(min_length=1)
    #: ``client`` connects to a consumer that binds (LCLStreamer v0.8's default and
    #: LCLStream's demo); ``server`` binds and consumers connect.
    role: Literal["server", "client"] = "client"
    library: Literal["zmq"] = "zmq"
    socket_type: Literal["push", "pub"] = "push"
    #: Messages queued per peer before send blocks (unset: the transport's default).
    high_water_mark: int | None = Field(None, ge=1)
    #: Give up a blocked send after this long (None: wait).
    send_timeout_s: float | None = Field(None, gt=0.0)
    #: How long close() waits to deliver what is queued.
    close_timeout_s: float = Field(30.0, ge=0.0)
    #: CurveZMQ (encryption; the consumer proves its identity): the consumer's public key
    #: file (``NAME.key`` from ``lclstream keys``). The streamer is then the CURVE client.
    curve_server_key: Path | None = None
    #: This side's key pair (a ``.key_secret`` file): the client's identity with
    #: ``curve_server_key``; without it the streamer is the CURVE server with this key.
    curve_secret_key: Path | None = None
    #: CURVE server only: accept only clients whose ``*.key`` files are in this folder.
    curve_allowed_clients: Path | None = None
    #: LCLStreamer's meaning: true sends producer (MPI rank / worker) ``i`` to
    #: ``urls[i % len(urls)]`` only; false connects every producer to every URL.
    distribute: bool = False
    #: The socket's kernel send buffer (SO_SNDBUF) in bytes; 0: the OS default.
    buffer: int = Field(0, ge=0)

    def urls_for(self, sender: int) -> list[str]:
        """The URLs producer ``sender`` uses (see ``distribute``)."""
        return [self.urls[sender % len(self.urls)]] if self.distribute else list(self.urls)

    def build(self, sender: int = 0) -> BinaryDataStreamingDataHandler:
        from lclstream.handlers import BinaryDataStreamingDataHandler, curve_settings

        return BinaryDataStreamingDataHandler(
            self.urls_for(sender),
            role=self.role,
            socket_type=self.socket_type,
            high_water_mark=self.high_water_mark,
            send_timeout_s=self.send_timeout_s,
            close_timeout_s=self.close_timeout_s,
            curve=curve_settings(
                self.curve_server_key, self.curve_secret_key, self.curve_allowed_clients
            ),
            sndbuf=self.buffer,
        )


class BinaryFileWritingDataHandlerParameters(_Model):
    """Writes each message to its own numbered file (or regroups ``img_per_file`` events a file)."""

    type: Literal["BinaryFileWritingDataHandler"]
    file_prefix: str = "lclstream"
    file_suffix: str = "h5"
    write_directory: Path = Path(".")
    #: Events per written file (as LCLStream's REST body); unset: one file per message.
    img_per_file: int | None = Field(None, ge=1)

    def build(self) -> BinaryFileWritingDataHandler:
        from lclstream.handlers import BinaryFileWritingDataHandler

        return BinaryFileWritingDataHandler(
            self.write_directory,
            img_per_file=self.img_per_file,
            file_prefix=self.file_prefix,
            file_suffix=self.file_suffix,
        )


class InProcessDataHandlerParameters(_Model):
    """Hands messages to a consumer in the same process (a bounded queue)."""

    type: Literal["InProcessDataHandler"]
    maxsize: int = Field(16, ge=1)

    def build(self) -> InProcessDataHandler:
        from lclstream.handlers import InProcessDataHandler

        return InProcessDataHandler(self.maxsize)


DataHandlerParameters = Annotated[
    (
        BinaryDataStreamingDataHandlerParameters
        | BinaryFileWritingDataHandlerParameters
        | InProcessDataHandlerParameters
    ),
    Field(discriminator="type"),
]

# --------------------------------------------------------------------------- top level


def _default_data_sources() -> dict[str, Any]:
    return {
        "detector_data": SyntheticDetectorParameters.model_validate({"type": "SyntheticDetector"})
    }


class LclstreamConfig(_Model):
    """A whole stream: LCLStreamer's ``Parameters`` plus our options (all with defaults)."""

    #: ``exp=NAME,run=N`` (psana style; ``:`` works as separator too), ``files=...``, ``dir=...``.
    source_identifier: str = ""
    #: True: an event missing a data source is dropped (counted with the reason);
    #: False: such an event is an error.
    skip_incomplete_events: bool = False
    event_source: EventSourceParameters = Field(
        default_factory=lambda: InternalEventSourceParameters.model_validate(
            {"type": "InternalEventSource"}
        )
    )
    data_sources: dict[str, DataSourceParameters] = Field(default_factory=_default_data_sources)
    processing_pipeline: ProcessingPipelineParameters = Field(
        default_factory=lambda: BatchProcessingPipelineParameters.model_validate(
            {"type": "BatchProcessingPipeline"}
        )
    )
    data_serializer: DataSerializerParameters = Field(
        default_factory=lambda: HDF5BinarySerializerParameters.model_validate(
            {"type": "HDF5BinarySerializer"}
        )
    )
    data_handlers: list[DataHandlerParameters] = Field(default_factory=list)
    #: Root of exp/run data (``<root>/<exp>/run<NNNN>/*.h5``); env LCLSTREAM_DATA_ROOT otherwise.
    data_root: str | None = None

    @model_validator(mode="after")
    def _cross_checks(self) -> LclstreamConfig:
        names = list(self.data_sources)
        problems: list[str] = []
        pipe = self.processing_pipeline
        if isinstance(pipe, BatchProcessingPipelineParameters):
            for section in ("calibration", "reduction"):
                for key in getattr(pipe, section):
                    if key not in self.data_sources:
                        problems.append(
                            f"processing_pipeline.{section}.{key}: {key!r} "
                            f"{_unknown_name_hint(key, names, 'data source')}"
                        )
        ser = self.data_serializer
        simplon = (SimplonBinarySerializerParameters, LclstreamerSimplonSerializerParameters)
        if isinstance(ser, simplon) and ser.data_source_to_serialize not in names:
            # LCLStreamer names a psana field as "<psana_name>.<field>" (its event dicts'
            # key): that is the data source reading exactly that field.
            by_field = {
                f"{d.psana_name}.{d.psana_fields}": n
                for n, d in self.data_sources.items()
                if isinstance(d, _PsanaDataSource) and isinstance(d.psana_fields, str)
            }
            if ser.data_source_to_serialize in by_field:
                ser.data_source_to_serialize = by_field[ser.data_source_to_serialize]
        if isinstance(ser, simplon) and isinstance(pipe, BatchProcessingPipelineParameters):
            red = pipe.reduction.get(ser.data_source_to_serialize)
            if red is not None and red.peaks_only:
                problems.append(
                    f"processing_pipeline.reduction.{ser.data_source_to_serialize}.peaks_only: "
                    "stream2 image messages carry the frames the serializer streams; send peaks "
                    "only with HDF5BinarySerializer or RawBatchSerializer"
                )
        if isinstance(pipe, BatchProcessingPipelineParameters) and not isinstance(
            ser, HDF5BinarySerializerParameters
        ):
            problems.extend(
                f"processing_pipeline.reduction.{name}.sparse: sparse photon lists travel in "
                f"HDF5 messages only (the serializer is {ser.type})"
                for name, red in pipe.reduction.items()
                if red.sparse
            )
        if isinstance(ser, simplon) and ser.data_source_to_serialize not in names:
            problems.append(
                f"data_serializer.data_source_to_serialize: {ser.data_source_to_serialize!r} "
                f"{_unknown_name_hint(ser.data_source_to_serialize, names, 'data source')}"
            )
        if problems:
            raise ValueError(_CROSS + "; ".join(problems))
        return self

    def resolved_data_root(self) -> str | None:
        """``data_root`` from the config, else ``$LCLSTREAM_DATA_ROOT``, else None."""
        return self.data_root or os.environ.get("LCLSTREAM_DATA_ROOT") or None


_CROSS = "\x00cross:"


def _unknown_name_hint(key: str, names: list[str], what: str) -> str:
    close = difflib.get_close_matches(key, names, n=1)
    hint = f"did you mean {close[0]!r}?; " if close else ""
    allowed = ", ".join(names) if names else "none configured"
    return f"is not a configured {what} ({hint}{what}s: {allowed})"


# --------------------------------------------------------------------------- loading


#: YAML aliases (``*name``) one config may use, and the nodes it may expand to: a real
#: config uses a handful of each; a 676-byte "billion laughs" file expands to 10^9 nodes.
MAX_YAML_ALIASES = 100
MAX_YAML_NODES = 100_000


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing alias use beyond :data:`MAX_YAML_ALIASES`."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.alias_uses = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.alias_uses += 1
            if self.alias_uses > MAX_YAML_ALIASES:
                raise ConfigError(
                    f"YAML uses more than {MAX_YAML_ALIASES} aliases (*name); refused "
                    "(alias expansion bomb?)"
                )
        return super().compose_node(parent, index)


def _yaml_kids(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for kv in node.value for n in kv]
    return []


def _expanded_nodes(root: yaml.Node) -> int:
    """Nodes ``root`` stands for once every alias is expanded (memoised by node, so O(nodes)
    however much they expand; a recursive alias counts once)."""
    cap = 1 << 62
    sizes: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            open_.discard(key)
            sizes[key] = min(cap, 1 + sum(sizes.get(id(k), 1) for k in _yaml_kids(node)))
            continue
        if key in sizes or key in open_:
            continue
        open_.add(key)
        stack.append((node, True))
        stack.extend((k, False) for k in _yaml_kids(node) if id(k) not in sizes)
    return sizes.get(id(root), 1)


def safe_load_bounded(text: str, where: str = "") -> Any:
    """``yaml.safe_load`` that refuses alias bombs (too many aliases or expanded nodes)
    with a one-line :class:`ConfigError`, before anything is built from them."""
    loader = _BoundedLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except ConfigError as e:
            raise ConfigError(f"{where}{e}") from None
        except RecursionError:
            raise ConfigError(f"{where}YAML is nested too deeply; refused") from None
        if node is None:
            return None
        n = _expanded_nodes(node)
        if n > MAX_YAML_NODES:
            raise ConfigError(
                f"{where}YAML expands to {n} nodes, more than {MAX_YAML_NODES}; refused "
                "(alias expansion bomb?)"
            )
        try:
            return loader.construct_document(node)
        except (ValueError, TypeError, OverflowError) as e:  # e.g. a timestamp 2001-13-45
            raise ConfigError(f"{where}invalid YAML value ({type(e).__name__}: {e})") from None
        except RecursionError:
            raise ConfigError(f"{where}YAML is nested too deeply; refused") from None
    finally:
        loader.dispose()


def load_config(source: str | os.PathLike[str] | Mapping[str, Any]) -> LclstreamConfig:
    """Validate a config from a YAML file path or an already-parsed mapping.

    Raises :class:`ConfigError` whose message is one line naming every problem.
    """
    where = ""
    if isinstance(source, Mapping):
        data: Any = dict(source)
    else:
        path = Path(source)
        where = f"{path}: "
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise ConfigError(f"cannot read config file {path}: no such file") from None
        except OSError as e:
            raise ConfigError(f"cannot read config file {path}: {e.strerror or e}") from None
        try:
            data = safe_load_bounded(text, where)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            pos = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise ConfigError(f"{where}{pos}invalid YAML ({problem})") from None
        if data is None:
            data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{where}the config must be a mapping of keys (source_identifier, event_source, ...),"
            f" not {type(data).__name__}"
        )
    try:
        return LclstreamConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(where + format_errors(e, data)) from None


def format_errors(error: ValidationError, data: Any) -> str:
    """One line: unknown keys first (with the closest valid name), then every other problem."""
    unknown: list[str] = []
    other: list[str] = []
    for err in error.errors(include_url=False):
        kind = err["type"]
        loc = tuple(err["loc"])
        path_elems, model_loc = _data_path(loc, data)
        path = _fmt_path(path_elems)
        ctx = err.get("ctx") or {}
        if kind == "extra_forbidden":
            key = str(path_elems[-1]) if path_elems else ""
            valid = _valid_keys(model_loc[:-1])
            close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6) if valid else []
            if close:
                unknown.append(f"{path}: unknown key (did you mean {close[0]!r}?)")
            elif valid:
                unknown.append(f"{path}: unknown key (allowed: {', '.join(valid)})")
            else:
                unknown.append(f"{path}: unknown key")
        elif kind == "union_tag_invalid":
            tag = str(ctx.get("tag", ""))
            tags = _split_tags(str(ctx.get("expected_tags", "")))
            if _PLUGIN_TAG in tags:
                kind = "data_source" if path_elems[:1] == ["data_sources"] else "event_source"
                tags = [t for t in tags if t != _PLUGIN_TAG] + sorted(_plugin_types(kind))
            close = difflib.get_close_matches(tag, tags, n=1, cutoff=0.5)
            hint = f"did you mean {close[0]!r}?; " if close else ""
            other.append(
                f"{_fmt_path([*path_elems, 'type'])}: {tag!r} is not allowed "
                f"({hint}allowed: {', '.join(tags)})"
            )
        elif kind == "union_tag_not_found":
            tags = _split_tags(str(_tags_at(model_loc)))
            other.append(
                f"{_fmt_path([*path_elems, 'type'])}: missing (required; one of {', '.join(tags)})"
            )
        elif kind == "missing":
            other.append(f"{path}: missing (required)")
        elif kind == "value_error" and str(ctx.get("error", "")).startswith(_CROSS):
            other.append(str(ctx["error"])[len(_CROSS) :])
        else:
            value = _fmt_value(err.get("input"))
            other.append(f"{path}: {value} is not allowed ({_allowed(kind, ctx, err['msg'])})")
    return "; ".join(unknown + other)


def _split_tags(text: str) -> list[str]:
    return [t.strip().strip("'\"") for t in text.split(",") if t.strip()]


def _allowed(kind: str, ctx: dict[str, Any], msg: str) -> str:
    bounds = {
        "greater_than_equal": ("ge", ">="),
        "greater_than": ("gt", ">"),
        "less_than_equal": ("le", "<="),
        "less_than": ("lt", "<"),
    }
    if kind in bounds:
        key, op = bounds[kind]
        return f"must be {op} {ctx.get(key)}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}"
    if kind in ("too_short", "too_long"):
        return msg.replace("List should", "must").replace("Value should", "must")
    text = msg
    for a, b in (("Input should be", "must be"), ("Value error, ", ""), ("Input ", "")):
        text = text.replace(a, b)
    return text


def _fmt_value(value: Any) -> str:
    if value is None or isinstance(value, bool):
        text = {None: "null", True: "true", False: "false"}[value]
    elif isinstance(value, str):
        text = repr(value)
    elif isinstance(value, Mapping):
        text = "{" + ", ".join(f"{k}: ..." for k in value) + "}"
    else:
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fmt_path(elems: list[Any]) -> str:
    out = ""
    for e in elems:
        if isinstance(e, int):
            out += f"[{e}]"
        else:
            out += ("." if out else "") + str(e)
    return out or "(top level)"


def _data_path(loc: tuple[Any, ...], data: Any) -> tuple[list[Any], tuple[Any, ...]]:
    """Strip pydantic's union tags and validator names from ``loc``, keeping real key paths.

    Returns the path as the user wrote it and the loc with tags kept (to find models).
    """
    path: list[Any] = []
    cursor: Any = data
    for i, elem in enumerate(loc):
        if isinstance(cursor, Mapping):
            if elem in cursor:
                path.append(elem)
                cursor = cursor[elem]
                continue
            if cursor.get("type") == elem or elem == _PLUGIN_TAG:  # union tags pydantic inserts
                continue
            if i == len(loc) - 1:  # the missing or unknown key itself
                path.append(elem)
            continue
        if isinstance(cursor, list) and isinstance(elem, int):
            path.append(elem)
            if 0 <= elem < len(cursor):
                cursor = cursor[elem]
                continue
            break
        if i == len(loc) - 1 and not isinstance(cursor, (Mapping, list)):
            continue
    return path, loc


def _unwrap(tp: Any) -> Any:
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _union_members(tp: Any) -> list[Any]:
    tp = _unwrap(tp)
    origin = typing.get_origin(tp)
    if origin is Union or origin is types.UnionType:
        return [_unwrap(a) for a in typing.get_args(tp) if a is not type(None)]
    return [tp]


def _type_tag(model: Any) -> str | None:
    if isinstance(model, type) and issubclass(model, BaseModel) and "type" in model.model_fields:
        args = typing.get_args(model.model_fields["type"].annotation)
        return str(args[0]) if args else None
    return None


def _step(tp: Any, elem: Any) -> Any:
    for member in _union_members(tp):
        if isinstance(member, type) and issubclass(member, BaseModel):
            if isinstance(elem, str) and elem in member.model_fields:
                return member.model_fields[elem].annotation
            continue
        origin = typing.get_origin(member)
        if origin in (dict, Mapping):
            return typing.get_args(member)[1]
        if origin in (list, tuple):
            return typing.get_args(member)[0]
    # a union tag
    for member in _union_members(tp):
        if _type_tag(member) == elem:
            return member
    return None


def _type_at(loc: tuple[Any, ...]) -> Any:
    tp: Any = LclstreamConfig
    for elem in loc:
        tp = _step(tp, elem)
        if tp is None:
            return None
    return tp


def _valid_keys(loc: tuple[Any, ...]) -> list[str]:
    tp = _type_at(loc)
    for member in _union_members(tp) if tp is not None else []:
        if isinstance(member, type) and issubclass(member, BaseModel):
            return list(member.model_fields)
    return []


def _tags_at(loc: tuple[Any, ...]) -> str:
    tp = _type_at(loc)
    tags = [t for t in (_type_tag(m) for m in _union_members(tp)) if t] if tp is not None else []
    return ", ".join(tags)


# --------------------------------------------------------------------------- schema, example


def json_schema() -> dict[str, Any]:
    """JSON Schema of the config (docs/config.schema.json is generated from it)."""
    schema = LclstreamConfig.model_json_schema()
    schema["title"] = "lclstream configuration"
    return schema


_EXAMPLE = """\
# lclstream configuration (LCLStreamer's schema; every option of ours has a default).
# Run it with:  lclstream stream this.yaml   (a consumer must listen: lclstream receive
# tcp://127.0.0.1:12321 binds, and this streamer connects to it).

# Which data: exp=NAME,run=N (psana style). xpptut15 run 670 is the built-in demo run.
source_identifier: exp=xpptut15,run=670
# true: drop events that miss a data source (counted, with the reason); false: stop with an error.
skip_incomplete_events: false

event_source:
  type: InternalEventSource          # events generated in-process
  number_of_events_to_generate: 1000

data_sources:                        # name -> {type: ..., options}
  detector_data:
    type: SyntheticDetector          # realistic raw Jungfrau 4M SFX frames, with gain bits
    detector: jungfrau4M
    hit_fraction: 0.1                # fraction of events with Bragg peaks
    seed: 1
    photon_energy_keV: 9.5

processing_pipeline:
  type: BatchProcessingPipeline
  batch_size: 10                     # events per message
  calibration:
    detector_data:
      detector: jungfrau
      constants: synthetic           # the synthetic source's own pedestals/gains/mask
      output: photons                # photons (uint16) | keV | adu (float32)
      photon_energy_keV: 9.5         # else taken from the source's metadata

data_serializer:
  type: HDF5BinarySerializer         # one HDF5 file image per message (CXI layout)
  compression: bitshuffle_with_lz4   # HDF5 filter 32008: `import hdf5plugin` to read
  fields:
    detector_data: /entry_1/data_1/data

data_handlers:
  - type: BinaryDataStreamingDataHandler
    urls: ["tcp://127.0.0.1:12321"]
    role: client                     # client connects (the consumer binds); server binds
    socket_type: push
"""


def example_config() -> str:
    """A complete, commented, working config (``lclstream config --example`` prints it)."""
    return _EXAMPLE


__all__ = [
    "BatchProcessingPipelineParameters",
    "BinaryDataStreamingDataHandlerParameters",
    "BinaryFileWritingDataHandlerParameters",
    "CalibrationParameters",
    "DataHandlerParameters",
    "DataSerializerParameters",
    "DataSourceParameters",
    "EventSourceParameters",
    "GenericRandomNumpyArrayParameters",
    "HDF5BinarySerializerParameters",
    "Hdf5DatasetParameters",
    "Hdf5EventSourceParameters",
    "InternalEventSourceParameters",
    "LclstreamConfig",
    "LclstreamerSimplonSerializerParameters",
    "PSANA_TYPES",
    "RawBatchSerializerParameters",
    "NumpyBinarySerializerParameters",
    "ReductionParameters",
    "SimplonBinarySerializerParameters",
    "SyntheticDetectorParameters",
    "example_config",
    "format_errors",
    "json_schema",
    "load_config",
]
