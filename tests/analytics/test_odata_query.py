"""The OData query options over in-memory rows (services/analytics/odata.py): $filter compiled from
odata-query's AST with OData's null semantics, $orderby, $select, key predicates, the options that
are refused (501) and the errors (400), without a database."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.analytics import odata
from services.analytics.odata import ODataError, parse_filter, parse_key, parse_orderby, parse_query, parse_select, sort_rows

INDICATORS = odata.ENTITY_SETS["Indicators"]
COLUMNS = INDICATORS.columns
QUESTIONS = ("q1", "q2", "q10", "q13")
KOMMUNER = ("national", "101", "147", "751")

rows_strategy = st.lists(
    st.fixed_dictionaries({
        "question": st.sampled_from(QUESTIONS),
        "kommunekode": st.sampled_from(KOMMUNER),
        "mean": st.none() | st.sampled_from([1.0, 2.5, 3.0, 3.25, 4.0, 5.0]),
        "n_valid": st.none() | st.integers(0, 30),
        "suppressed": st.booleans(),
    }),
    max_size=25,
)


# A filter as (OData text, three-valued Python meaning: True, False or None for null).
def _cmp(column: str, values):
    ops = {
        "eq": lambda a, b: a == b, "ne": lambda a, b: a != b,
        "gt": lambda a, b: None if a is None or b is None else a > b, "ge": lambda a, b: None if a is None or b is None else a >= b,
        "lt": lambda a, b: None if a is None or b is None else a < b, "le": lambda a, b: None if a is None or b is None else a <= b,
    }

    def literal(v):
        return "null" if v is None else ("'" + v + "'" if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else repr(v))

    return st.tuples(st.sampled_from(sorted(ops)), values).map(
        lambda t: (f"{column} {t[0]} {literal(t[1])}", lambda row, op=ops[t[0]], v=t[1]: op(row[column], v))
    )


def _in(column: str, values):
    def make(chosen):
        text = f"{column} in ({', '.join(repr(v) if not isinstance(v, str) else chr(39) + v + chr(39) for v in chosen)})"
        return (text, lambda row: row[column] in chosen)

    return st.lists(values, min_size=1, max_size=3).map(make)


def _function(name: str):
    test = {"startswith": str.startswith, "endswith": str.endswith, "contains": str.__contains__}[name]
    return st.sampled_from(["q1", "1", "q", "3", "x"]).map(
        lambda s: (f"{name}(question,'{s}')", lambda row: test(row["question"], s))
    )


leaves = st.one_of(
    _cmp("mean", st.none() | st.sampled_from([1, 3.0, 3.25, 4.5])),
    _cmp("n_valid", st.none() | st.integers(0, 30)),
    _cmp("question", st.sampled_from(QUESTIONS + ("q3",))),
    _cmp("suppressed", st.booleans()),
    _in("kommunekode", st.sampled_from(KOMMUNER)),
    _function("startswith"), _function("endswith"), _function("contains"),
)


def _and(a, b):
    return False if a is False or b is False else (None if a is None or b is None else True)


def _or(a, b):
    return True if a is True or b is True else (None if a is None or b is None else False)


def _combine(children):
    return st.one_of(
        st.tuples(children, children).map(lambda t: (f"({t[0][0]}) and ({t[1][0]})", lambda r: _and(t[0][1](r), t[1][1](r)))),
        st.tuples(children, children).map(lambda t: (f"{t[0][0]} or {t[1][0]}", lambda r: _or(t[0][1](r), t[1][1](r)))),
        children.map(lambda c: (f"not ({c[0]})", lambda r: None if (v := c[1](r)) is None else not v)),
        children.map(lambda c: (f"(({c[0]}))", c[1])),
    )


filters = st.recursive(leaves, _combine, max_leaves=6)


def _row(values: dict) -> dict:
    return {c: None for c in COLUMNS} | values


@settings(max_examples=300, deadline=None)
@given(rows=rows_strategy, flt=filters)
def test_filter_keeps_exactly_the_rows_where_the_expression_is_true(rows, flt):
    text, meaning = flt
    rows = [_row(r) for r in rows]
    compiled = parse_filter(text, COLUMNS)
    assert [r for r in rows if compiled(r)] == [r for r in rows if meaning(r) is True], text


@settings(max_examples=200, deadline=None)
@given(
    rows=rows_strategy,
    keys=st.lists(st.tuples(st.sampled_from(["mean", "question", "n_valid", "kommunekode"]), st.sampled_from(["", " asc", " desc"])),
                  min_size=1, max_size=3, unique_by=lambda k: k[0]),
)
def test_orderby_sorts_key_by_key_with_null_lowest_and_ties_in_table_order(rows, keys):
    rows = [_row({**r, "n": i}) for i, r in enumerate(rows)]
    text = ",".join(f"{column}{direction}" for column, direction in keys)
    ordered = sort_rows(rows, parse_orderby(text, COLUMNS))

    def before_or_tied(a, b):
        for column, direction in keys:
            x, y = a[column], b[column]
            if x == y:
                continue
            lower = x is None or (y is not None and x < y)
            return lower != (direction == " desc")
        return a["n"] < b["n"]

    assert sorted(r["n"] for r in ordered) == list(range(len(rows)))
    assert all(before_or_tied(a, b) for a, b in zip(ordered, ordered[1:])), text


def test_top_level_equalities_are_what_narrows_the_rows_read():
    assert parse_filter("((round_id eq '2026-1') and (kommunekode eq '751')) and mean gt 3", COLUMNS).equalities == {
        "round_id": "2026-1", "kommunekode": "751"}
    assert parse_filter("round_id eq '2026-1' or kommunekode eq '751'", COLUMNS).equalities == {}
    assert parse_filter("'751' eq kommunekode", COLUMNS).equalities == {"kommunekode": "751"}


@pytest.mark.parametrize("text", ["kommunekode in ('751')", "kommunekode in ( '751' )", "kommunekode in ('751',)",
                                  "(kommunekode in ('751'))", "not (kommunekode in ('101')) and kommunekode in ('751', '147')"])
def test_a_list_of_one_is_a_list(text):
    """OData's ABNF writes a one-item list as ('751'); odata-query alone reads it only as ('751',)."""
    keep = parse_filter(text, COLUMNS)
    assert keep({"kommunekode": "751"}) and not keep({"kommunekode": "101"}) and not keep({"kommunekode": "0751"})


