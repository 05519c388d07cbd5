"""The lazy package namespace: importing lclstream, or running ``lclstream --help``, must not
load the heavy parts (the C++ core, numpy, pydantic, h5py) it does not use; public names still
resolve on first use."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from proc_helpers import cli_env

HEAVY = ("numpy", "pydantic", "h5py", "hdf5plugin", "zmq", "lclstream._core", "lclstream.config")


def loaded_after(code: str) -> dict[str, bool]:
    probe = (
        f"{code}\nimport sys, json\n"
        f"print(json.dumps({{m: m in sys.modules for m in {list(HEAVY)!r}}}))"
    )
    r = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, env=cli_env()
    )
    assert r.returncode == 0, r.stderr
    return dict(json.loads(r.stdout.strip().splitlines()[-1]))


def test_import_lclstream_loads_nothing_heavy() -> None:
    loaded = loaded_after("import lclstream")
    assert not any(loaded.values()), loaded


def test_cli_help_does_not_load_the_heavy_parts() -> None:
    code = (
        "import sys\nsys.argv = ['lclstream', '--help']\nfrom lclstream.cli import main\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n        main()\n    except SystemExit:\n        pass"
    )
    loaded = loaded_after(code)
    # the core's module (5 ms) is allowed: the typed errors the CLI maps are its types
    for m in ("numpy", "pydantic", "h5py", "zmq", "lclstream.config"):
        assert not loaded[m], f"lclstream --help imported {m}"


def test_transport_alone_does_not_pull_config() -> None:
    loaded = loaded_after("import lclstream.transport")
    assert not loaded["lclstream.config"] and not loaded["pydantic"], loaded


def test_public_names_resolve_lazily() -> None:
    import lclstream

    assert isinstance(lclstream.__version__, str) and lclstream.__version__
    assert lclstream.Batch.__module__ == "lclstream.batch"
    assert issubclass(lclstream.ConfigError, lclstream.LclstreamError)
    assert lclstream.transport.__name__ == "lclstream.transport"
    for name in lclstream.__all__:
        getattr(lclstream, name)
    assert set(lclstream.__all__) <= set(dir(lclstream))
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = lclstream.no_such_name  # type: ignore[attr-defined]
