"""Suite-wide fixtures.

``sigint_deliverable``: tests that send SIGINT (Ctrl-C) to this process or to a child skip,
saying why, where SIGINT would be ignored instead. A shell's ``cmd &`` (and some CI runners
and process supervisors) start a program with SIGINT ignored; children inherit that across
exec, and Python then installs no KeyboardInterrupt handler, so such a test would wait for
an interrupt that never comes.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest


def _sigint_ignored_by_children() -> bool:
    """Whether SIGINT is ignored at the OS level here, which children inherit (Linux)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    for line in status.splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGINT - 1) & 1)
    return False


def sigint_skip_reason() -> str | None:
    """Why SIGINT would not raise KeyboardInterrupt here (or in a child), or None."""
    handler = signal.getsignal(signal.SIGINT)
    if _sigint_ignored_by_children() or handler is signal.SIG_IGN:
        return (
            "SIGINT is ignored in this process and its children (started as a shell's "
            "`cmd &` or by a runner that ignores it), so Ctrl-C cannot be tested here"
        )
    if handler is not signal.default_int_handler:
        return f"SIGINT has handler {handler!r}, not Python's KeyboardInterrupt"
    return None


@pytest.fixture
def sigint_deliverable() -> None:
    """Skip the test where SIGINT is ignored (see the module docstring)."""
    reason = sigint_skip_reason()
    if reason is not None:
        pytest.skip(reason)
