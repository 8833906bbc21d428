"""Every door of every service, tested (issue 10).

For each service the walk takes every operation of the OpenAPI the running service serves, plus
every route hidden from it, and proves:

(a) no token, a token signed by a key the service does not trust, and an expired token are all
    refused with 401 (or, for browser pages, a redirect to the login page) -- unless the route is on
    the reviewed public allow-list below;
(b) a valid token holding every other scope but not the operation's own is refused with 403. The
    operation's scope comes from its ``require_scopes(...)`` dependency, or from a reviewed entry in
    tools/authz_rules.py; a route with neither (and not public) fails: that is the point;
(c) an operation that takes a municipality (``{kommunekode}`` in the path, or a ``kommunekode``
    query parameter) refuses a token bound to municipality 101, holding the right scopes, on
    municipality 751 (403), and does not refuse it on 101 (neither 401 nor 403).

The list of operations is read when the tests are collected (apps are built, not started) so that
each operation is a test of its own; the live test checks that the running service serves the same.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, find, settings
from hypothesis.errors import NoSuchExample

from shared.auth.dev_issuer import DevIssuer
from shared.testing.fixtures import bearer

ROOT = Path(__file__).resolve().parents[2]


def _load_rules():
    name = "borgerblik_tools_authz_rules"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / "authz_rules.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


rules = _load_rules()

# --- the reviewed public allow-list ---------------------------------------------------------------------------
# (path, or a prefix ending in "/") -> why it is reachable without a bearer token. Every entry is a
# decision someone made; add one only with its reason, and expect a reviewer to ask about it.
PUBLIC_ROUTES: dict[str, str] = {
    "/healthz": "orchestrator liveness/readiness; says only ok/unhealthy per dependency, no data",
    "/metrics": "Prometheus scrape; counters and latencies without personal data (restrict at the ingress)",
    "/openapi.json": "API description; no data",
    "/docs": "Swagger UI over the API description; no data",
    "/docs/oauth2-redirect": "Swagger UI's OAuth2 helper page; no data",
    "/redoc": "ReDoc over the API description; no data",
    "/dashboard/login/oidc": "starts the municipal OIDC login (redirect to the broker): cannot itself require a login",
    "/dashboard/oidc/callback": "the broker's return with the authorization code; state, nonce and PKCE checked before any session",
    "/s/": "citizen's questionnaire pages: the unguessable link token in the URL is the credential (by design)",
    "/api/survey/": "citizen's questionnaire API: the link token in the URL is the credential (by design)",
    "/tilgaengelighed": "accessibility statement (tilgængelighedserklæring) the law requires to be public",
    "/static/": "static assets of the questionnaire (CSS, JS, fonts, DKFDS); no data",
    "/dashboard/login": "the dashboard's login form and client-credentials exchange: cannot itself require a login",
    "/dashboard/logout": "clears the dashboard cookie; reveals nothing",
    "/dashboard/static/": "dashboard CSS/JS; no data",
}

KOMMUNE_OWN = "101"
KOMMUNE_OTHER = "751"


def public_reason(path: str) -> str | None:
    for entry, reason in PUBLIC_ROUTES.items():
        if path == entry or path == entry.rstrip("/") or (entry.endswith("/") and path.startswith(entry)):
            return reason
    return None


# --- collection: what every service exposes -------------------------------------------------------------------


def _collect():
    operations, hidden = [], []
    env = rules.offline_env()
    for service in rules.SERVICES:
        app = rules.create_app(service, env)
        documented = set()
        for method, path, _op in rules.openapi_operations(app.openapi()):
            documented.add((method, path))
            operations.append((service, method, path))
        for route in rules.iter_routes(app):
            path = getattr(route, "path", None)
            methods = rules.route_methods(route) or {"*"}  # a mount (static files, sub-app) has no methods
            for method in methods:
                if path is not None and (method, path) not in documented:
                    hidden.append((service, method, path))
    return operations, sorted(set(hidden))


OPERATIONS, HIDDEN_ROUTES = _collect()
PROTECTED = [op for op in OPERATIONS if public_reason(op[2]) is None]


def _id(op) -> str:
    return f"{op[0]} {op[1]} {op[2]}"


async def _operation(live_services, service: str, method: str, path: str) -> dict:
    spec = await live_services.openapi(service)
    op = spec["paths"].get(path, {}).get(method.lower())
    assert op is not None, f"{service} no longer serves {method} {path}; re-run the collection"
    return op


async def _rule(live_services, service: str, method: str, path: str):
    await live_services.client(service)
    route = rules.route_index(live_services.apps[service]).get((method, path))
    return rules.rule_for(service, method, path, route)


def _all_scopes(extra=()) -> set[str]:
    return set(rules.KNOWN_SCOPES) | set(extra)


# --- the walk -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("service", list(rules.SERVICES))
async def test_served_openapi_is_what_was_walked(live_services, service):
    spec = await live_services.openapi(service)
    served = {(service, m, p) for m, p, _ in rules.openapi_operations(spec)}
    collected = {op for op in OPERATIONS if op[0] == service}
    assert served == collected


@pytest.mark.parametrize("route", HIDDEN_ROUTES, ids=_id)
def test_route_hidden_from_openapi_is_public_by_review(route):
    """A route outside the OpenAPI escapes the walk: it must be on the public allow-list."""
    service, method, path = route
    assert public_reason(path) is not None, (
        f"{service} {method} {path} is not in the OpenAPI and not on the reviewed public allow-list: "
        "document it (include_in_schema) so the walk covers it, or allow-list it with a reason"
    )


@pytest.mark.parametrize("operation", PROTECTED, ids=_id)
async def test_operation_has_a_scope_rule(live_services, operation):
    rule = await _rule(live_services, *operation)
    assert rule is not None and rule.scopes, (
        f"{_id(operation)}: no require_scopes dependency and no reviewed rule in tools/authz_rules.py, "
        "and not public: every non-public operation must require a scope"
    )


@pytest.mark.parametrize("operation", PROTECTED, ids=_id)
async def test_unauthenticated_is_refused(live_services, operation, dev_issuer):
    service, method, path = operation
    op = await _operation(live_services, *operation)
    client = await live_services.client(service)
    url = rules.fill_path(path, op)
    params = rules.required_query(op)
    rule = await _rule(live_services, *operation)
    scopes = sorted(_all_scopes(rule.scopes if rule else ()))
    forged = DevIssuer().mint("mallory", scopes, [KOMMUNE_OTHER])  # right claims, untrusted key
    expired = dev_issuer.mint("late", scopes, [KOMMUNE_OTHER], ttl_seconds=-3600)
    attempts = {
        "no token": {},
        "token from an untrusted key": bearer(forged),
        "expired token": bearer(expired),
        "not a JWT": bearer("not-a-jwt"),
    }
    wrong = {}
    for what, headers in attempts.items():
        response = await client.request(method, url, params=params, headers=headers)
        to_login = response.status_code in (302, 303, 307) and "login" in response.headers.get("location", "")
        if response.status_code != 401 and not to_login:  # browser pages may send the visitor to log in
            wrong[what] = f"{response.status_code} {response.text[:200]}"
    assert not wrong, f"{_id(operation)} must answer 401: {wrong}"


@pytest.mark.parametrize("operation", PROTECTED, ids=_id)
async def test_missing_scope_is_refused(live_services, operation, dev_issuer):
    service, method, path = operation
    op = await _operation(live_services, *operation)
    rule = await _rule(live_services, *operation)
    if rule is None or not rule.scopes:
        pytest.fail(f"{_id(operation)}: no scope to test (see test_operation_has_a_scope_rule)")
    client = await live_services.client(service)
    url = rules.fill_path(path, op)
    params = rules.required_query(op)
    everything = _all_scopes(rule.scopes)
    # Each scope of all_of missing on its own; for any_of, all of them missing at once.
    lacking = [{scope} for scope in sorted(rule.all_of)] + ([set(rule.any_of)] if rule.any_of else [])
    wrong = {}
    for missing in lacking:
        token = dev_issuer.mint("scope-walk", sorted(everything - missing), [KOMMUNE_OTHER, KOMMUNE_OWN])
        response = await client.request(method, url, params=params, headers=bearer(token))
        if response.status_code != 403:
            wrong["without " + "/".join(sorted(missing))] = f"{response.status_code} {response.text[:200]}"
    assert not wrong, f"{_id(operation)} (requires {rule.describe()}) must answer 403: {wrong}"


# --- municipality binding ------------------------------------------------------------------------------------------

def _bound_operations():
    env = rules.offline_env()
    bound, specs = [], {}
    for service in rules.SERVICES:
        specs[service] = rules.create_app(service, env).openapi()
    for service, method, path in PROTECTED:
        op = specs[service]["paths"][path][method.lower()]
        if rules.kommunekode_params(op):
            bound.append((service, method, path))
    return bound


BOUND = _bound_operations()
PROBES = [p for p in rules.EXTRA_BINDING_PROBES if any(op == (p.service, p.method, p.path) for op in OPERATIONS)]


def _request_bodies(spec: dict, method: str, path: str, op: dict):
    """Bodies for an operation that takes one: the smallest schema-valid body, then a few more.

    Validation runs before the endpoint (where the municipality check usually is), so a body the
    route rejects with 422 would hide its authorisation. Schemathesis generates from the schema."""
    if "requestBody" not in op:
        yield None, None
        return
    import schemathesis

    operation = schemathesis.openapi.from_dict(spec)[path][method]
    strategy = operation.as_strategy()
    quiet = settings(database=None, max_examples=200, phases=[Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck), deadline=None)
    try:
        case = find(strategy, lambda c: True, settings=quiet)
        yield case.body, case.media_type
    except NoSuchExample:
        pass
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # .example() outside @given is what we want here
        for _ in range(5):
            case = strategy.example()
            yield case.body, case.media_type


async def _send(client, method, url, params, headers, body, media_type):
    if body is None:
        return await client.request(method, url, params=params, headers=headers)
    if media_type and "json" not in media_type:
        return await client.request(method, url, params=params, headers={**headers, "content-type": media_type}, content=body)
    return await client.request(method, url, params=params, headers=headers, json=body)


async def _probe(client, method, path_for, params_for, op_spec, token, kommunekode, bodies, example=None):
    """The first answer that is not a validation error (422), over the candidate bodies."""
    response = None
    candidates = ([(example(kommunekode), "application/json")] if example else []) + bodies
    for body, media_type in candidates:
        response = await _send(client, method, path_for(kommunekode), params_for(kommunekode), bearer(token), body, media_type)
        if response.status_code != 422:
            return response
    return response


@pytest.mark.parametrize("operation", BOUND, ids=_id)
async def test_other_municipality_is_refused(live_services, operation, dev_issuer):
    service, method, path = operation
    op = await _operation(live_services, *operation)
    rule = await _rule(live_services, *operation)
    if rule is None or not rule.scopes:
        pytest.fail(f"{_id(operation)}: no scope rule (see test_operation_has_a_scope_rule)")
    client = await live_services.client(service)
    where = rules.municipality_params(op)  # name -> path | query

    def path_for(k):
        return rules.fill_path(path, op, {name: k for name, place in where.items() if place == "path"})

    def params_for(k):
        return {**rules.required_query(op), **{name: k for name, place in where.items() if place == "query"}}

    example = rules.EXAMPLE_BODIES.get(operation)
    bodies = [] if example else list(_request_bodies(await live_services.openapi(service), method, path, op))
    # The right scopes, bound to municipality 101 only (no kommuner:all).
    token = dev_issuer.mint("kommune-101", [s for s in rule.minimal_grant() if s != "kommuner:all"], [KOMMUNE_OWN])
    foreign = await _probe(client, method, path_for, params_for, op, token, KOMMUNE_OTHER, bodies, example)
    own = await _probe(client, method, path_for, params_for, op, token, KOMMUNE_OWN, bodies, example)
    problems = []
    if foreign.status_code != 403:
        problems.append(
            f"a token for {KOMMUNE_OWN} with {rule.describe()} got {foreign.status_code} on {KOMMUNE_OTHER}'s resource "
            f"(expected 403): {foreign.text[:300]}"
        )
    national_only = "kommuner:all" in rule.all_of  # round administration: KL's operators only
    if national_only and own.status_code != 403:
        problems.append(f"a national-only operation let a token bound to {KOMMUNE_OWN} in: {own.status_code} {own.text[:300]}")
    if not national_only and own.status_code in (401, 403):
        problems.append(f"a token for {KOMMUNE_OWN} was refused on its own municipality: {own.status_code} {own.text[:300]}")
    assert not problems, f"{_id(operation)}: " + "; ".join(problems)


@pytest.mark.parametrize("probe", PROBES, ids=lambda p: f"{p.service} {p.method} {p.path} ({p.reason})")
async def test_other_municipality_is_refused_in_filters(live_services, probe, dev_issuer):
    op = await _operation(live_services, probe.service, probe.method, probe.path)
    rule = await _rule(live_services, probe.service, probe.method, probe.path)
    client = await live_services.client(probe.service)
    token = dev_issuer.mint("kommune-101", [s for s in rule.minimal_grant() if s != "kommuner:all"], [KOMMUNE_OWN])
    url = rules.fill_path(probe.path, op, probe.path_params)
    foreign = await client.request(probe.method, url, params=probe.query_for(KOMMUNE_OTHER), headers=bearer(token))
    own = await client.request(probe.method, url, params=probe.query_for(KOMMUNE_OWN), headers=bearer(token))
    assert foreign.status_code == 403, f"{foreign.status_code} {foreign.text[:300]}"
    assert own.status_code not in (401, 403), f"{own.status_code} {own.text[:300]}"


def test_public_allow_list_is_reviewed():
    """Every allow-list entry carries its reason, and the walk covers something."""
    assert all(reason and len(reason) > 10 for reason in PUBLIC_ROUTES.values())
    assert PROTECTED, "the walk found no protected operation at all"
    assert all(re.fullmatch(r"/[A-Za-z0-9_./{}-]*", p) for p in PUBLIC_ROUTES)


# --- round-wide administration -------------------------------------------------------------------------------------

async def test_round_wide_admin_needs_all_municipalities(live_services, dev_issuer):
    """A round-wide admin operation (no municipality parameter) serves or changes every
    municipality's data; a token bound to one municipality must not reach it. Policy: round
    administration needs rounds:admin AND kommuner:all."""
    token = dev_issuer.mint("kommune-101-admin", ["rounds:admin"], [KOMMUNE_OWN])
    reachable = []
    for operation in PROTECTED:
        if operation in BOUND:
            continue
        rule = await _rule(live_services, *operation)
        if rule is None or "rounds:admin" not in rule.scopes or "kommuner:all" in rule.all_of:
            continue
        service, method, path = operation
        op = await _operation(live_services, *operation)
        client = await live_services.client(service)
        # GETs only: the walk must not draw samples or change plans to prove a point.
        if method != "GET":
            reachable.append(f"{_id(operation)} (not called: requires rounds:admin without kommuner:all)")
            continue
        response = await client.request(method, rules.fill_path(path, op), params=rules.required_query(op), headers=bearer(token))
        if response.status_code not in (401, 403):
            reachable.append(f"{_id(operation)} -> {response.status_code}")
    assert not reachable, "reachable with a rounds:admin token bound to 101 only:\n" + "\n".join(reachable)
