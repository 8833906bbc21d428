"""The BI keys' request and response bodies."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, Field, field_validator

from services.analytics.domain import kommunekode as kommunekoder


class BiKeyIn(BaseModel):
    label: str = Field(min_length=1, max_length=200, description="What the key is for, e.g. \"Power BI: Jobcenter Aarhus' "
                       "monthly report\" (shown in the list of keys)")
    kommunekoder: list[str] | None = Field(
        None, max_length=100,
        description="The municipalities the key reads (3 digits, or 4 with a leading zero), each one the maker reads "
        "itself; leave out for all of the maker's. National rows are read with any key",
    )
    all_kommuner: bool = Field(False, description="true: the key reads every municipality (only a client with kommuner:all)")
    expires_at: datetime | None = Field(None, description="When the key stops working (UTC, ISO 8601); leave out for a key "
                                        "that works until it is revoked")

    @field_validator("kommunekoder")
    @classmethod
    def _kommunekoder(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [kommunekoder.parse(k) for k in value]

    @field_validator("expires_at")
    @classmethod
    def _future(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("give a time zone (e.g. 2027-06-30T00:00:00Z)")
        if value <= datetime.now(UTC):
            raise ValueError("must be in the future")
        return value


class BiKeyOut(BaseModel):
    key_id: str = Field(description="The key's id: the user name a BI tool sends (bbk_ and 16 hex digits)")
    label: str = Field(description="What the key is for")
    owner: str = Field(description="The client that made the key (its token's subject)")
    scopes: list[str] = Field(description="What the key may do: aggregates:read (and kommuner:all for a key to every municipality)")
    kommunekoder: list[str] = Field(description="The municipalities the key reads (besides the national rows)")
    created_at: datetime = Field(description="When the key was made (UTC)")
    expires_at: datetime | None = Field(description="When the key stops working (null: when revoked)")
    revoked_at: datetime | None = Field(description="When the key was revoked (null: it works)")
    revoked_by: str | None = Field(description="Who revoked the key")
    last_used_at: datetime | None = Field(description="When the key was last used, to the minute (null: never)")

    model_config = {"from_attributes": True}


class BiKeyCreated(BiKeyOut):
    secret: str = Field(description="The key's secret: the password a BI tool sends. Shown only now: the service keeps "
                        "only its hash. Lost: revoke the key and make a new one")
