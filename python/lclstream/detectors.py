"""The detector table: geometry, gain stages, pixel sizes, in one place.

Every layer that needs a fact about a detector reads it here: the synthetic source builds
its frames and constants from it, calibration checks constant shapes and picks its kernel
and common-mode banks by it, and the config's detector choices are its names. Two levels:

* a **kind** (``jungfrau``, ``epix10ka``, ``generic``) is what a calibration kernel handles:
  one module's shape and pixel size, the ADC and gain bits of a raw word, the gain stages in
  psana's order, the ASIC tiling of a module and the common-mode bank;
* a **model** (``jungfrau4M``, ``epix10k2M``, ...) is a kind with a number of modules and the
  layout of the assembled, gap-free image (module ``m`` at row ``m // cols``, column
  ``m % cols``, as :class:`lclstream.protocols.DetectorInfo.module_layout` says).

References: PSI's Jungfrau (512 x 1024 modules of 2 x 4 ASICs of 256 x 256 pixels, 75 um,
14-bit ADC with 2 gain bits: 0 -> G0, 1 -> G1, 3 -> G2); SLAC's ePix10ka (352 x 384 panels
of 2 x 2 ASICs of 176 x 192 pixels, 100 um, 14-bit ADC with the auto-ranging switch in bit
14, seven gain ranges FH, FM, FL, AHL_H, AML_M, AHL_L, AML_L as psana orders them).
Default gains are typical values in ADU/keV with psana's sign convention (negative in the
Jungfrau's G1/G2, see ``docs/calibration.md``); real runs use measured constants.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CALIBRATED_KINDS",
    "KINDS",
    "MODELS",
    "MODEL_NAMES",
    "Detector",
    "DetectorKind",
    "GainStage",
    "kind_of",
    "model",
]


@dataclass(frozen=True)
class GainStage:
    """One gain stage (range) of a kind, in psana's order."""

    name: str
    #: Typical gain, ADU/keV (psana's sign: keV = (adc - pedestal) / gain).
    default_gain: float
    #: The raw word's gain bits (``raw >> adc_bits``) that select this stage, for kinds whose
    #: stage follows from the data alone (Jungfrau); None where configuration bits also
    #: decide (ePix10ka).
    gain_bits: int | None = None


@dataclass(frozen=True)
class DetectorKind:
    """What a calibration kernel handles: one module's geometry and the raw word's layout."""

    name: str
    #: (rows, cols) of one module; None for ``generic`` (any frame shape).
    module_shape: tuple[int, int] | None
    pixel_size_m: float | None
    #: Bits of ADC value in a raw word (the rest, above them, are gain bits).
    adc_bits: int
    gain_bits: int
    stages: tuple[GainStage, ...]
    #: (rows, cols) of ASICs in a module and (rows, cols) of pixels in one ASIC.
    asic_layout: tuple[int, int] | None
    asic_shape: tuple[int, int] | None
    #: (rows, cols) of the bank common mode is estimated over, as psana does by default.
    common_mode_bank: tuple[int, int]

    @property
    def n_gains(self) -> int:
        return len(self.stages)

    @property
    def stage_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.stages)

    @property
    def default_gains(self) -> tuple[float, ...]:
        return tuple(s.default_gain for s in self.stages)

    @property
    def adc_max(self) -> int:
        """The largest ADC value a raw word holds."""
        return (1 << self.adc_bits) - 1

    def stage(self, name: str) -> int:
        """Index of a gain stage by name (e.g. ``AHL_H`` -> 3)."""
        return self.stage_names.index(name)


