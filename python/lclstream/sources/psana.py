"""Stand-ins for LCLStreamer's psana types until the psana2 source plugin is installed.

Configs naming them validate (the schema accepts them); opening them explains what is
missing instead of failing on an import deep inside the pipeline.
"""

from __future__ import annotations

import importlib.util

from lclstream.errors import SourceError


def psana_available() -> bool:
    return importlib.util.find_spec("psana") is not None


def psana_unavailable(type_name: str) -> SourceError:
    """The error for a psana type that no installed plugin provides."""
    if psana_available():
        return SourceError(
            f"{type_name}: psana is installed but no lclstream source plugin provides "
            f"{type_name} (the psana2 source comes as a plugin in the 'lclstream.sources' "
            "entry-point group)"
        )
    return SourceError(
        f"{type_name} needs psana, which is not installed (LCLS psana2 reading comes with the "
        "psana2 source plugin later; use InternalEventSource with SyntheticDetector, or "
        "Hdf5EventSource, meanwhile)"
    )
