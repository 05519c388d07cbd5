"""The ``lclstream`` command line: one module per command, registered on one Typer app.

Each command module imports the library lazily inside its function, so ``lclstream --help``
and ``lclstream --version`` start without loading the C++ core, numpy or h5py.
"""

from __future__ import annotations

from lclstream.cli._app import app, main
from lclstream.cli._common import EXIT_ERROR, EXIT_INCOMPLETE, EXIT_OK, EXIT_USAGE, cmake_dir

__all__ = ["EXIT_ERROR", "EXIT_INCOMPLETE", "EXIT_OK", "EXIT_USAGE", "app", "cmake_dir", "main"]
