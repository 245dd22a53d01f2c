"""YAML with line numbers, and a collector of `file:line: message` findings.

Config and rule errors must point at the line (docs/rules.md): mappings and lists loaded
here remember the line of each key and item, and validators report every problem
they find instead of stopping at the first.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import yaml

from itsmd.durations import parse_duration

T = TypeVar("T")


class LocDict(dict[Any, Any]):
    """A mapping that knows the line of itself and of each key."""

    line: int = 0

    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[Any, int] = {}

    def line_of(self, key: Any) -> int:
        return self.lines.get(key, self.line)


class LocList(list[Any]):
    """A list that knows the line of itself and of each item."""

    line: int = 0

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[int] = []

    def line_of(self, index: int) -> int:
        return self.lines[index] if index < len(self.lines) else self.line


@dataclass(frozen=True, slots=True)
class Finding:
    file: str
    line: int
    message: str
    warning: bool = False

    def __str__(self) -> str:
        prefix = "warning: " if self.warning else ""
        return f"{self.file}:{self.line}: {prefix}{self.message}"


class LoadError(Exception):
    """Raised with every problem found, each `file:line: message`."""

    def __init__(self, findings: Iterable[Finding]) -> None:
        self.findings = tuple(findings)
        super().__init__("\n".join(str(p) for p in self.findings))


@dataclass
class Findings:
    """Collects findings of one file; `raise_if_any` raises them all at once."""

    file: str
    items: list[Finding] = field(default_factory=list)

    def error(self, line: int, path: str, message: str) -> None:
        where = f"{path}: " if path else ""
        self.items.append(Finding(self.file, line, where + message))

    def warn(self, line: int, path: str, message: str) -> None:
        where = f"{path}: " if path else ""
        self.items.append(Finding(self.file, line, where + message, warning=True))

    @property
    def errors(self) -> list[Finding]:
        return [p for p in self.items if not p.warning]

    def raise_if_any(self) -> None:
        """Raise every error at once, in the order of the file's lines."""
        if self.errors:
            raise LoadError(sorted(self.errors, key=lambda p: p.line))


class _Loader(yaml.SafeLoader):
    pass


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LocDict:
    own_count = sum(1 for key_node, _ in node.value if key_node.tag != _MERGE_TAG)
    loader.flatten_mapping(node)
    # flatten_mapping puts the entries merged in by `<<` first: the mapping's own keys
    # may override those (YAML merge semantics), but must not repeat one another.
    merged_count = len(node.value) - own_count
    own_keys: set[Any] = set()
    result = LocDict()
    result.line = node.start_mark.line + 1
    for index, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, Hashable):
            raise yaml.MarkedYAMLError(
                problem="a key must be a plain value, not a list or mapping",
                problem_mark=key_node.start_mark,
            )
        if index >= merged_count:
            if key in own_keys:
                raise yaml.MarkedYAMLError(
                    problem=f"duplicate key {key!r} (first on line {result.lines[key]})",
                    problem_mark=key_node.start_mark,
                )
            own_keys.add(key)
        result[key] = loader.construct_object(value_node, deep=True)
        result.lines[key] = line
    return result


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LocList:
    result = LocList()
    result.line = node.start_mark.line + 1
    for item in node.value:
        result.append(loader.construct_object(item, deep=True))
        result.lines.append(item.start_mark.line + 1)
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_yaml(text: str, filename: str) -> Any:
    """Parse one YAML document; syntax errors become a LoadError with the line."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        message = " ".join(part for part in (exc.context, exc.problem) if part)
        raise LoadError([Finding(filename, line, f"invalid YAML: {message}")]) from None
    except yaml.YAMLError as exc:
        raise LoadError([Finding(filename, 1, f"invalid YAML: {exc}")]) from None


# ---- field readers: each reports a problem and returns None when the value is bad


def line_of(container: Any, key: Any) -> int:
    if isinstance(container, LocDict | LocList):
        return container.line_of(key)
    return 0


def check_keys(
    findings: Findings,
    mapping: LocDict,
    allowed: Iterable[str],
    path: str,
    *,
    ignore: Iterable[str] = (),
) -> None:
    """Unknown keys are errors, with a did-you-mean hint; `ignore` are reported elsewhere."""
    allowed = list(allowed)
    ignore = set(ignore)
    for key in mapping:
        if key not in allowed and key not in ignore:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = (
                f" (did you mean {close[0]!r}?)" if close else f" (allowed: {', '.join(allowed)})"
            )
            findings.error(mapping.line_of(key), join(path, key), f"unknown key{hint}")


def join(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def expect_mapping(findings: Findings, value: Any, line: int, path: str) -> LocDict | None:
    if isinstance(value, LocDict):
        return value
    findings.error(line, path, f"expected a mapping, got {describe(value)}")
    return None


def expect_list(findings: Findings, value: Any, line: int, path: str) -> LocList | None:
    if isinstance(value, LocList):
        return value
    findings.error(line, path, f"expected a list, got {describe(value)}")
    return None


def get_str(findings: Findings, mapping: LocDict, key: str, path: str) -> str | None:
    value = mapping.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    findings.error(
        mapping.line_of(key), join(path, key), f"expected a string, got {describe(value)}"
    )
    return None


def get_bool(findings: Findings, mapping: LocDict, key: str, path: str, default: bool) -> bool:
    value = mapping.get(key, default)
    if isinstance(value, bool):
        return value
    findings.error(
        mapping.line_of(key), join(path, key), f"expected true or false, got {describe(value)}"
    )
    return default


def get_duration(
    findings: Findings, mapping: LocDict, key: str, path: str, default: timedelta
) -> timedelta:
    return convert(findings, mapping, key, path, default, parse_duration)


def convert(
    findings: Findings,
    mapping: LocDict,
    key: str,
    path: str,
    default: T,
    parse: Callable[[str], T],
) -> T:
    """Read `key` as a string and convert it, reporting the parser's message."""
    if key not in mapping:
        return default
    raw = mapping[key]
    if raw is None or isinstance(raw, LocDict | LocList):
        findings.error(
            mapping.line_of(key), join(path, key), f"expected a value, got {describe(raw)}"
        )
        return default
    try:
        return parse(str(raw))
    except ValueError as exc:
        findings.error(mapping.line_of(key), join(path, key), str(exc))
        return default


def get_str_list(findings: Findings, mapping: LocDict, key: str, path: str) -> list[str]:
    value = mapping.get(key)
    if value is None:
        return []
    items = expect_list(findings, value, mapping.line_of(key), join(path, key))
    if items is None:
        return []
    out = []
    for index, item in enumerate(items):
        if isinstance(item, str):
            out.append(item)
        else:
            findings.error(
                items.line_of(index),
                join(join(path, key), index),
                f"expected a string, got {describe(item)}",
            )
    return out


def describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, LocDict):
        return "a mapping"
    if isinstance(value, LocList):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def each_mapping(
    findings: Findings,
    m: LocDict,
    key: str,
    path: str,
    parse: Callable[[Findings, LocDict, str], T | None],
) -> list[T]:
    """Parse every mapping of the list under `key`; items that fail are left out
    (their findings are reported)."""
    out = []
    items = expect_list(findings, m.get(key, LocList()), m.line_of(key), join(path, key))
    for index, item in enumerate(items or []):
        where = join(join(path, key), index)
        mapping = expect_mapping(findings, item, items.line_of(index) if items else 0, where)
        parsed = parse(findings, mapping, where) if mapping is not None else None
        if parsed is not None:
            out.append(parsed)
    return out
