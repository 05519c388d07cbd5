"""Config: LCLStreamer's schema accepted, our defaults, and one-line errors naming every key."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from lclstream.config import (
    BatchProcessingPipelineParameters,
    BinaryDataStreamingDataHandlerParameters,
    HDF5BinarySerializerParameters,
    LclstreamConfig,
    SimplonBinarySerializerParameters,
    SyntheticDetectorParameters,
    example_config,
    json_schema,
    load_config,
)
from lclstream.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))

# Configs in the shape of LCLStreamer's examples/*.yaml (its generic, psana1, psana2 and PeakNet
# ones), values our own: they must validate unchanged.
LCLSTREAMER_STYLE = {
    "internal": """
source_identifier: ""
skip_incomplete_events: false
event_source:
    type: InternalEventSource
    number_of_events_to_generate: 12
data_sources:
    random: {type: GenericRandomNumpyArray, array_shape: "3,5", array_dtype: int16}
    int: {type: IntValue, value: 2}
    float: {type: FloatValue, value: 1.25}
processing_pipeline: {type: BatchProcessingPipeline, batch_size: 4}
data_serializer:
    type: HDF5BinarySerializer
    compression_level: 3
    compression: null
    fields: {random: /data/random, int: /data/int, float: /data/float}
data_handlers:
    - type: BinaryDataStreamingDataHandler
      urls: ["tcp://127.0.0.1:5555"]
      role: client
      library: zmq
      socket_type: push
""",
    "psana1_peaknet": """
source_identifier: exp=abc12345:run=3
skip_incomplete_events: false
event_source: {type: Psana1EventSource}
data_sources:
    timestamp: {type: Psana1Timestamp}
    detector_data: {type: Psana1DetectorInterface, psana_name: epix10k2M, psana_fields: image}
    photon_wavelength: {type: Psana1DetectorInterface, psana_name: "SIOC:SYS0:ML00:AO192"}
processing_pipeline:
    type: PeaknetPreprocessingPipeline
    batch_size: 8
    target_height: 1024
    target_width: 1024
    pad_style: center
    add_channel_dim: true
    num_channels: 1
data_serializer:
    type: HDF5BinarySerializer
    compression_level: 3
    compression: zfp
    fields: {timestamp: /data/timestamp, detector_data: /data/data}
data_handlers:
    - {type: BinaryDataStreamingDataHandler, urls: ["tcp://somehost:1234"], role: client,
       library: zmq, socket_type: push}
""",
    "psana2_simplon": """
source_identifier: exp=abc12345,run=51
skip_incomplete_events: true
data_sources:
    timestamp: {type: Psana2Timestamp}
    detector_data: {type: Psana2DetectorInterface, psana_name: jungfrau, psana_fields: raw.calib}
    detector_geometry:
        type: Psana2DetectorInterface
        psana_name: jungfrau
        psana_fields: ["_detid", "raw._det_geotxt_default"]
        dtype: str
    run_info: {type: Psana2RunInfo}
event_source: {type: Psana2EventSource}
processing_pipeline: {type: BatchProcessingPipeline, batch_size: 1}
data_serializer:
    type: SimplonBinarySerializer
    data_source_to_serialize: detector_data
    polarization_fraction: 0
    polarization_axis: [1.0, 0.0, 0.0]
    data_collection_rate: "120Hz"
    detector_name: "jungfrau"
    detector_type: "AreaDetector"
data_handlers:
    - {type: BinaryDataStreamingDataHandler, urls: ["tcp://127.0.0.1:5556"], role: client,
       library: zmq, socket_type: push}
""",
    "psana2_files": """
source_identifier: exp=abc12345,run=44
skip_incomplete_events: true
data_sources:
    timestamp: {type: Psana2Timestamp}
    waveforms: {type: Psana2DetectorInterface, psana_name: hsd, psana_fields: raw.waveforms}
event_source: {type: Psana2EventSource}
processing_pipeline: {type: BatchProcessingPipeline, batch_size: 10}
data_serializer:
    type: HDF5BinarySerializer
    compression_level: 3
    compression: gzip_with_shuffle
    fields: {timestamp: /timestamp, waveforms: /waveforms}
data_handlers:
    - {type: BinaryFileWritingDataHandler, write_directory: workspace/output}
