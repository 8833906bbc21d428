from shared.settings import ServiceSettings


class AnalyticsSettings(ServiceSettings):
    service_name: str = "analytics"
    # Cells with fewer answers than this are never shown (GDPR; seed 004).
    suppression_threshold: int = 5
    # Published cells with fewer answers than this are flagged "read with caution".
    caution_below: int = 20
    # Largest page of a table (REST and OData server-driven paging).
    max_page_size: int = 5000
