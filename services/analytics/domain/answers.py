"""Answer values as they arrive in ``response.submitted``, mapped to scale codes.

The responses service sends either integer scores (``{"q1": 4}``; 1..5, 5 = "Meget enig", the
most positive) or the questionnaire's value codes (``"meget_enig"``, ``"ved_ikke"``). Analytics
stores one code per answered scale question:

* ``"1"`` .. ``"5"``: the score (ints 1..5, digit strings, or a known value code);
* ``"dk"``: "Ved ikke" (don't know): answered, but outside the mean and the top-two box;
* ``None``: not a scale answer, so left out of every indicator: no answer (``None``), free text,
  unknown codes, booleans and out-of-range numbers.
"""

from __future__ import annotations

from .indicators import AGREEMENT_SCALE, CODES, DONT_KNOW, SCORES

__all__ = ["CODES", "DONT_KNOW", "SCORES", "VALUE_CODES", "answer_code", "scale_label"]


def _code_name(label: str) -> str:
    return label.strip().lower().replace(" ", "_")


# Value codes of the questionnaire's scales (services/responses questionnaires: "enighed" and
# "tilfredshed"), derived where possible from the domain's agreement scale so they cannot drift.
VALUE_CODES: dict[str, str] = {
    **{_code_name(label): str(i + 1) for i, label in enumerate(AGREEMENT_SCALE.labels)},
    "meget_utilfreds": "1",
    "utilfreds": "2",
    "hverken_tilfreds_eller_utilfreds": "3",
    "tilfreds": "4",
    "meget_tilfreds": "5",
    "ved_ikke": DONT_KNOW,
}


def answer_code(value: object) -> str | None:
    """The stored code of one answer value, or None when it is no scale answer."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value) if 1 <= value <= 5 else None
    if isinstance(value, str):
        text = value.strip()
        if text in SCORES:
            return text
        return VALUE_CODES.get(_code_name(text))
    return None


def scale_label(code: str) -> str:
    """The domain scale's label for a code ("5" -> "Meget enig", "dk" -> "Ved ikke")."""
    if code == DONT_KNOW:
        return AGREEMENT_SCALE.dont_know or "Ved ikke"
    return AGREEMENT_SCALE.labels[int(code) - 1]
