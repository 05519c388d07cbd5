"""The psana2 source on real XTC2 runs written by psana's own tools (xtcwriter, DgramEdit,
smdwriter), serial and under ``mpirun`` (mpich from PyPI), into real receivers on 127.0.0.1.

psana is installed by ``make test`` (requirements-psana.txt), so none of this skips there."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin  # noqa: F401 - the bitshuffle filter for h5py
import numpy as np
import pytest
import yaml
from lclstream.config import load_config
from lclstream.errors import ConfigError, SourceError
from lclstream.pipeline import Pipeline
from lclstream.run.mpi import mpi_world, plan_rank
from lclstream.sources.psana2 import (
    lcls_to_unix_ns,
    open_psana_run,
    parse_psana2_identifier,
    psana2_roles,
)
from lclstream.sources.xtc2_files import Xtc2Run, make_xtc2_run
from proc_helpers import ReceiverThread, cli_env, free_port

psana = pytest.importorskip("psana", reason="the psana extra (requirements-psana.txt)")
MPIRUN = Path(sys.executable).with_name("mpirun")
EVENTS = 12


@pytest.fixture(scope="module")
def xtc_run(tmp_path_factory: pytest.TempPathFactory) -> Xtc2Run:
    return make_xtc2_run(tmp_path_factory.mktemp("xtc2"), EVENTS, segments=2)


def psana_config(identifier: str, url: str, **extra: Any) -> dict[str, Any]:
    return {
        "source_identifier": identifier,
        "event_source": {"type": "Psana2EventSource"},
        "data_sources": {
            "timestamp": {"type": "Psana2Timestamp"},
            "detector_data": {
                "type": "Psana2DetectorInterface",
                "psana_name": "jungfrau",
                "psana_fields": "raw.raw",
            },
            "run_info": {"type": "Psana2RunInfo"},
        },
        "processing_pipeline": {"type": "BatchProcessingPipeline", "batch_size": 5},
        "data_serializer": {"type": "HDF5BinarySerializer", "compression": "bitshuffle_with_lz4"},
        "data_handlers": [
            {"type": "BinaryDataStreamingDataHandler", "urls": [url], "role": "client", **extra}
        ],
    }


def read_files(files: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frames, event ids, timestamps) of every data message file, in the files' order."""
    frames, ids, stamps = [], [], []
    for name in files:
        with h5py.File(name, "r") as f:
            if "entry_1/data_1/data" not in f:
                continue  # the end message's file
            frames.append(f["entry_1/data_1/data"][()])
            ids.append(f["LCLS/eventNumber"][()])
            stamps.append(f["LCLS/timestamp"][()])
    return np.concatenate(frames), np.concatenate(ids), np.concatenate(stamps)


# ---------------------------------------------------------------------------- identifiers


