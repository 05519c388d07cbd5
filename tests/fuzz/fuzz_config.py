"""atheris: the YAML config loader (bounded YAML, then the typed models) on arbitrary text."""

from __future__ import annotations

import atheris

with atheris.instrument_imports(include=["lclstream"]):
    import yaml
    from lclstream.config import load_config, safe_load_bounded
    from lclstream.errors import ConfigError

from _target import main


def one_input(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    try:
        doc = safe_load_bounded(text)
        if isinstance(doc, dict):
            load_config(doc)
    except (ConfigError, yaml.YAMLError):
        pass


if __name__ == "__main__":
    main(one_input)
