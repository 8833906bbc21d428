"""Input PostgreSQL cannot hold is a 4xx on every route of every service (issue 26).

Built from the OpenAPI each running service serves: every path and query parameter and every
field of every request body (nested objects and list items too, and an extra NUL key in every
object) gets, one at a time, a NUL character, an over-long text, and for integers 2**63, -2**63-1
and 2**31 (an INTEGER column's first value out of range); everything else keeps a plausible value.
The token holds every scope. Any 5xx, or an exception escaping the app, fails the test, listed
per route and field. The rule under test is shared/edge.py.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from shared.testing.fixtures import bearer
from shared.testing.tools import load_tool

rules = load_tool("authz_rules")
SERVICES = list(rules.SERVICES)
EVERY_SCOPE = [*rules.KNOWN_SCOPES, "audit:read", "privacy:admin", "keys:admin"]
NUL = "a\x00b"
LONG_TEXT = "x" * 5000
OUT_OF_RANGE = (2**63, -(2**63) - 1, 2**31)


def _resolve(spec: dict, schema: dict | None) -> dict:
    schema = schema or {}
    while "$ref" in schema:
        node: Any = spec
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [s for s in schema[key] if _resolve(spec, s).get("type") != "null"]
            return _resolve(spec, (options or schema[key])[0])
    if "allOf" in schema:
        return _resolve(spec, schema["allOf"][0])
    return schema


def example(spec: dict, schema: dict | None, name: str = "x", depth: int = 0) -> Any:
    """A plausible value for a JSON schema: every property filled, one item per list."""
    schema = _resolve(spec, schema)
    if "default" in schema and schema["default"] is not None and schema.get("type") not in ("object", "array"):
        return schema["default"]
    typ = schema.get("type")
    if typ == "object" or "properties" in schema:
        if depth > 6:
            return {}
        value = {key: example(spec, sub, key, depth + 1) for key, sub in (schema.get("properties") or {}).items()}
        extra = schema.get("additionalProperties")
        if not value and isinstance(extra, dict):
            value = {"k1": example(spec, extra, "k1", depth + 1)}
        return value
    if typ == "array":
        return [example(spec, schema.get("items"), name, depth + 1)] if depth <= 6 else []
    if typ == "integer":
        return max(int(schema.get("minimum", 1)), 1)
    if typ == "number":
        return float(schema.get("minimum", 1))
    if typ == "boolean":
        return False
    return rules.plausible_value(name, schema)


def targets(value: Any, schema: dict, spec: dict, path: tuple = ()) -> list[tuple[tuple, bool, bool]]:
    """(path, is_integer, is_object) of every field of a body example."""
    schema = _resolve(spec, schema)
    found: list[tuple[tuple, bool, bool]] = []
    if isinstance(value, dict):
        found.append((path, False, True))
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties") if isinstance(schema.get("additionalProperties"), dict) else {}
        for key, item in value.items():
            found += targets(item, props.get(key, extra), spec, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += targets(item, schema.get("items") or {}, spec, (*path, index))
    else:
        found.append((path, schema.get("type") == "integer" or isinstance(value, int) and not isinstance(value, bool), False))
    return found


def replaced(document: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    document = copy.deepcopy(document)
    node = document
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return document


def with_key(document: Any, path: tuple, key: str) -> Any:
    document = copy.deepcopy(document)
    node = document
    for part in path:
        node = node[part]
    node[key] = "x"
    return document


def bad_values(is_integer: bool) -> list[Any]:
    return [NUL, LONG_TEXT, *(OUT_OF_RANGE if is_integer else ())]


def requests_for(spec: dict, path: str, op: dict) -> list[tuple[str, dict]]:
    """(what is tried, httpx request arguments) for every field of one operation."""
    params = [p for p in op.get("parameters", []) if p.get("in") in ("path", "query")]
    path_values = {p["name"]: rules.plausible_value(p["name"], p.get("schema")) for p in params if p["in"] == "path"}
    query_values = {p["name"]: rules.plausible_value(p["name"], p.get("schema")) for p in params if p["in"] == "query" and p.get("required")}
    content = (op.get("requestBody") or {}).get("content") or {}
    media = next(iter(content), None)
    body_schema = (content.get(media) or {}).get("schema") if media else None
    body = example(spec, body_schema) if body_schema else None

    def build(path_over: dict | None = None, query_over: dict | None = None, body_doc: Any = body) -> dict:
        url = path.format(**{**path_values, **(path_over or {})})
        kwargs: dict[str, Any] = {"url": url, "params": {**query_values, **(query_over or {})}}
        if media == "application/json":
            kwargs["content"] = json.dumps(body_doc).encode()
            kwargs["headers"] = {"content-type": "application/json"}
        elif media == "application/x-www-form-urlencoded" and isinstance(body_doc, dict):
            kwargs["data"] = {k: v if isinstance(v, str) else json.dumps(v) for k, v in body_doc.items()}
        elif media == "multipart/form-data" and isinstance(body_doc, dict):
            kwargs["data"] = {k: str(v) for k, v in body_doc.items() if not isinstance(v, (dict, list))}
            kwargs["files"] = {"file": ("x.csv", b"cpr;ydelse\n", "text/csv")}
        elif body_doc is not None and media:
            kwargs["content"] = body_doc.encode() if isinstance(body_doc, str) else json.dumps(body_doc).encode()
            kwargs["headers"] = {"content-type": media}
        return kwargs

    tries: list[tuple[str, dict]] = []
    for p in params:
        is_int = _resolve(spec, p.get("schema")).get("type") == "integer"
        for bad in bad_values(is_int):
            shown = f"{p['in']} {p['name']}={_show(bad)}"
            if p["in"] == "path":
                if isinstance(bad, str):
                    bad = bad.replace("\x00", "%00")  # as a browser would send it
                tries.append((shown, build(path_over={p["name"]: str(bad)})))
            else:
                tries.append((shown, build(query_over={p["name"]: str(bad)})))
    if body is not None and media in ("application/json", "application/x-www-form-urlencoded", "multipart/form-data"):
        for field, is_int, is_object in targets(body, body_schema, spec):
            if is_object:
                if media == "application/json":
                    tries.append((f"body {'/'.join(map(str, field))} key a\\x00", build(body_doc=with_key(body, field, "a\x00"))))
                continue
            for bad in bad_values(is_int):
                tries.append((f"body {'/'.join(map(str, field))}={_show(bad)}", build(body_doc=replaced(body, field, bad))))
    return tries


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value) if len(value) < 20 else f"<{len(value)} chars>"
    return str(value)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("service", SERVICES)
async def test_input_postgres_cannot_hold_is_refused_with_4xx(live_services, dev_issuer, service):
    client = await live_services.client(service)
    spec = await live_services.openapi(service)
    headers = bearer(dev_issuer.mint("kl-edge", EVERY_SCOPE))
    failures, sent = [], 0
    for method, path, op in rules.openapi_operations(spec):
        for shown, kwargs in requests_for(spec, path, op):
            sent += 1
            request_headers = {**headers, **kwargs.pop("headers", {})}
            try:
                response = await client.request(method, headers=request_headers, **kwargs)
            except Exception as exc:  # noqa: BLE001 - an exception out of the app is a 500 in production
                failures.append(f"{method} {path} [{shown}]: raised {type(exc).__name__}: {str(exc)[:300]}")
                continue
            if response.status_code >= 500:
                failures.append(f"{method} {path} [{shown}]: {response.status_code} {response.text[:300]}")
    print(f"edge input {service}: {sent} requests")
    assert sent > 0
    assert not failures, f"{len(failures)} of {sent} requests answered 5xx:\n" + "\n".join(failures)


async def test_refusal_names_the_field(live_services, dev_issuer):
    client = await live_services.client("ingest")
    headers = bearer(dev_issuer.mint("kl-edge", EVERY_SCOPE))
    too_big = await client.get("/audit", params={"after_id": str(2**63)}, headers=headers)
    assert too_big.status_code == 422
    assert too_big.json()["detail"][0]["loc"] == ["query", "after_id"]
    nul = await client.get("/audit", params={"actor": "a\x00"}, headers=headers)
    assert nul.status_code == 422
    assert nul.json()["detail"][0]["loc"] == ["query", "actor"]


async def test_a_value_only_the_column_refuses_is_a_422(live_services, dev_issuer):
    """2**31 fits the edge's BIGINT bound; the INTEGER column behind the query refuses it, and
    the shared handler answers 422 naming the parameter."""
    client = await live_services.client("responses")
    headers = bearer(dev_issuer.mint("kl-edge", EVERY_SCOPE))
    body = rules.EXAMPLE_BODIES[("responses", "PUT", "/api/admin/supplements/{kommunekode}/{version}")]("101")
    response = await client.put(f"/api/admin/supplements/101/{2**31}", json={**body, "version": 2**31}, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == [
        {"loc": ["path", "version"], "msg": "the value does not fit its column (value out of int32 range)", "type": "database_refused"}
    ]
