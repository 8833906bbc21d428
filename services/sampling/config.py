from shared.settings import ServiceSettings


class SamplingSettings(ServiceSettings):
    service_name: str = "sampling"
    # Persons per sample.drawn event.
    event_chunk_size: int = 500
