"""One registry for every plug-in point: event sources, serializers, data handlers.

Why one: a config's ``type:`` names a component; the CLI's ``--format`` names a serializer by
a short alias; a site's plug-in adds a type through an entry point. All three questions —
which names exist, what does this alias mean, did the user misspell it — have one answer
per plug-in point, here. Built-ins are registered by dotted path and imported only when
used, so looking a name up costs nothing at start-up.

Plug-ins declare an entry point in their ``pyproject.toml``, e.g.::

    [project.entry-points."lclstream.serializers"]
    MySerializer = "my_site.formats:MySerializer"

A plug-in whose name is a built-in's replaces it (a site's own psana2 reader can take over
``Psana2EventSource`` that way).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from lclstream.errors import ConfigError

__all__ = ["HANDLERS", "SERIALIZERS", "SOURCES", "Registry"]


@dataclass
class _Entry:
    target: str | Callable[..., Any]  # "module:attr" (loaded on first use) or the object
    aliases: tuple[str, ...] = ()
    loaded: Any = None


@dataclass
class Registry:
    """Names of one plug-in point → the object that implements each (a class or factory).

    ``kind`` is what the names are called in messages ("serializer"), ``where`` the config
    key they appear under, ``group`` the entry-point group plug-ins use.
    """

    kind: str
    where: str
    group: str
    _entries: dict[str, _Entry] = field(default_factory=dict)
    _aliases: dict[str, str] = field(default_factory=dict)
    _runtime: set[str] = field(default_factory=set)
    _shadowed: dict[str, _Entry] = field(default_factory=dict)

    def add(
        self,
        name: str,
        target: str | Callable[..., Any],
        *,
        aliases: Iterable[str] = (),
        runtime: bool = False,
    ) -> None:
        """Register ``name`` (and its ``aliases``). ``runtime`` marks a registration made by
        an application or test (not a built-in): it wins over entry points and built-ins,
        and :meth:`remove` brings back the built-in it shadowed."""
        if runtime and name in self._entries and name not in self._runtime:
            self._shadowed[name] = self._entries[name]
        self._entries[name] = _Entry(target, tuple(aliases))
        for a in aliases:
            self._aliases[a] = name
        if runtime:
            self._runtime.add(name)

    def remove(self, name: str) -> None:
        """Forget a runtime registration (the built-in it shadowed comes back); built-ins
        stay."""
        if name not in self._runtime:
            return
        entry = self._entries.pop(name, None)
        self._runtime.discard(name)
        if entry is not None:
            for a in entry.aliases:
                self._aliases.pop(a, None)
        if name in self._shadowed:
            self._entries[name] = self._shadowed.pop(name)

    def _plugins(self) -> dict[str, Any]:
        try:
            return {ep.name: ep for ep in entry_points(group=self.group)}
        except Exception:  # a broken installed distribution must not break the built-ins
            return {}

    def canonical(self, name: str) -> str:
        """The registered name for ``name`` or one of its aliases (unchanged if unknown)."""
        return self._aliases.get(name, name)

    def names(self) -> list[str]:
        """Every canonical name available now (built-ins, runtime and plug-ins)."""
        return sorted(set(self._entries) | set(self._plugins()))

    def aliases(self) -> dict[str, str]:
        """alias → canonical name."""
        return dict(self._aliases)

    def plugin_names(self) -> set[str]:
        """Names that only plug-ins (entry points or runtime registrations) provide."""
        builtins = {n for n in self._entries if n not in self._runtime}
        return (set(self._plugins()) | self._runtime) - builtins

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.canonical(name) in set(self.names())

    def get(self, name: str) -> Any:
        """The object registered for ``name`` (an alias works); a ConfigError with the closest
        valid name when there is none, a ConfigError naming the plug-in when it fails to
        load."""
        key = self.canonical(name)
        if key in self._runtime:
            return self._load(key, self._entries[key])
        plugins = self._plugins()
        if key in plugins:
            try:
                return plugins[key].load()
            except Exception as e:
                raise ConfigError(
                    f"{self.where}: {self.kind} {key} comes from a plug-in "
                    f"({plugins[key].value}) that failed to load: {type(e).__name__}: {e}"
                ) from None
        entry = self._entries.get(key)
        if entry is None:
            raise ConfigError(self.unknown(name))
        return self._load(key, entry)

    def unknown(self, name: str) -> str:
        """The one-line error for a name that is not registered."""
        choices = self.names() + sorted(self._aliases)
        close = difflib.get_close_matches(name, choices, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return (
            f"{self.where}: {name!r} is not a known {self.kind}{hint}; "
            f"available: {', '.join(self.names())}"
        )

    @staticmethod
    def _load(key: str, entry: _Entry) -> Any:
        if entry.loaded is None:
            t = entry.target
            if isinstance(t, str):
                module, _, attr = t.partition(":")
                entry.loaded = getattr(importlib.import_module(module), attr)
            else:
                entry.loaded = t
        return entry.loaded


SOURCES = Registry("event source", "event_source.type", "lclstream.sources")
SOURCES.add("InternalEventSource", "lclstream.sources:open_internal")
SOURCES.add("Hdf5EventSource", "lclstream.sources:open_hdf5")
SOURCES.add("Psana1EventSource", "lclstream.sources:open_psana1")
SOURCES.add("Psana2EventSource", "lclstream.sources.psana2:open_psana2")

#: Data source types that plug-in event sources read (their options are the plug-in's).
DATA_SOURCES = Registry("data source", "data_sources.*.type", "lclstream.data_sources")

SERIALIZERS = Registry("serializer", "data_serializer.type", "lclstream.serializers")
SERIALIZERS.add(
    "HDF5BinarySerializer", "lclstream.formats.hdf5:HDF5BinarySerializer", aliases=("hdf5",)
)
SERIALIZERS.add(
    "SimplonBinarySerializer",
    "lclstream.formats.simplon:SimplonBinarySerializer",
    aliases=("simplon", "stream2"),
)
SERIALIZERS.add(
    "LclstreamerSimplonSerializer",
    "lclstream.formats.lclstreamer_simplon:LclstreamerSimplonSerializer",
    aliases=("lclstreamer_simplon",),
)
SERIALIZERS.add("RawBatchSerializer", "lclstream.formats.raw:RawBatchSerializer", aliases=("raw",))
SERIALIZERS.add(
    "NumpyBinarySerializer", "lclstream.formats.npz:NumpyBinarySerializer", aliases=("npz",)
)

HANDLERS = Registry("data handler", "data_handlers[].type", "lclstream.handlers")
HANDLERS.add(
    "BinaryDataStreamingDataHandler",
    "lclstream.handlers:BinaryDataStreamingDataHandler",
    aliases=("stream",),
)
HANDLERS.add(
    "BinaryFileWritingDataHandler",
    "lclstream.handlers:BinaryFileWritingDataHandler",
    aliases=("files",),
)
HANDLERS.add("InProcessDataHandler", "lclstream.handlers:InProcessDataHandler")


def format_names() -> dict[str, str]:
    """The short serializer names the CLI's ``--format`` takes → the serializer type."""
    return {a: n for a, n in SERIALIZERS.aliases().items() if a != "stream2"}
