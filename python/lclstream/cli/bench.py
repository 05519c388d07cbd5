"""``lclstream bench``: run the repository's benchmarks.

The benchmarks live in the source checkout (``bench/``), not in the installed package: they
import baselines (h5py, hdf5plugin, numpy pipelines) the package must not depend on. So the
command finds a checkout and runs ``python -m bench`` there in a child process; it never puts
checkout files on the installed package's import path.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from lclstream.cli._common import EXIT_ERROR, fail


def repo_root() -> Path | None:
    """The checkout holding ``bench/``: $LCLSTREAM_REPO, the working directory or one of its
    parents, the tree this module runs from (a developer checkout), or the checkout the
    installed package was built from (``source_dir.txt``, written by the build)."""
    here = Path(__file__).resolve().parent.parent  # the lclstream package folder
    starts: list[Path] = []
    if os.environ.get("LCLSTREAM_REPO"):
        starts.append(Path(os.environ["LCLSTREAM_REPO"]))
    starts += [Path.cwd(), here]
    built_from = here / "source_dir.txt"
    if built_from.is_file():
        starts.append(Path(built_from.read_text().strip()))
    for start in starts:
        for parent in (start, *start.parents):
            if (parent / "bench" / "__main__.py").is_file() and (
                parent / "pyproject.toml"
            ).is_file():
                return parent
    return None


def bench(
    quick: Annotated[bool, typer.Option("--quick", help="Small sizes, few repeats.")] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write results as JSON.")] = None,
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Run only this benchmark (repeatable).")
    ] = None,
    write_results: Annotated[
        bool | None,
        typer.Option(
            "--write-results/--no-write-results",
            help="Rewrite bench/RESULTS.md (default: full runs outside CI).",
        ),
    ] = None,
) -> None:
    """Run the benchmarks (needs the repository checkout's bench/ folder: run from it, or set
    LCLSTREAM_REPO).

    Exit codes: 0 ok, 1 error, 2 usage or configuration error.
    """
    root = repo_root()
    if root is None:
        raise fail(
            "the benchmarks live in the repository checkout (bench/); run `lclstream bench` "
            "from a source tree, set LCLSTREAM_REPO, or run `make bench`",
            EXIT_ERROR,
        )
    argv = [sys.executable, "-m", "bench"]
    if quick:
        argv.append("--quick")
    if json_out is not None:
        argv += ["--json", str(json_out.resolve())]
    for name in only or []:
        argv += ["--only", name]
    if write_results is not None:
        argv.append("--write-results" if write_results else "--no-write-results")
    env = {**os.environ, "LCLSTREAM_REPO": str(root)}
    try:
        rc = subprocess.call(argv, cwd=root, env=env)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    if rc:
        raise typer.Exit(rc)
