"""The analytics API describes itself: every field of every response model of the table routes
(JSON and OData) is described, every parameter too, the OpenAPI description links the method
document, and OData's $metadata carries the same words (Core.Description) as the OpenAPI schema.
Offline: the app is built, not started."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from services.analytics import api, odata
from services.analytics.domain.publication import INDICATOR_COLUMNS, RATE_COLUMNS
from services.analytics.schemas import COLUMNS, METHOD_PATH
from services.analytics.service import TREND_COLUMNS

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import authz_rules  # noqa: E402

# The table routes: analytics' own API (services/analytics/api.py), JSON and OData.
TABLE_PATHS = {route.path for route in (*api.router.routes, *api.odata_router.routes)}
# Release-cutting models (ReleaseIn/ReleaseOut) are described with the release logic (service.py).
NOT_TABLE_MODELS = {"HTTPValidationError", "ValidationError"}
EDM = "{http://docs.oasis-open.org/odata/ns/edm}"


@pytest.fixture(scope="module")
def openapi() -> dict:
    return authz_rules.create_app("analytics", authz_rules.offline_env()).openapi()


def _refs(node, found: set[str]) -> set[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            found.add(ref.rsplit("/", 1)[1])
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)
    return found


def _table_models(openapi: dict) -> set[str]:
    """Every schema the table routes' responses reach, transitively."""
    schemas = openapi["components"]["schemas"]
    found: set[str] = set()
    for path, operations in openapi["paths"].items():
        if path in TABLE_PATHS:
            for operation in operations.values():
                _refs(operation.get("responses", {}), found)
    todo = list(found)
    while todo:
        name = todo.pop()
        for ref in _refs(schemas[name], set()) - found:
            found.add(ref)
            todo.append(ref)
    return found - NOT_TABLE_MODELS


def undescribed_fields(openapi: dict, models: set[str]) -> list[str]:
    schemas = openapi["components"]["schemas"]
    return sorted(
        f"{name}.{field}"
        for name in models
        for field, spec in schemas[name].get("properties", {}).items()
        if not str(spec.get("description", "")).strip()
    )


def test_every_field_of_every_table_response_model_is_described(openapi):
    models = _table_models(openapi)
    assert {"IndicatorPage", "IndicatorRow", "ResponseRatePage", "ResponseRateDetailRow", "TrendPage", "TrendRow",
            "ResponseRates", "ResponseRateRow", "RoundOut"} <= models
    assert undescribed_fields(openapi, models) == []


def test_the_check_finds_an_undescribed_field(openapi):
    """The check itself: a model with one field left undescribed is named."""
    schemas = openapi["components"]["schemas"]
    row = schemas["IndicatorRow"]
    spec = dict(row["properties"]["n_valid"])
    spec.pop("description")
    broken = {**openapi, "components": {"schemas": {**schemas, "IndicatorRow": {**row, "properties": {**row["properties"], "n_valid": spec}}}}}
    assert undescribed_fields(broken, {"IndicatorRow"}) == ["IndicatorRow.n_valid"]


def test_rows_are_typed_with_every_published_column(openapi):
    schemas = openapi["components"]["schemas"]
    assert list(schemas["IndicatorRow"]["properties"]) == list(INDICATOR_COLUMNS)
    assert list(schemas["ResponseRateDetailRow"]["properties"]) == list(RATE_COLUMNS)
    assert list(schemas["TrendRow"]["properties"]) == list(TREND_COLUMNS)
    n_answers = schemas["IndicatorRow"]["properties"]["n_answers"]
    assert "ved ikke" in n_answers["description"] and {"type": "integer"} in n_answers["anyOf"]
    assert "not included" in schemas["IndicatorRow"]["properties"]["n_valid"]["description"]
    assert "points 1-5" in schemas["IndicatorRow"]["properties"]["mean"]["description"]
    page_rows = schemas["IndicatorPage"]["properties"]["rows"]
    assert page_rows["items"] == {"$ref": "#/components/schemas/IndicatorRow"}


def test_every_parameter_of_the_table_routes_is_described(openapi):
    missing = [
        f"{method.upper()} {path} {parameter['name']}"
        for path, operations in openapi["paths"].items()
        if path in TABLE_PATHS and "releases" not in path
        for method, operation in operations.items()
        for parameter in operation.get("parameters", [])
        if not parameter.get("description", "").strip()
    ]
    assert missing == []


