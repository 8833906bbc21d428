"""Error types of the ingest domain.

Every message here may end up in a log, an API response or the delivery's error report, so no
message ever carries personal data: CPR numbers appear masked (DDMMYY-XXXX) at most, and raw
cell values are described, never echoed.
"""

from __future__ import annotations


class IngestDomainError(ValueError):
    """Base class for everything the ingest domain rejects."""


class CprError(IngestDomainError):
    """A value is not a usable CPR number. The message holds the masked number at most."""


class PhoneNumberError(IngestDomainError):
    """A value is not a valid phone number."""


class ExtractFormatError(IngestDomainError):
    """The extract file as a whole cannot be read: wrong format, unreadable, or missing columns."""


class MissingColumnsError(ExtractFormatError):
    """Required columns are not among the headers. ``missing`` says, per canonical column, which
    headers found come closest and the exact way to map one (JSON, no cell values)."""

    def __init__(self, message: str, missing: list[dict]) -> None:
        super().__init__(message)
        self.missing = missing


class MappingDataError(IngestDomainError):
    """A shipped data file (column profiles, maalgruppe mapping) is inconsistent."""
