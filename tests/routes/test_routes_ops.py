"""The operations routes every service has (shared/app.py, shared/audit.py), on their success
path, for each of the five services: ``/healthz`` reports its database and broker, ``/metrics``
counts the requests just made, and ``/audit`` shows an auditor's own earlier read of the log."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.testing.fixtures import bearer, running_app

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import authz_rules  # noqa: E402  (tools/ is a folder of scripts; its service list is the one source)

SERVICES = list(authz_rules.SERVICES)


@pytest.mark.parametrize("service", SERVICES)
async def test_health_metrics_and_audit_answer(service, service_env, dev_issuer):
    app = authz_rules.create_app(service, service_env)
    auditor = bearer(dev_issuer.mint("route-auditor", ["audit:read", "kommuner:all"]))
    async with running_app(app) as client:
        health = await client.get("/healthz")
        assert health.status_code == 200, health.text
        assert health.json() == {"status": "ok", "database": "ok", "broker": "ok"}

        # The first read of the audit log is itself an audited read of personal data: the
        # second read shows it, with who, what, the answer's status and the correlation id.
        first = await client.get("/audit", headers={**auditor, "x-correlation-id": "route-walk-1"})
        assert first.status_code == 200, first.text
        assert first.headers["x-correlation-id"] == "route-walk-1"
        second = await client.get("/audit", params={"actor": "route-auditor"}, headers=auditor)
        assert second.status_code == 200, second.text
        page = second.json()
        assert page["next_after_id"] is None
        reads = [e for e in page["entries"] if e["action"] == "GET /audit"]
        assert len(reads) == 1, page
        assert reads[0] | {"id": 0, "at": ""} == {
            "id": 0,
            "at": "",
            "actor": "route-auditor",
            "action": "GET /audit",
            "kind": "personal-data-read",
            "kommunekode": None,
            "resource": {},
            "status": 200,
            "correlation_id": "route-walk-1",
        }
        # Filtered on another actor: nothing.
        assert (await client.get("/audit", params={"actor": "someone-else"}, headers=auditor)).json()["entries"] == []

        metrics = await client.get("/metrics")
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain")
        text = metrics.text
        assert "# TYPE borgerblik_http_request_seconds histogram" in text
        # The health check above was timed under this service's name and the route's template
        # (the registry is the process's, so other tests' requests may be counted too).
        healthz = [
            sample.value
            for family in text_string_to_metric_families(text)
            if family.name == "borgerblik_http_request_seconds"
            for sample in family.samples
            if sample.name.endswith("_count")
            and sample.labels == {"service": service, "method": "GET", "route": "/healthz", "status": "200"}
        ]
        assert healthz and healthz[0] >= 1, text[:2000]
