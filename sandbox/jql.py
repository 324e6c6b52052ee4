"""The JQL subset the sandbox understands: clauses joined by AND, and an optional ORDER BY.

Supported: ``field = v``, ``field != v``, ``field in (a, b)``, ``field not in (a, b)``,
``field is [not] EMPTY``, ``summary ~ "text"`` (case-insensitive substring; an inner ``\\"...\\"``
phrase is unquoted), functions such as ``openSprints()``. Anything else raises :class:`JqlError`,
answered 400 with ``errorMessages`` like Jira.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

FIELDS: dict[str, str] = {
    "project": "project",
    "key": "key",
    "issuekey": "key",
    "id": "key",
    "labels": "labels",
    "label": "labels",
    "component": "component",
    "sprint": "sprint",
    "cf[10020]": "sprint",
    "status": "status",
    "statuscategory": "statuscategory",
    "summary": "summary",
    "description": "description",
    "text": "text",
    "priority": "priority",
    "resolution": "resolution",
    "issuetype": "issuetype",
    "type": "issuetype",
    "created": "created",
    "updated": "updated",
}
TEXT_FIELDS = frozenset({"summary", "description", "text"})
DATE_FIELDS = frozenset({"created", "updated"})
COMPARISONS = (">=", ">", "<=", "<")
# Jira reads dates in the searching user's time zone; the sandbox's users all live here.
USER_TIME_ZONE = ZoneInfo("Europe/Copenhagen")
ORDER_FIELDS = frozenset({"created", "updated", "key", "priority", "status", "summary"})

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*')
      | (?P<op>!=|!~|>=|<=|=|~|>|<)
      | (?P<punct>[(),])
      | (?P<word>[^\s"'(),=!~<>]+)
    )""",
    re.VERBOSE,
)


class JqlError(ValueError):
    """A query Jira would answer with 400."""


@dataclass(frozen=True)
class Token:
    kind: str
    text: str


@dataclass(frozen=True)
class Value:
    text: str
    function: bool = False


@dataclass(frozen=True)
class Clause:
    field: str
    op: str
    """``=``, ``!=``, ``~``, ``!~``, ``in``, ``not in``, ``is``, ``is not``."""
    values: tuple[Value, ...]


@dataclass(frozen=True)
class Query:
    clauses: tuple[Clause, ...]
    order: tuple[tuple[str, bool], ...]
    """``(field, descending)`` pairs."""


