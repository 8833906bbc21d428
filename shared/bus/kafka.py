"""Producer factory, topic naming and topic creation."""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

logger = logging.getLogger(__name__)

DEAD_LETTER_SUFFIX = ".dlq"


def topic_name(prefix: str, topic: str) -> str:
    return f"{prefix}{topic}"


def make_producer(bootstrap_servers: str, client_id: str) -> AIOKafkaProducer:
    # No idempotent or transactional producer: the embedded broker lacks InitProducerId, and
    # correctness comes from the outbox (at-least-once) plus idempotent consumers anyway.
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=False,
        linger_ms=5,
        max_request_size=4 * 1024 * 1024,
        compression_type=None,
    )


async def ensure_topics(
    bootstrap_servers: str, topics: list[str], *, partitions: int = 3, replication_factor: int = 1
) -> None:
    """Create missing topics (and their dead-letter topics). Existing ones are left as they are."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="borgerblik-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = []
        for topic in topics:
            for name in (topic, topic + DEAD_LETTER_SUFFIX):
                if name not in existing:
                    wanted.append(NewTopic(name=name, num_partitions=partitions, replication_factor=replication_factor))
        if wanted:
            try:
                await admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                pass  # another service created them at the same moment
            logger.info("created topics", extra={"fields": {"topics": [t.name for t in wanted]}})
    finally:
        await admin.close()