def test_identifier_keys_as_lclstreamer_writes_them() -> None:
    got = parse_psana2_identifier("exp=mfx100852324,run=355,dir=/d/xtc,max_events=10,live")
    assert got == {
        "exp": "mfx100852324",
        "run": 355,
        "dir": "/d/xtc",
        "max_events": 10,
        "live": True,
    }
    assert parse_psana2_identifier("files=/a.xtc2") == {"files": "/a.xtc2"}
    assert parse_psana2_identifier("exp=x,run=1,ffb")["ffb"] is True


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("exp=x,run=1,colour=blue", "unknown psana2 key 'colour'"),
        ("exp=x,run=one", "run must be an integer"),
        ("shmem=tmo", "shmem mode is not supported"),
        ("exp=x", "exp= needs run="),
        ("run=3", "needs exp=...,run=... or files="),
        ("exp=x,run=1,live=yes", "live is a flag"),
    ],
)
def test_identifier_errors_name_the_part(text: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        parse_psana2_identifier(text)


def test_lcls_timestamps_count_from_1990() -> None:
    ts = (1_000 << 32) | 123
    assert lcls_to_unix_ns(ts) == (631_152_000 + 1_000) * 1_000_000_000 + 123


# ---------------------------------------------------------------------------------- roles


@pytest.mark.parametrize(
    ("size", "env", "types"),
    [
        (3, {}, ["smd0", "eb", "bd"]),
        (4, {}, ["smd0", "eb", "bd", "bd"]),
        (5, {"PS_EB_NODES": "2"}, ["smd0", "eb", "eb", "bd", "bd"]),
        (5, {"PS_SRV_NODES": "1"}, ["smd0", "eb", "bd", "bd", "srv"]),
    ],
)
def test_roles_follow_psana(size: int, env: dict[str, str], types: list[str]) -> None:
    roles = [psana2_roles(r, size, env) for r in range(size)]
    assert [r.node_type for r in roles] == types
    bd = [r for r in roles if r.streams]
    assert [r.sender for r in bd] == list(range(len(bd)))
    assert all(r.senders == len(bd) for r in roles)


def test_too_few_ranks_for_psana_is_a_clear_error() -> None:
    with pytest.raises(SourceError, match="at least 3"):
        psana2_roles(0, 2, {})


def test_non_psana_sources_make_every_rank_a_sender() -> None:
    cfg = load_config({"event_source": {"type": "InternalEventSource"}})
    plans = [plan_rank(cfg, r, 3) for r in range(3)]
    assert [(p.streams, p.sender, p.senders) for p in plans] == [(True, i, 3) for i in range(3)]


def test_mpi_world_reads_the_launcher_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for v in ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(v, raising=False)
    assert mpi_world() is None
    monkeypatch.setenv("PMI_RANK", "2")
    monkeypatch.setenv("PMI_SIZE", "4")
    assert mpi_world() == (2, 4)
    monkeypatch.setenv("PMI_SIZE", "1")
    assert mpi_world() is None  # mpirun -n 1 is a plain run


# --------------------------------------------------------------------------- serial runs


def test_offline_dir_works_where_psana_alone_fails(xtc_run: Xtc2Run) -> None:
    """psana's exp=,run=,dir= asks the LCLS logbook first and fails offline; ours reads the
    files under dir= (this machine cannot reach the logbook, so the first half shows it)."""
    from psana import DataSource

    with pytest.raises(Exception, match="pswww|Connection|resolve|Max retries"):
        DataSource(
            exp=xtc_run.experiment, run=xtc_run.run, dir=str(xtc_run.xtc_dir), skip_calib_load="all"
        )
    _, _, run = open_psana_run(xtc_run.source_identifier)
    assert "jungfrau" in run.detnames


@pytest.mark.parametrize("mode", ["dir", "files"])
def test_serial_stream_delivers_the_frames_psana_wrote(
    xtc_run: Xtc2Run, tmp_path: Path, mode: str
) -> None:
    ident = xtc_run.source_identifier if mode == "dir" else f"files={xtc_run.bigdata}"
    rx = ReceiverThread("tcp://127.0.0.1:0", out=tmp_path / "out", timeout=30)
    res = Pipeline(psana_config(ident, rx.endpoint())).run()
    got = rx.join()
    assert res.complete and got.complete, got.incomplete_reason()
    assert got.events == EVENTS and res.events_read == EVENTS
    frames, ids, stamps = read_files(sorted(got.files))
    np.testing.assert_array_equal(frames, xtc_run.frames)  # raw uint16, bit for bit
    assert list(ids) == xtc_run.timestamps  # event ids are psana's timestamps
    assert list(stamps) == xtc_run.timestamps  # Psana2Timestamp: LCLS format, as LCLStreamer
    with h5py.File(sorted(got.files)[0], "r") as f:
        info = json.loads(f["LCLS/run_info"][0])
    assert info["experiment"] == "xpptut15" and info["run_number"] == str(xtc_run.run)


def test_unknown_detector_names_what_the_run_has(xtc_run: Xtc2Run) -> None:
    cfg = psana_config(xtc_run.source_identifier, "tcp://127.0.0.1:1")
    cfg["data_sources"]["detector_data"]["psana_name"] = "epix10k2M"
    with pytest.raises(SourceError, match="no detector 'epix10k2M'.*jungfrau"):
        Pipeline(cfg)


def test_unknown_field_names_the_field(xtc_run: Xtc2Run) -> None:
    cfg = psana_config(xtc_run.source_identifier, "tcp://127.0.0.1:1")
    cfg["data_sources"]["detector_data"]["psana_fields"] = "raw.rawest"
    with pytest.raises(SourceError, match="jungfrau.raw.rawest.*'rawest'"):
        Pipeline(cfg)


def test_max_events_from_the_identifier(xtc_run: Xtc2Run) -> None:
    rx = ReceiverThread("tcp://127.0.0.1:0", timeout=30)
    res = Pipeline(psana_config(xtc_run.source_identifier + ",max_events=7", rx.endpoint())).run()
    got = rx.join()
    assert res.events_read == 7 and got.events == 7 and got.complete


def test_first_event_resumes_the_run_where_asked(xtc_run: Xtc2Run, tmp_path: Path) -> None:
    rx = ReceiverThread("tcp://127.0.0.1:0", out=tmp_path / "out", timeout=30)
    cfg = psana_config(xtc_run.source_identifier + ",max_events=9", rx.endpoint())
    cfg["event_source"]["first_event"] = 5
    res = Pipeline(cfg).run()
    got = rx.join()
    assert res.complete and got.complete and got.events == 4
    frames, ids, _ = read_files(sorted(got.files))
    assert list(ids) == xtc_run.timestamps[5:9]
    np.testing.assert_array_equal(frames, xtc_run.frames[5:9])


def test_first_event_with_psana_event_builders_is_refused(xtc_run: Xtc2Run) -> None:
    from lclstream.sources.psana2 import Psana2EventSource

    cfg = psana_config(xtc_run.source_identifier, "tcp://127.0.0.1:1")
    cfg["event_source"]["first_event"] = 3
    with pytest.raises(SourceError, match="first_event: 3 needs one reader.*3 ranks"):
        Psana2EventSource(load_config(cfg), mpi=(0, 3))


# ------------------------------------------------------------------------------------ MPI


def mpi_stream(cfg: dict[str, Any], tmp_path: Path, ranks: int, **env: str) -> list[dict]:
    path = tmp_path / f"mpi{ranks}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    e = {**cli_env(), **env}
    r = subprocess.run(
        [
            str(MPIRUN),
            "-n",
            str(ranks),
            sys.executable,
            "-m",
            "lclstream.cli",
            "stream",
            str(path),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=90,
        env=e,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return [json.loads(ln) for ln in r.stdout.splitlines() if ln.startswith("{")]


@pytest.mark.skipif(
    not MPIRUN.exists() or shutil.which("hostname") is None,
    reason="mpich's mpirun is installed by requirements-psana.txt",
)
@pytest.mark.parametrize(("ranks", "smd_events"), [(3, "4"), (4, "1"), (5, "2"), (5, "100")])
def test_mpi_ranks_stream_one_complete_stream(
    xtc_run: Xtc2Run, tmp_path: Path, ranks: int, smd_events: str
) -> None:
    """Only psana's big-data ranks stream; every one ends with its own end message (also
    those that got no event: PS_SMD_N_EVENTS=100 hands every event to one rank), and the
    receiver proves the stream complete across ranks."""
    rx = ReceiverThread("tcp://127.0.0.1:0", timeout=60)
    lines = mpi_stream(
        psana_config(xtc_run.source_identifier, rx.endpoint()),
        tmp_path,
        ranks,
        PS_SMD_N_EVENTS=smd_events,
    )
    got = rx.join()
    senders = [d for d in lines if d.get("streams")]
    assert len(lines) == ranks and len(senders) == ranks - 2
    assert sorted(d["role"] for d in lines if not d["streams"]) == ["eb", "smd0"]
    assert got.complete, got.incomplete_reason()
    assert got.senders == ranks - 2 and got.senders_ended == ranks - 2
    assert got.events == EVENTS == sum(d["events_read"] for d in senders)
    if smd_events == "100":
        assert sorted(d["events_read"] for d in senders)[0] == 0  # a rank with no event


@pytest.mark.skipif(not MPIRUN.exists(), reason="mpich's mpirun (requirements-psana.txt)")
def test_mpi_fewer_events_than_ranks(tmp_path: Path) -> None:
    small = make_xtc2_run(tmp_path / "small", 2, segments=1)
    rx = ReceiverThread("tcp://127.0.0.1:0", timeout=60)
    mpi_stream(
        psana_config(small.source_identifier, rx.endpoint()), tmp_path, 5, PS_SMD_N_EVENTS="1"
    )
    got = rx.join()
    assert got.complete and got.events == 2 and got.senders == 3


@pytest.mark.skipif(not MPIRUN.exists(), reason="mpich's mpirun (requirements-psana.txt)")
def test_mpi_internal_source_splits_events_over_every_rank(tmp_path: Path) -> None:
    rx = ReceiverThread("tcp://127.0.0.1:0", timeout=60)
    cfg = {
        "event_source": {"type": "InternalEventSource", "number_of_events_to_generate": 31},
        "data_sources": {
            "detector_data": {"type": "SyntheticDetector", "detector": "jungfrau", "pool_frames": 2}
        },
        "processing_pipeline": {"type": "BatchProcessingPipeline", "batch_size": 4},
        "data_serializer": {"type": "HDF5BinarySerializer"},
        "data_handlers": [{"type": "BinaryDataStreamingDataHandler", "urls": [rx.endpoint()]}],
    }
    lines = mpi_stream(cfg, tmp_path, 3)
    got = rx.join()
    assert got.complete and got.events == 31 and got.senders == 3
    assert sorted(d["events_read"] for d in lines) == [10, 10, 11]


def test_distribute_sends_each_rank_to_one_url() -> None:
    cfg = load_config(
        {
            "data_handlers": [
                {
                    "type": "BinaryDataStreamingDataHandler",
                    "urls": ["tcp://a:1", "tcp://b:2"],
                    "distribute": True,
                    "buffer": 1 << 20,
                }
            ]
        }
    )
    h = cfg.data_handlers[0]
    assert [h.urls_for(i) for i in range(3)] == [["tcp://a:1"], ["tcp://b:2"], ["tcp://a:1"]]
    h.distribute = False
    assert h.urls_for(1) == ["tcp://a:1", "tcp://b:2"]


def test_server_role_cannot_be_shared_by_mpi_senders(xtc_run: Xtc2Run) -> None:
    from lclstream.run.mpi import _check_config

    cfg = load_config(psana_config(xtc_run.source_identifier, f"tcp://127.0.0.1:{free_port()}"))
    cfg.data_handlers[0].role = "server"
    with pytest.raises(ConfigError, match="cannot share"):
        _check_config(cfg, plan_rank(cfg, 2, 4))


@pytest.mark.skipif(not MPIRUN.exists(), reason="mpich's mpirun (requirements-psana.txt)")
def test_a_failing_rank_ends_the_job_instead_of_hanging_it(
    xtc_run: Xtc2Run, tmp_path: Path
) -> None:
    """psana's other ranks would wait for a failed big-data rank forever: the job ends."""
    cfg = psana_config(xtc_run.source_identifier, f"tcp://127.0.0.1:{free_port()}")
    cfg["processing_pipeline"]["calibration"] = {
        "detector_data": {
            "detector": "jungfrau",
            "constants": str(tmp_path / "none.npz"),
            "output": "keV",
        }
    }
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = subprocess.run(
        [str(MPIRUN), "-n", "3", sys.executable, "-m", "lclstream.cli", "stream", str(path)],
        capture_output=True,
        text=True,
        timeout=90,
        env=cli_env(),
    )
    assert r.returncode != 0
    assert "rank 2" in r.stderr and "none.npz" in r.stderr


# ---------------------------------------------------------------------------- calibration


def stream_with_psana_constants(
    cfg: dict[str, Any], calibconst: dict[str, Any], out: Path
) -> np.ndarray:
    """Stream ``cfg`` with ``constants: psana``, psana holding ``calibconst`` for the run
    (put where psana keeps what its calibration database gives; the database cannot be
    reached here). Returns the frames the receiver wrote."""
    from lclstream.sources import open_source

    src = open_source(load_config(cfg))  # opened before: psana is told not to load any
    src.fields["detector_data"].det.raw._calibconst = calibconst  # type: ignore[attr-defined]
    cfg["processing_pipeline"]["calibration"]["detector_data"]["constants"] = "psana"
    rx = ReceiverThread("tcp://127.0.0.1:0", out=out, timeout=30)
    cfg["data_handlers"][0]["urls"] = [rx.endpoint()]
    assert Pipeline(cfg, source=src).run().complete
    frames, _, _ = read_files(sorted(rx.join().files))
    return frames


def test_calibration_equals_psana_det_raw_calib_bit_for_bit(tmp_path: Path) -> None:
    """Our Jungfrau calibration of raw.raw against psana's own det.raw.calib on the same XTC2
    run, given the same constants (psana's calibconst ctypes: pedestals, pixel_gain,
    pixel_offset, pixel_status; the mask is the one psana derives from pixel_status)."""
    from psana import DataSource

    rng = np.random.default_rng(7)
    nseg, n = 2, 4
    adu = rng.integers(0, 1 << 14, size=(n, nseg, 512, 1024), dtype=np.uint16)
    stage_bits = rng.choice(
        np.array([0, 1 << 14, 3 << 14], np.uint16), size=adu.shape, p=[0.9, 0.07, 0.03]
    )
    raw = adu | stage_bits
    xtc = make_xtc2_run(tmp_path / "cal", n, segments=nseg, frames=raw)
    cshape = (3, nseg, 512, 1024)
    ped = (rng.normal(1500, 200, cshape) * [[[[1.0]]], [[[9.0]]], [[[9.5]]]]).astype(np.float32)
    gain = (
        np.array([40.0, -1.5, -0.1]).reshape(3, 1, 1, 1) * rng.normal(1.0, 0.05, cshape)
    ).astype(np.float32)
    offs = rng.normal(0, 3, cshape).astype(np.float32)
    status = (rng.random(cshape) < 0.01).astype(np.uint64)

    ds = DataSource(files=[str(xtc.bigdata)], skip_calib_load="all")
    run = next(ds.runs())
    det = run.Detector("jungfrau")
    calibconst = {
        ctype: (
            arr,
            {
                "ctype": ctype,
                "detname": "jungfrau",
                "experiment": xtc.experiment,
                "run": xtc.run,
                "run_orig": xtc.run,
                "time_stamp": "",
                "version": "",
            },
        )
        for ctype, arr in (
            ("pedestals", ped),
            ("pixel_gain", gain),
            ("pixel_offset", offs),
            ("pixel_status", status),
        )
    }
    det.raw._calibconst = calibconst
    det.raw._calibc_ = None
    refs = np.stack([det.raw.calib(evt).copy() for evt in run.events()])  # psana reuses it
    mask = np.asarray(det.raw._mask()).reshape(nseg, 512, 1024)
    assert refs.dtype == np.float32 and 0 < mask.sum() < mask.size

    consts = tmp_path / "jf.npz"
    np.savez(consts, pedestals=ped, pixel_gain=gain, pixel_offset=offs, mask=mask.astype(np.uint8))
    cfg = psana_config(f"files={xtc.bigdata}", "tcp://127.0.0.1:1")
    cfg["processing_pipeline"]["calibration"] = {
        "detector_data": {"detector": "jungfrau", "constants": str(consts), "output": "keV"}
    }
    rx = ReceiverThread("tcp://127.0.0.1:0", out=tmp_path / "out", timeout=30)
    cfg["data_handlers"][0]["urls"] = [rx.endpoint()]
    assert Pipeline(cfg).run().complete
    got = rx.join()
    ours, _, _ = read_files(sorted(got.files))
    assert ours.dtype == np.float32 and ours.shape == refs.shape
    np.testing.assert_array_equal(ours.view(np.uint32), refs.view(np.uint32))

    # constants: psana — the constants psana holds for the run (its calibration database's,
    # here put where psana keeps them, as the database lookup cannot run on this machine)
    ours2 = stream_with_psana_constants(cfg, calibconst, tmp_path / "out2")
    np.testing.assert_array_equal(ours2.view(np.uint32), refs.view(np.uint32))

    # photons, as the stream sends them by default: max(0, rint(keV / E)) of psana's keV
    cfg["processing_pipeline"]["calibration"]["detector_data"].update(
        constants=str(consts), output="photons", photon_energy_keV=9.5
    )
    rx = ReceiverThread("tcp://127.0.0.1:0", out=tmp_path / "out3", timeout=30)
    cfg["data_handlers"][0]["urls"] = [rx.endpoint()]
    assert Pipeline(cfg).run().complete
    photons, _, _ = read_files(sorted(rx.join().files))
    expected = np.clip(np.rint(refs / np.float32(9.5)), 0, 65535).astype(np.uint16)
    assert photons.dtype == np.uint16
    np.testing.assert_array_equal(photons, expected)


def test_psana_constants_missing_is_a_clear_error(xtc_run: Xtc2Run) -> None:
    cfg = psana_config(xtc_run.source_identifier, "tcp://127.0.0.1:1")
    from lclstream.sources import open_source

    src = open_source(load_config(cfg))  # offline: psana loaded no constants
    with pytest.raises(SourceError, match="no pedestals for jungfrau"):
        src.constants("detector_data")


@pytest.mark.skipif(not MPIRUN.exists(), reason="mpich's mpirun (requirements-psana.txt)")
def test_mpi_two_event_builders(xtc_run: Xtc2Run, tmp_path: Path) -> None:
    """PS_EB_NODES=2 with 5 ranks: ranks 1-2 build events, 3-4 stream (psana's own layout,
    checked on every rank against the role psana gave it)."""
    rx = ReceiverThread("tcp://127.0.0.1:0", timeout=60)
    lines = mpi_stream(
        psana_config(xtc_run.source_identifier, rx.endpoint()), tmp_path, 5,
        PS_EB_NODES="2", PS_SMD_N_EVENTS="2",
    )  # fmt: skip
    got = rx.join()
    roles = {d["rank"]: d["role"] for d in lines}
    assert roles == {0: "smd0", 1: "eb", 2: "eb", 3: "bd", 4: "bd"}
    assert got.complete and got.senders == 2 and got.events == EVENTS


def test_epics_pv_values_travel_and_events_without_them_are_counted(
    xtc_run: Xtc2Run, tmp_path: Path
) -> None:
    """A name with ':' is an EPICS PV (LCLStreamer's rule). xtcwriter's run knows its PVs
    from the first SlowUpdate on (event 5): the four events before have no value and, with
    skip_incomplete_events, are dropped with a reason; the receiver still says complete."""
    cfg = psana_config(xtc_run.source_identifier, "tcp://127.0.0.1:1")
    cfg["skip_incomplete_events"] = True
    cfg["data_sources"]["pmon"] = {
        "type": "Psana2DetectorInterface",
        "psana_name": "HX2:DVD:GCC:01:PMON",
    }
    rx = ReceiverThread("tcp://127.0.0.1:0", out=tmp_path / "out", timeout=30)
    cfg["data_handlers"][0]["urls"] = [rx.endpoint()]
    res = Pipeline(cfg).run()
    got = rx.join()
    assert res.complete and got.complete, got.incomplete_reason()
    assert got.events == EVENTS - 4
    assert got.drop_reasons == {"incomplete: pmon missing": 4}
    found: list[Any] = []
    for name in sorted(got.files):
        with h5py.File(name, "r") as f:
            f.visititems(lambda n, o: found.append(o[()]) if n.endswith("pmon") else None)
    values = [v for arr in found for v in np.ravel(arr)]
    assert values == [41.0] * (EVENTS - 4)


def test_a_list_of_fields_gives_one_entry_per_field(xtc_run: Xtc2Run, tmp_path: Path) -> None:
    """LCLStreamer's ``psana_fields: [...]`` (its SIMPLON template's detector_geometry): one
    entry per field, named ``<psana_name>.<field>`` as its event dicts name them; ``dtype:
    str`` text travels as UTF-8 bytes."""
    cfg = psana_config(xtc_run.source_identifier, "tcp://127.0.0.1:1")
    cfg["data_sources"]["detector_geometry"] = {
        "type": "Psana2DetectorInterface",
        "psana_name": "jungfrau",
        "psana_fields": ["raw._det_geotxt_default", "raw._uniqueid"],
        "dtype": "str",
    }
    rx = ReceiverThread("tcp://127.0.0.1:0", out=tmp_path / "out", timeout=30)
    cfg["data_handlers"][0]["urls"] = [rx.endpoint()]
    assert Pipeline(cfg).run().complete
    got = rx.join()
    found: dict[str, Any] = {}
    with h5py.File(sorted(got.files)[0], "r") as f:

        def keep(name: str, obj: Any) -> None:  # visititems stops at a non-None return
            if isinstance(obj, h5py.Dataset):
                found[name.rsplit("/", 1)[-1]] = obj[()]

        f.visititems(keep)
    geo = found["jungfrau.raw._det_geotxt_default"]
    assert b"Geometry parameters of Jungfrau" in bytes(geo[0])
    assert b"lclstream_test_jungfrau" in bytes(found["jungfrau.raw._uniqueid"][0])


def test_epix10ka_calibration_equals_psana_bit_for_bit(tmp_path: Path) -> None:
    """ePix10ka: psana picks each pixel's gain range from the segment configuration
    (asicPixelConfig + trbit, written into the run's Configure) and the data's bit 14; our
    kernel gets psana's own control bits (det.raw._cbits_config_detector) and the same
    seven-range constants, and must give the same float32 bits."""
    from psana import DataSource

    rng = np.random.default_rng(11)
    nseg, n = 2, 3
    raw = rng.integers(0, 1 << 15, size=(n, nseg, 352, 384), dtype=np.uint16)  # bit 14 too
    xtc = make_xtc2_run(tmp_path / "epix", n, segments=nseg, frames=raw, detector="epix10ka")
    cshape = (7, nseg, 352, 384)
    ped = rng.normal(1500, 100, cshape).astype(np.float32)
    nominal = np.array([16.4, 5.466, 0.164, 16.4, 5.466, 0.164, 0.164]).reshape(7, 1, 1, 1)
    gain = (nominal * rng.normal(1.0, 0.05, cshape)).astype(np.float32)
    status = (rng.random(cshape) < 0.01).astype(np.uint64)
    meta = {"experiment": xtc.experiment, "run": xtc.run, "detname": xtc.psana_name}
    calibconst = {
        k: (a, {**meta, "ctype": k})
        for k, a in (("pedestals", ped), ("pixel_gain", gain), ("pixel_status", status))
    }
    ds = DataSource(files=[str(xtc.bigdata)], skip_calib_load="all")
    run = next(ds.runs())
    det = run.Detector(xtc.psana_name)
    det.raw._calibconst = calibconst
    det.raw._calibc_ = None
    refs = np.stack([det.raw.calib(evt).copy() for evt in run.events()])
    cbits = np.asarray(det.raw._cbits_config_detector())
    mask = np.asarray(det.raw._mask()).reshape(nseg, 352, 384)
    assert len(np.unique(cbits)) >= 5 and 0 < mask.sum() < mask.size

    consts = tmp_path / "epix.npz"
    np.savez(consts, pedestals=ped, pixel_gain=gain, config_bits=cbits, mask=mask.astype(np.uint8))
    cfg = psana_config(f"files={xtc.bigdata}", "tcp://127.0.0.1:1")
    cfg["data_sources"]["detector_data"]["psana_name"] = xtc.psana_name
    cfg["processing_pipeline"]["calibration"] = {
        "detector_data": {"detector": "epix10ka", "constants": str(consts), "output": "keV"}
    }
    rx = ReceiverThread("tcp://127.0.0.1:0", out=tmp_path / "out", timeout=30)
    cfg["data_handlers"][0]["urls"] = [rx.endpoint()]
    assert Pipeline(cfg).run().complete
    ours, _, _ = read_files(sorted(rx.join().files))
    assert ours.dtype == np.float32 and ours.shape == refs.shape
    np.testing.assert_array_equal(ours.view(np.uint32), refs.view(np.uint32))

    # constants: psana (control bits from the run's configuration, as psana reads them)
    ours2 = stream_with_psana_constants(cfg, calibconst, tmp_path / "out2")
    np.testing.assert_array_equal(ours2.view(np.uint32), refs.view(np.uint32))


@pytest.mark.parametrize("fmt", ["hdf5", "simplon", "lclstreamer_simplon", "raw", "npz"])
def test_event_ids_and_timestamps_travel_in_every_format(xtc_run: Xtc2Run, fmt: str) -> None:
    from lclstream import formats
    from lclstream.handlers import InProcessDataHandler
    from lclstream.registry import format_names
    from lclstream.sources.psana2 import lcls_to_unix_ns

    cfg = psana_config(xtc_run.source_identifier, "tcp://127.0.0.1:1")
    # A data source named "timestamp" takes /LCLS/timestamp in HDF5 (LCLStreamer's rule);
    # here the events' own timestamps are under test.
    cfg["data_sources"]["psana_timestamp"] = cfg["data_sources"].pop("timestamp")
    cfg["data_serializer"] = {"type": format_names()[fmt]}
    sink = InProcessDataHandler(maxsize=64)
    assert Pipeline(cfg, handlers=[sink]).run().complete
    ids: list[int] = []
    stamps: list[int] = []
    for msg in sink:
        p = formats.parse(msg)
        if p.kind == "data" and p.batch is not None:
            ids += [int(x) for x in p.batch.event_ids]
            stamps += [int(x) for x in p.batch.timestamps]
    assert ids == xtc_run.timestamps
    assert stamps == [lcls_to_unix_ns(t) for t in xtc_run.timestamps]


def test_assembled_image_field(xtc_run: Xtc2Run) -> None:
    """raw.image (psana's geometry assembles the segments): its shape comes from the first
    event, as psana knows it only then."""
    cfg = psana_config(xtc_run.source_identifier, "tcp://127.0.0.1:1")
    cfg["data_sources"]["detector_data"]["psana_fields"] = "raw.image"
    from lclstream.handlers import InProcessDataHandler

    sink = InProcessDataHandler(maxsize=64)
    pipe = Pipeline(cfg, handlers=[sink])
    shape = pipe.info.detectors["detector_data"].frame_shape
    assert len(shape) == 2 and shape[0] * shape[1] >= 2 * 512 * 1024
    res = pipe.run()
    assert res.complete and res.events_read == EVENTS
