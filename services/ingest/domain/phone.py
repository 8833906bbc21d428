"""Phone numbers to E.164, for SMS reminders.

Parsing and validity come from ``phonenumbers`` (Google's libphonenumber metadata), with Denmark
as the default region, so "12 34 56 78", "+45 12345678" and "0045-12345678" all become
"+4512345678". Numbers with another country code are kept when valid there: citizens living
near the border may have a Swedish or German mobile.
"""

from __future__ import annotations

from numbers import Integral

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

from services.ingest.domain.errors import PhoneNumberError

DEFAULT_REGION = "DK"
_SMS_CAPABLE_TYPES = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE, PhoneNumberType.UNKNOWN})


def normalise_phone(value: object, *, default_region: str = DEFAULT_REGION) -> str:
    """Return the number in E.164 form ("+4512345678") or raise ``PhoneNumberError``.

    Integers are accepted because Excel stores an unformatted phone column as numbers. Error
    messages never repeat the number.
    """
    text = _as_text(value)
    if not text:
        raise PhoneNumberError("phone number is empty")
    try:
        parsed = phonenumbers.parse(text, default_region)
    except NumberParseException as exc:
        raise PhoneNumberError(f"phone number cannot be read ({_reason(exc)})") from None
    if not phonenumbers.is_valid_number(parsed):
        region = phonenumbers.region_code_for_number(parsed) or "unknown region"
        raise PhoneNumberError(f"phone number is not a valid number for {region}")
    return phonenumbers.format_number(parsed, PhoneNumberFormat.E164)


def is_probably_sms_capable(e164: str) -> bool:
    """False only for numbers the metadata knows are not mobiles (landlines, premium, ...).

    Danish numbers are mostly "fixed line or mobile" in the metadata, so this is a filter for the
    obvious cases, not a guarantee that an SMS arrives.
    """
    parsed = phonenumbers.parse(e164, None)
    return phonenumbers.number_type(parsed) in _SMS_CAPABLE_TYPES


def _as_text(value: object) -> str:
    if value is None or isinstance(value, bool):
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, Integral):
        return str(int(value))
    return str(value).strip()


def _reason(exc: NumberParseException) -> str:
    # The library's message texts do not contain the number, but the error type is all we need.
    return {
        NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
        NumberParseException.NOT_A_NUMBER: "not a number",
        NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
        NumberParseException.TOO_SHORT_NSN: "too short",
        NumberParseException.TOO_LONG: "too long",
    }.get(exc.error_type, "unreadable")
