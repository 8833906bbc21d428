import base64
from functools import cached_property

from pydantic import Field

from shared.settings import KeyRingSettings, ServiceSettings


class DispatchSettings(ServiceSettings, KeyRingSettings):
    service_name: str = "dispatch"

    # Link tokens are HMAC(link key, per-invitation random nonce): 256 bits, unguessable without
    # the key, and recomputable when a letter is (re)sent, so no table stores a usable token.
    link_key: str | None = Field(default=None, description="base64 key for survey link tokens")
    survey_base_url: str = "http://127.0.0.1:8004/s/"
    link_validity_days: int = 35

    reminder_count: int = Field(default=2, ge=0, le=2)
    reminder_interval_days: float = 7.0

    # Development sink: every message is written to this directory instead of being sent.
    dev_sink_dir: str = ".run/dispatch-sink"
    sender_interval_seconds: float = 0.5
    sender_batch_size: int = 200

    @cached_property
    def link_key_bytes(self) -> bytes:
        if not self.link_key:
            raise RuntimeError("LINK_KEY is not set")
        return base64.b64decode(self.link_key)
