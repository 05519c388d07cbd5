"""Real LCLS-II XTC2 runs made with psana's own tools, for tests, benchmarks and examples.

Nothing here imitates XTC2: ``xtcwriter`` (shipped in the psana wheel) writes a run's
transitions and events, psana's ``DgramEdit`` adds a ``jungfrau`` detector with raw uint16
segments to each event, and ``smdwriter`` writes the small-data index psana's MPI mode reads.
Every transition xtcwriter writes is kept, so the run also carries its EPICS values (PVs
``HX2:DVD:GCC:01:PMON`` = 41.0 and ``HX2:DVD:GPI:01:PMON`` = "Test String", known from the
first SlowUpdate on, i.e. from the fifth event). The layout is the one psana expects under
``dir=``::

    DIR/xtc/EXP-rRRRR-s000-c000.xtc2
    DIR/xtc/smalldata/EXP-rRRRR-s000-c000.smd.xtc2

``xtcwriter`` names the experiment ``xpptut15`` and the run 14 in what it writes; the file
names decide what ``exp=,run=`` finds.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lclstream.errors import SourceError

__all__ = ["Xtc2Run", "make_xtc2_run", "psana_tool"]

#: The experiment and run number xtcwriter writes into its transitions.
XTCWRITER_EXPERIMENT = "xpptut15"
XTCWRITER_RUN = 14
_BUFSIZE = 64_000_000


@dataclass(frozen=True)
class _DetectorKind:
    """How psana names and shapes one detector kind in XTC2 (its Detector class is chosen
    by dettype, alg name and alg version)."""

    psana_name: str
    dettype: str
    raw_version: tuple[int, int, int]
    module: tuple[int, int]
    #: the segment configuration psana reads for gain modes (ePix10ka), else None
    config_version: tuple[int, int, int] | None = None


KINDS = {
    "jungfrau": _DetectorKind("jungfrau", "jungfrau", (0, 2, 0), (512, 1024)),
    # epix10ka_raw_2_0_1: per-segment config asicPixelConfig (4 ASICs x 176 x 192) + trbit
    "epix10ka": _DetectorKind("epix10k2M", "epix10ka", (2, 0, 1), (352, 384), (2, 0, 1)),
}


@dataclass
class Xtc2Run:
    """What :func:`make_xtc2_run` wrote, and the frames it put in (for checks)."""

    xtc_dir: Path  # the ``dir=`` to give psana
    bigdata: Path
    smalldata: Path
    experiment: str
    run: int
    frames: np.ndarray  # (events, segments, *module) uint16, as written
    timestamps: list[int]  # psana's event timestamps, in order
    psana_name: str = "jungfrau"
    #: ePix10ka: per segment (asicPixelConfig (4, 176, 192) uint8, trbit (4,) uint8)
    configs: list[tuple[np.ndarray, np.ndarray]] | None = None

    @property
    def source_identifier(self) -> str:
        return f"exp={self.experiment},run={self.run},dir={self.xtc_dir}"


def psana_tool(name: str) -> tuple[Path, dict[str, str]]:
    """One of the C++ tools inside the psana wheel and the environment it runs in."""
    try:
        import psana
    except ImportError as e:  # pragma: no cover - the psana extra is installed by make test
        raise SourceError("making XTC2 files needs psana (pip install 'lclstream[psana]')") from e
    site = Path(psana.__file__).resolve().parent.parent
    exe = site / "bin" / name
    if not exe.is_file():
        raise SourceError(f"psana's {name} tool is not in its wheel ({exe})")
    libs = [str(site / "psana.libs"), str(site / "psana" / ".libs")]
    old = os.environ.get("LD_LIBRARY_PATH", "")
    env = dict(os.environ, LD_LIBRARY_PATH=os.pathsep.join([*libs, *([old] if old else [])]))
    return exe, env


def _run_tool(name: str, *args: str) -> None:
    exe, env = psana_tool(name)
    r = subprocess.run([str(exe), *args], env=env, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise SourceError(f"psana's {name} failed ({r.returncode}): {r.stderr.strip()[-300:]}")


def make_xtc2_run(
    directory: str | Path,
    events: int,
    *,
    segments: int = 2,
    experiment: str = XTCWRITER_EXPERIMENT,
    run: int = XTCWRITER_RUN,
    seed: int = 1,
    frames: np.ndarray | None = None,
    detector: str = "jungfrau",
    configs: list[tuple[np.ndarray, np.ndarray]] | None = None,
) -> Xtc2Run:
    """Write a run of ``events`` events with a detector of ``segments`` modules:
    ``jungfrau`` (psana name ``jungfrau``, 512 x 1024) or ``epix10ka`` (``epix10k2M``,
    352 x 384, with each segment's gain configuration ``configs``: asicPixelConfig
    (4, 176, 192) and trbit (4,) uint8; random by default).

    ``frames`` (events, segments, *module) uint16 are the raw values to write (gain bits
    included); by default random 14-bit ADU values in gain stage 0.
    """
    from psana import dgram  # type: ignore[import-untyped]
    from psana.dgramedit import AlgDef, DetectorDef, DgramEdit  # type: ignore[import-untyped]
    from psana.psexp import TransitionId  # type: ignore[import-untyped]

    if events < 1:
        raise SourceError("an XTC2 run needs at least one event")
    xtc_dir = Path(directory).resolve() / "xtc"
    (xtc_dir / "smalldata").mkdir(parents=True, exist_ok=True)
    stem = f"{experiment}-r{run:04d}-s000-c000"
    big = xtc_dir / f"{stem}.xtc2"
    smd = xtc_dir / "smalldata" / f"{stem}.smd.xtc2"
    scratch = tempfile.TemporaryDirectory(prefix=".xtcwriter-", dir=xtc_dir)
    base = Path(scratch.name) / "base.xtc2"  # psana parses chunk numbers from -cNNN names
    kind = KINDS.get(detector)
    if kind is None:
        raise SourceError(f"make_xtc2_run: detector {detector!r} is not one of {', '.join(KINDS)}")
    rng = np.random.default_rng(seed)
    want = (events, segments, *kind.module)
    if frames is None:
        frames = rng.integers(0, 1 << 14, size=want, dtype=np.uint16)
    frames = np.ascontiguousarray(frames, dtype=np.uint16)
    if frames.shape != want:
        raise SourceError(f"frames must be {want}, not {frames.shape}")
    if kind.config_version is not None and configs is None:
        gain_bits = np.array([0, 4, 8, 12, 16], np.uint8)
        configs = [
            (rng.choice(gain_bits, size=(4, 176, 192)), rng.integers(0, 2, 4, dtype=np.uint8))
            for _ in range(segments)
        ]

    _run_tool("xtcwriter", "-f", str(base), "-n", str(events))
    out = bytearray(_BUFSIZE)
    timestamps: list[int] = []
    fd = os.open(base, os.O_RDONLY)
    try:
        with open(big, "wb") as f:
            config = dgram.Dgram(file_descriptor=fd)
            cfg_buf = bytearray(_BUFSIZE)
            cfg_buf[: config._size] = config
            config_edit = DgramEdit(
                dgram.Dgram(view=memoryview(cfg_buf), offset=0), bufsize=_BUFSIZE
            )
            detdef = DetectorDef(kind.psana_name, kind.dettype, f"lclstream_test_{detector}")
            dets: list[Any] = [
                config_edit.Detector(
                    detdef, AlgDef("raw", *kind.raw_version), {"raw": (np.uint16, 2)}, segment=s
                )
                for s in range(segments)
            ]
            if kind.config_version is not None and configs is not None:
                for s, (pixel_config, trbit) in enumerate(configs):
                    cfg = config_edit.Detector(
                        detdef,
                        AlgDef("config", *kind.config_version),
                        {"asicPixelConfig": (np.uint8, 3), "trbit": (np.uint8, 1)},
                        segment=s,
                    )
                    cfg.config.asicPixelConfig = np.ascontiguousarray(pixel_config, np.uint8)
                    cfg.config.trbit = np.ascontiguousarray(trbit, np.uint8)
                    config_edit.adddata(cfg.config)
            config_edit.save(out)
            f.write(out[: config_edit.size])
            ev_buf = bytearray(_BUFSIZE)
            # Every transition of xtcwriter's run goes through (BeginRun, steps, the
            # SlowUpdates carrying EPICS values, EndRun); L1Accepts get the jungfrau's frames.
            while True:
                try:
                    d = dgram.Dgram(config=config)
                except StopIteration:
                    break
                if d.service() == TransitionId.L1Accept:
                    i = len(timestamps)
                    ev_buf[: d._size] = d
                    view = dgram.Dgram(config=config, view=memoryview(ev_buf), offset=0)
                    edit = DgramEdit(view, config_dgramedit=config_edit, bufsize=_BUFSIZE)
                    for s, det in enumerate(dets):
                        det.raw.raw = frames[i, s]
                        edit.adddata(det.raw)
                    timestamps.append(int(d.timestamp()))
                else:
                    edit = DgramEdit(d, config_dgramedit=config_edit, bufsize=d._size)
                edit.save(out)
                f.write(out[: edit.size])
    finally:
        os.close(fd)
    scratch.cleanup()
    if len(timestamps) != events:
        raise SourceError(f"xtcwriter wrote {len(timestamps)} events, not {events}")
    _run_tool("smdwriter", "-f", str(big), "-o", str(smd))
    return Xtc2Run(xtc_dir, big, smd, experiment, run, frames, timestamps, kind.psana_name, configs)
