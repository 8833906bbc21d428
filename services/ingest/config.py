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

    # Persons per population.received event, and the most JSON one may hold: a person is ~330
    # bytes, so a chunk is at most ~750 KB, under Kafka's 1 MB default message size. Fewer,
    # bigger events: a national delivery is ~500 events, not 2,000.
    event_chunk_size: int = 2000
    event_chunk_max_bytes: int = 750_000
    # The maalgruppe mapping table (services/ingest/domain/maalgrupper_<version>.json) new
    # deliveries are classified with; every delivery records the version it used.
    maalgruppe_mapping_version: str = "v2"

    # Uploaded extracts wait here (in clear: they hold CPR numbers) until their job has run; the
    # file is deleted as soon as the job ends. Must survive a restart so queued jobs can resume,
    # so it defaults to the service's state directory, not /tmp.
    upload_dir: str | None = None
    max_upload_bytes: int = 2 * 1024**3
    # Rows (at most) and CSV bytes (about) validated and copied per step; bounds memory and sets
    # how often progress is written.
    ingest_batch_rows: int = 20_000
    ingest_block_bytes: int = 2 * 1024 * 1024
    # Worker processes preparing CSV blocks (0: one per available core); files smaller than
    # ingest_parallel_min_bytes are prepared in a thread (starting the processes costs more than they save there).
    ingest_workers: int = 0
    ingest_parallel_min_bytes: int = 4 * 1024 * 1024
    # Start the worker processes with the service (idle, ~100 MB each) rather than at the first
    # big file.
    ingest_prewarm_workers: bool = True
    # JSON batches in the request body are processed synchronously; bigger extracts go as a file.
    json_batch_max_rows: int = 50_000
    # A running job whose progress has not moved for this long belongs to a crashed process.
    job_stale_after_seconds: float = 120.0
    job_poll_interval_seconds: float = 1.0
    # A job interrupted this many times is failed rather than retried again.
    job_max_attempts: int = 2

    # Pseudonym keys replaced by a rotation: never used for new pseudonyms, only to recognise a
    # citizen's older pseudonyms in erasure and objection requests.
    retired_pseudonym_keys: str | None = Field(default=None, description='JSON {"key id": "base64 key"}')

    # Retention: a closed round's identifiers are purged everywhere this many days after closing.
    retention_days: int = Field(default=90, ge=0)
    retention_check_interval_seconds: float = 60.0
    # How often the phase clock looks for rounds whose invitation or end of fieldwork has come
    # (services.ingest.rounds.run_phase_clock); dispatch follows the dates itself, the phase
    # says where the round is.
    round_clock_interval_seconds: float = Field(default=1.0, gt=0)
    # CPR ciphertexts under a key other than the active one are re-encrypted this many per step.
    reencrypt_batch_rows: int = 5_000
    reencrypt_interval_seconds: float = 30.0
    # How often the citizen partitions of superseded deliveries and purged rounds are dropped.
    partition_cleanup_interval_seconds: float = 300.0

    @cached_property
    def retired_pseudonym_keyring(self) -> dict[str, bytes]:
        return parse_keyring(self.retired_pseudonym_keys)

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
