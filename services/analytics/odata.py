"""A read-only OData v4 feed of the published tables (what Power BI's OData connector loads).

Supported: the service document, ``$metadata`` (CSDL XML), entity sets with ``$filter`` (``eq``
comparisons joined by ``and``), ``$select``, ``$top``, ``$skip``, ``$count`` and server-driven
paging (``@odata.nextLink``). Responses are ``application/json;odata.metadata=minimal``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlencode
from xml.sax.saxutils import escape

from services.analytics.domain.publication import INDICATOR_COLUMNS, RATE_COLUMNS
from services.analytics.service import TREND_COLUMNS

# Every entity says which release of its round it is from (see service.Releases).
RELEASE_COLUMNS: tuple[str, ...] = ("release", "phase", "built_at")

NAMESPACE = "Borgerblik.Analytics"
JSON_MEDIA_TYPE = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false"

_STRINGS = {
    "id", "round_id", "previous_round_id", "questionnaire_id", "question", "dimension", "kommunekode", "level",
    "suppression", "indicator", "phase", "weighting",
}
_INTS = {"n_answers", "n_valid", "n_dont_know", "n_respondents", "invited", "answers", "release", "previous_release"}
_BOOLS = {"suppressed", "caution", "significant", "few_answers"}
_DATES = {"built_at"}


def edm_type(column: str) -> str:
    if column in _STRINGS:
        return "Edm.String"
    if column in _INTS:
        return "Edm.Int32"
    if column in _BOOLS:
        return "Edm.Boolean"
    if column in _DATES:
        return "Edm.DateTimeOffset"
    return "Edm.Double"


@dataclass(frozen=True)
class EntitySet:
    name: str
    entity_type: str
    columns: tuple[str, ...]
    key_columns: tuple[str, ...]  # joined into the ``id`` key property


ENTITY_SETS = {
    "Indicators": EntitySet(
        "Indicators", "Indicator", ("id",) + INDICATOR_COLUMNS + RELEASE_COLUMNS, ("round_id", "question", "dimension", "kommunekode", "level")
    ),
    "ResponseRates": EntitySet(
        "ResponseRates", "ResponseRate", ("id",) + RATE_COLUMNS + RELEASE_COLUMNS, ("round_id", "dimension", "kommunekode", "level")
    ),
    "Trends": EntitySet("Trends", "Trend", ("id",) + TREND_COLUMNS, ("round_id", "question", "kommunekode", "indicator")),
}


def with_id(entity_set: EntitySet, row: dict) -> dict:
    return {"id": "|".join(str(row[c]) for c in entity_set.key_columns), **row}


def metadata_xml() -> str:
    types = []
    for es in ENTITY_SETS.values():
        props = "".join(
            f'<Property Name="{c}" Type="{edm_type(c)}" Nullable="{"false" if c == "id" else "true"}"/>' for c in es.columns
        )
        types.append(f'<EntityType Name="{es.entity_type}"><Key><PropertyRef Name="id"/></Key>{props}</EntityType>')
    sets = "".join(f'<EntitySet Name="{es.name}" EntityType="{NAMESPACE}.{es.entity_type}"/>' for es in ENTITY_SETS.values())
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">'
        "<edmx:DataServices>"
        f'<Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="{escape(NAMESPACE)}">'
        + "".join(types)
        + f'<EntityContainer Name="Container">{sets}</EntityContainer>'
        "</Schema></edmx:DataServices></edmx:Edmx>"
    )


class ODataQueryError(ValueError):
    pass


_COMPARISON = re.compile(
    r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s+eq\s+('(?:[^']|'')*'|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null)\s*$"
)


def parse_filter(text: str | None, columns: tuple[str, ...]) -> dict[str, object]:
    """``a eq 'x' and b eq 3`` -> {"a": "x", "b": 3}. Only eq and and: all a BI filter needs."""
    if not text:
        return {}
    out: dict[str, object] = {}
    # Split on " and " outside quotes.
    parts, buf, quoted = [], "", False
    tokens = re.split(r"(')", text)
    for tok in tokens:
        if tok == "'":
            quoted = not quoted
            buf += tok
        elif quoted:
            buf += tok
        else:
            pieces = re.split(r"\s+and\s+", tok, flags=re.IGNORECASE)
            buf += pieces[0]
            for piece in pieces[1:]:
                parts.append(buf)
                buf = piece
    parts.append(buf)
    for part in parts:
        part = part.strip()
        while part.startswith("(") and part.endswith(")"):
            part = part[1:-1].strip()
        m = _COMPARISON.match(part)
        if not m:
            raise ODataQueryError(f"unsupported $filter expression: {part!r} (use: property eq value [and ...])")
        name, raw = m.groups()
        if name not in columns:
            raise ODataQueryError(f"unknown property {name!r}")
        if raw.startswith("'"):
            value: object = raw[1:-1].replace("''", "'")
        elif raw in ("true", "false"):
            value = raw == "true"
        elif raw == "null":
            value = None
        elif re.fullmatch(r"-?\d+", raw):
            value = int(raw)
        else:
            value = float(raw)
        out[name] = value
    return out


def matches(row: dict, conditions: dict[str, object]) -> bool:
    return all(row.get(k) == v for k, v in conditions.items())


def parse_select(text: str | None, columns: tuple[str, ...]) -> tuple[str, ...]:
    if not text or text.strip() == "*":
        return columns
    chosen = tuple(c.strip() for c in text.split(",") if c.strip())
    unknown = [c for c in chosen if c not in columns]
    if unknown:
        raise ODataQueryError(f"unknown properties in $select: {unknown}")
    return chosen


def next_link(base_url: str, params: dict[str, str], skip: int) -> str:
    query = {k: v for k, v in params.items() if k != "$skip"}
    query["$skip"] = str(skip)
    return f"{base_url}?{urlencode(query)}"
