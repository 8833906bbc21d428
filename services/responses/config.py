from shared.settings import ServiceSettings


class ResponsesSettings(ServiceSettings):
    service_name: str = "responses"

    # The published core a round gets when no questionnaire is configured for it
    # (services/responses/domain/questionnaires/<name>.json).
    default_questionnaire: str = "kl_core_v1"

    # Connections per process for the citizen's form (formstore.py: single statements, no ORM),
    # besides the shared engine's pool that drafts, opt-outs, admin and the bus use.
    form_pool_size: int = 10

    # Token guessing: every lookup of an unknown token takes one from the client IP's bucket;
    # an empty bucket answers 429 to every survey lookup from that IP until it refills.
    # Real tokens are 128-bit random, so this is defence in depth, not what makes guessing hopeless.
    unknown_token_burst: int = 20
    unknown_token_refill_per_minute: float = 10.0
    # Behind a reverse proxy the client address is in X-Forwarded-For (first hop) and the scheme
    # in X-Forwarded-Proto. Only trust them when the proxy is the only way in.
    trust_forwarded_headers: bool = False
    # HSTS is only sent on requests that arrived over TLS (directly or per X-Forwarded-Proto).
    hsts_max_age_seconds: int = 31_536_000
    # Shown in the accessibility statement (tilgængelighedserklæring) as the place to report barriers.
    accessibility_contact_email: str = ""
