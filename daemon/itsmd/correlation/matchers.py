"""Prometheus/Alertmanager label-matcher selectors: parse, format, match.

Syntax: an optional bare alert name, then ``{name OP "value", ...}`` where OP is
``=``, ``!=``, ``=~`` or ``!~``. Values are double- or single-quoted with Go escapes,
or backtick-quoted raw. Semantics follow Prometheus: a missing label reads as "",
regexes are fully anchored and ``.`` matches newlines (Prometheus 3 / RE2 ``(?s)``).
Regex syntax is Python's ``re``, which agrees with RE2 on the common subset.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NoReturn

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_ALERT_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")  # metric-name charset, as amtool
_WHITESPACE = " \t\r\n"
_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
    "'": "'",
}
_HEX_ESCAPE_DIGITS = {"x": 2, "u": 4, "U": 8}
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_OCTAL_DIGITS = frozenset("01234567")


class MatcherError(ValueError):
    """A selector or matcher that is invalid; ``position`` is the 0-based offset, if known."""

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message if position is None else f"position {position}: {message}")
        self.position = position


class MatchOp(StrEnum):
    EQ = "="
    NE = "!="
    RE = "=~"
    NRE = "!~"


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    op: MatchOp
    value: str
    # Compiled once here so that matching on the ingest path never compiles.
    _regex: re.Pattern[str] | None = field(
        default=None, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        if not _LABEL_NAME.fullmatch(self.name):
            raise MatcherError(f"invalid label name {self.name!r}")
        if self.op in (MatchOp.RE, MatchOp.NRE):
            object.__setattr__(self, "_regex", _compile(self.name, self.value))

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.name, "")
        match self.op:
            case MatchOp.EQ:
                return value == self.value
            case MatchOp.NE:
                return value != self.value
            case MatchOp.RE:
                return self._regex is not None and self._regex.fullmatch(value) is not None
            case MatchOp.NRE:
                return self._regex is not None and self._regex.fullmatch(value) is None

    def __str__(self) -> str:
        return f"{self.name}{self.op}{_quote(self.value)}"


@dataclass(frozen=True, slots=True)
class Selector:
    matchers: tuple[Matcher, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        """All matchers must hold; the empty selector ``{}`` matches every label set."""
        return all(m.matches(labels) for m in self.matchers)

    def __str__(self) -> str:
        return "{" + ", ".join(str(m) for m in self.matchers) + "}"

    def equality_constraints(self) -> dict[str, str]:
        """Label values every match must have: ``=`` matchers with a non-empty value.

        Meant for indexing rules by label value. If a name is constrained twice the
        last value wins; either is a sound index key, since both must hold.
        """
        return {m.name: m.value for m in self.matchers if m.op is MatchOp.EQ and m.value}


def parse_selector(text: str) -> Selector:
    """Parse one selector such as ``DiskFull{env!="dev", instance=~"db-.*"}``."""
    return _Parser(text).selector()


def parse_selectors(value: str | Sequence[str]) -> tuple[Selector, ...]:
    """Parse a ``match:`` value: one selector, or a non-empty list meaning any-of."""
    if isinstance(value, str):
        return (parse_selector(value),)
    if not value:
        raise MatcherError("empty list of selectors")
    selectors = []
    for index, text in enumerate(value):
        try:
            selectors.append(parse_selector(text))
        except MatcherError as err:
            wrapped = MatcherError(f"selector {index}: {err}")
            wrapped.position = err.position
            raise wrapped from None
    return tuple(selectors)


def matches_any(selectors: Sequence[Selector], labels: Mapping[str, str]) -> bool:
    """True if any selector matches; an empty sequence never matches."""
    return any(s.matches(labels) for s in selectors)


def _compile(name: str, pattern: str) -> re.Pattern[str]:
    # fullmatch rather than ^...$: Python's $ also matches before a final newline,
    # and a leading (?i) stays legal (it is not inside a group).
    with warnings.catch_warnings():
        # re warns on "[[" and set operators: RE2 reads [[:alpha:]] as a POSIX class,
        # Python as a different set, so refuse rather than match something else.
        warnings.simplefilter("error", FutureWarning)
        try:
            return re.compile(pattern, re.DOTALL)
        except (re.error, FutureWarning) as err:
            reason = err.msg if isinstance(err, re.error) else str(err)
            where = f" at offset {err.pos} of the regex" if isinstance(err, re.error) else ""
            raise MatcherError(
                f"invalid regex {pattern!r} for label {name!r}: {reason}{where}"
            ) from None


def _quote(value: str) -> str:
    """Double-quote with the Go escapes the parser reads back (Alertmanager's style)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


class _Parser:
    """Recursive descent over the text; ``pos`` is the next character to read."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, message: str, position: int | None = None) -> NoReturn:
        pos = self.pos if position is None else position
        raise MatcherError(f"{message}, got {self._excerpt(pos)}", pos)

    def _excerpt(self, pos: int) -> str:
        if pos >= len(self.text):
            return "end of input"
        snippet = self.text[pos : pos + 20].replace("\n", "\\n")
        return f"'{snippet}{'...' if len(self.text) > pos + 20 else ''}'"

    def skip_whitespace(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _WHITESPACE:
            self.pos += 1

    def eat(self, token: str) -> bool:
        if self.text.startswith(token, self.pos):
            self.pos += len(token)
            return True
        return False

    def selector(self) -> Selector:
        self.skip_whitespace()
        matchers: list[Matcher] = []
        if alert := _ALERT_NAME.match(self.text, self.pos):
            matchers.append(Matcher("alertname", MatchOp.EQ, alert.group()))
            self.pos = alert.end()
            self.skip_whitespace()
        if not self.eat("{"):
            self.fail(f"expected '{{' after name {alert.group()!r}" if alert else "expected '{'")
        self.skip_whitespace()
        while not self.eat("}"):
            matchers.append(self.matcher())
            self.skip_whitespace()
            if self.eat(","):
                self.skip_whitespace()
            elif not self.text.startswith("}", self.pos):
                self.fail(f"expected ',' or '}}' after matcher {str(matchers[-1])!r}")
        self.skip_whitespace()
        if self.pos < len(self.text):
            self.fail("unexpected text after '}'")
        return Selector(tuple(matchers))

    def matcher(self) -> Matcher:
        name = _LABEL_NAME.match(self.text, self.pos)
        if not name:
            self.fail("expected a label name or '}'")
        self.pos = name.end()
        self.skip_whitespace()
        # Longest operators first so that "=~" is not read as "=" then "~".
        op = next((op for op in ("=~", "!~", "!=", "=") if self.eat(op)), None)
        if op is None:
            self.fail(f"expected '=', '!=', '=~' or '!~' after label name {name.group()!r}")
        self.skip_whitespace()
        value_pos = self.pos
        value = self.quoted(f"{name.group()}{op}")
        try:
            return Matcher(name.group(), MatchOp(op), value)
        except MatcherError as err:
            raise MatcherError(str(err), value_pos) from None

    def quoted(self, before: str) -> str:
        start = self.pos
        quote = self.text[start : start + 1]
        if quote == "`":  # raw string, as in Go: no escapes, newlines allowed
            end = self.text.find("`", start + 1)
            if end < 0:
                self.fail("unterminated string", start)
            self.pos = end + 1
            return self.text[start + 1 : end]
        if quote not in ('"', "'"):
            self.fail(f"expected a quoted value after {before!r}")
        # Bytes, because Go's \x and octal escapes are bytes: "\xc3\xa9" is "é".
        out = bytearray()
        self.pos += 1
        while not self.eat(quote):
            char = self.text[self.pos : self.pos + 1]
            if char in ("", "\n"):  # Go forbids raw newlines in interpreted strings
                self.fail("unterminated string", start)
            if char == "\\":
                self.escape(out)
            else:
                out += char.encode("utf-8", "surrogatepass")
                self.pos += 1
        try:
            return out.decode("utf-8")
        except UnicodeDecodeError:
            self.fail("string is not valid UTF-8 after unescaping", start)

    def escape(self, out: bytearray) -> None:
        at = self.pos
        kind = self.text[at + 1 : at + 2]
        if kind in _SIMPLE_ESCAPES:
            out += _SIMPLE_ESCAPES[kind].encode()
            self.pos = at + 2
        elif kind in _HEX_ESCAPE_DIGITS:
            width = _HEX_ESCAPE_DIGITS[kind]
            digits = self.text[at + 2 : at + 2 + width]
            if len(digits) != width or not _HEX_DIGITS.issuperset(digits):
                self.fail(f"escape \\{kind} needs {width} hex digits", at)
            self.pos = at + 2 + width
            code = int(digits, 16)
            if kind == "x":
                out.append(code)
            elif code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                self.fail("escape is not a Unicode code point", at)
            else:
                out += chr(code).encode()
        elif kind in _OCTAL_DIGITS:
            digits = self.text[at + 1 : at + 4]
            if len(digits) != 3 or not _OCTAL_DIGITS.issuperset(digits) or int(digits, 8) > 255:
                self.fail("octal escape needs 3 digits, at most \\377", at)
            out.append(int(digits, 8))
            self.pos = at + 4
        else:
            self.fail("unknown escape sequence", at)