def _unquote(raw: str) -> str:
    body = raw[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


def tokenize(jql: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    text = jql.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise JqlError(f"Error in the JQL Query: The character '{text[pos]}' is a reserved JQL character.")
        kind = match.lastgroup or ""
        value = match.group(kind)
        tokens.append(Token(kind, _unquote(value) if kind == "string" else value))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def next(self, what: str) -> Token:
        token = self.peek()
        if token is None:
            raise JqlError(f"Error in the JQL Query: Expecting {what} but reached the end of the query.")
        self.pos += 1
        return token

    def keyword(self, *words: str) -> bool:
        token = self.peek()
        if token and token.kind == "word" and token.text.lower() in words:
            self.pos += 1
            return True
        return False

    def value(self) -> Value:
        token = self.next("a value")
        if token.kind not in ("word", "string"):
            raise JqlError(f"Error in the JQL Query: Expecting a value but got '{token.text}'.")
        following = self.peek()
        if token.kind == "word" and following and following.text == "(":
            self.pos += 1
            closing = self.next("')'")
            if closing.text != ")":
                raise JqlError("Error in the JQL Query: the sandbox supports only functions without arguments.")
            return Value(token.text.lower(), function=True)
        return Value(token.text)

    def clause(self) -> Clause:
        token = self.next("a field name")
        if token.kind == "punct" and token.text == "(":
            raise JqlError("Error in the JQL Query: parentheses are not supported by the sandbox's JQL subset.")
        if token.kind == "word" and token.text.lower() in ("not", "or", "and"):
            raise JqlError(f"Error in the JQL Query: '{token.text}' is not supported here by the sandbox.")
        name = token.text.lower()
        field = FIELDS.get(name)
        if field is None:
            raise JqlError(f"Field '{token.text}' does not exist or you do not have permission to view it.")
        if self.keyword("in"):
            return Clause(field, "in", self.value_list())
        if self.keyword("not"):
            if not self.keyword("in"):
                raise JqlError("Error in the JQL Query: Expecting 'in' after 'not'.")
            return Clause(field, "not in", self.value_list())
        if self.keyword("is"):
            negate = self.keyword("not")
            if not self.keyword("empty", "null"):
                raise JqlError("Error in the JQL Query: Expecting EMPTY or NULL after IS.")
            return Clause(field, "is not" if negate else "is", ())
        op = self.next("an operator")
        if op.kind == "op" and op.text in COMPARISONS and field in DATE_FIELDS:
            value = self.value()
            parse_date(value.text)  # refuse a malformed date now, as Jira does
            return Clause(field, op.text, (value,))
        if op.kind != "op" or op.text not in ("=", "!=", "~", "!~"):
            raise JqlError(
                f"Error in the JQL Query: The operator '{op.text}' is not supported by the sandbox "
                f"for the '{token.text}' field."
            )
        if op.text in ("~", "!~") and field not in TEXT_FIELDS:
            raise JqlError(f"The operator '{op.text}' is not supported by the '{token.text}' field.")
        if op.text in ("=", "!=") and field in TEXT_FIELDS:
            raise JqlError(f"The operator '{op.text}' is not supported by the '{token.text}' field.")
        return Clause(field, op.text, (self.value(),))

    def value_list(self) -> tuple[Value, ...]:
        token = self.peek()
        if token is not None and token.kind == "word":
            function = self.value()
            if function.function:
                return (function,)
            raise JqlError("Error in the JQL Query: Expecting '(' or a function after IN.")
        opening = self.next("'('")
        if opening.text != "(":
            raise JqlError("Error in the JQL Query: Expecting '(' after IN.")
        values = [self.value()]
        while True:
            token = self.next("')'")
            if token.text == ")":
                return tuple(values)
            if token.text != ",":
                raise JqlError(f"Error in the JQL Query: Expecting ',' or ')' but got '{token.text}'.")
            values.append(self.value())

    def order(self) -> tuple[tuple[str, bool], ...]:
        order: list[tuple[str, bool]] = []
        while True:
            token = self.next("a field name")
            name = token.text.lower()
            if name not in ORDER_FIELDS:
                raise JqlError(f"Error in the JQL Query: the sandbox cannot ORDER BY '{token.text}'.")
            descending = False
            if self.keyword("desc"):
                descending = True
            else:
                self.keyword("asc")
            order.append((name, descending))
            following = self.peek()
            if following is None:
                return tuple(order)
            if following.text != ",":
                raise JqlError(f"Error in the JQL Query: Expecting ',' but got '{following.text}'.")
            self.pos += 1

    def query(self) -> Query:
        clauses: list[Clause] = []
        order: tuple[tuple[str, bool], ...] = ()
        while self.peek() is not None:
            if self.keyword("order"):
                if not self.keyword("by"):
                    raise JqlError("Error in the JQL Query: Expecting 'by' after 'order'.")
                order = self.order()
                break
            if clauses:
                token = self.next("AND")
                if token.kind != "word" or token.text.lower() != "and":
                    raise JqlError(
                        f"Error in the JQL Query: Expecting AND or ORDER BY but got '{token.text}' "
                        "(the sandbox supports only AND)."
                    )
            clauses.append(self.clause())
        return Query(tuple(clauses), order)


def parse(jql: str) -> Query:
    """Parse ``jql`` or raise :class:`JqlError`."""
    return _Parser(tokenize(jql)).query()


def _phrase(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    return text.lower()


def parse_date(text: str) -> datetime:
    """``yyyy-MM-dd``, ``yyyy/MM/dd`` and either with ``HH:mm``, in the user's time zone."""
    for fmt in ("%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M", "%Y-%m-%d", "%Y/%m/%d"):
        try:
            return datetime.strptime(text.strip(), fmt).replace(tzinfo=USER_TIME_ZONE)
        except ValueError:
            continue
    raise JqlError(f"Date value '{text}' for field is invalid. Valid formats include: 'yyyy/MM/dd HH:mm'.")


def clause_matches(
    clause: Clause,
    facts: Mapping[str, list[str]],
    function: Callable[[str], list[str]],
) -> bool:
    """Whether an issue described by ``facts`` (lower-cased values per field) satisfies ``clause``."""
    have = facts.get(clause.field, [])
    if clause.op in COMPARISONS:
        if not have:
            return False
        when, limit = datetime.fromisoformat(have[0]), parse_date(clause.values[0].text)
        return {">=": when >= limit, ">": when > limit, "<=": when <= limit, "<": when < limit}[clause.op]
    if clause.op in ("~", "!~"):
        found = _phrase(clause.values[0].text) in " ".join(have)
        return found if clause.op == "~" else not found
    if clause.op == "is":
        return not have
    if clause.op == "is not":
        return bool(have)
    wanted: set[str] = set()
    for value in clause.values:
        if value.function:
            wanted.update(v.lower() for v in function(value.text))
        elif value.text.lower() in ("empty", "null"):
            if not have:
                return clause.op in ("=", "in")
        else:
            wanted.add(value.text.lower())
    hit = any(v in wanted for v in have)
    return hit if clause.op in ("=", "in") else not hit
