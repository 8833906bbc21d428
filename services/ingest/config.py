from functools import cached_property

from pydantic import Field

from shared.settings import KeyRingSettings, ServiceSettings, parse_keyring


class IngestSettings(ServiceSettings, KeyRingSettings):
    service_name: str = "ingest"

    # The pseudonym is HMAC-SHA256(pseudonym key, CPR): stable across deliveries and rounds, so
    # services can recognise a person without ever seeing the CPR number.
    pseudonym_key: str | None = Field(default=None, description="base64 key for the CPR keyed hash")
    # The CPR number itself is stored only encrypted (AES-256-GCM), with the key id beside it.
    cpr_keys: str | None = Field(default=None, description='JSON {"key id": "base64 32-byte key"}')
    cpr_active_key_id: str | None = None

    # Persons per population.received event: keeps messages well under Kafka's 1 MB default.
    event_chunk_size: int = 500
    # Ingest's events are big (500 persons ~ 175 KB of JSON): the relay's default batch of 500
    # outbox rows would hold ~90 MB decoded at once, so ingest relays fewer per batch.
    outbox_batch_size: int = 20
    # The maalgruppe mapping table (services/ingest/domain/maalgrupper_<version>.json) new
    # deliveries are classified with; every delivery records the version it used.
    maalgruppe_mapping_version: str = "v1"

    # Uploaded extracts wait here (in clear: they hold CPR numbers) until their job has run; the
    # file is deleted as soon as the job ends. Must survive a restart so queued jobs can resume,
    # so it defaults to the service's state directory, not /tmp.
    upload_dir: str | None = None
    max_upload_bytes: int = 2 * 1024**3
    # Rows validated and copied per step; bounds memory and sets how often progress is written.
    ingest_batch_rows: int = 10_000
    # JSON batches in the request body are processed synchronously; bigger extracts go as a file.
    json_batch_max_rows: int = 50_000
    # A running job whose progress has not moved for this long belongs to a crashed process.
    job_stale_after_seconds: float = 120.0
    job_poll_interval_seconds: float = 1.0
    # A job interrupted this many times is failed rather than retried again.
    job_max_attempts: int = 2

    @cached_property
    def cpr_keyring(self) -> dict[str, bytes]:
        return parse_keyring(self.cpr_keys)

    @cached_property
    def pseudonym_key_bytes(self) -> bytes:
        import base64

        if not self.pseudonym_key:
            raise RuntimeError("PSEUDONYM_KEY is not set")
        return base64.b64decode(self.pseudonym_key)

    @property
    def upload_path(self) -> str:
        import os

        return self.upload_dir or os.path.join(self.local_state_dir, "ingest-uploads")
