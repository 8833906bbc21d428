import base64
from functools import cached_property

from pydantic import Field

from shared.settings import InterviewKeySettings, ServiceSettings


class ResponsesSettings(ServiceSettings, InterviewKeySettings):
    service_name: str = "responses"

    # The published core a round gets when no questionnaire is configured for it
    # (services/responses/domain/questionnaires/<name>.json).
    default_questionnaire: str = "kl_core_v1"

    # Connections per process for the citizen's form (formstore.py: single statements, no ORM),
    # besides the shared engine's pool that drafts, opt-outs, admin and the bus use.
    form_pool_size: int = 10

    # Budgets of unknown survey tokens (``limits`` notation, windows separated by ";"): per client
    # address, and for all addresses together. Only lookups that find no link spend them; a spent
    # budget answers 429 to unknown tokens, never to a valid link (services/responses/protection.py).
    unknown_token_per_address: str = "20/minute;200/hour"
    unknown_token_global: str = "3000/minute"
    # The link key dispatch issues tokens with (shared/links.py): with it, a link the service does
    # not know yet but dispatch issued within ``link_pending_hours`` gets "your link is being
    # prepared" (503, Retry-After) instead of "unknown link": its letter outran link.issued.
    # Without it every token not known is unknown.
    link_key: str | None = Field(default=None, repr=False, description="base64 key of the survey link tokens (dispatch's LINK_KEY)")
    link_pending_hours: float = Field(default=48.0, ge=0)
    link_pending_retry_seconds: int = Field(default=60, ge=1)
    # HSTS is only sent on requests that arrived over TLS (directly or per X-Forwarded-Proto).
    hsts_max_age_seconds: int = 31_536_000
    # Shown in the accessibility statement (tilgængelighedserklæring) as the place to report barriers.
    accessibility_contact_email: str = ""

    @cached_property
    def link_key_bytes(self) -> bytes | None:
        return base64.b64decode(self.link_key) if self.link_key else None
