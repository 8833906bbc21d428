"""The token bucket, driven by a fake clock: no real sleeping, no timing
asserts that could flake on a busy CI machine."""

from __future__ import annotations

import asyncio

import pytest

from services.dispatch.channels import (
    Channel,
    MessageKind,
    OutgoingMessage,
    RateLimitedChannel,
    SendResult,
    TokenBucket,
)


class FakeClock:
    """`now` moves only when a waiter sleeps; every sleep is recorded."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)  # let other tasks run, as a real sleep would


def bucket(rate: float, capacity: float, clock: FakeClock) -> TokenBucket:
    return TokenBucket(rate, capacity, clock=clock, sleep=clock.sleep)


async def test_a_full_bucket_allows_a_burst_then_paces():
    clock = FakeClock()
    limiter = bucket(rate=2, capacity=3, clock=clock)
    for _ in range(3):
        await limiter.acquire()
    assert clock.sleeps == []  # the burst went at once
    await limiter.acquire()
    assert clock.sleeps == [pytest.approx(0.5)]  # one token at 2 per second


async def test_sustained_rate_is_the_configured_rate():
    clock = FakeClock()
    limiter = bucket(rate=5, capacity=1, clock=clock)
    for _ in range(11):
        await limiter.acquire()
    # The first token was in the bucket; ten more took 10 / 5 = 2 seconds.
    assert clock.now == pytest.approx(2.0)


async def test_refill_is_capped_at_capacity():
    clock = FakeClock()
    limiter = bucket(rate=1, capacity=4, clock=clock)
    for _ in range(4):
        assert limiter.try_acquire()
    assert not limiter.try_acquire()
    clock.now += 1000
    assert limiter.tokens == pytest.approx(4)


async def test_try_acquire_never_waits():
    clock = FakeClock()
    limiter = bucket(rate=10, capacity=1, clock=clock)
    assert limiter.try_acquire()
    assert not limiter.try_acquire()
    clock.now += 0.05
    assert not limiter.try_acquire()  # half a token
    clock.now += 0.05
    assert limiter.try_acquire()
    assert clock.sleeps == []


async def test_waiters_are_served_in_arrival_order():
    clock = FakeClock()
    limiter = bucket(rate=1, capacity=1, clock=clock)
    order: list[str] = []

    async def worker(name: str) -> None:
        await limiter.acquire()
        order.append(f"{name}@{clock.now:g}")

    await asyncio.gather(*(worker(n) for n in "ABCD"))
    assert order == ["A@0", "B@1", "C@2", "D@3"]


async def test_try_acquire_does_not_jump_the_queue():
    clock = FakeClock()
    limiter = bucket(rate=1, capacity=1, clock=clock)
    limiter.try_acquire()
    gate = asyncio.Event()

    async def slow_sleep(seconds: float) -> None:
        await gate.wait()
        await clock.sleep(seconds)

    limiter._sleep = slow_sleep  # a waiter now holds the queue while "sleeping"
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    clock.now += 5  # tokens are there, but the waiter came first
    assert not limiter.try_acquire()
    gate.set()
    await waiter


async def test_a_clock_stepping_back_adds_no_tokens():
    clock = FakeClock()
    clock.now = 100.0
    limiter = bucket(rate=1, capacity=2, clock=clock)
    limiter.try_acquire()
    limiter.try_acquire()
    clock.now = 50.0
    assert limiter.tokens == 0
    clock.now = 51.0
    assert limiter.tokens == pytest.approx(1)


def test_invalid_settings_are_refused():
    with pytest.raises(ValueError):
        TokenBucket(0, 1)
    with pytest.raises(ValueError):
        TokenBucket(1, 0.5)
    with pytest.raises(ValueError):
        TokenBucket(1, 2).try_acquire(3)  # could never be satisfied


class CountingChannel(Channel):
    name = "counting"

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.closed = False

    async def send(self, message: OutgoingMessage) -> SendResult:
        self.sent.append(message.idempotency_key)
        return SendResult.sent(message.idempotency_key)

    async def aclose(self) -> None:
        self.closed = True


async def test_rate_limited_channel_paces_sends():
    clock = FakeClock()
    inner = CountingChannel()
    channel = RateLimitedChannel(inner, bucket(rate=10, capacity=2, clock=clock))
    messages = [OutgoingMessage(idempotency_key=f"k{i}", kind=MessageKind.SMS) for i in range(6)]
    async with channel:
        results = await asyncio.gather(*(channel.send(m) for m in messages))
    assert [r.provider_reference for r in results] == [f"k{i}" for i in range(6)]
    assert inner.sent == [f"k{i}" for i in range(6)]
    assert clock.now == pytest.approx(0.4)  # 2 from the burst, 4 more at 10 per second
    assert channel.name == "counting" and inner.closed
