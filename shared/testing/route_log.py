"""Which routes the tests reach, and with what status (issues 21 and 26: every door tested).

When ``BORGERBLIK_ROUTE_LOG`` names a directory, every service app built by
``shared.app.install_common`` carries a :class:`RouteRecorder`: each request a route handled
appends one JSON line (service, method, route path template, status, and for redirects the target
path; in the test process also the test's node id) to ``<dir>/routes-<host>-<pid>.jsonl``. One
file per process, so services run in-process by the tests and services started as subprocesses
(the e2e stack) both count. Unset, the recorder is never built: nothing is added to the request
path.

:func:`uncovered` compares the records with every route of every service (read from the apps,
built offline) and names each (service, method, path) with no recorded success: a 2xx, or for a
route whose success is a redirect (reviewed in :data:`REDIRECT_SUCCESS`) a 3xx to the page the
route leads to. ``python -m tools.route_coverage <dir>`` runs it alone; at the end of a full
``make test`` the pytest plugin ``shared.testing.route_gate`` runs it and fails the run.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ENV = "BORGERBLIK_ROUTE_LOG"


# --- recording ----------------------------------------------------------------------------------


class _LogFile:
    """The process's log file per directory, opened on first use (and again in a forked child),
    one lock for the threads that serve requests (schemathesis drives an app from a thread of its
    own). A record already written by this process is not written again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._files: dict[str, Any] = {}
        self._seen: set[tuple] = set()

    def write(self, directory: str, record: dict[str, Any]) -> None:
        key = (directory, *record.values())
        with self._lock:
            if self._pid != os.getpid():
                self._pid, self._files, self._seen = os.getpid(), {}, set()
            if key in self._seen:
                return
            self._seen.add(key)
            file = self._files.get(directory)
            if file is None:
                Path(directory).mkdir(parents=True, exist_ok=True)
                name = f"routes-{socket.gethostname()}-{os.getpid()}.jsonl"
                file = self._files[directory] = open(Path(directory) / name, "a", encoding="utf-8")  # noqa: SIM115 (kept open for the process)
            file.write(json.dumps(record) + "\n")
            file.flush()


_LOG = _LogFile()


def _current_test() -> str | None:
    """The pytest node id of the test running in this process, if any (pytest keeps it in
    PYTEST_CURRENT_TEST as "<nodeid> (<phase>)"). Service processes started by the tests are
    started without it (shared.testing.processes), so their records carry none."""
    current = os.environ.get("PYTEST_CURRENT_TEST")
    return current.rsplit(" (", 1)[0] if current else None


class RouteRecorder:
    """ASGI middleware: after each HTTP request a route handled, one record of it."""

    def __init__(self, app: ASGIApp, service: str, directory: str) -> None:
        self.app, self.service, self.directory = app, service, directory

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        answer: dict[str, Any] = {"status": 500, "location": None}

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                location = next((v for n, v in message.get("headers", []) if n.lower() == b"location"), None)
                if location is not None:
                    # The target's path only: its query may carry state (an OIDC flow's).
                    answer["location"] = re.split(r"[?#]", location.decode("latin-1"), maxsplit=1)[0]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            path = _route_path(scope)
            if path is not None:
                _LOG.write(
                    self.directory,
                    {
                        "service": self.service,
                        "method": scope["method"],
                        "path": path,
                        "status": answer["status"],
                        "location": answer["location"] if 300 <= answer["status"] < 400 else None,
                        "test": _current_test(),
                    },
                )


def _route_path(scope: Scope) -> str | None:
    """The matched route's path template: the router sets ``scope["route"]`` on a route; a mount
    (static files) leaves its app as ``scope["endpoint"]``, and the mount's prefix is its path.
    None when nothing matched."""
    route = scope.get("route")
    if route is not None:
        return getattr(route, "path", None)
    endpoint = scope.get("endpoint")
    app = scope.get("app")
    if endpoint is None or app is None:
        return None
    return next((r.path for r in getattr(app, "routes", ()) if isinstance(r, Mount) and r.app is endpoint), None)


def read_records(directory: str | Path) -> Iterator[dict[str, Any]]:
    for file in sorted(Path(directory).glob("routes-*.jsonl")):
        for line in file.read_text(encoding="utf-8").splitlines():
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a process killed mid-write (crash tests)


# --- what must be covered ---------------------------------------------------------------------

# Routes the walk does not demand a success test of, with the reason. FastAPI generates the
# API description and its two viewers from the routes; they are not the services' code.
EXCLUDED: dict[str, str] = {
    "/openapi.json": "generated by FastAPI from the routes; served and parsed by the authorization walk and the fuzzer",
    "/docs": "Swagger UI page generated by FastAPI",
    "/docs/oauth2-redirect": "Swagger UI's OAuth2 helper page generated by FastAPI",
    "/redoc": "ReDoc page generated by FastAPI",
}

