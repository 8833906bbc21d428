"""Authorisation rules of every HTTP operation, as the route walk sees them (issue 10).

The walk (``tests/security/test_authorization_walk.py``) reads the required scopes from the code
wherever it can: a route that depends on ``shared.auth.require_scopes(...)`` carries its scopes
in the dependency's closure. What the code does *not* say in a dependency (a scope check written
inside an endpoint) is declared here, reviewed, with a reason. A route that has neither a scope
dependency nor an entry here, and is not on the test's public allow-list, fails the walk.

Run as a script to print the authorisation matrix of every service (a review aid):

    .venv/bin/python tools/authz_rules.py
"""

from __future__ import annotations

import importlib
import inspect
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

# service -> (module with create_app, settings module, settings class)
SERVICES: dict[str, tuple[str, str, str]] = {
    "ingest": ("services.ingest.main", "services.ingest.config", "IngestSettings"),
    "sampling": ("services.sampling.main", "services.sampling.config", "SamplingSettings"),
    "dispatch": ("services.dispatch.main", "services.dispatch.config", "DispatchSettings"),
    "responses": ("services.responses.main", "services.responses.config", "ResponsesSettings"),
    "analytics": ("services.analytics.main", "services.analytics.config", "AnalyticsSettings"),
}

# Every scope the platform knows (shared/auth). The walk adds any scope it finds in a dependency.
KNOWN_SCOPES: tuple[str, ...] = (
    "extracts:write",
    "extracts:read",
    "rounds:admin",
    "aggregates:read",
    "responses:paper",
    "responses:interview",
    "kommuner:all",
)


@dataclass(frozen=True)
class ScopeRule:
    """What a caller must hold: every scope in ``all_of`` and at least one of ``any_of``."""

    all_of: frozenset[str] = frozenset()
    any_of: frozenset[str] = frozenset()
    source: str = ""  # where the rule comes from: "require_scopes" or the reason of a manual entry

    @property
    def scopes(self) -> frozenset[str]:
        return self.all_of | self.any_of

    def minimal_grant(self) -> tuple[str, ...]:
        """Scopes a caller needs to pass this rule (all of ``all_of`` plus one of ``any_of``)."""
        return tuple(sorted(self.all_of | ({sorted(self.any_of)[0]} if self.any_of else set())))

    def describe(self) -> str:
        parts = [" + ".join(sorted(self.all_of))] if self.all_of else []
        if self.any_of:
            parts.append("one of (" + " | ".join(sorted(self.any_of)) + ")")
        return " + ".join(parts)


# Manual, reviewed rules for scope checks written inside an endpoint instead of a dependency.
# Key: (service, METHOD, path as in the OpenAPI). Keep the reason: it is what the reviewer read.
MANUAL_RULES: dict[tuple[str, str, str], ScopeRule] = {
    ("ingest", "GET", "/jobs/{job_id}"): ScopeRule(
        any_of=frozenset({"extracts:read", "extracts:write", "rounds:admin"}),
        source="services/ingest/api.py get_job: the uploader (extracts:write), a reader (extracts:read) or KL's "
        "operator (rounds:admin); municipality checked against the job's kommunekode",
    ),
    ("ingest", "GET", "/deliveries/{delivery_id}"): ScopeRule(
        any_of=frozenset({"extracts:read", "rounds:admin"}),
        source="services/ingest/api.py get_delivery: a reader (extracts:read) or KL's operator (rounds:admin); "
        "municipality checked against the delivery's kommunekode",
    ),
    **{
        ("ingest", "GET", path): ScopeRule(
            any_of=frozenset({"extracts:read", "extracts:write", "aggregates:read", "kommuner:all"}),
            source="services/ingest/deps.py RuleReader: the target-group mapping and the column profiles are read by "
            "vendors, municipal readers, readers of the results and KL's operator (rounds:admin with kommuner:all)",
        )
        for path in ("/maalgrupper", "/profiles", "/profiles/{reference}")
    },
    ("ingest", "POST", "/profiles"): ScopeRule(
        any_of=frozenset({"extracts:write", "kommuner:all"}),
        source="services/ingest/api.py register_profile: a vendor (extracts:write) or KL's operator (rounds:admin "
        "with kommuner:all; a caller without either scope is refused)",
    ),
}


