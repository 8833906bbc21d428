"""Property-based fuzzing of every service's OpenAPI with schemathesis (issue 10).

Each service runs in-process (schemathesis drives the ASGI app and its lifespan on its own event
loop thread) against real PostgreSQL and the broker, with a KL token holding every scope. Every
documented operation gets schema-valid (positive) and schema-violating (negative) requests; the
checks are: no 5xx (``not_a_server_error``) and every documented response matches its schema
(``response_schema_conformance``). Failures of all operations are collected and reported together.

Budget: ``FUZZ_MAX_EXAMPLES`` (default 25) positive and a third of that negative examples per
operation, derandomised so CI is reproducible; set ``FUZZ_RANDOM=1`` locally to explore.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "25"))
SERVICE_BUDGET_SECONDS = float(os.environ.get("FUZZ_SERVICE_BUDGET_SECONDS", "60"))
ALL_SCOPES = ["extracts:write", "extracts:read", "rounds:admin", "aggregates:read", "responses:paper", "kommuner:all"]


def _load_rules():
    name = "borgerblik_tools_authz_rules"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / "authz_rules.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


rules = _load_rules()


def _fuzz(service: str, env: dict[str, str], token: str) -> tuple[list[str], dict[str, int]]:
    """Runs in a worker thread: schemathesis is synchronous and brings its own event loop."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.python import asgi
    from schemathesis.specs.openapi.checks import response_schema_conformance

    checks = [not_a_server_error, response_schema_conformance]
    headers = {"Authorization": f"Bearer {token}"}
    failures: list[str] = []
    stats = {"operations": 0, "requests": 0}
    app = rules.create_app(service, env)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)  # starts the app's lifespan
    started = time.monotonic()
    try:
        for result in schema.get_all_operations():
            operation = result.ok()
            stats["operations"] += 1
            for mode, examples in ((GenerationMode.POSITIVE, MAX_EXAMPLES), (GenerationMode.NEGATIVE, max(MAX_EXAMPLES // 3, 1))):
                if time.monotonic() - started > SERVICE_BUDGET_SECONDS:
                    failures.append(f"{service}: fuzz budget of {SERVICE_BUDGET_SECONDS}s spent before {operation.label} ({mode.value})")
                    break

                @settings(
                    max_examples=examples,
                    deadline=None,
                    database=None,
                    derandomize=not os.environ.get("FUZZ_RANDOM"),
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
                @given(case=operation.as_strategy(generation_mode=mode))
                def run(case):
                    stats["requests"] += 1
                    case.call_and_validate(headers=headers, checks=checks)

                try:
                    run()
                except Unsatisfiable:
                    pass  # nothing to violate: an operation without parameters or body has no negative cases
                except (Exception, BaseExceptionGroup) as exc:  # a check failed (FailureGroup), or the app raised
                    text = str(exc).strip()
                    failures.append(f"--- {service} {operation.label} ({mode.value}):\n{text[:3000]}")
    finally:
        asgi.shutdown_lifespans()
    return failures, stats


@pytest.mark.fuzz
@pytest.mark.timeout(240)
# schemathesis' own strategies use `random` internally; not ours to fix.
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
@pytest.mark.parametrize("service", list(rules.SERVICES))
async def test_fuzz_finds_no_server_errors_and_no_schema_violations(service, service_env, dev_issuer):
    token = dev_issuer.mint("kl-fuzz", ALL_SCOPES)
    failures, stats = await asyncio.to_thread(_fuzz, service, service_env, token)
    print(f"fuzz {service}: {stats['operations']} operations, {stats['requests']} requests")
    assert stats["operations"] > 0
    assert not failures, "\n\n".join(failures)
