"""Run every atheris fuzzer in this folder for a bounded time (``make fuzz-py``).

Each target runs in its own process for ``FUZZ_SECONDS`` (default 20) seconds, starting from
its committed seed corpus ``corpus/<target>/`` (read-only: new inputs go to a temporary
folder). A crash leaves ``crash-*`` in ``FUZZ_ARTIFACTS`` (default ``build/fuzz-py``) and fails
the run; each crash found is turned into a regression test in tests/.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGETS = ["hdf5", "stream2", "lclstreamer_simplon", "raw", "config"]


def main(argv: list[str]) -> int:
    seconds = int(os.environ.get("FUZZ_SECONDS", "20"))
    artifacts = Path(os.environ.get("FUZZ_ARTIFACTS", "build/fuzz-py")).resolve()
    artifacts.mkdir(parents=True, exist_ok=True)
    targets = argv or os.environ.get("FUZZ_PY_TARGETS", "").split() or TARGETS
    failed = []
    env = dict(os.environ)
    # the installed package (with its compiled core), plus this folder for _target.py
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH", "")) if p)
    for t in targets:
        with tempfile.TemporaryDirectory() as work:
            cmd = [
                sys.executable, str(HERE / f"fuzz_{t}.py"),
                f"-max_total_time={seconds}", "-rss_limit_mb=3072", "-timeout=10",
                f"-artifact_prefix={artifacts}/{t}-", work, str(HERE / "corpus" / t),
            ]  # fmt: skip
            print(f"== fuzz {t} ({seconds} s)", flush=True)
            rc = subprocess.run(cmd, env=env).returncode
            if rc != 0:
                failed.append(t)
    if failed:
        print(f"fuzzers failed: {', '.join(failed)} (inputs in {artifacts})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