""",
}


def error_of(cfg: object) -> str:
    with pytest.raises(ConfigError) as e:
        load_config(cfg)  # type: ignore[arg-type]
    msg = str(e.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_shipped_examples_validate(path: Path) -> None:
    cfg = load_config(path)
    assert isinstance(cfg, LclstreamConfig)


def test_examples_exist() -> None:
    names = {p.name for p in EXAMPLES}
    assert {"stream_hdf5.yaml", "stream_simplon.yaml", "stream_raw.yaml"} <= names
    assert "lclstreamer_generic.yaml" in names


@pytest.mark.parametrize("name", sorted(LCLSTREAMER_STYLE))
def test_lclstreamer_configs_accepted_unchanged(name: str) -> None:
    data = yaml.safe_load(LCLSTREAMER_STYLE[name])
    cfg = load_config(data)
    # what was written is what we read (no key silently renamed or dropped)
    assert cfg.source_identifier == data["source_identifier"]
    assert list(cfg.data_sources) == list(data["data_sources"])
    assert cfg.event_source.type == data["event_source"]["type"]
    assert cfg.data_serializer.type == data["data_serializer"]["type"]


def test_example_config_is_complete_and_commented() -> None:
    text = example_config()
    assert text.count("#") > 10
    cfg = load_config(yaml.safe_load(text))
    assert cfg.source_identifier == "exp=xpptut15,run=670"
    ds = cfg.data_sources["detector_data"]
    assert isinstance(ds, SyntheticDetectorParameters) and ds.detector == "jungfrau4M"
    pipe = cfg.processing_pipeline
    assert isinstance(pipe, BatchProcessingPipelineParameters)
    assert pipe.calibration["detector_data"].output == "photons"
    assert pipe.calibration["detector_data"].constants == "synthetic"
    assert isinstance(cfg.data_serializer, HDF5BinarySerializerParameters)
    (h,) = cfg.data_handlers
    assert isinstance(h, BinaryDataStreamingDataHandlerParameters)
    assert h.role == "client" and h.urls == ["tcp://127.0.0.1:12321"]


def test_every_option_of_ours_has_a_default() -> None:
    for kind in (
        "SimplonBinarySerializer",
        "LclstreamerSimplonSerializer",
        "RawBatchSerializer",
        "HDF5BinarySerializer",
    ):
        cfg = load_config({"data_serializer": {"type": kind}})
        assert cfg.data_serializer.type == kind
    cfg = load_config({"data_serializer": {"type": "SimplonBinarySerializer"}})
    assert isinstance(cfg.data_serializer, SimplonBinarySerializerParameters)
    assert cfg.data_serializer.data_source_to_serialize == "detector_data"
    for ds in ("SyntheticDetector", "Hdf5Dataset", "GenericRandomNumpyArray"):
        load_config({"data_sources": {"detector_data": {"type": ds}}})
    cfg = load_config({})
    assert isinstance(cfg.event_source, object) and cfg.event_source.type == "InternalEventSource"
    assert cfg.processing_pipeline.batch_size == 10
    pipe = load_config(
        {
            "processing_pipeline": {
                "type": "BatchProcessingPipeline",
                "calibration": {"detector_data": {}},
            }
        }
    )
    assert isinstance(pipe.processing_pipeline, BatchProcessingPipelineParameters)
    cal = pipe.processing_pipeline.calibration["detector_data"]
    assert (cal.mode, cal.output, cal.constants, cal.photon_energy_keV) == (
        "calib",
        "photons",
        "synthetic",
        None,
    )


def test_role_default_is_client_as_lclstreamer_v08() -> None:
    cfg = load_config(
        {"data_handlers": [{"type": "BinaryDataStreamingDataHandler", "urls": ["tcp://*:1"]}]}
    )
    assert cfg.data_handlers[0].role == "client"  # type: ignore[union-attr]


def test_unknown_keys_first_with_closest_name() -> None:
    msg = error_of(
        {
            "processing_pipeline": {"type": "BatchProcessingPipeline", "batch_size": -1},
            "data_handlers": [
                {"type": "BinaryDataStreamingDataHandler", "urls": ["tcp://x:1"], "rol": "client"}
            ],
        }
    )
    assert msg == (
        "data_handlers[0].rol: unknown key (did you mean 'role'?); "
        "processing_pipeline.batch_size: -1 is not allowed (must be >= 1)"
    )


def test_unknown_top_level_key_without_close_match_lists_allowed() -> None:
    msg = error_of({"zzz": 1})
    assert msg.startswith("zzz: unknown key (allowed: source_identifier, skip_incomplete_events")


def test_unknown_nested_key_in_plain_mapping() -> None:
    msg = error_of(
        {
            "processing_pipeline": {
                "type": "BatchProcessingPipeline",
                "calibration": {"detector_data": {"outptu": "keV"}},
            }
        }
    )
    assert (
        msg == "processing_pipeline.calibration.detector_data.outptu: unknown key "
        "(did you mean 'output'?)"
    )


def test_bad_type_tag() -> None:
    msg = error_of({"event_source": {"type": "InternalEvntSource"}})
    assert msg.startswith(
        "event_source.type: 'InternalEvntSource' is not allowed "
        "(did you mean 'InternalEventSource'?; allowed: InternalEventSource, "
    )
    assert "Psana2EventSource" in msg


def test_missing_type_tag_and_missing_required() -> None:
    msg = error_of({"event_source": {"number_of_events_to_generate": 3}})
    assert msg.startswith("event_source.type: missing (required; one of InternalEventSource")
    msg = error_of({"data_handlers": [{"type": "BinaryDataStreamingDataHandler"}]})
    assert msg == "data_handlers[0].urls: missing (required)"


def test_literal_and_bounds_and_types() -> None:
    msg = error_of(
        {
            "data_sources": {
                "d": {"type": "SyntheticDetector", "detector": "jungfrau5M", "hit_fraction": 2}
            }
        }
    )
    assert msg == (
        "data_sources.d.detector: 'jungfrau5M' is not allowed (must be one of 'jungfrau16M', "
        "'jungfrau4M', 'jungfrau1M', 'jungfrau', 'epix10k2M' or 'epix10ka'); "
        "data_sources.d.hit_fraction: 2 is not allowed (must be <= 1.0)"
    )
    msg = error_of({"data_sources": {"d": {"type": "SyntheticDetector", "seed": "abc"}}})
    assert msg.startswith("data_sources.d.seed: 'abc' is not allowed (must be a valid integer")
    msg = error_of({"data_serializer": {"type": "HDF5BinarySerializer", "compression": "lzma"}})
    assert msg.startswith(
        "data_serializer.compression: 'lzma' is not allowed (must be one of 'bitshuffle_with_lz4'"
    )
    msg = error_of(
        {
            "data_handlers": [
                {"type": "BinaryDataStreamingDataHandler", "urls": ["tcp://x:1"], "role": "master"}
            ]
        }
    )
    assert msg == (
        "data_handlers[0].role: 'master' is not allowed (must be one of 'server' or 'client')"
    )


def test_every_problem_is_named_unknown_first() -> None:
    msg = error_of(
        {
            "skip_incomplete_events": "maybe",
            "event_source": {
                "type": "InternalEventSource",
                "number_of_events_to_generate": -5,
                "nmber": 1,
            },
            "data_handlers": [{"type": "BinaryFileWritingDataHandler", "write_dir": "x"}],
        }
    )
    parts = msg.split("; ")
    assert parts[
        0
    ] == "event_source.nmber: unknown key (did you mean 'number_of_events_to_generate'?)" or parts[
        0
    ].startswith("event_source.nmber: unknown key")
    assert parts[1] == "data_handlers[0].write_dir: unknown key (did you mean 'write_directory'?)"
    assert any(p.startswith("skip_incomplete_events: 'maybe' is not allowed") for p in parts[2:])
    assert "event_source.number_of_events_to_generate: -5 is not allowed (must be >= 0)" in parts


def test_cross_checks_name_data_sources() -> None:
    msg = error_of(
        {
            "processing_pipeline": {
                "type": "BatchProcessingPipeline",
                "calibration": {"detector_dat": {}},
            }
        }
    )
    assert msg == (
        "processing_pipeline.calibration.detector_dat: 'detector_dat' is not a "
        "configured data source (did you mean 'detector_data'?; data sources: "
        "detector_data)"
    )
    msg = error_of(
        {"data_serializer": {"type": "SimplonBinarySerializer", "data_source_to_serialize": "jf"}}
    )
    assert msg.startswith("data_serializer.data_source_to_serialize: 'jf' is not a configured")


def test_file_errors(tmp_path: Path) -> None:
    msg = error_of(tmp_path / "nope.yaml")
    assert msg == f"cannot read config file {tmp_path / 'nope.yaml'}: no such file"
    bad = tmp_path / "bad.yaml"
    bad.write_text("event_source:\n  type: [unclosed\n")
    msg = error_of(bad)
    assert msg.startswith(f"{bad}: line ") and "invalid YAML" in msg
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    assert "must be a mapping" in error_of(lst)
    typo = tmp_path / "typo.yaml"
    typo.write_text("source_identifer: exp=x,run=1\n")
    assert (
        error_of(typo) == f"{typo}: source_identifer: unknown key (did you mean "
        "'source_identifier'?)"
    )


def test_json_schema_is_current() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import write_config_schema
    finally:
        sys.path.pop(0)
    current = (ROOT / "docs" / "config.schema.json").read_text()
    assert current == write_config_schema.render(), (
        "docs/config.schema.json is stale: run scripts/write_config_schema.py"
    )
    schema = json_schema()
    assert "SyntheticDetectorParameters" in json.dumps(schema)
    assert schema["type"] == "object"


def test_list_positions_and_yaml_values_in_messages() -> None:
    msg = error_of(
        {
            "processing_pipeline": {
                "type": "BatchProcessingPipeline",
                "reduction": {"detector_data": {"roi": {"y": [0]}}},
            }
        }
    )
    assert msg == "processing_pipeline.reduction.detector_data.roi.y[1]: missing (required)"
    msg = error_of(
        {"data_handlers": [{"type": "BinaryDataStreamingDataHandler", "urls": ["tcp://a:1", 3]}]}
    )
    assert msg == "data_handlers[0].urls[1]: 3 is not allowed (must be a valid string)"
    assert error_of({"data_sources": None}) == (
        "data_sources: null is not allowed (must be a valid dictionary)"
    )
