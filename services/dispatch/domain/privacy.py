"""Keep personal data out of logs and error strings.

Error texts travel into logs, metrics and the database's attempt history, so
anything that may echo a message back (an XSD error, a provider's response
body) is passed through `redact` first. The patterns are deliberately broad:
a false positive costs a little debugging context, a false negative leaks a
CPR number.
"""

from __future__ import annotations

import re

# Six or more digits, optionally split by spaces, dashes or dots: covers CPR
# numbers (with or without the dash) and phone numbers in any common format.
_DIGIT_RUN = re.compile(r"\+?\d(?:[\s.\-]?\d){5,}")
_EMAIL = re.compile(r"[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+")

REDACTED = "[redacted]"


def redact(text: str, *, limit: int = 300) -> str:
    """Return `text` with CPR-like numbers, phone numbers and e-mail addresses
    masked, cut to `limit` characters."""
    text = _EMAIL.sub(REDACTED, text)
    text = _DIGIT_RUN.sub(REDACTED, text)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text
