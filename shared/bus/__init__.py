"""The Kafka bus: transactional outbox + relay, idempotent consumer, dead-letter topics."""

from shared.bus.consumer import Handler, IdempotentConsumer
from shared.bus.kafka import ensure_topics, make_producer, topic_name
from shared.bus.outbox import OutboxRelay, UnitOfWork
from shared.bus.tables import BusTables, bus_tables, create_bus_tables

__all__ = [
    "BusTables",
    "Handler",
    "IdempotentConsumer",
    "OutboxRelay",
    "UnitOfWork",
    "bus_tables",
    "create_bus_tables",
    "ensure_topics",
    "make_producer",
    "topic_name",
]
