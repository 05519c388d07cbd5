"""The README's Python example runs as printed (with its input files made here and its
endpoint moved to a free port), and the receiver gets a chunk that decodes to the data."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import numpy as np
import pytest

from lclstream import codec
from lclstream.transport import Receiver

README = Path(__file__).resolve().parent.parent / "README.md"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_readme_python_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S)
    assert block, "README has no python example"
    code = block.group(1)
    port = _free_port()
    code = code.replace("tcp://127.0.0.1:5000", f"tcp://127.0.0.1:{port}")
    rng = np.random.default_rng(0)
    shape = (2, 8, 512, 1024)
    raw = (rng.integers(1000, 1100, size=shape, dtype=np.uint16)).astype(np.uint16)
    ped = np.full((3, 8, 512, 1024), 1000, np.float32)
    gain = np.full((3, 8, 512, 1024), 9.5, np.float32)  # ADU per keV
    monkeypatch.chdir(tmp_path)
    np.save("raw.npy", raw)
    np.save("pedestal.npy", ped)
    np.save("gain.npy", gain)
    with Receiver(f"tcp://127.0.0.1:{port}") as r:
        scope: dict[str, object] = {}
        exec(compile(code, str(README), "exec"), scope)
        frames = r.recv(timeout=10)
    batch = scope["batch"]
    data = np.asarray(batch.data)  # type: ignore[attr-defined]
    kev = ((raw[0] & 0x3FFF).astype(np.float32) - ped[0]) * (np.float32(1) / gain[0])
    expected = np.maximum(0, np.rint(kev / np.float32(9.5)))
    np.testing.assert_array_equal(data[0], expected.astype(np.uint16))
    got = codec.decompress(frames[-1], "bslz4", dtype=np.uint16, shape=data.shape[1:])
    np.testing.assert_array_equal(got, data[0])