# Routes whose success is a redirect, not a 2xx: (service, METHOD, path) -> (pattern the
# redirect's target must match for the answer to be the route's success, why).
REDIRECT_SUCCESS: dict[tuple[str, str, str], tuple[str, str]] = {
    ("responses", "POST", "/s/{token}/side/{n}"): (
        r"/s/[^/]+/(side/\d+|gemt|tak)$",
        "a saved page answers 303 (post/redirect/get) to the next or previous page, the saved page or the receipt",
    ),
    ("responses", "POST", "/s/{token}/afmeld"): (r"/s/[^/]+/afmeldt$", "an opt-out answers 303 to its confirmation"),
    # The interviewer's outcomes answer 303 back to the list (post/redirect/get); the query says
    # which (done=completed, refused or the call-back, or taken, answered or closed), and the gate sees paths
    # only: tests/responses/integration/test_responses_interview.py asserts the query.
    ("responses", "POST", "/interview/rounds/{round_id}/calls/{interview_id}/answers"): (
        r"^/interview/rounds/[^/]+$", "recording the phone answers answers 303 to the list's next citizen"),
    ("responses", "POST", "/interview/rounds/{round_id}/calls/{interview_id}/refused"): (
        r"^/interview/rounds/[^/]+$", "a refusal answers 303 to the list's next citizen"),
    ("responses", "POST", "/interview/rounds/{round_id}/calls/{interview_id}/call-back"): (
        r"^/interview/rounds/[^/]+$", "a call-back time answers 303 to the list's next citizen"),
    ("analytics", "POST", "/dashboard/login"): (
        r"^/dashboard/(?!login)",
        "a dev login sets the cookie and answers 303 to the dashboard page asked for",
    ),
    ("analytics", "POST", "/dashboard/logout"): (r"^/dashboard/login$", "logging out clears the cookies and answers 303 to the login page"),
    ("analytics", "GET", "/dashboard/login/oidc"): (
        r"^https?://",
        "starting the municipal login answers a redirect to the OIDC broker's authorization endpoint",
    ),
    ("analytics", "GET", "/dashboard/"): (
        r"^/dashboard/r/[^/]+/k/[^/]+$",
        "a caller bound to one municipality is sent (303) straight to its own page",
    ),
    ("analytics", "POST", "/dashboard/r/{round_id}/k/{kommune}/targets"): (
        r"^/dashboard/r/[^/]+/k/[^/]+/targets$",
        "saving targets answers 303 back to the targets page (declared status_code=303)",
    ),
}

# Tests whose requests do not count as a tested success path: they send generated or deliberately
# wrong requests and assert only refusals or the absence of server errors, so a 2xx they happen to
# get is not checked for what it says. Matched against the start of the test's node id.
PROBE_TESTS: dict[str, str] = {
    "tests/security/test_fuzz.py": "schemathesis sends generated requests and checks only for 5xx and schema conformance",
    "tests/security/test_authorization_walk.py": "the walk asserts 401/403 and 'not refused', never what a success says",
}


@dataclass(frozen=True, order=True)
class Operation:
    service: str
    method: str
    path: str

    def __str__(self) -> str:
        return f"{self.service} {self.method} {self.path}"


def _rules():
    """tools/authz_rules.py: the services and how to build their apps offline (one source)."""
    import importlib.util
    import sys

    name = "borgerblik_tools_authz_rules"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[2] / "tools" / "authz_rules.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def excluded_reason(path: str) -> str | None:
    return EXCLUDED.get(path)


def service_operations(services: Iterable[str] | None = None) -> list[Operation]:
    """Every (service, method, path) the services serve: the OpenAPI's operations and the routes
    hidden from it, read from app.routes of each app as ``create_app`` builds it (not started).
    A mount (the questionnaire's static files) counts as one GET on its prefix."""
    rules = _rules()
    env = rules.offline_env()
    operations: set[Operation] = set()
    for service in services or rules.SERVICES:
        app = rules.create_app(service, env)
        for route in rules.iter_routes(app):
            path = getattr(route, "path", None)
            if path is None or excluded_reason(path):
                continue
            methods = rules.route_methods(route) or {"GET"}  # a mount has no methods; its files are GETs
            operations.update(Operation(service, method, path) for method in methods)
    return sorted(operations)


def is_success(record: dict[str, Any]) -> bool:
    status = record.get("status")
    if not isinstance(status, int):
        return False
    if 200 <= status < 300:
        return True
    redirect = REDIRECT_SUCCESS.get((record.get("service"), record.get("method"), record.get("path")))
    return bool(redirect and 300 <= status < 400 and re.search(redirect[0], record.get("location") or ""))


def counts(record: dict[str, Any]) -> bool:
    test = record.get("test") or ""
    return is_success(record) and not any(test.startswith(prefix) for prefix in PROBE_TESTS)


def covered(records: Iterable[dict[str, Any]]) -> set[Operation]:
    seen = set()
    for record in records:
        if counts(record):
            # HEAD is answered by the GET route: it counts for the GET.
            method = "GET" if record["method"] == "HEAD" else record["method"]
            seen.add(Operation(record["service"], method, record["path"]))
    return seen


def uncovered(directory: str | Path, operations: list[Operation] | None = None) -> list[Operation]:
    operations = operations if operations is not None else service_operations()
    done = covered(read_records(directory))
    return [op for op in operations if op not in done]


def report(missing: list[Operation], directory: str | Path, total: int) -> str:
    lines = [
        f"route coverage: {len(missing)} of {total} routes have no test that reaches their success path "
        f"(records in {directory}):"
    ]
    for service in sorted({op.service for op in missing}):
        lines.append(f"  {service}:")
        lines.extend(f"    {op.method:<6} {op.path}" for op in missing if op.service == service)
    lines.append(
        "A route counts when a test gets a 2xx from it (or, for the redirects listed in "
        "shared/testing/route_log.py REDIRECT_SUCCESS, a 3xx to the page it leads to); requests "
        "of the fuzzer and the authorization walk do not count. Add a test that calls the route "
        "and checks what its answer says."
    )
    return "\n".join(lines)
