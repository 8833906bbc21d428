import base64
import json
from functools import cached_property
from typing import Literal

from pydantic import Field

from shared.settings import InterviewKeySettings, KeyRingSettings, ServiceSettings


class DispatchSettings(ServiceSettings, KeyRingSettings, InterviewKeySettings):
    service_name: str = "dispatch"

    # Link tokens are HMAC(link key, per-invitation random nonce): 256 bits, unguessable without
    # the key, and recomputable when a letter is (re)sent, so no table stores a usable token.
    link_key: str | None = Field(default=None, description="base64 key for survey link tokens")
    survey_base_url: str = "http://127.0.0.1:8004/s/"
    link_validity_days: int = 35
    response_deadline_days: int = 21  # printed on letters, counted from the invitation date

    # Default plan for a round without a plan of its own (PUT /rounds/{id}/plan overrides it).
    reminder_count: int = Field(default=2, ge=0, le=2)
    reminder_interval_days: float = 7.0
    reminder_channels: list[Literal["letter", "sms"]] = ["letter"]

    # Where messages go. dev_sink (default: make up, tests) writes files to dev_sink_dir.
    letter_channel: Literal["dev_sink", "sf1601"] = "dev_sink"
    sms_channel: Literal["dev_sink", "sms_gateway", "nemsms"] = "dev_sink"
    dev_sink_dir: str = ".run/dispatch-sink"
    sf1601_endpoint: str | None = None
    sf1601_bearer_token: str | None = Field(default=None, repr=False)
    sf1601_client_cert: str | None = None
    sf1601_client_key: str | None = None
    sf1601_ca_bundle: str | None = None
    sms_gateway_endpoint: str | None = None
    sms_gateway_api_key: str | None = Field(default=None, repr=False)
    sms_gateway_api_key_header: str = "X-API-Key"
    sms_sender_name: str | None = None
    # Per-channel rate limits (messages/second; 0 = unlimited) with a burst of one second's worth.
    letter_rate_per_second: float = 0
    sms_rate_per_second: float = 0

    # The sending authority on Digital Post (CVR). Per municipality: MUNICIPALITY_CVR='{"101": "..."}'.
    default_sender_cvr: str = "00000000"
    municipality_cvr: str | None = None
    contact_name: str = "jobcentret"
    contact_phone: str | None = None
    contact_email: str | None = None
    privacy_url: str | None = None

    # The sender.
    sender_interval_seconds: float = 0.5
    sender_batch_size: int = 200
    send_concurrency: int = 16
    # Batches claimed and rendered ahead while an earlier one is sent and recorded (0: none).
    sender_pipeline_depth: int = Field(default=1, ge=0)
    max_attempts: int = 6
    retry_backoff_seconds: float = 30.0  # doubled per attempt
    reconcile_interval_seconds: float = 30.0
    # How often the sender cancels the steps of rounds whose fieldwork is over and moves steps
    # due in a closed window to its opening (at once when a round's definition changes).
    schedule_sweep_seconds: float = 5.0
    # How often each round's message counts are compared with those published last, and
    # published (dispatch.progress) when they changed: the round overview's delay.
    progress_interval_seconds: float = Field(default=2.0, gt=0)
    # The adaptive follow-up (followup.py): how often rules are looked at, and how long before the
    # first message of its step a round's rule acts (every step message then carries the arm).
    followup_interval_seconds: float = Field(default=5.0, gt=0)
    followup_lead_seconds: float = Field(default=3600.0, ge=0)
    # 0: render in a thread (asyncio.to_thread); N: a pool of N processes (the bench uses 2).
    render_processes: int = 0
    # Validate every MeMo message against the XSD (its cost per letter: bench/README.md, dispatch), or only the first of each shape per
    # process (the builder is deterministic; per-letter values are checked by the builder).
    memo_validate_all: bool = True

    @cached_property
    def link_key_bytes(self) -> bytes:
        if not self.link_key:
            raise RuntimeError("LINK_KEY is not set")
        return base64.b64decode(self.link_key)

    @cached_property
    def sender_cvr_by_kommune(self) -> dict[str, str]:
        return json.loads(self.municipality_cvr) if self.municipality_cvr else {}
