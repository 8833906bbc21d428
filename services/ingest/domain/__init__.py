"""Pure domain logic of the ingest service: no database, no Kafka, no HTTP.

A municipality's population extract flows through these steps:

1. ``readers.open_extract`` streams rows out of CSV, XLSX or JSON, mapping the vendor's headers
   to canonical columns through a column profile (``profiles``: built-in ones in
   ``kolonneprofiler_v1.json``, more registered over the API);
2. ``validation.validate_row`` turns each row into a ``ValidRow`` or ``RowError``s (CPR via
   ``cpr``, phone via ``phone``), and ``DuplicateTracker`` catches a CPR number delivered twice;
3. ``classification.classify`` places a valid row in its maalgruppe (target group) from its
   benefit and visitation category, or gives an exclusion reason, using a versioned table
   (``maalgrupper_v2.json``; ``maalgrupper_v1.json`` for deliveries classified before);
4. ``replacement.replacement_refusal`` says when a delivery may not replace the earlier one
   without the caller's confirmation.
"""

from services.ingest.domain.classification import (
    Classification,
    ExclusionReason,
    MaalgruppeMapping,
    classify,
    load_mapping,
)
from services.ingest.domain.cpr import CprNumber, Gender, mask_cpr, parse_cpr
from services.ingest.domain.errors import (
    CprError,
    ExtractFormatError,
    IngestDomainError,
    MappingDataError,
    PhoneNumberError,
)
from services.ingest.domain.phone import normalise_phone
from services.ingest.domain.profiles import (
    ColumnProfile,
    Kolonne,
    get_profile,
    load_profiles,
)
from services.ingest.domain.readers import (
    ExtractFormat,
    iter_extract_rows,
    open_extract,
)
from services.ingest.domain.validation import (
    DuplicateTracker,
    RowError,
    ValidRow,
    validate_row,
    validate_rows,
)

__all__ = [
    "Classification",
    "ColumnProfile",
    "CprError",
    "CprNumber",
    "DuplicateTracker",
    "ExclusionReason",
    "ExtractFormat",
    "ExtractFormatError",
    "Gender",
    "IngestDomainError",
    "Kolonne",
    "MaalgruppeMapping",
    "MappingDataError",
    "PhoneNumberError",
    "RowError",
    "ValidRow",
    "classify",
    "get_profile",
    "iter_extract_rows",
    "load_mapping",
    "load_profiles",
    "mask_cpr",
    "normalise_phone",
    "open_extract",
    "parse_cpr",
    "validate_row",
    "validate_rows",
]
