from typing import Literal

from shared.settings import ServiceSettings


class AnalyticsSettings(ServiceSettings):
    service_name: str = "analytics"
    # Cells with fewer answers than this are never shown (GDPR; seed 004).
    suppression_threshold: int = 5
    # Published cells with fewer answers than this are flagged "read with caution".
    caution_below: int = 20
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
    # What a preliminary release publishes: "totals" (the national cells and each municipality's
    # total: what operators watch during fieldwork) or "all". A cell published once is published
    # again only after it has moved by the suppression threshold, so municipal breakdowns published
    # during fieldwork would stay hidden in the final tables wherever a few answers came late
    # (docs/analytics-method.md, releases). The final release publishes every cell.
    publication_preliminary_scope: Literal["totals", "all"] = "totals"
    # Build publications in a worker process (its own database connection), not a thread of the
    # service, so a build never holds the interpreter lock against the consumer and the reads.
    publication_build_process: bool = True
    # Bigger consumer batches for analytics: one transaction and a few set-based statements per
    # batch, so a replay costs per batch, not per event.
    consumer_batch_max_records: int = 1000
