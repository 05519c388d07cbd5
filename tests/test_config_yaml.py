"""Every calibration and reduction option the docs describe, reached from a YAML file.

Each test writes a YAML config as a user would, streams it into an in-process handler and
compares the frames with what the calibration kernels (given the same constants and options
directly) or numpy produce from the same raw frames: an option the config drops or renames
on the way shows up as a difference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from lclstream import calib, formats
from lclstream.config import load_config
from lclstream.errors import ConfigError
from lclstream.handlers import InProcessDataHandler
from lclstream.pipeline import Pipeline
from lclstream.sources import open_source

HEAD = """\
source_identifier: exp=xpptut15,run=670
event_source: {type: InternalEventSource, number_of_events_to_generate: 4}
data_sources:
  detector_data: {type: SyntheticDetector, detector: DET, hit_fraction: 0.5, pool_frames: 2,
                  photon_energy_keV: 9.5, seed: 3}
data_serializer: {type: HDF5BinarySerializer, compression: bitshuffle_with_lz4}
processing_pipeline:
  type: BatchProcessingPipeline
  batch_size: 2
"""


def run_yaml(tmp_path: Path, text: str) -> tuple[np.ndarray, list[np.ndarray], dict[str, Any]]:
    path = tmp_path / "stream.yaml"
    path.write_text(text)
    h = InProcessDataHandler(maxsize=100)
    res = Pipeline(str(path), handlers=[h]).run()
    assert res.complete
    got = []
    while (m := h.get(timeout=10)) is not None:
        p = formats.parse(m)
        if p.kind == "data" and p.batch is not None:
            got.append(p.batch.arrays["detector_data"])
    src = open_source(load_config(path))
    try:
        raw = [
            np.array(ev.data["detector_data"])
            for _, ev in zip(range(4), src.events(), strict=False)
        ]
        consts = src.constants("detector_data")
    finally:
        src.close()
    return np.concatenate(got), raw, consts


@pytest.mark.parametrize(
    ("det", "cm_yaml", "cm_arg"),
    [
        ("epix10ka", "true", True),
        (
            "epix10ka",
            "{method: mean, bank_rows: 88, bank_cols: 96, threshold: 50, cormax: 30}",
            {"method": "mean", "bank_rows": 88, "bank_cols": 96, "threshold": 50.0, "cormax": 30.0},
        ),
        ("jungfrau", "{method: median, min_pixels: 20}", {"method": "median", "min_pixels": 20}),
    ],
)
def test_common_mode_from_yaml(tmp_path: Path, det: str, cm_yaml: str, cm_arg: Any) -> None:
    text = HEAD.replace("DET", det) + (
        "  calibration:\n"
        "    detector_data:\n"
        f"      detector: {det}\n"
        "      constants: synthetic\n"
        "      output: keV\n"
        f"      common_mode: {cm_yaml}\n"
    )
    got, raw, consts = run_yaml(tmp_path, text)
    if det == "epix10ka":
        ref = calib.Epix10ka(
            consts["pedestal"], consts["gain"], consts["config_bits"], consts["mask"],
            output="keV", common_mode=cm_arg,
        )  # fmt: skip
        plain = calib.Epix10ka(
            consts["pedestal"], consts["gain"], consts["config_bits"], consts["mask"], output="keV"
        )
    else:
        ref = calib.Jungfrau(
            consts["pedestal"], consts["gain"], None, consts["mask"], output="keV",
            common_mode=cm_arg,
        )  # fmt: skip
        plain = calib.Jungfrau(consts["pedestal"], consts["gain"], None, consts["mask"])
    for i, frame in enumerate(raw):
        np.testing.assert_array_equal(got[i], ref(frame))
    # and the option did something: without it the frames differ
    assert any(not np.array_equal(got[i], plain(f)) for i, f in enumerate(raw))


def test_common_mode_unknown_key_is_a_config_error(tmp_path: Path) -> None:
    text = HEAD.replace("DET", "epix10ka") + (
        "  calibration:\n    detector_data: {common_mode: {metod: mean}}\n"
    )
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"common_mode.*metod.*did you mean 'method'"):
        load_config(tmp_path / "c.yaml")


def test_threshold_crop_binning_and_constants_file_from_yaml(tmp_path: Path) -> None:
    base = HEAD.replace("DET", "jungfrau")
    src = open_source(load_config({**_yaml(base)}))
    consts = src.constants("detector_data")
    src.close()
    np.savez(tmp_path / "consts.npz", **consts)
    text = base + (
        "  calibration:\n"
        "    detector_data:\n"
        "      detector: jungfrau\n"
        f"      constants: {tmp_path / 'consts.npz'}\n"
        "      output: photons\n"
        "      dtype: uint32\n"
        "  reduction:\n"
        "    detector_data:\n"
        "      roi: {modules: [0], y: [0, 256], x: [128, 640]}\n"
        "      threshold: {min: 2}\n"
        "      binning: {factor: 4}\n"
    )
    got, raw, c = run_yaml(tmp_path, text)
    kernel = calib.Jungfrau(
        c["pedestal"], c["gain"], None, c["mask"], output="photons", photon_energy_keV=9.5,
        dtype=np.uint32,
    )  # fmt: skip
    assert got.dtype == np.uint32 and got.shape == (4, 1, 64, 128)
    for i, frame in enumerate(raw):
        ph = kernel(frame)[0:1, 0:256, 128:640].astype(np.int64)
        ph[ph < 2] = 0
        np.testing.assert_array_equal(got[i], ph.reshape(1, 64, 4, 128, 4).sum(axis=(2, 4)))


def _yaml(text: str) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = yaml.safe_load(text)
    return out
