"""A read-only OData v4 feed of the published tables (what Power BI's OData connector loads).

Supported (OData v4.01 minimal conformance for a read-only service, what BI tools send):
the service document, ``$metadata`` (CSDL XML with Core.Description and Capabilities
annotations), entity sets with ``$filter`` (``eq ne gt ge lt le``, ``and or not``, ``in``,
parentheses, ``startswith contains endswith``, ``tolower toupper trim length``, arithmetic),
``$orderby`` (several keys, ``asc``/``desc``, null lowest), ``$top``, ``$skip``, ``$count=true``,
``/$count``, ``$select``, key lookup (``Set('key')``, ``Set(id='key')`` or every key column by name)
and server-driven paging (``@odata.nextLink``). Responses are ``application/json;odata.metadata=minimal``.
Anything else (``$expand``, ``$search``, ``$apply``, ``$compute``, unknown ``$`` options, parameter
aliases, lambda operators) is answered 501, never ignored: a client that sent it would otherwise
read rows that do not answer its query.

Queries are parsed by ``odata-query`` (its SLY grammar of the OData ABNF gives an AST); the rows
are the releases' published rows held in memory, not SQL, so :class:`_Compiler`, a visitor of that
AST, turns a ``$filter`` into a Python predicate over row dicts (its SQLAlchemy transpiler does
not apply). Errors are :class:`ODataError`, rendered as OData error bodies by the routes.
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from urllib.parse import urlencode
from xml.sax.saxutils import escape, quoteattr

from odata_query import ast as q
from odata_query import exceptions as query_errors
from odata_query.grammar import ODataLexer, ODataParser
from odata_query.visitor import NodeTransformer, NodeVisitor

from services.analytics.domain import kommunekode as kommunekoder
from services.analytics.domain.publication import INDICATOR_COLUMNS, RATE_COLUMNS
from services.analytics.schemas import COLUMNS, METHOD_PATH
from services.analytics.service import TREND_COLUMNS

# Every entity says which release of its round it is from (see service.Releases).
RELEASE_COLUMNS: tuple[str, ...] = ("release", "phase", "built_at")

NAMESPACE = "Borgerblik.Analytics"
JSON_MEDIA_TYPE = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false"

SUPPORTED_OPTIONS = frozenset({"$filter", "$orderby", "$top", "$skip", "$count", "$select", "$format"})
FILTER_FUNCTIONS = ("startswith", "endswith", "contains", "tolower", "toupper", "trim", "length")

_EDM = {str: "Edm.String", int: "Edm.Int32", float: "Edm.Double", bool: "Edm.Boolean", datetime: "Edm.DateTimeOffset"}


def edm_type(column: str) -> str:
    return _EDM[COLUMNS[column].type]


@dataclass(frozen=True)
class EntitySet:
    name: str
    entity_type: str
    columns: tuple[str, ...]
    key_columns: tuple[str, ...]  # joined into the ``id`` key property
    description: str


ENTITY_SETS = {
    "Indicators": EntitySet(
        "Indicators", "Indicator", ("id",) + INDICATOR_COLUMNS + RELEASE_COLUMNS,
        ("round_id", "question", "dimension", "kommunekode", "level"),
        "Indicator tables: one row per round x question x dimension x municipality (or national) x level (or total), "
        "from each round's latest release",
    ),
    "ResponseRates": EntitySet(
        "ResponseRates", "ResponseRate", ("id",) + RATE_COLUMNS + RELEASE_COLUMNS, ("round_id", "dimension", "kommunekode", "level"),
        "Respondents and response rates per round x municipality (or national) x target group, dispatch arm, answer mode, "
        "language or adaptive follow-up arm (or total)",
    ),
    "Trends": EntitySet(
        "Trends", "Trend", ("id",) + TREND_COLUMNS, ("round_id", "question", "kommunekode", "indicator"),
        "Change of the mean and the top-two share since the previous round of the same questionnaire, with a z-test",
    ),
}


# Joins a row's identifying columns into its ``id``: "~" is unreserved in URIs, so a client may write
# the key into a URL as it is (a level's spaces it must still percent-encode).
KEY_SEPARATOR = "~"


def entity(entity_set: EntitySet, row: dict, stamp: dict | None = None) -> dict:
    """A published row as an entity of the set: its ``id`` key first, then its columns and the
    release it is from (``stamp``; trend rows carry theirs)."""
    return {"id": KEY_SEPARATOR.join(str(row[c]) for c in entity_set.key_columns), **row, **(stamp or {})}


# -- errors ---------------------------------------------------------------------------------------


class ODataError(Exception):
    """An OData error: rendered as ``{"error": {"code", "message", "target"}}`` with ``status``."""

    def __init__(self, status: int, message: str, target: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.target = target
        self.code = code or {400: "BadRequest", 403: "Forbidden", 404: "NotFound", 501: "NotImplemented"}.get(status, str(status))

    def body(self) -> dict:
        error: dict = {"code": self.code, "message": self.message}
        if self.target:
            error["target"] = self.target
        return {"error": error}


def _bad(message: str, target: str) -> ODataError:
    return ODataError(400, message, target)


def _not_implemented(message: str, target: str) -> ODataError:
    return ODataError(501, message, target)


# -- $metadata ------------------------------------------------------------------------------------

CORE = "Org.OData.Core.V1"
CAPABILITIES = "Org.OData.Capabilities.V1"


def _vocabulary(namespace: str, body: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0"><edmx:DataServices>'
        f'<Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="{namespace}">{body}</Schema>'
        "</edmx:DataServices></edmx:Edmx>"
    )


def _record_term(name: str, *flags: str) -> str:
    props = "".join(f'<Property Name="{f}" Type="Edm.Boolean" Nullable="false" DefaultValue="true"/>' for f in flags)
    return f'<ComplexType Name="{name}Type">{props}</ComplexType><Term Name="{name}" Type="{CAPABILITIES}.{name}Type" AppliesTo="EntitySet"/>'


# The terms $metadata uses, as OASIS's vocabularies define them (names, types): served by the feed
# itself (``vocabularies/<namespace>.xml``, referenced relative to $metadata), because clients such
# as Olingo fetch every referenced document, and a BI server often reaches no host but ours.
VOCABULARIES: dict[str, str] = {
    CORE: _vocabulary(
        CORE,
        '<TypeDefinition Name="Tag" UnderlyingType="Edm.Boolean"/>'
        '<Term Name="Description" Type="Edm.String"/>',
    ),
    CAPABILITIES: _vocabulary(
        CAPABILITIES,
        '<Term Name="FilterFunctions" Type="Collection(Edm.String)" AppliesTo="EntityContainer EntitySet"/>'
        f'<Term Name="TopSupported" Type="{CORE}.Tag" Nullable="false" DefaultValue="true" AppliesTo="EntitySet"/>'
        f'<Term Name="SkipSupported" Type="{CORE}.Tag" Nullable="false" DefaultValue="true" AppliesTo="EntitySet"/>'
        + _record_term("FilterRestrictions", "Filterable", "RequiresFilter")
        + _record_term("SortRestrictions", "Sortable")
        + _record_term("CountRestrictions", "Countable")
        + _record_term("SelectSupport", "Supported")
        + _record_term("ExpandRestrictions", "Expandable")
        + _record_term("SearchRestrictions", "Searchable")
        + _record_term("InsertRestrictions", "Insertable")
        + _record_term("UpdateRestrictions", "Updatable")
        + _record_term("DeleteRestrictions", "Deletable"),
    ),
}


def _description(text: str) -> str:
    return f'<Annotation Term="{CORE}.Description" String={quoteattr(text)}/>'


def _capabilities(es: EntitySet) -> str:
    """What a client may ask of the set (Org.OData.Capabilities.V1), so a BI tool folds only
    the queries the service answers."""
    bool_ = lambda name, value: f'<PropertyValue Property="{name}" Bool="{"true" if value else "false"}"/>'  # noqa: E731
    record = lambda term, body: f'<Annotation Term="{CAPABILITIES}.{term}"><Record>{body}</Record></Annotation>'  # noqa: E731
    functions = "".join(f"<String>{f}</String>" for f in ("eq", "ne", "gt", "ge", "lt", "le", "and", "or", "not", "in", *FILTER_FUNCTIONS))
    return "".join((
        f'<Annotation Term="{CAPABILITIES}.FilterFunctions"><Collection>{functions}</Collection></Annotation>',
        record("FilterRestrictions", bool_("Filterable", True) + bool_("RequiresFilter", False)),
        record("SortRestrictions", bool_("Sortable", True)),
        record("CountRestrictions", bool_("Countable", True)),
        f'<Annotation Term="{CAPABILITIES}.TopSupported" Bool="true"/>',
        f'<Annotation Term="{CAPABILITIES}.SkipSupported" Bool="true"/>',
        record("SelectSupport", bool_("Supported", True)),
        record("ExpandRestrictions", bool_("Expandable", False)),
        record("SearchRestrictions", bool_("Searchable", False)),
        record("InsertRestrictions", bool_("Insertable", False)),
        record("UpdateRestrictions", bool_("Updatable", False)),
        record("DeleteRestrictions", bool_("Deletable", False)),
    ))


@lru_cache(maxsize=1)
def metadata_xml() -> str:
    types = []
    for es in ENTITY_SETS.values():
        props = "".join(
            f'<Property Name="{c}" Type="{edm_type(c)}" Nullable="{"true" if COLUMNS[c].nullable else "false"}">'
            f"{_description(COLUMNS[c].description)}</Property>"
            for c in es.columns
        )
        types.append(
            f'<EntityType Name="{es.entity_type}"><Key><PropertyRef Name="id"/></Key>{props}'
            f"{_description(es.description)}</EntityType>"
        )
    sets = "".join(
        f'<EntitySet Name="{es.name}" EntityType="{NAMESPACE}.{es.entity_type}">{_description(es.description)}{_capabilities(es)}</EntitySet>'
        for es in ENTITY_SETS.values()
    )
    references = "".join(
        f'<edmx:Reference Uri="vocabularies/{ns}.xml"><edmx:Include Namespace="{ns}"/></edmx:Reference>' for ns in VOCABULARIES
    )
    container_doc = _description(
        "Borgerblik's published survey tables (suppressed, from each round's latest release). "
        f"Method, bases and flags: the method document at {METHOD_PATH} on this service."
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">'
        + references
        + "<edmx:DataServices>"
        f'<Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="{escape(NAMESPACE)}">'
        + "".join(types)
        + f'<EntityContainer Name="Container">{sets}{container_doc}</EntityContainer>'
        "</Schema></edmx:DataServices></edmx:Edmx>"
    )


# -- parsing --------------------------------------------------------------------------------------

_lexer, _parser = ODataLexer(), ODataParser()


def _tokens(text: str, target: str) -> list:
    try:
        return [t for t in _lexer.tokenize(text) if t.type != "WS"]
    except query_errors.ODataException as exc:
        raise _bad(f"cannot read {target}: {exc}", target) from None


def _literal(node: q._Node, target: str):
    if isinstance(node, q.Null):
        return None
    if isinstance(node, q.Boolean):
        return node.val.lower() == "true"
    if isinstance(node, q.Integer):
        return int(node.val)
    if isinstance(node, q.Float):
        return float(node.val)
    if isinstance(node, (q.String, q.Date, q.Time)):
        return node.val
    if isinstance(node, q.DateTime):
        return _datetime(node.val, target)
    raise _not_implemented(f"literals of type {type(node).__name__} are not supported", target)


def _datetime(text: str, target: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _bad(f"not a date and time: {text!r}", target) from None


_KIND = {str: "string", int: "number", float: "number", bool: "boolean", datetime: "datetime"}


def _kind_of(value) -> str:
    return "null" if value is None else _KIND[type(value)]


@dataclass(frozen=True)
class _Expr:
    evaluate: Callable[[dict], object]
    kind: str  # string | number | boolean | datetime | null | list


_COMPARATORS = {q.Lt: operator.lt, q.LtE: operator.le, q.Gt: operator.gt, q.GtE: operator.ge}
_ARITHMETIC = {q.Add: operator.add, q.Sub: operator.sub, q.Mult: operator.mul, q.Mod: operator.mod}


class _Compiler(NodeVisitor):
    """A ``$filter`` AST -> a predicate over a row dict, type-checked against the columns.

    OData's null semantics: ``eq``/``ne`` compare null as a value; an ordering comparison, a
    string function or arithmetic with a null operand is null; ``not null`` is null; a row is
    kept only where the filter is true."""

    target = "$filter"

    def __init__(self, columns: tuple[str, ...]) -> None:
        self.columns = columns

    def generic_visit(self, node):
        raise _not_implemented(f"{type(node).__name__} is not supported in $filter", self.target)

    def visit_Identifier(self, node: q.Identifier) -> _Expr:
        name = node.name
        if node.namespace or name not in self.columns:
            raise _bad(f"unknown property {'.'.join((*node.namespace, name))!r}", self.target)
        kind = _KIND[COLUMNS[name].type]
        if kind == "datetime":
            return _Expr(lambda row: None if row[name] is None else _datetime(row[name], self.target), kind)
        return _Expr(lambda row: row[name], kind)

    def visit_Attribute(self, node: q.Attribute) -> _Expr:
        raise _bad("the entities have no navigation or complex properties", self.target)

    def _constant(self, node) -> _Expr:
        value = _literal(node, self.target)
        return _Expr(lambda row: value, _kind_of(value))

    visit_Null = visit_Boolean = visit_Integer = visit_Float = visit_String = visit_DateTime = _constant
    visit_Date = visit_Time = _constant

    def visit_List(self, node: q.List) -> _Expr:
        items = [self.visit(item) for item in node.val]
        return _Expr(lambda row: [item.evaluate(row) for item in items], "list")

    def _comparable(self, left: _Expr, right: _Expr, what: str) -> None:
        if "null" in (left.kind, right.kind) or left.kind == right.kind:
            return
        raise _bad(f"cannot compare a {left.kind} with a {right.kind} ({what})", self.target)

    def visit_Compare(self, node: q.Compare) -> _Expr:
        left = self.visit(node.left)
        what = type(node.comparator).__name__.lower()
        if isinstance(node.comparator, q.In):
            right = self.visit(node.right) if isinstance(node.right, q.List) else self.visit(q.List([node.right]))
            for item in node.right.val if isinstance(node.right, q.List) else [node.right]:
                self._comparable(left, self.visit(item), "in")
            return _Expr(lambda row: left.evaluate(row) in right.evaluate(row), "boolean")
        right = self.visit(node.right)
        self._comparable(left, right, what)
        if isinstance(node.comparator, q.Eq):
            return _Expr(lambda row: left.evaluate(row) == right.evaluate(row), "boolean")
        if isinstance(node.comparator, q.NotEq):
            return _Expr(lambda row: left.evaluate(row) != right.evaluate(row), "boolean")
        compare = _COMPARATORS[type(node.comparator)]

        def ordered(row):
            a, b = left.evaluate(row), right.evaluate(row)
            return None if a is None or b is None else compare(a, b)

        return _Expr(ordered, "boolean")

    def _boolean(self, node) -> _Expr:
        expr = self.visit(node)
        if expr.kind not in ("boolean", "null"):
            raise _bad(f"a {expr.kind} where a condition belongs", self.target)
        return expr

    def visit_BoolOp(self, node: q.BoolOp) -> _Expr:
        left, right = self._boolean(node.left), self._boolean(node.right)
        if isinstance(node.op, q.And):
            def both(row):
                a, b = left.evaluate(row), right.evaluate(row)
                return False if a is False or b is False else (None if a is None or b is None else True)

            return _Expr(both, "boolean")

        def either(row):
            a, b = left.evaluate(row), right.evaluate(row)
            return True if a is True or b is True else (None if a is None or b is None else False)

        return _Expr(either, "boolean")

    def visit_UnaryOp(self, node: q.UnaryOp) -> _Expr:
        if isinstance(node.op, q.Not):
            operand = self._boolean(node.operand)
            return _Expr(lambda row: None if (v := operand.evaluate(row)) is None else not v, "boolean")
        operand = self.visit(node.operand)
        if operand.kind not in ("number", "null"):
            raise _bad(f"cannot negate a {operand.kind}", self.target)
        return _Expr(lambda row: None if (v := operand.evaluate(row)) is None else -v, "number")

    def visit_BinOp(self, node: q.BinOp) -> _Expr:
        left, right = self.visit(node.left), self.visit(node.right)
        for side in (left, right):
            if side.kind not in ("number", "null"):
                raise _bad(f"arithmetic on a {side.kind}", self.target)
        if isinstance(node.op, q.Div):
            def divide(row):
                a, b = left.evaluate(row), right.evaluate(row)
                return None if a is None or b is None or b == 0 else a / b

            return _Expr(divide, "number")
        apply = _ARITHMETIC[type(node.op)]
        return _Expr(lambda row: None if (a := left.evaluate(row)) is None or (b := right.evaluate(row)) is None else apply(a, b), "number")

    def visit_Call(self, node: q.Call) -> _Expr:
        name = node.func.name
        if name not in FILTER_FUNCTIONS:
            raise _not_implemented(f"the function {name}() is not supported (supported: {', '.join(FILTER_FUNCTIONS)})", self.target)
        args = [self.visit(a) for a in node.args]
        for a in args:
            if a.kind not in ("string", "null"):
                raise _bad(f"{name}() takes strings, not a {a.kind}", self.target)
        if name in ("startswith", "endswith", "contains"):
            if len(args) != 2:
                raise _bad(f"{name}() takes two arguments", self.target)
            test = {"startswith": str.startswith, "endswith": str.endswith, "contains": str.__contains__}[name]
            first, second = args
            return _Expr(
                lambda row: None if (a := first.evaluate(row)) is None or (b := second.evaluate(row)) is None else test(a, b),
                "boolean",
            )
        if len(args) != 1:
            raise _bad(f"{name}() takes one argument", self.target)
        (only,) = args
        apply, kind = {"tolower": (str.lower, "string"), "toupper": (str.upper, "string"), "trim": (str.strip, "string"),
                       "length": (len, "number")}[name]
        return _Expr(lambda row: None if (v := only.evaluate(row)) is None else apply(v), kind)

    def visit_CollectionLambda(self, node) -> _Expr:
        raise _bad("the entities have no collections (any/all)", self.target)


@dataclass(frozen=True)
class Filter:
    predicate: Callable[[dict], bool]
    equalities: dict[str, object]  # property eq literal conditions joined by "and" at the top

    def __call__(self, row: dict) -> bool:
        return self.predicate(row) is True


def _equalities(node) -> dict[str, object]:
    if isinstance(node, q.BoolOp) and isinstance(node.op, q.And):
        return {**_equalities(node.left), **_equalities(node.right)}
    if isinstance(node, q.Compare) and isinstance(node.comparator, q.Eq):
        for a, b in ((node.left, node.right), (node.right, node.left)):
            if isinstance(a, q.Identifier) and isinstance(b, q._Literal) and not isinstance(b, q.List):
                return {a.name: _literal(b, "$filter")}
    return {}


def _one_item_lists(tokens) -> list:
    """OData writes a list of one as ``('0101')`` (ABNF ``listExpr``), which odata-query reads as
    a parenthesised expression and then refuses after ``in``; it takes the Python spelling
    ``('0101',)``. Give it that: after each ``in``, a parenthesis whose contents have no comma of
    their own gets one before it closes."""
    tokens = list(tokens)
    closing_commas: set[int] = set()
    for i, token in enumerate(tokens):
        if token.type != "IN":
            continue
        start = next((j for j in range(i + 1, len(tokens)) if tokens[j].type != "WS"), None)
        if start is None or tokens[start].type != "(":
            continue
        depth, has_comma = 0, False
        for j in range(start, len(tokens)):
            kind = tokens[j].type
            depth += (kind == "(") - (kind == ")")
            has_comma |= kind == "," and depth == 1
            if depth == 0:
                if not has_comma and j > start + 1:
                    closing_commas.add(j)
                break
    out = []
    for i, token in enumerate(tokens):
        if i in closing_commas:
            comma = copy.copy(token)  # the lexer's token class (sly's), at the parenthesis' place
            comma.type = comma.value = ","
            out.append(comma)
        out.append(token)
    return out


def parse_filter(text: str | None, columns: tuple[str, ...]) -> Filter:
    if not text or not text.strip():
        return Filter(lambda row: True, {})
    try:
        tree = _parser.parse(iter(_one_item_lists(_lexer.tokenize(text.strip()))))
    except query_errors.FunctionCallException as exc:
        raise _not_implemented(f"$filter: {exc}", "$filter") from None
    except query_errors.ODataException as exc:
        raise _bad(f"cannot parse $filter {text!r}: {exc}", "$filter") from None
    tree = _KommunekodeLiterals().visit(tree)
    expr = _Compiler(columns)._boolean(tree)
    return Filter(expr.evaluate, _equalities(tree))


class _KommunekodeLiterals(NodeTransformer):
    """A code compared with the kommunekode column, written with 4 digits ('0751'), is read as
    the stored 3 ('751'), in ``eq``/``ne`` and ``in`` lists alike."""

    def visit_Compare(self, node: q.Compare) -> q.Compare:
        node = self.generic_visit(node)
        sides = (node.left, node.right)
        if not any(isinstance(side, q.Identifier) and side.name == "kommunekode" and not side.namespace for side in sides):
            return node
        return q.Compare(node.comparator, *(self._stored(side) for side in sides))

    def _stored(self, node):
        if isinstance(node, q.String):
            return q.String(kommunekoder.stored(node.val))
        if isinstance(node, q.List):
            return q.List([self._stored(item) for item in node.val])
        return node


@dataclass(frozen=True)
class OrderKey:
    column: str
    descending: bool


def parse_orderby(text: str | None, columns: tuple[str, ...]) -> list[OrderKey]:
    """``a desc, b`` -> keys. Properties only (what BI tools sort by)."""
    if not text or not text.strip():
        return []
    keys: list[OrderKey] = []
    items: list[list] = [[]]
    for token in _tokens(text, "$orderby"):
        if token.type == ",":
            items.append([])
        else:
            items[-1].append(token)
    for item in items:
        if not item or item[0].type != "ODATA_IDENTIFIER" or len(item) > 2:
            raise _bad(f"cannot read $orderby {text!r}: each item is a property, then asc or desc", "$orderby")
        name = item[0].value
        if name.namespace or name.name not in columns:
            raise _bad(f"unknown property {name.name!r} in $orderby", "$orderby")
        direction = "asc"
        if len(item) == 2:
            word = item[1].value
            direction = word.name if isinstance(word, q.Identifier) else ""
            if direction not in ("asc", "desc"):
                raise _bad(f"$orderby: {name.name} is followed by {direction or item[1].value!r}, not asc or desc", "$orderby")
        keys.append(OrderKey(name.name, direction == "desc"))
    return keys


def sort_rows(rows: list[dict], keys: list[OrderKey]) -> list[dict]:
    """Stable, key by key (the last first); null sorts lowest (first ascending, last descending)."""
    for key in reversed(keys):
        present = [r for r in rows if r[key.column] is not None]
        absent = [r for r in rows if r[key.column] is None]
        present.sort(key=lambda r: r[key.column], reverse=key.descending)
        rows = present + absent if key.descending else absent + present
    return rows


def parse_select(text: str | None, columns: tuple[str, ...]) -> tuple[str, ...]:
    if not text or text.strip() == "*":
        return columns
    chosen: list[str] = []
    for part in text.split(","):
        name = part.strip()
        if name == "*":
            return columns
        if name not in columns:
            raise _bad(f"unknown property {name!r} in $select", "$select")
        if name not in chosen:
            chosen.append(name)
    return tuple(chosen)


def _non_negative(params: dict[str, str], option: str) -> int | None:
    if option not in params:
        return None
    text = params[option].strip()
    if not text.isdigit():
        raise _bad(f"{option} must be a non-negative integer, not {params[option]!r}", option)
    return int(text)


@dataclass(frozen=True)
class Query:
    filter: Filter
    orderby: list[OrderKey] = field(default_factory=list)
    select: tuple[str, ...] = ()
    top: int | None = None
    skip: int = 0
    count: bool = False


def check_options(params: dict[str, str]) -> None:
    """501 for every system query option the service does not implement, and for aliases; 406
    for a $format other than JSON."""
    for name in params:
        if name.startswith("@"):
            raise _not_implemented(f"parameter aliases ({name}) are not supported", name)
        if name.startswith("$") and name not in SUPPORTED_OPTIONS:
            raise _not_implemented(
                f"the query option {name} is not supported (supported: {', '.join(sorted(SUPPORTED_OPTIONS))})", name
            )
    fmt = params.get("$format")
    if fmt is not None and fmt.split(";")[0].strip().lower() not in ("json", "application/json"):
        # The option is served; a format it cannot give is Not Acceptable (OData 4.01 Protocol, 8.2.1).
        raise ODataError(406, f"$format={fmt}: only JSON is served", "$format", "NotAcceptable")


def parse_query(params: dict[str, str], es: EntitySet) -> Query:
    check_options(params)
    count = params.get("$count")
    if count is not None and count.lower() not in ("true", "false"):
        raise _bad(f"$count must be true or false, not {count!r}", "$count")
    return Query(
        filter=parse_filter(params.get("$filter"), es.columns),
        orderby=parse_orderby(params.get("$orderby"), es.columns),
        select=parse_select(params.get("$select"), es.columns),
        top=_non_negative(params, "$top"),
        skip=_non_negative(params, "$skip") or 0,
        count=count is not None and count.lower() == "true",
    )


def parse_key(text: str, es: EntitySet) -> str:
    """A key predicate (what is inside ``Set(...)``) -> the entity's ``id``: ``'id'``,
    ``id='id'``, or every key column by name (``round_id='2026-1',question='q1',...``)."""
    target = f"{es.name}({text})"
    tokens = _tokens(text, target)
    if len(tokens) == 1 and tokens[0].type == "STRING":
        return tokens[0].value.val
    named: dict[str, object] = {}
    for i in range(0, len(tokens), 4):
        group = tokens[i : i + 4]
        separator_ok = len(group) == 3 or (len(group) == 4 and group[3].type == ",")
        if len(group) < 3 or group[0].type != "ODATA_IDENTIFIER" or group[1].type != "=" or not separator_ok:
            raise _bad(f"cannot read the key {text!r}: give 'id' or name=value pairs", target)
        named[group[0].value.name] = _literal(group[2].value, target)
    if set(named) == {"id"} and isinstance(named["id"], str):
        return named["id"]
    if set(named) == set(es.key_columns):
        return KEY_SEPARATOR.join(str(named[c]) for c in es.key_columns)
    raise _bad(f"the key of {es.name} is id, or all of {', '.join(es.key_columns)}", target)


def next_link(base_url: str, params: dict[str, str], skip: int) -> str:
    query = {k: v for k, v in params.items() if k != "$skip"}
    query["$skip"] = str(skip)
    return f"{base_url}?{urlencode(query)}"