@dataclass(frozen=True)
class BindingProbe:
    """A municipality filter the OpenAPI does not show as a ``kommunekode`` parameter."""

    service: str
    method: str
    path: str
    path_params: dict[str, str]
    query_for: Any  # kommunekode -> query dict
    reason: str


EXTRA_BINDING_PROBES: tuple[BindingProbe, ...] = (
    BindingProbe(
        "analytics",
        "GET",
        "/odata/{entity_set}",
        {"entity_set": "Indicators"},
        lambda k: {"$filter": f"kommunekode eq '{k}'"},
        "OData $filter on kommunekode is a municipality selector too",
    ),
)

# Request bodies for municipality-bound operations whose body schema cannot be satisfied by a
# generated example (model validators the OpenAPI does not express). Validation runs before the
# endpoint, so without a valid body the binding check would be hidden behind a 422.
# Key: (service, METHOD, path) -> kommunekode -> JSON body.
EXAMPLE_BODIES: dict[tuple[str, str, str], Any] = {
    ("responses", "PUT", "/api/admin/supplements/{kommunekode}/{version}"): lambda k: {
        "kommunekode": k,
        "version": 1,
        "questions": [{"id": f"k{k}_walk", "kind": "free_text", "text": {"da": "Walk", "en": "Walk"}}],
    },
}

# Plausible values for path (and required query) parameters, by name.
PARAM_VALUES: dict[str, str] = {
    "round_id": "r1",
    "kommunekode": "751",
    "kommune": "751",
    "token": "A" * 32,
    "entity_set": "Indicators",
    "reference_date": "2023-08-01",
    "version": "1",
}


# --- reading the routes -----------------------------------------------------------------------------------


def create_app(service: str, env: dict[str, str]):
    main_module, config_module, settings_class = SERVICES[service]
    from shared.testing.fixtures import settings_from_env

    settings_cls = getattr(importlib.import_module(config_module), settings_class)
    return importlib.import_module(main_module).create_app(settings_from_env(settings_cls, env))


def offline_env() -> dict[str, str]:
    """Settings good enough to build an app (not to start it): for listing routes."""
    from shared.auth.dev_issuer import DevIssuer
    from shared.crypto import new_key
    from shared.testing.fixtures import make_service_env

    keys = {
        "PSEUDONYM_KEY": new_key(),
        "CPR_KEYS": f'{{"cpr-1": "{new_key()}"}}',
        "CPR_ACTIVE_KEY_ID": "cpr-1",
        "CONTACT_KEYS": f'{{"contact-1": "{new_key()}"}}',
        "CONTACT_ACTIVE_KEY_ID": "contact-1",
        "LINK_KEY": new_key(),
    }
    return make_service_env(
        "postgresql://offline@localhost/offline", "localhost:9", "offline.", DevIssuer(), keys, Path("/tmp/borgerblik-offline")
    )


def iter_routes(app) -> Iterator[Any]:
    """Every route the app serves, flattened through included routers (FastAPI >= 0.16x keeps
    included routers as one route object with effective route contexts; older ones copy routes)."""

    def walk(routes):
        for route in routes:
            contexts = getattr(route, "effective_route_contexts", None)
            if callable(contexts):
                yield from contexts()
            elif hasattr(route, "routes") and not hasattr(route, "methods") and not hasattr(route, "dependant"):
                # A mounted sub-application or router: yield it (its path prefix) and what it holds.
                yield route
            else:
                yield route

    yield from walk(app.routes)


def route_methods(route) -> set[str]:
    return {m for m in (getattr(route, "methods", None) or set()) if m != "HEAD"}


def route_index(app) -> dict[tuple[str, str], Any]:
    """(METHOD, path) -> route object with ``dependant``."""
    index = {}
    for route in iter_routes(app):
        path = getattr(route, "path", None)
        for method in route_methods(route):
            index[(method, path)] = route
    return index


def _scope_dependencies(dependant, seen=None) -> Iterator[tuple[str, ...]]:
    seen = seen if seen is not None else set()
    for dep in getattr(dependant, "dependencies", []) or []:
        call = getattr(dep, "call", None)
        if call is not None and id(call) not in seen:
            seen.add(id(call))
            if getattr(call, "__name__", "").startswith("require_"):
                try:
                    scopes = inspect.getclosurevars(call).nonlocals.get("scopes")
                except TypeError:
                    scopes = None
                if scopes:
                    yield tuple(scopes)
        yield from _scope_dependencies(dep, seen)