def test_the_description_links_the_method_document(openapi):
    assert f"]({METHOD_PATH})" in openapi["info"]["description"]
    assert METHOD_PATH in openapi["paths"]


def test_odata_metadata_carries_the_same_descriptions_and_capabilities(openapi):
    root = ET.fromstring(odata.metadata_xml())
    row_models = {"Indicator": "IndicatorRow", "ResponseRate": "ResponseRateDetailRow", "Trend": "TrendRow"}
    schemas = openapi["components"]["schemas"]
    for entity_type in root.iter(f"{EDM}EntityType"):
        model = schemas[row_models[entity_type.get("Name")]]["properties"]
        for prop in entity_type.iter(f"{EDM}Property"):
            (annotation,) = prop.findall(f"{EDM}Annotation")
            assert annotation.get("Term") == "Org.OData.Core.V1.Description"
            name = prop.get("Name")
            assert annotation.get("String") == COLUMNS[name].description
            if name in model:
                assert annotation.get("String") == model[name]["description"]
    for entity_set in root.iter(f"{EDM}EntitySet"):
        terms = {a.get("Term"): a for a in entity_set.findall(f"{EDM}Annotation")}
        for term in ("FilterRestrictions", "SortRestrictions", "CountRestrictions", "ExpandRestrictions", "SearchRestrictions"):
            assert f"Org.OData.Capabilities.V1.{term}" in terms
        expand = terms["Org.OData.Capabilities.V1.ExpandRestrictions"].find(f"{EDM}Record/{EDM}PropertyValue")
        assert (expand.get("Property"), expand.get("Bool")) == ("Expandable", "false")


def test_each_weighted_estimate_has_its_population_design_effect_and_effective_sample_size(openapi):
    """Beside every weighted estimate: the population its base speaks for, its design effect
    (svymean's deff = TRUE) and the effective sample size, typed and described alike in the
    JSON rows, the CSV header (the columns) and OData's $metadata; a share's interval says it is
    the logit interval."""
    from services.analytics.domain.count_estimates import PROPORTIONS
    from services.analytics.domain.indicators import INDICATORS

    row = openapi["components"]["schemas"]["IndicatorRow"]["properties"]
    root = ET.fromstring(odata.metadata_xml())
    indicator = next(t for t in root.iter(f"{EDM}EntityType") if t.get("Name") == "Indicator")
    edm = {p.get("Name"): p for p in indicator.iter(f"{EDM}Property")}
    for ind in INDICATORS:
        columns = [f"{ind}{suffix}" for suffix in ("", "_se", "_ci_low", "_ci_high", "_population", "_deff", "_n_effective")]
        assert [c for c in INDICATOR_COLUMNS if c in columns] == columns
        for c in columns[4:]:
            assert {"type": "number"} in row[c]["anyOf"] and {"type": "null"} in row[c]["anyOf"]
            assert edm[c].get("Type") == "Edm.Double" and edm[c].get("Nullable") != "false"
        assert "svymean(deff = TRUE)" in row[f"{ind}_deff"]["description"]
        assert "sum of the weights" in row[f"{ind}_population"]["description"]
        assert "divided by the design effect" in row[f"{ind}_n_effective"]["description"]
        interval = row[f"{ind}_ci_low"]["description"]
        assert ("svyciprop" in interval) == (ind in PROPORTIONS), ind


def test_the_overview_and_bi_key_models_are_described(openapi):
    """The round overview's response (RoundOverview, Figures, DeliveryOut, MessageCount) and the
    BI keys' bodies: every field described, like the tables'."""
    schemas = openapi["components"]["schemas"]
    found: set[str] = set()
    for path in ("/rounds/{round_id}/overview", "/bi-keys", "/bi-keys/{key_id}"):
        for operation in openapi["paths"][path].values():
            _refs(operation.get("responses", {}), found)
            _refs(operation.get("requestBody", {}), found)
    todo = list(found)
    while todo:
        for ref in _refs(schemas[todo.pop()], set()) - found:
            found.add(ref)
            todo.append(ref)
    models = found - NOT_TABLE_MODELS
    assert {"RoundOverview", "Figures", "DeliveryOut", "MessageCount", "BiKeyIn", "BiKeyOut", "BiKeyCreated"} <= models
    assert undescribed_fields(openapi, models) == []