@pytest.mark.parametrize("text", ["kommunekode in ('0751')", "kommunekode eq '0751'", "'0751' eq kommunekode",
                                  "kommunekode in ('0101', '0751')", "not (kommunekode ne '0751')"])
def test_a_kommunekode_with_4_digits_is_the_stored_3(text):
    keep = parse_filter(text, COLUMNS)
    assert keep({"kommunekode": "751"}) and not keep({"kommunekode": "147"})
    assert parse_filter("level eq '0751'", COLUMNS)({"level": "0751"})  # other columns keep their text


def test_a_list_of_one_whose_item_has_commas_of_its_own():
    keep = parse_filter("suppressed in (startswith(question, 'q1'))", COLUMNS)
    assert keep({"suppressed": True, "question": "q13"}) and not keep({"suppressed": True, "question": "q2"})
    assert keep({"suppressed": False, "question": "q2"})


def test_dates_compare_as_dates():
    row = _row({"built_at": "2026-03-01T10:00:00.123456Z"})
    assert parse_filter("built_at gt 2026-03-01T09:59:59Z", COLUMNS)(row)
    assert not parse_filter("built_at lt 2026-03-01T10:00:00Z", COLUMNS)(row)


def test_functions_and_arithmetic():
    row = _row({"question": "Q13", "mean": 3.5, "n_valid": 10})
    assert parse_filter("tolower(question) eq 'q13' and length(question) eq 3", COLUMNS)(row)
    assert parse_filter("mean add 1 eq 4.5 and n_valid mod 3 eq 1 and n_valid div 4 eq 2.5", COLUMNS)(row)
    assert not parse_filter("mean sub null eq 0", COLUMNS)(row)  # null arithmetic is null


