"""Ray consumers on a real local Ray cluster (CPU, sized for this 2-core machine): raw
batches from a real streaming pipeline over loopback land in the object store once and
reach actors as read-only views; every event is accounted for, a slow consumer holds the
producer back without the object store spilling, and a dying consumer's batch is reported."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from lclstream.pipeline import Pipeline
from proc_helpers import photon_stream_config

ray = pytest.importorskip("ray", reason="the ray extra (pip install 'lclstream[ray]')")

from lclstream.ray import BatchStream, RayBatch, map_batches  # noqa: E402

ENERGY = 9.5
STORE = 96 << 20  # object store: 96 MiB (batches of 4 one-module frames are 4-8 MiB)
SPILL = Path(tempfile.mkdtemp(prefix="lclstream-ray-spill-"))  # where Ray would spill


def spilled() -> list[Path]:
    """What Ray wrote to the spill folder (it makes its subfolder at the first spill, and it
    stays: without the ingest's bound the test below finds one, and a spilled file in it)."""
    return list(SPILL.iterdir())


@pytest.fixture(scope="module", autouse=True)
def cluster() -> Iterator[None]:
    # the actors unpickle this module's functions by name: they need tests/ on their path
    here = os.path.dirname(os.path.abspath(__file__))
    python_path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH", "")) if p)
    ray.init(
        num_cpus=2,
        object_store_memory=STORE,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": python_path}},
        _system_config={"object_spilling_config": json.dumps(
            {"type": "filesystem", "params": {"directory_path": str(SPILL)}})},
    )  # fmt: skip
    yield
    ray.shutdown()


def producer_config(
    endpoint: str, events: int, batch: int = 4, serializer: str = "RawBatchSerializer"
) -> dict[str, Any]:
    handler = {"type": "BinaryDataStreamingDataHandler", "urls": [endpoint], "role": "client"}
    return photon_stream_config(
        serializer, [handler], events, photon_energy_keV=ENERGY, batch_size=batch
    )


class Producer(threading.Thread):
    """The streaming pipeline, connecting to the ingest's bound endpoint."""

    def __init__(self, endpoint: str, events: int, **kw: Any) -> None:
        super().__init__(daemon=True)
        self.cfg = producer_config(endpoint, events, **kw)
        self.result: Any = None
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self.result = Pipeline(self.cfg).run()
        except BaseException as e:  # noqa: BLE001 - the test reports it
            self.error = e

    def finish(self) -> Any:
        self.join(120)
        assert not self.is_alive(), "the producer did not finish"
        if self.error is not None:
            raise self.error
        return self.result


def checksum(batch: RayBatch) -> tuple[list[int], int, bool, bool]:
    """(event ids, sum of photons, the array is read-only, it does not own its memory)."""
    d = batch.data
    return (
        [int(i) for i in batch.event_ids],
        int(d.sum()),
        not d.flags.writeable,
        not d.flags.owndata,
    )


def test_a_pool_of_actors_processes_every_event() -> None:
    stream = BatchStream("tcp://127.0.0.1:0", timeout=30)
    prod = Producer(stream.endpoints[0], 30)
    res = map_batches(stream, checksum, actors=2, keep_outputs=True)
    sent = prod.finish()
    assert sent.complete
    assert res.complete, res.incomplete_reason()
    assert res.events_processed == res.events_received == 30 and res.batches == 8
    ids = [i for k in sorted(res.outputs) for i in res.outputs[k][0]]
    assert len(ids) == 30 and len(set(ids)) == 30  # every event once
    assert all(o[2] and o[3] for o in res.outputs.values())  # views of the store, no copy
    assert sum(o[1] for o in res.outputs.values()) > 0


class Counter:
    """A class consumer: instantiated once per actor with its arguments."""

    def __init__(self, scale: int) -> None:
        self.scale = scale
        self.seen = 0

    def __call__(self, batch: RayBatch) -> tuple[int, int]:
        self.seen += len(batch)
        return os.getpid(), self.seen * self.scale


@pytest.mark.parametrize("serializer", ["HDF5BinarySerializer", "NumpyBinarySerializer"])
def test_hdf5_and_npz_messages_land_decoded_like_raw_batches(serializer: str) -> None:
    """The ingest decodes every format the receiver does (bslz4 HDF5 file images, npz): the
    same run arrives with the same event ids and the same photons as over raw batches."""
    got: dict[str, Any] = {}
    for ser in ("RawBatchSerializer", serializer):
        stream = BatchStream("tcp://127.0.0.1:0", timeout=30)
        prod = Producer(stream.endpoints[0], 12, serializer=ser)
        res = map_batches(stream, checksum, actors=1, keep_outputs=True)
        assert prod.finish().complete and res.complete, res.incomplete_reason()
        outs = [res.outputs[k] for k in sorted(res.outputs)]
        got[ser] = ([i for o in outs for i in o[0]], sum(o[1] for o in outs))
    assert got[serializer] == got["RawBatchSerializer"]
    assert len(got[serializer][0]) == 12 and got[serializer][1] > 0


def test_class_consumers_keep_state_per_actor_and_share_the_work() -> None:
    stream = BatchStream("tcp://127.0.0.1:0", timeout=30)
    prod = Producer(stream.endpoints[0], 40)
    res = map_batches(stream, Counter, fn_args=(10,), actors=2, keep_outputs=True)
    assert prod.finish().complete and res.complete, res.incomplete_reason()
    per_actor: dict[int, int] = {}
    for pid, seen in res.outputs.values():
        per_actor[pid] = max(per_actor.get(pid, 0), seen)
    assert len(per_actor) == 2  # least-loaded dispatch used both actors
    assert sum(per_actor.values()) == 40 * 10


def test_the_driver_iterator_gets_views_and_the_verdict() -> None:
    with BatchStream("tcp://127.0.0.1:0", timeout=30) as stream:
        prod = Producer(stream.endpoints[0], 13, batch=5)
        sizes = []
        for batch in stream:
            sizes.append(len(batch))
            assert batch.data.shape[1:] == (1, 512, 1024) and not batch.data.flags.writeable
            assert batch.detectors["detector_data"]["kind"] == "jungfrau"
        assert prod.finish().complete
    assert sizes == [5, 5, 3]
    assert stream.result.complete, stream.result.incomplete_reason()


def slow(batch: RayBatch) -> int:
    import time

    time.sleep(0.1)
    return len(batch)


def test_a_slow_consumer_holds_the_producer_back_and_nothing_spills() -> None:
    """4 MiB batches, 200 MiB in all, through a 96 MiB object store with one slow actor: the
    ingest stops reading, ZeroMQ makes the producer wait, and nothing is lost or spilled."""
    stream = BatchStream("tcp://127.0.0.1:0", timeout=30, max_queued=2, rcvhwm=1)
    prod = Producer(stream.endpoints[0], 200, batch=4)
    res = map_batches(stream, slow, actors=1)
    assert prod.finish().complete
    assert res.complete and res.events_processed == 200, res.incomplete_reason()
    assert spilled() == []


def dies_on_second(batch: RayBatch) -> int:
    if batch.index == 1:
        os._exit(3)  # what the OOM killer or a segfaulting kernel does to an actor
    return len(batch)


def test_a_consumer_that_dies_is_reported_never_silently_lost() -> None:
    stream = BatchStream("tcp://127.0.0.1:0", timeout=30)
    prod = Producer(stream.endpoints[0], 20, batch=4)
    res = map_batches(stream, dies_on_second, actors=2)
    prod.finish()
    assert not res.complete
    # the batch it died on, and the one already waiting at it (per_actor=2): both reported,
    # since nobody can say whether the second had started
    failed = {f.index: f.events for f in res.failed}
    assert 1 in failed and len(failed) <= 2 and set(failed.values()) == {4}
    assert all("actor died" in f.reason for f in res.failed)
    assert res.events_processed + 4 * len(failed) == 20  # the others went to the live actor
    assert f"{len(failed)} batches ({4 * len(failed)} events) not processed" in (
        res.incomplete_reason()
    )


def dies_slowly_on_second(batch: RayBatch) -> int:
    if batch.index == 1:
        import time

        time.sleep(1.0)  # long enough for the ingest to fill its queue behind this batch
        os._exit(3)
    return len(batch)


@pytest.mark.parametrize("bundle_bytes", [0, None], ids=["one-by-one", "bundled"])
def test_when_every_consumer_dies_the_rest_is_counted_unprocessed(
    bundle_bytes: int | None,
) -> None:
    """The only actor dies on the second batch: the stream stops, the batches it held are
    failed, what the ingest had already received is counted as received and unprocessed,
    and nothing is missing from the sum."""
    stream = BatchStream("tcp://127.0.0.1:0", timeout=30)
    prod = Producer(stream.endpoints[0], 40, batch=4)
    res = map_batches(
        stream, dies_slowly_on_second, actors=1, per_actor=1, bundle_bytes=bundle_bytes
    )
    prod.join(60)  # its stream was cut short: it may end with an error; not this test's point
    assert not res.complete and res.error == "every consumer actor died"
    failed = [f.index for f in res.failed]
    assert all("actor died" in f.reason for f in res.failed)
    if bundle_bytes == 0:
        assert res.events_processed == 4  # batch 0
        assert failed == [1]
        # while the actor slept, the ingest queued max_queued (2) more, and maybe the one its
        # put thread held: received, not processed
        assert res.events_unprocessed in (8, 12)
    else:  # the bundle holding batch 1 (batch 0 too, when both waited for the first put)
        assert failed[0] in (0, 1) and failed == list(range(failed[0], failed[0] + len(failed)))
        assert 1 in failed
        assert res.events_processed == 4 * failed[0]  # what came before that bundle
        assert res.events_unprocessed > 0
    assert res.events_received == 4 * res.batches
    assert res.events_received == res.events_processed + 4 * len(failed) + res.events_unprocessed
    assert "stopped: every consumer actor died" in res.incomplete_reason()


def raises(batch: RayBatch) -> int:
    if batch.index == 2:
        raise ValueError("bad frame")
    return len(batch)


def test_a_consumer_that_raises_fails_its_batch_only() -> None:
    stream = BatchStream("tcp://127.0.0.1:0", timeout=30)
    prod = Producer(stream.endpoints[0], 20, batch=4)
    res = map_batches(stream, raises, actors=1)
    prod.finish()
    assert [(f.index, f.events) for f in res.failed] == [(2, 4)]
    assert "bad frame" in res.failed[0].reason and res.events_processed == 16


def slow_and_raises_on_fifth(batch: RayBatch) -> int:
    import time

    time.sleep(0.05)
    if batch.index == 5:
        raise ValueError("bad frame")
    return int(batch.event_ids[0])


def test_batches_that_wait_go_on_in_bundles_and_each_still_counts_alone() -> None:
    """One event per message and a slow actor: batches wait at the ingest and go on
    together (fewer Ray objects than batches), yet user code gets each batch on its own,
    the one that raises fails alone, and every other one's output is there."""
    stream = BatchStream("tcp://127.0.0.1:0", timeout=30)
    prod = Producer(stream.endpoints[0], 40, batch=1)
    res = map_batches(stream, slow_and_raises_on_fifth, actors=1, keep_outputs=True)
    assert prod.finish().complete
    assert res.ingest["batches"] == 40 and res.ingest["objects"] < 40  # bundles formed
    assert [(f.index, f.events) for f in res.failed] == [(5, 1)]
    assert "bad frame" in res.failed[0].reason
    assert res.events_processed == 39 and sorted(res.outputs) == [i for i in range(40) if i != 5]
    assert sorted(res.outputs.values()) == sorted(set(res.outputs.values()))  # one per event


class CalibrateHere:
    """Consumer-side calibration: raw Jungfrau words in, photons out, with the device path's
    code (numpy here; cupy or torch on a GPU run the same operations)."""

    def __init__(self, constants: dict[str, np.ndarray], energy: float) -> None:
        from lclstream.ray.gpu import JungfrauOnDevice

        self.cal = JungfrauOnDevice(
            constants["pedestal"], constants["gain"], mask=constants["mask"],
            output="photons", photon_energy_keV=energy,
        )  # fmt: skip

    def __call__(self, batch: RayBatch) -> tuple[list[int], list[int], np.ndarray]:
        sums = [int(f.sum(dtype=np.int64)) for f in batch.data]  # what came over the wire
        return [int(i) for i in batch.event_ids], sums, self.cal(batch.data)


def test_raw_words_calibrated_in_the_actors_equal_the_producers_kernel() -> None:
    """The producer sends raw uint16 words (no calibration: 2 bytes a pixel, half of float32
    keV); the actors calibrate them to photons; every event equals what lclstream's C++
    kernel makes of the same raw frame, bit for bit."""
    from lclstream.config import load_config
    from lclstream.sources import open_source
    from proc_helpers import photon_calibrator

    stream = BatchStream("tcp://127.0.0.1:0", timeout=30)
    cfg = producer_config(stream.endpoints[0], 12, batch=4)
    del cfg["processing_pipeline"]["calibration"]  # raw words on the wire
    src = open_source(load_config(cfg))
    try:
        consts = src.constants("detector_data")  # type: ignore[attr-defined]
        kernel = photon_calibrator(consts, ENERGY)
        raw = [ev.data["detector_data"] for _, ev in zip(range(12), src.events(), strict=False)]
        want = {i: kernel(r) for i, r in enumerate(raw)}
        raw_sums = {i: int(r.sum(dtype=np.int64)) for i, r in enumerate(raw)}
    finally:
        src.close()
    prod = threading.Thread(target=lambda: Pipeline(cfg).run(), daemon=True)
    prod.start()
    res = map_batches(stream, CalibrateHere, fn_args=(consts, ENERGY), actors=2, keep_outputs=True)
    prod.join(60)
    assert res.complete, res.incomplete_reason()
    got, sums = {}, {}
    for ids, wire, photons in res.outputs.values():
        got.update(zip(ids, photons, strict=True))
        sums.update(zip(ids, wire, strict=True))
    assert sorted(got) == list(range(12))
    assert sums == raw_sums  # the raw words travelled, not photons
    for i in range(12):
        assert got[i].dtype == want[i].dtype and got[i].tobytes() == want[i].tobytes()
    assert sum(int(p.sum()) for p in got.values()) > 0  # photons were there


def test_an_incomplete_stream_is_not_complete() -> None:
    """Only a hostile message and no end message: rejected, counted, and the verdict says
    the stream did not end."""
    from lclstream.transport import Sender

    stream = BatchStream("tcp://127.0.0.1:0", timeout=2)
    tx = Sender([stream.endpoints[0]], bind=False)
    tx.send(b"not a batch")
    res = map_batches(stream, len, actors=1)
    tx.close()
    assert not res.complete and res.events_processed == 0
    assert res.receive["rejected"] == 1 and res.receive["timed_out"]


def run_example(
    script: str, out: Path, *args: str, events: int = 40, feed: str = "stream_raw.yaml"
) -> str:
    """examples/<script> as a user runs it (binding port 0, one actor), fed ``events`` events
    of examples/stream_raw.yaml, or (``feed="demo"``) by ``lclstream demo --format raw --to``
    its address; returns its stdout after it exited 0."""
    import subprocess
    import sys

    import yaml
    from proc_helpers import cli_env

    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [sys.executable, str(root / "examples" / script), "--bind", "tcp://127.0.0.1:0",
         "--out", str(out), "--actors", "1", "--object-store-mb", "256", "--timeout", "30",
         *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on"), (line, proc.stderr.read() if proc.stderr else "")
        # The example binds port 0 and says which port it got: a port picked here and bound
        # there could be taken in between by one of the processes Ray starts.
        url = line.split()[-1]
        if feed == "demo":
            demo = subprocess.run(
                [sys.executable, "-m", "lclstream.cli", "demo", "--format", "raw",
                 "--events", str(events),
                 "--to", url, "--json"],
                capture_output=True, text=True, env=cli_env(), timeout=180,
            )  # fmt: skip
            assert demo.returncode == 0, demo.stderr
            sent = json.loads(demo.stdout)
            assert sent["complete"] and sent["consumer"] == url and sent["received_events"] is None
        else:
            cfg = yaml.safe_load((root / "examples" / feed).read_text())
            cfg["event_source"]["number_of_events_to_generate"] = events
            cfg["data_handlers"][0]["urls"] = [url]
            assert Pipeline(cfg).run().complete
        rest, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, (rest, err)
    assert f"{events} of {events} events processed (complete)" in rest
    return rest


def test_the_radial_profile_example_against_the_raw_stream_example(tmp_path: Path) -> None:
    """examples/ray_radial_profile.py as a user runs it, fed by examples/stream_raw.yaml."""
    import h5py

    out = tmp_path / "profiles.h5"
    run_example("ray_radial_profile.py", out)
    with h5py.File(out) as f:
        ids = f["/LCLS/eventNumber"][()]
        profiles = f["/entry_1/result_1/radialProfile"][()]
    assert len(set(ids.tolist())) == 40 and profiles.shape == (40, 512)
    assert np.isfinite(profiles).all() and profiles.max() > 0


def test_the_peaks_to_cxi_example_against_the_raw_stream_example(tmp_path: Path) -> None:
    """examples/ray_peaks_cxi.py fed by ``lclstream demo --format raw --to`` (the README's
    way): peakfinder8 per batch in the actors, one CXI file with every event once, in order;
    the synthetic run's hits (80 spots each) are the events with peaks, its misses have
    none, and each list is padded with zeros past nPeaks."""
    import h5py

    out = tmp_path / "peaks.cxi"
    text = run_example("ray_peaks_cxi.py", out, "--max-peaks", "256", feed="demo")
    with h5py.File(out) as f:
        ids = f["/LCLS/eventNumber"][()]
        n = f["/entry_1/result_1/nPeaks"][()]
        x = f["/entry_1/result_1/peakXPosRaw"][()]
        y = f["/entry_1/result_1/peakYPosRaw"][()]
        hit = f["/entry_1/result_1/hit"][()].astype(bool)
        seconds = f["/LCLS/machineTime"][()]
    assert ids.tolist() == sorted(set(ids.tolist())) and len(ids) == 40
    assert n.shape == (40,) and x.shape == y.shape == (40, 256) and (seconds > 0).all()
    assert 0 < hit.sum() < 40 and f"{int(hit.sum())} hits" in text
    assert (n[hit] >= 30).all() and (n[~hit] < 30).all()
    for e in range(40):
        k = min(int(n[e]), 256)
        assert (x[e, k:] == 0).all() and (y[e, k:] == 0).all()
        assert (x[e, :k] >= 0).all() and (x[e, :k] < 1024).all() and (y[e, :k] < 8 * 512).all()
