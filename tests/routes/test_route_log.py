"""The route recorder and the coverage walk (shared/testing/route_log.py) themselves: what is
recorded, what counts as a success, and that the walk names what no test reached."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from shared.testing import route_log
from shared.testing.route_log import Operation, RouteRecorder

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import authz_rules  # noqa: E402


def _tiny_app(directory: Path) -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict:
        return {"id": item_id}

    @app.post("/s/{token}/afmeld")
    async def opt_out(token: str) -> RedirectResponse:
        return RedirectResponse(f"/s/{token}/afmeldt?lang=en", status_code=303)

    app.add_middleware(RouteRecorder, service="responses", directory=str(directory))
    return app


async def test_records_the_route_template_status_redirect_target_and_test(tmp_path):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_tiny_app(tmp_path)), base_url="http://t") as client:
        assert (await client.get("/items/7")).json() == {"id": 7}
        assert (await client.get("/items/7")).status_code == 200  # the same record again: written once
        assert (await client.get("/items/not-a-number")).status_code == 422
        assert (await client.post("/s/abc/afmeld")).status_code == 303
        assert (await client.get("/nowhere")).status_code == 404  # no route: nothing to record

    records = list(route_log.read_records(tmp_path))
    this_test = "tests/routes/test_route_log.py::test_records_the_route_template_status_redirect_target_and_test"
    assert records == [
        {"service": "responses", "method": "GET", "path": "/items/{item_id}", "status": 200, "location": None, "test": this_test},
        {"service": "responses", "method": "GET", "path": "/items/{item_id}", "status": 422, "location": None, "test": this_test},
        {"service": "responses", "method": "POST", "path": "/s/{token}/afmeld", "status": 303, "location": "/s/abc/afmeldt", "test": this_test},
    ]
    assert route_log.covered(records) == {
        Operation("responses", "GET", "/items/{item_id}"),
        Operation("responses", "POST", "/s/{token}/afmeld"),  # a reviewed redirect to its confirmation
    }


def test_what_counts_as_a_success():
    base = {"service": "responses", "method": "POST", "path": "/s/{token}/side/{n}", "location": None, "test": "tests/x.py::t"}
    assert route_log.counts(base | {"status": 200})
    assert not route_log.counts(base | {"status": 403})
    # The form's post/redirect/get: a 303 to the next page is its success, a redirect elsewhere is not.
    assert route_log.counts(base | {"status": 303, "location": "/s/tok/side/2"})
    assert route_log.counts(base | {"status": 303, "location": "http://host/s/tok/tak"})
    assert not route_log.counts(base | {"status": 303, "location": "/dashboard/login"})
    # A route not reviewed as a redirect: a 3xx is not its success.
    assert not route_log.counts(base | {"path": "/s/{token}", "status": 303, "location": "/s/tok/side/1"})
    # A 2xx the fuzzer or the authorization walk happened to get does not count.
    assert not route_log.counts(base | {"status": 200, "test": "tests/security/test_fuzz.py::test_fuzz[ingest]"})
    assert not route_log.counts(base | {"status": 201, "test": "tests/security/test_authorization_walk.py::test_x"})
    # A service process started by the tests records no test: its requests count.
    assert route_log.counts(base | {"status": 201, "test": None})


def test_the_walk_names_every_route_without_a_success(tmp_path):
    operations = route_log.service_operations(["dispatch"])
    paths = {(op.method, op.path) for op in operations}
    assert {("GET", "/healthz"), ("GET", "/metrics"), ("GET", "/audit"), ("GET", "/rounds/{round_id}/failures")} <= paths
    assert not any(path in route_log.EXCLUDED for _, path in paths)  # FastAPI's own pages are not asked for

    (tmp_path / "routes-h-1.jsonl").write_text(
        '{"service": "dispatch", "method": "GET", "path": "/healthz", "status": 200, "location": null, "test": null}\n'
        '{"service": "dispatch", "method": "GET", "path": "/audit", "status": 403, "location": null, "test": null}\n'
        '{"service": "dispatch", "method": "GET", "path": "/aud'  # cut short by a killed process
    )
    missing = route_log.uncovered(tmp_path, operations)
    assert Operation("dispatch", "GET", "/healthz") not in missing
    assert Operation("dispatch", "GET", "/audit") in missing
    assert set(missing) == set(operations) - {Operation("dispatch", "GET", "/healthz")}
    text = route_log.report(missing, tmp_path, len(operations))
    assert f"{len(missing)} of {len(operations)} routes" in text and "    GET    /audit" in text


def test_the_recorder_is_only_installed_when_asked_for(monkeypatch, tmp_path):
    env = authz_rules.offline_env()
    monkeypatch.delenv(route_log.ENV, raising=False)
    plain = authz_rules.create_app("sampling", env)
    assert RouteRecorder not in [m.cls for m in plain.user_middleware]
    monkeypatch.setenv(route_log.ENV, str(tmp_path))
    recording = authz_rules.create_app("sampling", env)
    assert [m.kwargs for m in recording.user_middleware if m.cls is RouteRecorder] == [
        {"service": "sampling", "directory": str(tmp_path)}
    ]


async def test_a_mount_is_recorded_under_its_prefix(tmp_path):
    files = tmp_path / "files"
    files.mkdir()
    (files / "site.css").write_text("body { color: black }")
    app = FastAPI()
    app.mount("/static", StaticFiles(directory=files), name="static")
    app.add_middleware(RouteRecorder, service="responses", directory=str(tmp_path / "log"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.get("/static/site.css")).text == "body { color: black }"
        assert (await client.get("/static/missing.css")).status_code == 404
    assert [(r["path"], r["status"]) for r in route_log.read_records(tmp_path / "log")] == [("/static", 200), ("/static", 404)]


def test_the_gate_fails_only_a_full_run_and_names_what_is_missing(tmp_path):
    """A pytest run of its own (rootdir tmp_path, the plugin loaded with -p): a full run of tests/
    with one route unreached fails after its normal summary; a -k run is not checked; a full run
    with every route reached passes."""
    import json
    import os
    import subprocess

    operations = route_log.service_operations()
    gap = Operation("dispatch", "GET", "/rounds/{round_id}/failures")
    assert gap in operations
    log = tmp_path / "log"
    log.mkdir()
    records = [{"service": o.service, "method": o.method, "path": o.path, "status": 200, "location": None, "test": None} for o in operations]
    (log / "routes-h-1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records if Operation(r["service"], r["method"], r["path"]) != gap))
    project = tmp_path / "project"
    (project / "tests").mkdir(parents=True)
    (project / "pytest.ini").write_text("[pytest]\ntestpaths = tests\n")  # as the repository's pyproject.toml
    (project / "tests" / "test_one.py").write_text("def test_one():\n    assert True\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")} | {route_log.ENV: str(log)}

    def run(*args):
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "shared.testing.route_gate", *args]
        return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=240)

    failed = run("tests")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert f"1 of {len(operations)} routes have no test" in failed.stdout
    assert "  dispatch:\n    GET    /rounds/{round_id}/failures\n" in failed.stdout
    assert "1 passed" in failed.stdout.splitlines()[-1]

    partial = run("tests", "-k", "one")
    assert partial.returncode == 0, partial.stdout + partial.stderr
    assert "route coverage: not checked (-k 'one')" in partial.stdout

    with (log / "routes-h-1.jsonl").open("a") as file:
        file.write(json.dumps({"service": gap.service, "method": gap.method, "path": gap.path, "status": 200, "location": None, "test": None}) + "\n")
    passed = run()
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert f"every one of the {len(operations)} routes has a test" in passed.stdout
