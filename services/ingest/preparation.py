"""Rows in, storable citizens out: validation, classification and pseudonymisation of one
delivery, a batch at a time. Pure CPU work with no I/O besides the row iterator, so it runs in a
worker thread while the event loop copies the previous batch into PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache

from services.ingest.domain.classification import ExclusionReason, MaalgruppeMapping
from services.ingest.domain.cpr import mask_cpr
from services.ingest.domain.fastpath import CachedRowValidator
from services.ingest.domain.profiles import Kolonne
from services.ingest.domain.readers import NumberedRow
from services.ingest.domain.validation import DuplicateTracker, RowError
from services.ingest.pseudonymisation import Pseudonymiser

# Column order of the COPY into ingest.citizen; records are tuples in this order.
CITIZEN_COLUMNS = (
    "delivery_id",
    "pseudonym",
    "cpr_ciphertext",
    "cpr_key_id",
    "maalgruppe",
    "ydelse",
    "gender",
    "age_band",
    "duration_band",
)


@dataclass(slots=True)
class PreparedBatch:
    """One batch of rows; the lists ``citizens``, ``persons``, ``row_numbers`` and ``masked_cprs``
    are aligned (index i is the same citizen)."""

    citizens: list[tuple] = field(default_factory=list)  # COPY records, see CITIZEN_COLUMNS
    persons: list[dict] = field(default_factory=list)  # PopulationPerson in JSON form
    row_numbers: list[int] = field(default_factory=list)
    masked_cprs: list[str] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)  # every error of every rejected row
    rejected_rows: int = 0
    warnings: list[RowError] = field(default_factory=list)
    exclusions: Counter = field(default_factory=Counter)
    rows_read: int = 0

    def drop(self, indexes: set[int]) -> None:
        """Remove citizens (by position) that turned out to be rejected after all."""
        keep = [i for i in range(len(self.citizens)) if i not in indexes]
        for name in ("citizens", "persons", "row_numbers", "masked_cprs"):
            values = getattr(self, name)
            setattr(self, name, [values[i] for i in keep])


class DeliveryPreparer:
    """Turns a delivery's rows into batches. One instance per delivery: it remembers every CPR
    number seen (as a keyed hash) to catch duplicates, and caches parsed values."""

    def __init__(
        self,
        *,
        delivery_id: uuid.UUID,
        reference_date: date,
        mapping: MaalgruppeMapping,
        pseudonymiser: Pseudonymiser,
        batch_rows: int,
    ) -> None:
        self._delivery_id = delivery_id
        self._validator = CachedRowValidator(reference_date, mapping)
        self._pseudonymiser = pseudonymiser
        self._batch_rows = batch_rows
        self.mapping_version = mapping.version
        # The pseudonym's HMAC is computed once per row and shared with the duplicate check.
        self._digest = lru_cache(maxsize=1)(pseudonymiser.pseudonym_digest)
        # 16 bytes of the keyed hash: no realistic collision, and no CPR number kept in memory.
        self._duplicates = DuplicateTracker(lambda cpr: self._digest(cpr)[:16])
        self._unknown_benefit_message = (
            f"benefit (ydelse) is not in the maalgruppe mapping {mapping.version}; use the benefit's name as "
            "the case system exports it, or ask KL to add this name to the mapping"
        )

    def next_batch(self, rows: Iterator[NumberedRow]) -> PreparedBatch | None:
        """Up to ``batch_rows`` rows from ``rows``; None when the rows are exhausted."""
        batch = PreparedBatch()
        validator = self._validator
        pseudonymiser = self._pseudonymiser
        cpr_key_id = pseudonymiser.cpr_key_id
        delivery_id = self._delivery_id
        for row_number, row in rows:
            batch.rows_read += 1
            result = validator.validate(row_number, row)
            if isinstance(result, list):
                batch.errors.extend(result)
                batch.rejected_rows += 1
            else:
                duplicate = self._duplicates.check(result.cpr, row_number)
                if duplicate is not None:
                    batch.errors.append(duplicate)
                    batch.rejected_rows += 1
                else:
                    if result.warnings:
                        batch.warnings.extend(result.warnings)
                    classification = validator.classify(result)
                    reason = classification.exclusion_reason
                    if reason is ExclusionReason.UNKNOWN_BENEFIT:
                        # A benefit the mapping does not know is something to fix, not a silent
                        # exclusion: the municipality (or KL's mapping) must act on it.
                        batch.errors.append(RowError(row_number, Kolonne.YDELSE.value, self._unknown_benefit_message))
                        batch.rejected_rows += 1
                    elif reason is not None:
                        batch.exclusions[reason.value] += 1
                    else:
                        pseudonym = self._digest(result.cpr).hex()
                        gender = result.gender.value
                        age_band = classification.age_band
                        duration_band = classification.duration_band
                        maalgruppe = classification.maalgruppe
                        batch.citizens.append(
                            (
                                delivery_id,
                                pseudonym,
                                pseudonymiser.encrypt_cpr(result.cpr),
                                cpr_key_id,
                                maalgruppe,
                                result.ydelse,
                                gender,
                                age_band,
                                duration_band,
                            )
                        )
                        batch.persons.append(
                            {
                                "pseudonym": pseudonym,
                                "maalgruppe": maalgruppe,
                                "bands": {"gender": gender, "age_band": age_band, "duration_band": duration_band},
                                "forskerbeskyttet": result.forskerbeskyttet,
                                "contact": pseudonymiser.seal_contact(
                                    cpr=result.cpr, name=result.navn, phone_e164=result.phone_e164, pseudonym=pseudonym
                                ),
                            }
                        )
                        batch.row_numbers.append(row_number)
                        batch.masked_cprs.append(mask_cpr(result.cpr))
            if batch.rows_read >= self._batch_rows:
                return batch
        return batch if batch.rows_read else None
