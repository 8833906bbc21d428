"""Drive a thin survey round through the services' public HTTP APIs.

Used by the end-to-end tests and by ``make demo``: ingest -> sampling -> dispatch (dev sink) ->
responses -> analytics, every hop over the broker.
"""

from __future__ import annotations

import random
import re
import time
from xml.etree import ElementTree
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx

LINK_PATTERN = re.compile(r"/s/([A-Za-z0-9_-]{20,100})")
YDELSER = ["Dagpenge", "Sygedagpenge", "Kontanthjælp - jobparat", "Kontanthjælp - aktivitetsparat"]


def synthetic_cpr(rng: random.Random, used: set[str]) -> str:
    """A syntactically valid CPR number (real date, century digit) that is not checked against
    any register: for synthetic test data only."""
    while True:
        born = date(1960, 1, 1) + timedelta(days=rng.randrange(0, 365 * 40))
        serial = rng.randrange(0, 4000) if born.year < 2000 else rng.randrange(4000, 5000)
        cpr = f"{born:%d%m%y}{serial:04d}"
        if cpr not in used:
            used.add(cpr)
            return f"{cpr[:6]}-{cpr[6:]}"


def synthetic_rows(count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    used: set[str] = set()
    return [
        {
            "cpr": synthetic_cpr(rng, used),
            "ydelse": YDELSER[i % len(YDELSER)],
            # At least 14 months before the 2023-08-01 reference date: every target group's
            # minimum duration is met, so every synthetic citizen is in the frame.
            "overgangsdato": str(date(2020, 1, 1) + timedelta(days=rng.randrange(0, 850))),
            "telefon": f"+452{rng.randrange(1000000, 9999999)}",
            "navn": f"Testperson {i}",
        }
        for i in range(count)
    ]


def wait_for(check: Callable[[], object], timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what} (last: {last!r})")


def survey_token(message: bytes) -> str | None:
    """The link token of one message as the dev sink wrote it: a MeMo letter carries the link in
    its action's ``EntryPoint/url`` (read from the XML, never by scanning the bytes: the base64
    PDF beside it contains "/s/..." by chance); an SMS or e-mail has it in its text."""
    if message.lstrip().startswith(b"<?xml") or message.lstrip().startswith(b"<"):
        root = ElementTree.fromstring(message)
        urls = [el.text or "" for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "url"]
        text = " ".join(urls)
    else:
        text = message.decode("utf-8", errors="replace")
    match = LINK_PATTERN.search(text)
    return match.group(1) if match else None


def links_in_sink(sink: Path) -> dict[str, str]:
    """Idempotency key -> link token, for every message the dev sink holds (in its folders per
    round and municipality; a file being written starts with a dot)."""
    found = {}
    if sink.exists():
        for path in sink.rglob("*"):
            if path.name.startswith(".") or not path.is_file():
                continue
            if token := survey_token(path.read_bytes()):
                found[path.stem] = token
    return found


def request_with_retry(method: str, url: str, *, attempts: int = 100, **kwargs) -> httpx.Response:
    """Retry while a service is down (it may be restarting under a test)."""
    for attempt in range(attempts):
        try:
            return httpx.request(method, url, timeout=10, **kwargs)
        except httpx.TransportError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2)
    raise AssertionError("unreachable")


# --- defining and scheduling a round (ingest owns it; docs/rounds.md) --------------------------------

OPERATOR_SCOPES = ["rounds:admin", "kommuner:all"]
# Tests run at any hour (CI at night): a window of the whole day lets dispatch send at once.
ALL_DAY = {"start": "00:00:00", "end": "23:59:59.999999"}


def round_body(round_id: str, **overrides) -> dict:
    """A POST /rounds body for tests: the synthetic extracts' reference date, every municipality,
    a delivery deadline just passed (the draw need not wait for all 98) and the whole day as
    sending window. ``overrides`` replace or add fields (datetimes may be given as such)."""
    now = datetime.now(UTC)
    body = {
        "round_id": round_id,
        "name": f"Testrunde {round_id}",
        "reference_date": "2023-08-01",
        "delivery_deadline": now - timedelta(seconds=1),
        "sending_window": ALL_DAY,
    }
    body.update(overrides)
    return {k: _json(v) for k, v in body.items()}


def _json(value):
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    return value


async def define_round(client: httpx.AsyncClient, token: str, round_id: str, **overrides) -> dict:
    """POST /rounds on an ingest app (in-process client); the round as ingest answers it."""
    response = await client.post("/rounds", json=round_body(round_id, **overrides), headers=_bearer(token))
    assert response.status_code == 201, response.text
    return response.json()


def define_round_at(ingest_url: str, token: str, round_id: str, **overrides) -> dict:
    """POST /rounds on a running ingest (a process); the round as ingest answers it."""
    response = request_with_retry("POST", f"{ingest_url}/rounds", json=round_body(round_id, **overrides), headers=_bearer(token))
    assert response.status_code == 201, response.text
    return response.json()


def wait_for_phase_at(ingest_url: str, token: str, round_id: str, phase: str, timeout: float = 60) -> dict:
    """The round as ingest answers it, once it is in ``phase``."""
    def reached():
        r = request_with_retry("GET", f"{ingest_url}/rounds/{round_id}", headers=_bearer(token))
        return r.json() if r.status_code == 200 and r.json()["phase"] == phase else None

    return wait_for(reached, timeout, f"round {round_id} to be {phase} at ingest")


def wait_for_frame_at(sampling_url: str, token: str, round_id: str, population: int, timeout: float = 60) -> None:
    """Wait until sampling's frame of the round holds ``population`` citizens in all."""
    def complete() -> bool:
        r = request_with_retry("GET", f"{sampling_url}/rounds/{round_id}/frame", headers=_bearer(token))
        return r.status_code == 200 and sum(s["population"] for s in r.json()["strata"]) == population

    wait_for(complete, timeout, "the sampling frame")


def schedule_round_at(ingest_url: str, token: str, round_id: str, timeout: float = 60, **dates) -> dict:
    """Wait until ingest has seen the draw (phase sample_drawn), then confirm the send dates:
    ``dates`` (invitation_at, reminders_at, fieldwork_ends_at) default to an invitation now and
    an end of fieldwork in a week. Dispatch sends from invitation_at on."""
    wait_for_phase_at(ingest_url, token, round_id, "sample_drawn", timeout)
    now = datetime.now(UTC)
    body = {"invitation_at": now, "fieldwork_ends_at": now + timedelta(days=7), **dates}
    response = request_with_retry(
        "POST", f"{ingest_url}/rounds/{round_id}/schedule", json={k: _json(v) for k, v in body.items()}, headers=_bearer(token)
    )
    assert response.status_code == 200, response.text
    return response.json()


def round_defined_event(round_id: str, *, revision: int = 1, phase: str = "collecting_extracts", **overrides):
    """A round.defined payload as ingest publishes it, for tests that feed a service events
    directly: defaults as ``round_body``'s, phase collecting_extracts."""
    from shared.events import RoundDefined

    now = datetime.now(UTC)
    values = {
        "round_id": round_id,
        "revision": revision,
        "name": f"Testrunde {round_id}",
        "reference_date": date(2023, 8, 1),
        "maalgruppe_mapping_version": "v2",
        "delivery_deadline": now - timedelta(seconds=1),
        "sending_window": ALL_DAY,
        "retention_days": 90,
        "phase": phase,
        "phase_changed_at": now,
    }
    values.update(overrides)
    return RoundDefined.model_validate(values)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
