"""Event-source types by name: the source part of :mod:`lclstream.registry`.

A plug-in (the psana2 source, a site's own reader) declares in its ``pyproject.toml``::

    [project.entry-points."lclstream.sources"]
    Psana2EventSource = "lclstream_psana2:open_source"

where ``open_source(config: LclstreamConfig, totals: DropCounter | None, *, worker: int,
workers: int) -> EventSource`` (see :class:`lclstream.protocols.EventSource`): it opens
worker ``worker``'s share of the events and counts the events it drops into ``totals``.
An entry point with the name of a built-in replaces it, so the pipeline never changes when
a source is added. Data source types a plug-in's event source reads are declared in the
``lclstream.data_sources`` group (the value is not loaded).
"""

from __future__ import annotations

from collections.abc import Callable

from lclstream.protocols import EventSource
from lclstream.registry import DATA_SOURCES, SOURCES

ENTRY_POINT_GROUP = SOURCES.group
DATA_SOURCE_GROUP = DATA_SOURCES.group

SourceFactory = Callable[..., EventSource]


def register_source(name: str, factory: SourceFactory) -> None:
    """Register a source type at run time (tests, embedding applications)."""
    SOURCES.add(name, factory, runtime=True)


def unregister_source(name: str) -> None:
    """Undo :func:`register_source` (a built-in of the same name comes back)."""
    SOURCES.remove(name)


def register_data_source_type(name: str) -> None:
    """Let configs name a data source type that a registered event source reads."""
    DATA_SOURCES.add(name, name, runtime=True)


def unregister_data_source_type(name: str) -> None:
    DATA_SOURCES.remove(name)


def plugin_type_names(kind: str) -> set[str]:
    """Type names plug-ins add: ``kind`` is "event_source" or "data_source"."""
    return (DATA_SOURCES if kind == "data_source" else SOURCES).plugin_names()


def source_types() -> list[str]:
    """Every event-source type name available now."""
    return SOURCES.names()


def get_source_factory(name: str) -> SourceFactory:
    """The factory for an event-source type: registered, then entry points, then built-in."""
    factory: SourceFactory = SOURCES.get(name)
    return factory
