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

    @cached_property
    def cpr_keyring(self) -> dict[str, bytes]:
        return parse_keyring(self.cpr_keys)

    @cached_property
    def pseudonym_key_bytes(self) -> bytes:
        import base64

        if not self.pseudonym_key:
            raise RuntimeError("PSEUDONYM_KEY is not set")
        return base64.b64decode(self.pseudonym_key)
