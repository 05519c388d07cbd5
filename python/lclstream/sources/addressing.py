"""Experiment/run addressing: psana-style source identifiers resolved to files.

Identifiers look like psana's: ``exp=xpptut15,run=670`` (``:`` separates as well as ``,``),
``exp=mfx1234,run=12,13`` or ``run=12-14`` (several runs), ``dir=/some/folder``,
``files=a.h5,b.h5`` (paths or globs). Bare words (``smd``, ``live``) are kept as flags.

Data layout under a data root (config ``data_root`` or ``$LCLSTREAM_DATA_ROOT``)::

    <root>/<exp>/run<NNNN>/*.h5      (also *.cxi; NNNN = run number, 4 digits, zero padded)

``dir=`` stands for ``<root>/<exp>``: files are ``<dir>/run<NNNN>/*.h5`` when a run is given,
else ``<dir>/*.h5``. The demo experiment ``exp=xpptut15,run=670`` needs no data root: when no
files are found for it, it resolves to the synthetic source.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from lclstream.errors import SourceError

DEMO_EXPERIMENT = "xpptut15"
DEMO_RUN = 670
FILE_PATTERNS = ("*.h5", "*.cxi", "*.hdf5")


@dataclass
class SourceAddress:
    """A parsed source identifier."""

    exp: str | None = None
    runs: list[int] = field(default_factory=list)
    dir: str | None = None
    files: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def run(self) -> int | None:
        return self.runs[0] if self.runs else None

    @property
    def is_demo(self) -> bool:
        return self.exp == DEMO_EXPERIMENT and self.runs == [DEMO_RUN]

    def __str__(self) -> str:
        parts = []
        if self.exp is not None:
            parts.append(f"exp={self.exp}")
        if self.runs:
            parts.append("run=" + ",".join(str(r) for r in self.runs))
        if self.dir is not None:
            parts.append(f"dir={self.dir}")
        if self.files:
            parts.append("files=" + ",".join(self.files))
        parts += [f"{k}={v}" for k, v in self.extra.items()] + self.flags
        return ",".join(parts)


def _runs(text: str, identifier: str) -> list[int]:
    out: list[int] = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise SourceError(
                f"source identifier {identifier!r}: run {part!r} is not a run number "
                "(use run=N, run=N,M or run=N-M)"
            ) from None
    return out


def parse_source_identifier(identifier: str) -> SourceAddress:
    """Parse ``exp=...,run=...[,dir=...][,files=...]`` (psana style; ``:`` or ``,``)."""
    addr = SourceAddress()
    tokens = [t.strip() for t in identifier.replace(":", ",").split(",")]
    # a Windows-style or URL-ish path with ':' is not supported; psana does not use them either
    key: str | None = None
    values: dict[str, list[str]] = {}
    order: list[str] = []
    for tok in tokens:
        if not tok:
            continue
        if "=" in tok:
            key, val = (s.strip() for s in tok.split("=", 1))
            if key not in values:
                order.append(key)
            values.setdefault(key, []).append(val)
        elif key == "files" or (key == "run" and tok.replace("-", "").isdigit()):
            values[key].append(tok)
        else:
            addr.flags.append(tok)
    for k in order:
        v = values[k]
        if k == "exp":
            addr.exp = v[0]
        elif k == "run":
            addr.runs = _runs(",".join(v), identifier)
        elif k == "dir":
            addr.dir = v[0]
        elif k == "files":
            addr.files = [x for x in v if x]
        else:
            addr.extra[k] = ",".join(v)
    return addr


@dataclass
class ResolvedSource:
    kind: Literal["files", "synthetic"]
    files: list[Path] = field(default_factory=list)
    address: SourceAddress = field(default_factory=SourceAddress)


def _expand(patterns: list[str], base: Path | None) -> list[Path]:
    out: list[Path] = []
    for p in patterns:
        full = str(base / p) if base is not None and not os.path.isabs(p) else p
        hits = sorted(glob.glob(full))
        if not hits:
            if glob.has_magic(full):
                raise SourceError(f"no file matches {full}")
            raise SourceError(f"{full}: no such file")
        out.extend(Path(h) for h in hits)
    return out


def _folder_files(folder: Path) -> list[Path]:
    files: list[Path] = []
    for pat in FILE_PATTERNS:
        files.extend(sorted(folder.glob(pat)))
    return files


def resolve_source(
    identifier: str | SourceAddress, data_root: str | os.PathLike[str] | None = None
) -> ResolvedSource:
    """Find the files an identifier names (see the module docstring for the layout).

    Raises :class:`SourceError` saying where it looked when nothing is found.
    """
    addr = (
        identifier if isinstance(identifier, SourceAddress) else parse_source_identifier(identifier)
    )
    base = Path(addr.dir) if addr.dir else None
    if addr.files:
        return ResolvedSource("files", _expand(addr.files, base), addr)
    if base is None and addr.exp and data_root:
        base = Path(data_root) / addr.exp
    looked: list[str] = []
    if base is not None:
        folders = [base / f"run{r:04d}" for r in addr.runs] if addr.runs else [base]
        files: list[Path] = []
        for folder in folders:
            found = _folder_files(folder)
            if not found:
                looked.append(str(folder / "*.h5"))
            files.extend(found)
        if files and not looked:
            return ResolvedSource("files", files, addr)
    if addr.is_demo:
        return ResolvedSource("synthetic", [], addr)
    text = str(addr) or "(empty)"
    if looked:
        raise SourceError(f"source {text}: no data files in {', '.join(looked)}")
    if addr.exp and not data_root:
        raise SourceError(
            f"source {text}: no data root to look in (set data_root in the config or "
            "LCLSTREAM_DATA_ROOT); files are found as <root>/<exp>/run<NNNN>/*.h5"
        )
    raise SourceError(
        f"source {text}: names no files (use exp=NAME,run=N with a data root, dir=..., "
        "or files=...)"
    )