def rule_for(service: str, method: str, path: str, route) -> ScopeRule | None:
    manual = MANUAL_RULES.get((service, method, path))
    if manual is not None:
        return manual
    found = [scope for scopes in _scope_dependencies(getattr(route, "dependant", None)) for scope in scopes]
    if found:
        return ScopeRule(all_of=frozenset(found), source="require_scopes")
    return None


def openapi_operations(spec: dict) -> Iterator[tuple[str, str, dict]]:
    for path, item in spec.get("paths", {}).items():
        for method, op in item.items():
            if method in {"get", "put", "post", "delete", "patch", "options", "head", "trace"}:
                yield method.upper(), path, op


# Parameter names that select a municipality.
MUNICIPALITY_PARAMS = frozenset({"kommunekode", "kommune", "kommune_kode", "municipality"})


def municipality_params(op: dict) -> dict[str, str]:
    """name -> 'path' | 'query' for every parameter of the operation that selects a municipality."""
    return {
        p["name"]: p["in"]
        for p in op.get("parameters", [])
        if p.get("name") in MUNICIPALITY_PARAMS and p.get("in") in ("path", "query")
    }


def kommunekode_params(op: dict) -> list[str]:
    """Where the operation takes a municipality: 'path' and/or 'query'."""
    return sorted(set(municipality_params(op).values()))


# --- plausible parameter values -----------------------------------------------------------------------------


def _first_schema(schema: dict) -> dict:
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"]
            return options[0] if options else schema[key][0]
    return schema


def plausible_value(name: str, schema: dict | None) -> str:
    if name in PARAM_VALUES:
        return PARAM_VALUES[name]
    schema = _first_schema(schema or {})
    if "enum" in schema:
        return str(schema["enum"][0])
    if "const" in schema:
        return str(schema["const"])
    fmt, typ = schema.get("format"), schema.get("type")
    if fmt == "uuid" or name.endswith("_id") and typ == "string" and "pattern" not in schema:
        return str(uuid.UUID(int=0x1234))
    if fmt == "date":
        return "2023-08-01"
    if fmt == "date-time":
        return "2023-08-01T00:00:00Z"
    if typ == "integer":
        return str(max(int(schema.get("minimum", 1)), 1))
    if typ == "number":
        return str(schema.get("minimum", 1))
    if typ == "boolean":
        return "false"
    if "pattern" in schema:
        from hypothesis import find, settings  # a string the route's own pattern accepts
        from hypothesis import strategies as st

        return find(st.from_regex(schema["pattern"], fullmatch=True), lambda _: True, settings=settings(database=None))
    return "x"


def fill_path(path: str, op: dict, overrides: dict[str, str] | None = None) -> str:
    values = {p["name"]: plausible_value(p["name"], p.get("schema")) for p in op.get("parameters", []) if p.get("in") == "path"}
    values.update(overrides or {})
    return path.format(**values)


def required_query(op: dict) -> dict[str, str]:
    return {
        p["name"]: plausible_value(p["name"], p.get("schema"))
        for p in op.get("parameters", [])
        if p.get("in") == "query" and p.get("required")
    }


# --- the matrix ----------------------------------------------------------------------------------------------


def matrix() -> list[tuple[str, str, str, str, str]]:
    rows = []
    env = offline_env()
    for service in SERVICES:
        app = create_app(service, env)
        index = route_index(app)
        for method, path, op in openapi_operations(app.openapi()):
            rule = rule_for(service, method, path, index.get((method, path)))
            binding = ",".join(kommunekode_params(op)) or "-"
            rows.append((service, method, path, rule.describe() if rule else "NONE", binding))
        documented = {(m, p) for m, p, _ in openapi_operations(app.openapi())}
        for (method, path), _route in sorted(index.items()):
            if (method, path) not in documented:
                rows.append((service, method, path, "(not in OpenAPI)", "-"))
    return rows


if __name__ == "__main__":
    for row in matrix():
        print("{:<10} {:<6} {:<52} {:<45} kommunekode:{}".format(*row))
