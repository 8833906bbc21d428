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
from datetime import date, timedelta
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
    """Idempotency key -> link token, for every message the dev sink holds."""
    found = {}
    if sink.exists():
        for path in sink.iterdir():
            if path.name.startswith("."):
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
