"""Budgets of failed attempts (issue 26): wrong secrets at the token endpoint, wrong dashboard
logins, unknown survey links. Kept by the ``limits`` library (moving windows, in this process's
memory), logged and counted in metrics here, so every limit of the platform behaves and reports
the same way.

A budget is a list of windows, e.g. ``"5/minute;20/hour;50/day"``: the first failures cost a
minute's wait, the next ones an hour's, then a day's. That is the backoff: the more an address or
a client id fails, the longer it waits, and a caller that stops failing is never slowed. A budget
is spent only by failures; successes are never counted, so whoever holds the right secret (or a
valid link) is not refused because someone else failed from the same address.

Multi-replica note: each process keeps its own windows, so N replicas allow up to N times a
budget. The limits are defence in depth (secrets and tokens are long random values); for exact
figures use a shared ``limits`` storage (Redis, memcached) or a limit at the ingress.
"""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from prometheus_client import Counter

logger = logging.getLogger("shared.ratelimit")

FAILED_ATTEMPTS = Counter(
    "borgerblik_failed_attempts_total", "Failed attempts counted against a rate limit", ["service", "limit", "key_kind"]
)
RATE_LIMITED = Counter("borgerblik_rate_limited_total", "Requests refused by a rate limit", ["service", "limit", "key_kind"])


class FailureBudget:
    """Failed attempts per key (``("address", "10.0.0.7")``, ``("client", "momentum")``)."""

    def __init__(self, service: str, name: str, windows: str) -> None:
        self.service, self.name = service, name
        self.items: list[RateLimitItem] = parse_many(windows)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def _retry_after(self, kind: str, key: str) -> int | None:
        waits = []
        for item in self.items:
            stats = self._limiter.get_window_stats(item, self.name, kind, key)
            if stats.remaining <= 0:
                waits.append(stats.reset_time - time.time())
        return max(1, math.ceil(max(waits))) if waits else None

    def refused(self, *keys: tuple[str, str]) -> int | None:
        """Before an attempt: the seconds to wait if any key has spent its budget, else None.
        A refusal is logged and counted."""
        for kind, key in keys:
            if (wait := self._retry_after(kind, key)) is not None:
                RATE_LIMITED.labels(self.service, self.name, kind).inc()
                logger.warning(
                    "rate limit: attempt refused",
                    extra={"fields": {"limit": self.name, "key_kind": kind, "key": key, "retry_after": wait}},
                )
                return wait
        return None

    def failed(self, *keys: tuple[str, str]) -> int | None:
        """Counts a failure against every key; the seconds to wait if one has now spent its
        budget (the failure itself is over the budget), else None."""
        over = None
        for kind, key in keys:
            FAILED_ATTEMPTS.labels(self.service, self.name, kind).inc()
            if not all([self._limiter.hit(item, self.name, kind, key) for item in self.items]):
                over = self._retry_after(kind, key) or 1
        if over is not None:
            RATE_LIMITED.labels(self.service, self.name, "failure").inc()
            logger.warning(
                "rate limit: budget of failures spent",
                extra={"fields": {"limit": self.name, "keys": [f"{kind}={key}" for kind, key in keys], "retry_after": over}},
            )
        return over

    def reset(self) -> None:
        self._limiter.storage.reset()


# Wrong secrets at the token endpoint and wrong dashboard logins: tighter per address (where a
# guesser sits) than per client id (which anyone who knows the id can spend, locking the client
# out for the window: the looser budget keeps that window short).
ADDRESS_WINDOWS = "5/minute;20/hour;100/day"
CLIENT_WINDOWS = "10/minute;50/hour;200/day"


class CredentialBudget:
    """Failed logins with a client id and secret, per client id and per client address."""

    def __init__(self, service: str, name: str, address_windows: str = ADDRESS_WINDOWS, client_windows: str = CLIENT_WINDOWS) -> None:
        self.by_address = FailureBudget(service, name, address_windows)
        self.by_client = FailureBudget(service, name, client_windows)

    def refused(self, client_id: str, address: str) -> int | None:
        """Before checking the secret: the seconds to wait if the address or the client id has
        spent its budget of failures, else None."""
        return self.by_address.refused(("address", address)) or self.by_client.refused(("client", client_id))

    def failed(self, client_id: str, address: str) -> None:
        self.by_address.failed(("address", address))
        self.by_client.failed(("client", client_id))
