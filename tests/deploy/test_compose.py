"""docker-compose.yml is checked without a Docker engine: the compose-spec JSON Schema (shipped
by check-jsonschema) plus the rules we rely on."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from shared.events import TOPICS
from shared.testing.processes import SERVICES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_is_valid_against_the_compose_spec():
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_service_has_a_health_check_a_migration_step_and_the_topics():
    services = compose()["services"]
    for name in SERVICES:
        service = services[name]
        assert service["healthcheck"]["test"], name
        assert service["environment"]["SERVICE"] == name
        assert service["environment"]["MIGRATE_ON_START"] == "false"
        depends = service["depends_on"]
        assert depends[f"migrate-{name}"]["condition"] == "service_completed_successfully"
        assert depends["kafka-topics"]["condition"] == "service_completed_successfully"
        assert services[f"migrate-{name}"]["command"][-1] == name
    assert services["postgres"]["healthcheck"] and services["kafka"]["healthcheck"]


def test_no_secret_is_written_into_the_file():
    secret_names = re.compile(r"(PASSWORD|_KEY|_KEYS|SECRET|TOKEN)$")
    for name, service in compose()["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if secret_names.search(key):
                assert re.fullmatch(r"\$\{[A-Z_]+(:[?-][^}]*)?\}", str(value)), f"{name}.{key} must come from the environment"


def test_topic_script_creates_exactly_the_registered_topics():
    script = (ROOT / "deploy" / "kafka" / "create-topics.sh").read_text()
    created = set(re.findall(r"^create ([a-z_.]+)\s", script, flags=re.MULTILINE))
    assert created == set(TOPICS)


def test_env_example_names_every_variable_the_file_requires():
    required = set(re.findall(r"\$\{([A-Z_]+):\?", COMPOSE.read_text()))
    example = {line.split("=", 1)[0] for line in (ROOT / ".env.example").read_text().splitlines() if "=" in line and not line.startswith("#")}
    assert required <= example, required - example


def test_client_addresses_come_from_the_trusted_proxies_only():
    """The limits count by client address: uvicorn believes X-Forwarded-For only from the
    proxies in TRUSTED_PROXIES, which compose requires to be set."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert '--forwarded-allow-ips \\"${TRUSTED_PROXIES}\\"' in dockerfile and "--proxy-headers" in dockerfile
    assert 'ENV TRUSTED_PROXIES=""' in dockerfile  # no proxy trusted unless configured
    assert "TRUSTED_PROXIES: ${TRUSTED_PROXIES:?" in COMPOSE.read_text()
