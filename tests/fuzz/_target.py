"""What every atheris fuzzer here shares: the one rule, and how a target is run.

The rule (DESIGN: bytes from the network are hostile): a parser given any bytes returns or
raises the format's typed error (``FormatError``; ``ConfigError`` for the config loader),
quickly and without unbounded memory. Anything else escaping is a crash that libFuzzer
reports (and saves as ``crash-*``), to become a regression test in tests/.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import atheris

HERE = Path(__file__).resolve().parent


def main(one_input: Callable[[bytes], None]) -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
