"""Local faults and hostile local input: the file writer (stale temp files, two writers in one
folder, disk full, read-only folder), the YAML alias bomb, key file modes, CURVE warnings."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import h5py
import pytest
from fmt_helpers import batch, frames, info
from lclstream.errors import ConfigError, SecurityWarning, WriteError
from lclstream.formats.hdf5 import HDF5BinarySerializer
from lclstream.protocols import StreamTotals
from lclstream.writer import FileWriter
from proc_helpers import cli_env

SHAPE = (8, 16)


def _msgs(n: int, sid: str = "s") -> list[bytes]:
    ser = HDF5BinarySerializer()
    ser.start(info(SHAPE, "uint16", stream_id=sid))
    data = frames(n, SHAPE, "uint16")
    return [bytes(ser.serialize(batch(data[i : i + 1], first_id=i))[0].frames[0]) for i in range(n)]


def test_stale_temp_file_with_our_pid_does_not_block_writes(tmp_path: Path) -> None:
    stale = tmp_path / f".lclstream_r0_000000.h5.{os.getpid()}.tmp"
    stale.write_bytes(b"left by a crash")
    w = FileWriter(tmp_path)
    w.write_message(_msgs(1)[0])
    assert (tmp_path / "lclstream_r0_000000.h5").exists()
    assert stale.exists()  # fresh: not ours to judge yet, ignored
    old = time.time() - 7200
    os.utime(stale, (old, old))
    other = tmp_path / ".someone_else.tmp"
    other.write_bytes(b"x")
    os.utime(other, (old, old))
    FileWriter(tmp_path)
    assert not stale.exists() and other.exists()  # ours by prefix and old: removed


def test_two_writers_in_one_folder_keep_all_files(tmp_path: Path) -> None:
    msgs = _msgs(30)
    writers = [FileWriter(tmp_path), FileWriter(tmp_path)]
    barrier = threading.Barrier(2)

    def go(w: FileWriter) -> None:
        barrier.wait()
        for m in msgs:
            w.write_message(m)

    ts = [threading.Thread(target=go, args=(w,)) for w in writers]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    files = sorted(tmp_path.glob("*.h5"))
    assert len(files) == 60 and len(set(writers[0].files) | set(writers[1].files)) == 60
    for p in files:
        with h5py.File(p, "r") as f:
            assert f["/entry_1/data_1/data"].shape == (1, *SHAPE)
    assert not list(tmp_path.glob(".*.tmp"))


def test_disk_full_is_one_write_error_and_earlier_files_stay_valid(tmp_path: Path) -> None:
    """A real write failure: RLIMIT_FSIZE makes write() fail with EFBIG as a full disk fails
    with ENOSPC (no mount or root needed), in a child process."""
    code = textwrap.dedent(f"""
        import resource, signal, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_hostile_local import _msgs
        from lclstream.writer import FileWriter
        from lclstream.errors import WriteError
        msgs = _msgs(3)
        w = FileWriter({str(tmp_path)!r})
        w.write_message(msgs[0])
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (len(msgs[1]) // 2, resource.RLIM_INFINITY))
        try:
            w.write_message(msgs[1])
        except WriteError as e:
            print("WriteError:", e)
    """)
    cp = subprocess.run([sys.executable, "-c", code], env=cli_env(), capture_output=True,
                        text=True, timeout=60)  # fmt: skip
    assert "WriteError: cannot write" in cp.stdout, cp.stderr
    assert "1 file(s) written before it are complete" in cp.stdout
    files = sorted(tmp_path.iterdir())
    assert [p.name for p in files] == ["lclstream_r0_000000.h5"]
    with h5py.File(files[0], "r") as f:
        assert f["/entry_1/data_1/data"].shape == (1, *SHAPE)


def test_read_only_folder_is_a_write_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # root ignores mode bits: /proc/self is a folder nobody can create files in
        target = Path("/proc/self")
    else:
        target = tmp_path / "ro"
        target.mkdir()
        target.chmod(stat.S_IRUSR | stat.S_IXUSR)
    w = FileWriter(target)
    with pytest.raises(WriteError, match="cannot write"):
        w.write_message(_msgs(1)[0])


def test_yaml_alias_bomb_fails_fast_with_one_line(tmp_path: Path) -> None:
    bomb = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    prev = "a"
    for name in "bcdefghi":
        bomb += f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]\n"
        prev = name
    assert len(bomb) < 700
    p = tmp_path / "bomb.yaml"
    p.write_text(bomb)
    from lclstream.config import load_config

    t0 = time.perf_counter()
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    assert time.perf_counter() - t0 < 1.0
    assert "alias" in str(ei.value) and "\n" not in str(ei.value)


def test_yaml_few_aliases_but_exponential_expansion_refused(tmp_path: Path) -> None:
    text = "a0: &a0 [x, x]\n" + "".join(
        f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]\n" for i in range(1, 40)
    )  # 78 alias uses, 2^40 nodes
    p = tmp_path / "b.yaml"
    p.write_text(text)
    from lclstream.config import load_config

    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match="expands to"):
        load_config(p)
    assert time.perf_counter() - t0 < 1.0


def test_yaml_with_ordinary_aliases_still_loads() -> None:
    from lclstream.config import safe_load_bounded

    doc = safe_load_bounded("c: &c {type: X, n: [1, 2]}\nd: [*c, *c]\ne: *c\n")
    assert doc["d"] == [doc["c"], doc["c"]] and doc["e"]["n"] == [1, 2]


def test_keys_secret_file_is_0600_even_if_it_existed_0644(tmp_path: Path) -> None:
    from lclstream.transport import generate_keys

    sec = tmp_path / "server.key_secret"
    sec.write_text("old")
    sec.chmod(0o644)
    pub, sec2 = generate_keys(tmp_path)
    assert sec2 == sec
    assert stat.S_IMODE(sec.stat().st_mode) == 0o600
    assert "secret-key" in sec.read_text() and "old" not in sec.read_text()
    assert stat.S_IMODE(pub.stat().st_mode) == 0o644


def test_curve_server_without_allow_list_warns(tmp_path: Path) -> None:
    from lclstream.transport import Curve, Receiver, curve_available, generate_keys

    if not curve_available():
        pytest.skip("libzmq without CURVE")
    _, sec = generate_keys(tmp_path)
    cpub, _ = generate_keys(tmp_path, "client")
    with pytest.warns(SecurityWarning, match="allow-list"):
        Receiver("tcp://127.0.0.1:*", curve=Curve.server(sec)).close()
    with warnings.catch_warnings():
        warnings.simplefilter("error", SecurityWarning)
        Receiver("tcp://127.0.0.1:*", curve=Curve.server(sec, [cpub])).close()


def test_write_error_is_typed() -> None:
    e = WriteError(28, "cannot write x: No space left on device (ENOSPC)")
    assert isinstance(e, OSError) and e.errno == 28 and str(e).startswith("cannot write")
    _ = StreamTotals()
