"""Event-source types by name: built-ins from a table, plug-ins from entry points.

A plug-in (the psana2 source, a site's own reader) declares in its ``pyproject.toml``::

    [project.entry-points."lclstream.sources"]
    Psana2EventSource = "lclstream_psana2:open_source"

where ``open_source(config: LclstreamConfig, totals: StreamTotals | None, *, worker: int,
workers: int) -> EventSource`` (see :class:`lclstream.protocols.EventSource`): it opens
worker ``worker``'s share of the events and counts the events it drops into ``totals``.
An entry point with the name of a built-in replaces it (that is how the psana2 plug-in
takes over the ``Psana2EventSource`` stand-in), so the pipeline never changes when a
source is added.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from lclstream.errors import SourceError
from lclstream.protocols import EventSource

ENTRY_POINT_GROUP = "lclstream.sources"
#: Data source type names a plug-in's event source reads (the value is not loaded).
DATA_SOURCE_GROUP = "lclstream.data_sources"

SourceFactory = Callable[..., EventSource]

_BUILTIN: dict[str, SourceFactory] = {}
_REGISTERED: dict[str, SourceFactory] = {}
_REGISTERED_DATA_TYPES: set[str] = set()


def builtin(name: str) -> Callable[[SourceFactory], SourceFactory]:
    def deco(fn: SourceFactory) -> SourceFactory:
        _BUILTIN[name] = fn
        return fn

    return deco


def register_source(name: str, factory: SourceFactory) -> None:
    """Register a source type at run time (tests, embedding applications)."""
    _REGISTERED[name] = factory


def unregister_source(name: str) -> None:
    _REGISTERED.pop(name, None)


def register_data_source_type(name: str) -> None:
    """Let configs name a data source type that a registered event source reads."""
    _REGISTERED_DATA_TYPES.add(name)


def _entry_points(group: str = ENTRY_POINT_GROUP) -> dict[str, Any]:
    try:
        return {ep.name: ep for ep in entry_points(group=group)}
    except Exception:  # a broken installed distribution must not break built-in sources
        return {}


def plugin_type_names(kind: str) -> set[str]:
    """Type names plug-ins add: ``kind`` is "event_source" or "data_source"."""
    if kind == "data_source":
        return set(_entry_points(DATA_SOURCE_GROUP)) | _REGISTERED_DATA_TYPES
    return (set(_entry_points()) | set(_REGISTERED)) - set(_BUILTIN)


def source_types() -> list[str]:
    """Every event-source type name available now."""
    return sorted(set(_BUILTIN) | set(_entry_points()) | set(_REGISTERED))


def get_source_factory(name: str) -> SourceFactory:
    """The factory for an event-source type: registered, then entry points, then built-in."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    eps = _entry_points()
    if name in eps:
        try:
            factory = eps[name].load()
        except Exception as e:
            raise SourceError(
                f"event source {name}: its plug-in ({eps[name].value}) failed to load: {e}"
            ) from None
        return factory  # type: ignore[no-any-return]
    if name in _BUILTIN:
        return _BUILTIN[name]
    close = difflib.get_close_matches(name, source_types(), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise SourceError(
        f"unknown event source type {name!r}{hint}; available: {', '.join(source_types())}"
    )
