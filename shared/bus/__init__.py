"""The Kafka bus: transactional outbox + relay, idempotent consumer, dead-letter topics."""

from shared.bus.consumer import BatchHandler, Handler, IdempotentConsumer, UnknownEventType, batch_handler, handler_table
from shared.bus.kafka import ensure_topics, make_producer, topic_name
from shared.bus.outbox import BulkOutboxRelay, OutboxRelay, UnitOfWork
from shared.bus.tables import BusTables, bus_tables, create_bulk_outbox_table, create_bus_tables

__all__ = [
    "BatchHandler",
    "BulkOutboxRelay",
    "BusTables",
    "Handler",
    "UnknownEventType",
    "IdempotentConsumer",
    "OutboxRelay",
    "UnitOfWork",
    "batch_handler",
    "handler_table",
    "bus_tables",
    "create_bulk_outbox_table",
    "create_bus_tables",
    "ensure_topics",
    "make_producer",
    "topic_name",
]
