"""Write docs/config.schema.json from lclstream.config (tests/test_config.py checks it is current).

Run: PYTHONPATH=python python scripts/write_config_schema.py
"""

from __future__ import annotations

import json
from pathlib import Path

from lclstream.config import json_schema

OUT = Path(__file__).resolve().parent.parent / "docs" / "config.schema.json"


def render() -> str:
    return json.dumps(json_schema(), indent=1, sort_keys=True) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}")
