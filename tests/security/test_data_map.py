"""docs/data-map.md is generated from the code and every column is classified (issue 10)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _load_data_map():
    name = "borgerblik_tools_data_map"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / "data_map.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_every_column_and_event_field_is_classified():
    _, unclassified = _load_data_map().build()
    assert not unclassified, (
        "columns or event fields nobody has classified yet (add them to the reviewed mapping in tools/data_map.py):\n"
        + "\n".join(unclassified)
    )


def test_data_map_document_is_current():
    data_map = _load_data_map()
    text, _ = data_map.build()
    current = data_map.OUTPUT.read_text(encoding="utf-8") if data_map.OUTPUT.exists() else ""
    assert current == text, "docs/data-map.md is stale: run `.venv/bin/python tools/data_map.py` and commit the result"


def test_known_identifiers_are_protected():
    """The identifiers the issue names are classified as protected, wherever they appear."""
    data_map = _load_data_map()
    assert data_map.classify("ingest", "citizen", "cpr_ciphertext").protection.startswith("encrypted")
    assert data_map.classify("ingest", "citizen", "contact_sealed").protection.startswith("encrypted")
    assert data_map.classify("dispatch", "invitation", "contact").protection.startswith("encrypted")
    assert data_map.classify("dispatch", "released_contact", "contact").protection.startswith("encrypted")
    assert data_map.classify("responses", "respondent", "token_hash").protection == "hashed"
