"""Event sources: where events come from.

``open_source(config)`` builds the configured event source (``event_source.type``) with its
data sources and returns an :class:`lclstream.protocols.EventSource`. Built-ins:

* ``InternalEventSource`` — events generated in-process; data sources ``SyntheticDetector``
  (realistic raw Jungfrau/ePix10ka SFX frames with matching calibration constants, the
  default), and LCLStreamer's ``GenericRandomNumpyArray``, ``IntValue``, ``FloatValue``,
  ``SourceIdentifier``.
* ``Hdf5EventSource`` — HDF5/CXI files (``Hdf5Dataset`` data sources), from ``files`` or
  from ``source_identifier`` (``exp=...,run=...`` under the data root; see
  :mod:`lclstream.sources.addressing`). The demo run ``exp=xpptut15,run=670`` with no files
  falls back to the synthetic detector.
* ``Psana2EventSource`` — LCLS-II runs through psana2 (:mod:`lclstream.sources.psana2`,
  the ``psana`` extra), serial or under ``mpirun`` (:mod:`lclstream.run.mpi`).
* ``Psana1EventSource`` — a stand-in that explains LCLS-I psana is not available here.

Sources with built-in calibration constants (the synthetic detector) expose
``constants(name) -> dict`` (pedestal, gain, mask[, config_bits]); sources whose frames are
views into reused buffers say for how many further events a view stays valid in
``views_valid_for`` (absent: forever).
"""

from __future__ import annotations

from typing import Any

from lclstream.config import (
    ConstValueParameters,
    FloatValueParameters,
    GenericRandomNumpyArrayParameters,
    Hdf5DatasetParameters,
    Hdf5EventSourceParameters,
    InternalEventSourceParameters,
    IntValueParameters,
    LclstreamConfig,
    SourceIdentifierParameters,
    SyntheticDetectorParameters,
)
from lclstream.errors import SourceError
from lclstream.protocols import DropCounter, EventSource
from lclstream.sources.addressing import (
    DEMO_EXPERIMENT,
    DEMO_RUN,
    ResolvedSource,
    SourceAddress,
    parse_source_identifier,
    resolve_source,
)
from lclstream.sources.base import CompositeEventSource, DataSource, IncompleteEvents
from lclstream.sources.generic import (
    ConstantValue,
    GenericRandomNumpyArray,
    SourceIdentifierValue,
)
from lclstream.sources.hdf5 import DatasetSpec, Hdf5EventSource
from lclstream.sources.psana import psana_unavailable
from lclstream.sources.registry import (
    ENTRY_POINT_GROUP,
    get_source_factory,
    register_data_source_type,
    register_source,
    source_types,
    unregister_source,
)
from lclstream.sources.synthetic import DETECTORS, SyntheticDetector, synthetic_from_params


def _plain_data_source(name: str, params: Any, config: LclstreamConfig) -> DataSource:
    """Data sources that need no file or framework (usable by any event source)."""
    if isinstance(params, SyntheticDetectorParameters):
        return synthetic_from_params(name, params)
    if isinstance(params, GenericRandomNumpyArrayParameters):
        return GenericRandomNumpyArray(
            name, params.array_shape, params.array_dtype, seed=params.seed
        )
    if isinstance(params, IntValueParameters):
        return ConstantValue(name, params.value, "int64")
    if isinstance(params, FloatValueParameters):
        return ConstantValue(name, params.value, "float64")
    if isinstance(params, ConstValueParameters):
        return ConstantValue(name, params.values(), params.dtype)
    if isinstance(params, SourceIdentifierParameters):
        return SourceIdentifierValue(name, config.source_identifier)
    if params.type.startswith("Psana"):
        raise psana_unavailable(f"data_sources.{name}: {params.type}")
    raise SourceError(
        f"data_sources.{name}: {params.type} is not available with event source "
        f"{config.event_source.type}"
    )


