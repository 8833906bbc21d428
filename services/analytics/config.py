from typing import Literal

from services.analytics.domain.suppression import CAUTION_BELOW, SUPPRESSION_THRESHOLD
from shared.settings import ServiceSettings


class AnalyticsSettings(ServiceSettings):
    service_name: str = "analytics"
    # Cells with fewer respondents than this are never shown, and published cells with fewer than
    # caution_below are flagged "read with caution" (KL's rule: domain/suppression.py).
    suppression_threshold: int = SUPPRESSION_THRESHOLD
    caution_below: int = CAUTION_BELOW
    # Largest page of a table (REST and OData server-driven paging).
    max_page_size: int = 5000
    # Releases (see service.Releases): a round's tables are published as releases, each built at
    # one version of its data. The release loop cuts a preliminary release of a round whose data
    # changed since its latest release once no change has come for `quiet` seconds, or once its
    # latest release is `interval` seconds old (whichever is first), until the round has a final
    # release. It looks at the rounds whenever one changes (LISTEN/NOTIFY) and every `poll`
    # seconds besides (a lost notification only delays a release).
    publication_release_quiet_seconds: float = 300.0
    publication_release_interval_seconds: float = 3600.0
    publication_release_poll_seconds: float = 1.0
    # What a preliminary release publishes unless the operator asks for another scope
    # (docs/analytics-method.md, "Over time: releases"): "rates" (who answered, never what: the
    # response-rate tables only, no answer content), "totals" (the national cells and each
    # municipality's total, every question) or "all". A release that publishes answers is held
    # against the previous one that did by the growth rule (a cell published once is published
    # again only after it moved by the threshold), which a "rates" release needs not: fieldwork's
    # automatic releases publish response rates, and answers come with the final release or an
    # operator's release point. The final release publishes every cell.
    publication_preliminary_scope: Literal["rates", "totals", "all"] = "rates"
    # Build publications in a worker process (its own database connection), not a thread of the
    # service, so a build never holds the interpreter lock against the consumer and the reads.
    publication_build_process: bool = True
    # Bigger consumer batches for analytics: one transaction and a few set-based statements per
    # batch, so a replay costs per batch, not per event.
    consumer_batch_max_records: int = 1000
