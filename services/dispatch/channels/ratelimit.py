"""Per-channel rate limiting: an asyncio token bucket.

Providers throttle (SF1601 and SMS gateways agree a rate per municipality
or per agreement), and sending a whole municipality's letters in one burst
also concentrates the survey's web traffic. The bucket holds up to `capacity`
tokens, refills at `rate` tokens per second, and `acquire` waits for a token.

Waiters are served first come, first served (an asyncio.Lock queues them in
order), so one task cannot starve the others. The clock and the sleep are
injectable: tests drive the bucket with a fake clock instead of real time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from .base import Channel, OutgoingMessage, SendResult

# Refill arithmetic in floats can leave a bucket at 0.9999999 tokens after
# sleeping exactly long enough for 1; this tolerance avoids a pointless
# extra micro-sleep.
_EPSILON = 1e-9


class TokenBucket:
    def __init__(
        self,
        rate: float,
        capacity: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(capacity)  # start full: the first burst goes at once
        self._updated = clock()
        self._lock = asyncio.Lock()

    @property
    def tokens(self) -> float:
        self._refill()
        return self._tokens

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._updated)  # a clock that steps back adds nothing
        self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)
        self._updated = now

    def try_acquire(self, tokens: float = 1) -> bool:
        """Take tokens if available now; never waits, never jumps the queue."""
        self._check(tokens)
        if self._lock.locked():
            return False
        self._refill()
        if self._tokens + _EPSILON >= tokens:
            self._tokens = max(0.0, self._tokens - tokens)
            return True
        return False

    async def acquire(self, tokens: float = 1) -> None:
        """Wait until `tokens` are available, then take them."""
        self._check(tokens)
        async with self._lock:
            while True:
                self._refill()
                if self._tokens + _EPSILON >= tokens:
                    self._tokens = max(0.0, self._tokens - tokens)
                    return
                await self._sleep((tokens - self._tokens) / self.rate)

    def _check(self, tokens: float) -> None:
        if tokens <= 0 or tokens > self.capacity:
            raise ValueError(f"tokens must be in (0, {self.capacity}]")


class RateLimitedChannel(Channel):
    """Wraps a channel so every send first takes a token from `bucket`."""

    def __init__(self, inner: Channel, bucket: TokenBucket) -> None:
        self.inner = inner
        self.bucket = bucket
        self.name = inner.name

    async def send(self, message: OutgoingMessage) -> SendResult:
        await self.bucket.acquire()
        return await self.inner.send(message)

    async def aclose(self) -> None:
        await self.inner.aclose()
