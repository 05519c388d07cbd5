"""The committed benchmark results follow the JSON schema `lclstream bench --json` promises,
and bench/RESULTS.md is the table generated from them (not edited by hand)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jsonschema
import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_committed_results_follow_the_schema() -> None:
    doc = json.loads((BENCH / "results.json").read_text())
    schema = json.loads((BENCH / "results.schema.json").read_text())
    jsonschema.validate(doc, schema)
    assert not doc["quick"], "bench/results.json must come from a full run"
    assert doc["results"], "no benchmark results"


def test_schema_rejects_a_record_without_its_baseline() -> None:
    doc = json.loads((BENCH / "results.json").read_text())
    schema = json.loads((BENCH / "results.schema.json").read_text())
    del doc["results"][0]["baseline_gbps"]
    with pytest.raises(jsonschema.ValidationError, match="baseline_gbps"):
        jsonschema.validate(doc, schema)


def test_results_md_is_generated_from_results_json() -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import harness
    finally:
        sys.path.remove(str(BENCH))
    doc = json.loads((BENCH / "results.json").read_text())
    assert (BENCH / "RESULTS.md").read_text() == harness.markdown(doc)
