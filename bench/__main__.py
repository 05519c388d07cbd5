"""``python -m bench`` from the repository checkout: the benchmarks' own entry point.

The installed ``lclstream bench`` runs this in a subprocess (it never imports files of the
checkout into the installed package); ``make bench`` and CI call it directly.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import main  # noqa: E402


def cli(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="Small sizes, few repeats.")
    ap.add_argument("--json", dest="json_out", help="Write results as JSON here.")
    ap.add_argument("--only", action="append", help="Run only this benchmark (repeatable).")
    ap.add_argument(
        "--write-results",
        action="store_true",
        default=None,
        help="Rewrite bench/RESULTS.md, results.json and the PNG (default: full runs outside CI).",
    )
    ap.add_argument(
        "--no-write-results", dest="write_results", action="store_false", help="Leave them."
    )
    ap.add_argument(
        "--merge-results",
        action="store_true",
        help="Replace only the rows of the benchmarks run in bench/results.json and RESULTS.md.",
    )
    a = ap.parse_args(argv)
    return main(a.quick, a.json_out, a.only, a.write_results, a.merge_results)


if __name__ == "__main__":
    sys.exit(cli())
