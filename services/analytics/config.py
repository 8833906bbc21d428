from shared.settings import ServiceSettings


class AnalyticsSettings(ServiceSettings):
    service_name: str = "analytics"
    # Cells with fewer answers than this are never shown (GDPR; seed 004).
    suppression_threshold: int = 5
    # Published cells with fewer answers than this are flagged "read with caution".
    caution_below: int = 20
    # Largest page of a table (REST and OData server-driven paging).
    max_page_size: int = 5000
    # The versions of the rounds being read are looked at whenever a round's change commits
    # (LISTEN/NOTIFY) and a build ends, and polled this often besides (a lost notification only
    # delays). Builds of one round use at most this share of one core (a build's cost: its
    # snapshot's load plus its computation's CPU; changes in between are coalesced). Builds run
    # in one worker process of their own (below), which already caps them at one core, so the
    # default builds again as soon as the last build is done while a round keeps changing: at
    # 200 answers/s that is ~0.6 CPU s per s on the bench machine, and what keeps the published
    # tables within a second of an answer. Lower it where the service shares a small machine.
    publication_interval_seconds: float = 0.05
    publication_build_share: float = 1.0
    # Build publications in a worker process (its own database connection), not a thread of the
    # service: a build holding the GIL stalled the consumer and the reads (see builder.py).
    publication_build_process: bool = True
    # A read may get tables up to this old (seconds) while the round changes, instead of waiting
    # for the next build. 0: a read never sees less than the state it observed (tests rely on it).
    publication_max_lag_seconds: float = 0.0
    # Bigger consumer batches for analytics: one transaction and a few set-based statements per
    # batch, so a replay costs per batch, not per event.
    consumer_batch_max_records: int = 1000
