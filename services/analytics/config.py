from shared.settings import ServiceSettings


class AnalyticsSettings(ServiceSettings):
    service_name: str = "analytics"
    # Cells with fewer answers than this are never shown (GDPR; seed 004).
    suppression_threshold: int = 5