@dataclass(frozen=True)
class Detector:
    """A named detector model: a kind, a number of modules and their assembled layout."""

    name: str
    kind_info: DetectorKind
    modules: int
    #: (rows, cols) of modules in the assembled, gap-free image.
    layout: tuple[int, int]

    @property
    def kind(self) -> str:
        return self.kind_info.name

    @property
    def module_shape(self) -> tuple[int, int]:
        shape = self.kind_info.module_shape
        assert shape is not None, "models have a fixed module shape"
        return shape

    @property
    def shape(self) -> tuple[int, int, int]:
        """The frame shape a source gives: (modules, rows, cols)."""
        return (self.modules, *self.module_shape)

    @property
    def pixel_size_m(self) -> float:
        px = self.kind_info.pixel_size_m
        assert px is not None, "models have a pixel size"
        return px

    @property
    def n_gains(self) -> int:
        return self.kind_info.n_gains

    @property
    def image_shape(self) -> tuple[int, int]:
        """(rows, cols) of the assembled image."""
        ny, nx = self.module_shape
        return (self.layout[0] * ny, self.layout[1] * nx)


JUNGFRAU = DetectorKind(
    name="jungfrau",
    module_shape=(512, 1024),
    pixel_size_m=75e-6,
    adc_bits=14,
    gain_bits=2,
    stages=(
        GainStage("G0", 40.0, gain_bits=0),
        GainStage("G1", -1.5, gain_bits=1),
        GainStage("G2", -0.1, gain_bits=3),
    ),
    asic_layout=(2, 4),
    asic_shape=(256, 256),
    common_mode_bank=(1, 64),
)

EPIX10KA = DetectorKind(
    name="epix10ka",
    module_shape=(352, 384),
    pixel_size_m=100e-6,
    adc_bits=14,
    gain_bits=1,
    stages=(
        GainStage("FH", 16.4),
        GainStage("FM", 5.466),
        GainStage("FL", 0.164),
        GainStage("AHL_H", 16.4),
        GainStage("AML_M", 5.466),
        GainStage("AHL_L", 0.164),
        GainStage("AML_L", 0.164),
    ),
    asic_layout=(2, 2),
    asic_shape=(176, 192),
    common_mode_bank=(176, 48),
)

GENERIC = DetectorKind(
    name="generic",
    module_shape=None,
    pixel_size_m=None,
    adc_bits=16,
    gain_bits=0,
    stages=(GainStage("G0", 1.0),),
    asic_layout=None,
    asic_shape=None,
    common_mode_bank=(1, 64),
)

#: Kinds by name, in the order configs list them.
KINDS: dict[str, DetectorKind] = {k.name: k for k in (JUNGFRAU, EPIX10KA, GENERIC)}

#: Kinds with a calibration kernel and constants of their own (fixed module shape).
CALIBRATED_KINDS: tuple[str, ...] = tuple(n for n, k in KINDS.items() if k.module_shape)

#: Named models, largest first per kind.
MODELS: dict[str, Detector] = {
    d.name: d
    for d in (
        Detector("jungfrau16M", JUNGFRAU, 32, (8, 4)),
        Detector("jungfrau4M", JUNGFRAU, 8, (4, 2)),
        Detector("jungfrau1M", JUNGFRAU, 2, (2, 1)),
        Detector("jungfrau", JUNGFRAU, 1, (1, 1)),
        Detector("epix10k2M", EPIX10KA, 16, (4, 4)),
        Detector("epix10ka", EPIX10KA, 1, (1, 1)),
    )
}
MODEL_NAMES: tuple[str, ...] = tuple(MODELS)

#: Other spellings of a kind that configs and psana use.
_KIND_ALIASES = {"epix10k": "epix10ka"}


def model(name: str) -> Detector:
    """A named model (KeyError naming the choices if there is none)."""
    try:
        return MODELS[name]
    except KeyError:
        raise KeyError(f"unknown detector {name!r} (one of {', '.join(MODEL_NAMES)})") from None


def kind_of(name: str) -> str | None:
    """The kind a detector name means, case-insensitively: a kind (``jungfrau``), a model
    (``jungfrau4M``, ``epix10k2M``) or an alias (``epix10k``); None if unknown."""
    n = name.lower()
    n = _KIND_ALIASES.get(n, n)
    if n in KINDS:
        return n
    for m in MODELS.values():
        if m.name.lower() == n:
            return m.kind
    return None
