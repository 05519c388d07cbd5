"""What to say when a config names a psana type that cannot run as configured.

LCLS-I psana (``Psana1*``) has no Python 3 release on PyPI, so its types validate (LCLStreamer
configs name them) but opening them says so; ``Psana2*`` data sources need the psana2 event
source (:mod:`lclstream.sources.psana2`) that reads them.
"""

from __future__ import annotations

import importlib.util

from lclstream.errors import SourceError


def psana_available() -> bool:
    return importlib.util.find_spec("psana") is not None


def psana_unavailable(type_name: str) -> SourceError:
    """The error for a psana type that cannot be opened here (``type_name`` names where)."""
    if "Psana1" in type_name:
        return SourceError(
            f"{type_name}: LCLS-I psana (psana1) is not available here (no Python 3 release "
            "on PyPI); lclstream reads LCLS-II runs with Psana2EventSource"
        )
    if not psana_available():
        return SourceError(f"{type_name} needs psana: pip install 'lclstream[psana]'")
    return SourceError(f"{type_name} needs event_source type Psana2EventSource")