@pytest.mark.parametrize(
    "text, status, fragment",
    [
        ("mean gt", 400, "cannot parse"),
        ("no_such eq 1", 400, "unknown property 'no_such'"),
        ("mean eq 'three'", 400, "cannot compare a number with a string"),
        ("question", 400, "a string where a condition belongs"),
        ("startswith(mean,'1')", 400, "takes strings"),
        ("round/x eq 1", 400, "no navigation"),
        ("substringof('q',question)", 501, "substringof"),
        ("geo.distance(a,b) lt 1", 501, ""),
    ],
)
def test_bad_filters_are_refused_saying_what(text, status, fragment):
    with pytest.raises(ODataError) as caught:
        parse_filter(text, COLUMNS)
    assert caught.value.status == status and fragment in caught.value.message
    assert caught.value.body()["error"]["target"] == "$filter"


@pytest.mark.parametrize("option", ["$expand", "$search", "$apply", "$compute", "$levels", "$whatever", "@alias"])
def test_options_the_service_does_not_implement_are_501(option):
    with pytest.raises(ODataError) as caught:
        parse_query({option: "x"}, INDICATORS)
    assert caught.value.status == 501
    assert caught.value.body() == {"error": {"code": "NotImplemented", "message": caught.value.message, "target": option}}


@pytest.mark.parametrize(
    "params, target",
    [({"$top": "-1"}, "$top"), ({"$skip": "x"}, "$skip"), ({"$count": "yes"}, "$count"), ({"$select": "mean,nope"}, "$select"),
     ({"$orderby": "mean sideways"}, "$orderby"), ({"$orderby": "nope desc"}, "$orderby"), ({"$orderby": "mean desc desc"}, "$orderby")],
)
def test_bad_options_are_400_naming_the_option(params, target):
    with pytest.raises(ODataError) as caught:
        parse_query(params, INDICATORS)
    assert (caught.value.status, caught.value.target) == (400, target)


def test_select_and_format():
    assert parse_select("mean, kommunekode,mean", COLUMNS) == ("mean", "kommunekode")
    assert parse_select("*", COLUMNS) == COLUMNS
    assert parse_query({"$format": "json"}, INDICATORS).select == COLUMNS
    with pytest.raises(ODataError) as caught:
        parse_query({"$format": "xml"}, INDICATORS)
    assert caught.value.status == 406 and caught.value.code == "NotAcceptable"


def test_key_predicates():
    assert parse_key("'2026-1~q1~maalgruppe~national~total'", INDICATORS) == "2026-1~q1~maalgruppe~national~total"
    assert parse_key("id='a~b'", INDICATORS) == "a~b"
    named = "round_id='2026-1',question='q1',dimension='gender',kommunekode='751',level='K'"
    assert parse_key(named, INDICATORS) == "2026-1~q1~gender~751~K"
    for bad in ("round_id='2026-1'", "x=1", "1,2", "'a' 'b'"):
        with pytest.raises(ODataError) as caught:
            parse_key(bad, INDICATORS)
        assert caught.value.status == 400


def test_metadata_is_csdl_with_its_vocabularies_served_beside():
    root = ET.fromstring(odata.metadata_xml())
    edmx = "{http://docs.oasis-open.org/odata/ns/edmx}"
    references = {r.get("Uri"): r.find(f"{edmx}Include").get("Namespace") for r in root.iter(f"{edmx}Reference")}
    assert references == {f"vocabularies/{ns}.xml": ns for ns in odata.VOCABULARIES}
    used = {a.get("Term") for a in root.iter("{http://docs.oasis-open.org/odata/ns/edm}Annotation")}
    for term in used:
        namespace, name = term.rsplit(".", 1)
        vocabulary = ET.fromstring(odata.VOCABULARIES[namespace])
        assert any(t.get("Name") == name for t in vocabulary.iter("{http://docs.oasis-open.org/odata/ns/edm}Term")), term
