"""One registry for sources, serializers and handlers: names, aliases, plug-ins, typos."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from lclstream import registry
from lclstream.errors import ConfigError
from lclstream.formats.hdf5 import HDF5BinarySerializer
from lclstream.registry import HANDLERS, SERIALIZERS, SOURCES, Registry, format_names


def test_builtins_aliases_and_did_you_mean() -> None:
    assert SERIALIZERS.get("hdf5") is HDF5BinarySerializer
    assert SERIALIZERS.get("HDF5BinarySerializer") is HDF5BinarySerializer
    assert SERIALIZERS.canonical("stream2") == "SimplonBinarySerializer"
    assert "InternalEventSource" in SOURCES and "raw" in SERIALIZERS
    assert set(HANDLERS.names()) >= {"BinaryDataStreamingDataHandler", "InProcessDataHandler"}
    with pytest.raises(ConfigError, match=r"did you mean 'HDF5BinarySerializer'\?"):
        SERIALIZERS.get("HDF5BinarySerialiser")
    with pytest.raises(ConfigError, match="available: .*RawBatchSerializer"):
        SERIALIZERS.get("nothing-like-it")


def test_cli_format_choices_come_from_the_registry() -> None:
    names = format_names()
    assert names["hdf5"] == "HDF5BinarySerializer" and names["raw"] == "RawBatchSerializer"
    assert set(names.values()) <= set(SERIALIZERS.names())


def test_entry_point_plugins_and_runtime_registrations(monkeypatch: pytest.MonkeyPatch) -> None:
    class Mine:
        pass

    ep = SimpleNamespace(name="MySerializer", value="site:Mine", load=lambda: Mine)
    monkeypatch.setattr(registry, "entry_points", lambda group: [ep] if "serial" in group else [])
    assert SERIALIZERS.get("MySerializer") is Mine
    assert "MySerializer" in SERIALIZERS.plugin_names()

    def broken() -> Any:
        raise ImportError("no module named site")

    ep2 = SimpleNamespace(name="Broken", value="site:Broken", load=broken)
    monkeypatch.setattr(registry, "entry_points", lambda group: [ep2])
    with pytest.raises(ConfigError, match=r"plug-in \(site:Broken\) that failed to load"):
        SERIALIZERS.get("Broken")

    r = Registry("thing", "things.type", "lclstream.test-things")
    r.add("A", "lclstream.formats.hdf5:HDF5BinarySerializer", aliases=("a",))
    r.add("A", Mine, runtime=True)  # shadows the built-in ...
    assert r.get("a") is Mine
    r.remove("A")  # ... until removed
    assert r.get("A") is HDF5BinarySerializer
    r.remove("A")  # built-ins are not removed
    assert r.get("A") is HDF5BinarySerializer