def open_internal(
    config: LclstreamConfig, totals: DropCounter | None, *, worker: int = 0, workers: int = 1
) -> EventSource:
    es = config.event_source
    assert isinstance(es, InternalEventSourceParameters)
    sources: dict[str, DataSource] = {}
    try:
        for name, params in config.data_sources.items():
            if isinstance(params, Hdf5DatasetParameters):
                raise SourceError(
                    f"data_sources.{name}: Hdf5Dataset needs event_source type Hdf5EventSource"
                )
            sources[name] = _plain_data_source(name, params, config)
    except Exception:
        for s in sources.values():
            s.close()
        raise
    synth = next((s for s in sources.values() if isinstance(s, SyntheticDetector)), None)
    return CompositeEventSource(
        sources,
        number_of_events=es.number_of_events_to_generate,
        first_event=es.first_event,
        skip_incomplete=config.skip_incomplete_events,
        totals=totals,
        timestamp_source=synth,
        worker=worker,
        workers=workers,
    )


def open_hdf5(
    config: LclstreamConfig, totals: DropCounter | None, *, worker: int = 0, workers: int = 1
) -> EventSource:
    es = config.event_source
    assert isinstance(es, Hdf5EventSourceParameters)
    if es.files:
        resolved = resolve_source(SourceAddress(files=list(es.files)))
    else:
        resolved = resolve_source(config.source_identifier, config.resolved_data_root())
    if resolved.kind == "synthetic":
        # The demo run: the synthetic detector stands in for every Hdf5Dataset.
        synth_sources: dict[str, DataSource] = {}
        for name, params in config.data_sources.items():
            if isinstance(params, Hdf5DatasetParameters):
                synth_sources[name] = SyntheticDetector(name)
            else:
                synth_sources[name] = _plain_data_source(name, params, config)
        synth = next((s for s in synth_sources.values() if isinstance(s, SyntheticDetector)), None)
        return CompositeEventSource(
            synth_sources,
            number_of_events=es.number_of_events if es.number_of_events is not None else 1000,
            first_event=es.first_event,
            skip_incomplete=config.skip_incomplete_events,
            totals=totals,
            timestamp_source=synth,
            worker=worker,
            workers=workers,
        )
    datasets: dict[str, DatasetSpec] = {}
    others: dict[str, DataSource] = {}
    for name, params in config.data_sources.items():
        if isinstance(params, Hdf5DatasetParameters):
            datasets[name] = DatasetSpec(
                params.path, params.kind, params.photon_energy_keV, params.photon_energy_path
            )
        else:
            others[name] = _plain_data_source(name, params, config)
    return Hdf5EventSource(
        resolved.files,
        datasets,
        others=others,
        chunk_events=es.chunk_events,
        first_event=es.first_event,
        number_of_events=es.number_of_events,
        event_id_path=es.event_id_path,
        timestamp_path=es.timestamp_path,
        skip_incomplete=config.skip_incomplete_events,
        totals=totals,
        worker=worker,
        workers=workers,
    )


def open_psana1(config: LclstreamConfig, totals: DropCounter | None, **_: int) -> EventSource:
    """Stand-in until a psana1 plug-in provides the type: says what is missing."""
    raise psana_unavailable("Psana1EventSource")


def open_source(
    config: LclstreamConfig | Any,
    *,
    totals: DropCounter | None = None,
    worker: int = 0,
    workers: int = 1,
) -> EventSource:
    """Build the configured event source. ``config``: an LclstreamConfig, a path or a mapping.

    Drops of incomplete events (``skip_incomplete_events: true``) are counted into ``totals``.
    With ``workers`` > 1 this opens worker ``worker``'s share (the shares of all workers
    together hold every event exactly once), as LCLStreamer's MPI ranks do.
    Raises :class:`SourceError` (or ConfigError for a bad config) with a one-line message.
    """
    if not isinstance(config, LclstreamConfig):
        from lclstream.config import load_config

        config = load_config(config)
    factory = get_source_factory(config.event_source.type)
    return factory(config, totals, worker=worker, workers=workers)


__all__ = [
    "DEMO_EXPERIMENT",
    "DEMO_RUN",
    "DETECTORS",
    "ENTRY_POINT_GROUP",
    "CompositeEventSource",
    "DataSource",
    "DatasetSpec",
    "Hdf5EventSource",
    "IncompleteEvents",
    "ResolvedSource",
    "SourceAddress",
    "SyntheticDetector",
    "get_source_factory",
    "open_source",
    "parse_source_identifier",
    "register_data_source_type",
    "register_source",
    "resolve_source",
    "source_types",
    "unregister_source",
]
