"""A POSTed LCLStreamer config, confined to the data this server serves.

Why: LCLS' transfer API takes a whole LCLStreamer config (``parameters``), and a config names
files: HDF5 inputs, psana's ``dir=``/``files=``, constants, a data root. The server's worker
runs as the server's user, so without this step any token holder could stream any file that
user can read (another experiment's run, the server's own token store). Here a config names
its run by ``exp=`` and ``run=`` (a ``dir=`` or ``files=`` only inside ``ROOT/EXP``, as an
LCLS client may send them); the server's catalog says where that run is, the config is
rewritten to read it from there, and constants must lie in the experiment's ``calib``
folder. Plug-in sources, whose options this server cannot vet, are refused.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from lclstream.server.requests import RequestError, experiment_and_run

__all__ = ["confine_parameters"]

#: constants values that name no file
_NO_FILE_CONSTANTS = {"synthetic", "psana"}


def _identifier_items(ident: str) -> list[tuple[str, str]]:
    """``key=value`` parts as psana2's parser splits them (on commas)."""
    items = [p.strip().partition("=") for p in ident.split(",") if p.strip()]
    return [(k, v) for k, _, v in items]


def _check_paths(ident: str, data_root: str | None, exp: str) -> None:
    """Paths may appear only as ``dir=`` (one folder) or ``files=`` (``:``/``;``-separated)
    values, each inside ``ROOT/EXP`` after resolving links and ``..``; a path anywhere else
    (an LCLS-I ``exp=...:run=...`` part, a second file smuggled after a colon) is refused."""
    import re

    where = "parameters.source_identifier"
    for key, value in _identifier_items(ident):
        if key == "dir":
            paths = [value] if value and not re.search(r"[:;]", value) else []
        elif key == "files":
            paths = [v for v in re.split(r"[:;]", value) if v]
        else:
            if "/" in f"{key}={value}" or "dir=" in value or "files=" in value:
                raise RequestError(f"{where}: paths only as dir= or files= values ({key}=...)")
            continue
        if not paths or not all(_inside(p, data_root, exp) for p in paths):
            raise RequestError(
                f"{where}: {key}={value} is not in this server's data for {exp}; name the "
                "run by exp= and run= (the server knows where it is)"
            )


def _inside(path: str, data_root: str | None, exp: str) -> bool:
    """Whether ``path`` lies in ``ROOT/EXP`` (an LCLS client may name the run's own folder
    or files; it may not name anything else)."""
    if data_root is None:
        return False
    base = Path(os.path.realpath(Path(data_root) / exp))
    return Path(os.path.realpath(path)).is_relative_to(base)


def confine_parameters(config: dict[str, Any], data_root: str | None) -> dict[str, Any]:
    """The config to run for a ``parameters`` body; RequestError (422) naming the key when it
    reaches outside what the server serves."""
    from lclstream.config import (
        PluginDataSourceParameters,
        PluginEventSourceParameters,
        load_config,
    )
    from lclstream.errors import ConfigError
    from lclstream.server.catalog import find_run

    cfg = copy.deepcopy(config)
    ident = str(cfg.get("source_identifier", ""))
    exp, run = experiment_and_run(ident)
    if exp is None or run is None:
        raise RequestError("parameters.source_identifier: needs exp=... and run=...")
    _check_paths(ident, data_root, exp)
    entry = find_run(data_root, exp, run)
    if entry is None:
        raise RequestError(f"parameters.source_identifier: this server has no run {run} of {exp}")
    try:
        model = load_config(cfg)
    except ConfigError as e:
        raise RequestError(str(e)) from None
    if isinstance(model.event_source, PluginEventSourceParameters):
        raise RequestError(
            f"parameters.event_source.type: {model.event_source.type!r} is a plug-in; this "
            "server streams its own sources only"
        )
    for name, ds in model.data_sources.items():
        if isinstance(ds, PluginDataSourceParameters):
            raise RequestError(
                f"parameters.data_sources.{name}.type: {ds.type!r} is a plug-in; this server "
                "streams its own data sources only"
            )
    es = cfg.get("event_source") or {}
    kind = es.get("type")
    if es.get("files"):
        raise RequestError(
            "parameters.event_source.files: not served; name the run by source_identifier"
        )
    wanted = {"Psana2EventSource": "xtc2", "Hdf5EventSource": "hdf5"}.get(str(kind))
    if (
        wanted is not None
        and entry.kind != wanted
        and not (
            wanted == "hdf5" and entry.kind == "synthetic"  # the demo run stands in for files
        )
    ):
        raise RequestError(
            f"parameters.event_source.type: run {run} of {exp} is {entry.kind} on this "
            f"server, not {wanted}"
        )
    if wanted == "xtc2" and "dir" not in dict(_identifier_items(ident)):
        cfg["source_identifier"] = f"{ident},dir={entry.path}"
    if data_root is not None:
        cfg["data_root"] = str(data_root)
    else:
        cfg.pop("data_root", None)
    calibration = (cfg.get("processing_pipeline") or {}).get("calibration") or {}
    if isinstance(calibration, dict):
        for name, spec in calibration.items():
            if isinstance(spec, dict) and "constants" in spec:
                spec["constants"] = _confined_constants(
                    str(spec["constants"]), data_root, exp, f"calibration.{name}"
                )
    return cfg


def _confined_constants(value: str, data_root: str | None, exp: str, where: str) -> str:
    if value in _NO_FILE_CONSTANTS:
        return value
    where = f"parameters.processing_pipeline.{where}.constants"
    if data_root is None:
        raise RequestError(f"{where}: this server has no data root; use synthetic")
    calib = Path(os.path.realpath(Path(data_root) / exp / "calib"))
    path = Path(os.path.realpath(calib / value))  # an absolute value replaces calib
    if not path.is_relative_to(calib):
        raise RequestError(f"{where}: must be a file in {exp}/calib of this server's data root")
    return str(path)
