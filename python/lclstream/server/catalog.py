"""What a server's data root holds: experiments' runs, as XTC2 (psana2) or HDF5/CXI files.

Layout (``lclstream serve --data-root ROOT``)::

    ROOT/EXP/xtc/EXP-rRRRR-s000-c000.xtc2     (+ xtc/smalldata/…smd.xtc2: psana's dir=)
    ROOT/EXP/runRRRR/*.h5                       (HDF5/CXI, lclstream.sources.addressing)
    ROOT/EXP/calib/DETECTOR.npz                 (constants for mode: calib; psana's names)

Without a data root the server has only the synthetic demo experiment (xpptut15, run 670).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from lclstream.sources.addressing import DEMO_EXPERIMENT, DEMO_RUN, FILE_PATTERNS

__all__ = ["RunEntry", "find_run", "list_runs"]

_XTC = re.compile(r"^(?P<exp>[A-Za-z0-9_]+)-r(?P<run>\d{4})-s\d{3}-c\d{3}\.xtc2$")
_RUN_DIR = re.compile(r"^run(?P<run>\d{4})$")
DEMO_DETECTORS = ["jungfrau4M", "epix10k2M"]


@dataclass
class RunEntry:
    run: int
    kind: Literal["xtc2", "hdf5", "synthetic"]
    detectors: list[str] = field(default_factory=list)
    events: int | None = None
    path: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"run": self.run, "source": self.kind, "detectors": self.detectors,
                "events": self.events}  # fmt: skip


def _safe(name: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9_]+", name))


def _xtc_detectors(path: Path) -> list[str]:
    """Area detectors psana finds in the run (offline: no calibration lookups)."""
    try:
        from psana import DataSource  # type: ignore[import-untyped]

        run = next(DataSource(files=[str(path)], skip_calib_load="all").runs())
        return sorted(
            n for n in run.detnames if type(getattr(run.Detector(n), "raw", None)).__name__
            .startswith(("jungfrau", "epix10k"))
        )  # fmt: skip
    except Exception:  # noqa: BLE001 - a catalog entry must not fail the listing
        return []


def _frame_datasets(path: Path) -> list[tuple[str, int]]:
    """(dataset path, events) of every 3-D+ dataset in one HDF5 file."""
    import h5py

    found: list[tuple[str, int]] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and obj.ndim >= 3:
            found.append((name, int(obj.shape[0])))

    try:
        with h5py.File(path, "r") as h5:
            h5.visititems(visit)
    except OSError:
        return []
    return found


def _hdf5_facts(folder: Path) -> tuple[list[str], int]:
    names: set[str] = set()
    events = 0
    for pattern in FILE_PATTERNS:
        for f in sorted(folder.glob(pattern)):
            found = _frame_datasets(f)
            names.update(n for n, _ in found)
            events += max((n for _, n in found), default=0)
    return sorted(names), events


def list_runs(data_root: str | Path | None, exp: str) -> list[RunEntry] | None:
    """The experiment's runs, or None when this server does not have it."""
    if not _safe(exp):
        return None
    out: dict[int, RunEntry] = {}
    base = Path(data_root) / exp if data_root is not None else None
    if base is not None and base.is_dir():
        xtc = base / "xtc"
        if xtc.is_dir():
            for f in sorted(xtc.iterdir()):
                m = _XTC.match(f.name)
                if m and m["exp"] == exp and int(m["run"]) not in out:
                    out[int(m["run"])] = RunEntry(int(m["run"]), "xtc2", _xtc_detectors(f),
                                                  None, str(xtc))  # fmt: skip
        for d in sorted(base.iterdir()):
            m = _RUN_DIR.match(d.name)
            if m and d.is_dir() and int(m["run"]) not in out:
                dets, events = _hdf5_facts(d)
                out[int(m["run"])] = RunEntry(int(m["run"]), "hdf5", dets, events, str(d))
    if exp == DEMO_EXPERIMENT and DEMO_RUN not in out:
        out[DEMO_RUN] = RunEntry(DEMO_RUN, "synthetic", list(DEMO_DETECTORS), None, "")
    if not out:
        return None
    return [out[r] for r in sorted(out)]


def find_run(data_root: str | Path | None, exp: str, run: int) -> RunEntry | None:
    runs = list_runs(data_root, exp) or []
    return next((r for r in runs if r.run == run), None)
