"""Sandboxed Jinja2 templates for incident titles and descriptions.

Templates render on the ingest path, inside the single writer, so every render has a
budget on top of the sandbox (which only keeps templates away from Python's
internals): at most `_MAX_OUTPUT` characters of text, `_MAX_STEPS` steps (loop
iterations, calls and filters), no value built or handed to a filter or call of more
than `_MAX_VALUE` characters (or items; `_MAX_DIGITS` digits for a number), at most
`_MAX_VALUE` characters of ``{{ }}`` output in all (macros and blocks included), and
`_TIME_BUDGET_S` seconds, checked at every step and every output. An operation that
makes a value larger than its inputs (``'x' * n``, ``'%09d' % n``, `center`, `join`,
`replace`, ...) is checked before it runs, so a template never builds what it may
not keep. A render over budget stops there and gives no text; the caller falls back
(a title to the rule name) and notes why on the timeline. The time budget reads a
monotonic timer, not the clock, and needs no thread or signal.
"""

from __future__ import annotations

import functools
import inspect
import re
import string
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.runtime import Context, LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import generate_lorem_ipsum
from jinja2.visitor import NodeTransformer

_MAX_OUTPUT = 10_000  # characters a render may give
_MAX_STEPS = 10_000  # loop iterations, calls and filters in one render
_MAX_VALUE = 1_000_000  # characters (items) of any value, and of all `{{ }}` output together
_MAX_DIGITS = 10_000  # digits of a number
_TIME_BUDGET_S = 0.1

# What every rule template reads (docs/rules.md, "Templates"); `rules check` warns
# of any other name.
CONTEXT_NAMES = ("labels", "annotations", "group", "key", "rule")


class BudgetExceeded(Exception):
    """A render went over its budget (output, steps, value size or time)."""


class _Budget:
    """What one render (or one compilation, which folds constants) has left."""

    __slots__ = ("deadline", "output", "steps")

    def __init__(self) -> None:
        self.steps = _MAX_STEPS
        self.output = _MAX_VALUE
        self.deadline = time.perf_counter() + _TIME_BUDGET_S

    def step(self) -> None:
        self.steps -= 1
        if self.steps < 0:
            raise BudgetExceeded(f"more than {_MAX_STEPS} steps (loop iterations, calls, filters)")
        self.check_time()

    def emit(self, size: int) -> None:
        self.output -= size
        if self.output < 0:
            raise BudgetExceeded(f"produces more than {_MAX_VALUE} characters")
        self.check_time()

    def check_time(self) -> None:
        if time.perf_counter() > self.deadline:
            raise BudgetExceeded(f"takes longer than {_TIME_BUDGET_S * 1000:g} ms")


_ITEM = 4  # characters an item of a container takes at least as text: ", ", quotes
_BUDGET: ContextVar[_Budget | None] = ContextVar("itsmd_template_budget", default=None)


def _step() -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.step()


# --- sizes ------------------------------------------------------------------------------


def _size(value: object, limit: int = _MAX_VALUE) -> int:
    """About the characters `value` takes as text: a string's length, a number's digits,
    a container's items (`_ITEM` each, as in ``'a', ``) and their sizes. Counting stops
    once past `limit`, so that sizing costs at most `limit / _ITEM` steps whatever the
    value's shape."""
    if isinstance(value, str | bytes):
        return len(value)
    total = 0
    todo = [value]
    while todo and total <= limit:
        item = todo.pop()
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, int):
            total += item.bit_length() * 3 // 10 + 1
        elif isinstance(item, Mapping):
            total += 2 * _ITEM * len(item) + 1
            if total <= limit:
                todo.extend(item.keys())
                todo.extend(item.values())
        elif isinstance(item, Collection) and not isinstance(item, range):
            total += _ITEM * len(item) + 1
            if total <= limit:
                todo.extend(item)
        else:
            total += 1
    return total


def _check(size: int, what: str) -> None:
    if size > _MAX_VALUE:
        raise BudgetExceeded(f"{what} would be longer than {_MAX_VALUE} characters")


def _check_digits(digits: int, what: str) -> None:
    if digits > _MAX_DIGITS:
        raise BudgetExceeded(f"{what} would have more than {_MAX_DIGITS} digits")


def _int(value: object, default: int = 0) -> int:
    return value if isinstance(value, int) else default


def _width(value: object) -> int:
    """A width given as a number, or as the text it repeats (`indent`)."""
    return value if isinstance(value, int) else _size(value)


def _digits(number: int) -> int:
    return number.bit_length() * 3 // 10 + 1


_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+)?)?[hlL]?(.)", re.DOTALL)


def _arguments(values: object) -> list[object]:
    """The values a format string may insert: positional ones, or a mapping's."""
    if isinstance(values, Mapping):
        return list(values.values())
    return list(values) if isinstance(values, tuple | list) else [values]


def _printf_size(template: object, values: object) -> int:
    """An upper bound of ``template % values`` (and of the `format` filter)."""
    if not isinstance(template, str | bytes):
        return 0
    text = template if isinstance(template, str) else template.decode("latin-1")
    inserted = _arguments(values)
    widest = max((_size(v) for v in inserted), default=0)
    largest = max((abs(v) for v in inserted if isinstance(v, int)), default=0)
    total = len(text)
    for spec in _PRINTF.finditer(text):
        width, precision, _conversion = spec.groups()
        for part in (width, precision):
            total += largest if part == "*" else int(part) if part else 0
        total += widest
    return total


def _format_size(template: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    """An upper bound of ``template.format(...)`` (or `format_map`)."""
    inserted = [*args, *kwargs.values()]
    for value in list(inserted):
        if isinstance(value, Mapping):
            inserted.extend(value.values())
    widest = max((_size(v) for v in inserted), default=0)
    largest = max((abs(v) for v in inserted if isinstance(v, int)), default=0)
    total = 0
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError:  # str.format says what is wrong
        return 0
    for literal, name, spec, _conversion in fields:
        total += len(literal)
        if name is not None:
            total += widest + sum(int(n) for n in re.findall(r"\d+", spec or ""))
            if spec and "{" in spec:  # a width given as an argument
                total += largest
    return total


def _replace_size(text: object, old: object, new: object, count: object) -> int:
    if not isinstance(text, str | bytes) or type(old) is not type(text):
        return _size(text)
    times = len(text) + 1 if not old else text.count(old)  # type: ignore[arg-type]
    if isinstance(count, int) and count >= 0:
        times = min(times, count)
    return len(text) + times * _size(new)


def _join_size(items: object, separator: object) -> int:
    if not isinstance(items, list):
        return 0
    total = max(len(items) - 1, 0) * _size(separator)
    return total if total > _MAX_VALUE else total + _size(items)


def _sum_size(items: object, start: object) -> int:
    """Adding sequences copies the sum so far at each item: quadratic."""
    if not isinstance(items, list):
        return 0
    values = [start, *items]
    if all(isinstance(v, int | float) for v in values):
        return 0
    return len(values) * sum(_size(v) for v in values)


# Upper bounds of what builtin filters return, from their bound arguments (names as in
# their signatures), for those whose result can be much larger than their input.
_FILTER_SIZES: dict[str, Callable[[Mapping[str, Any]], int]] = {
    "batch": lambda a: _size(a["value"]) + _int(a["linecount"]) * (1 + _size(a["fill_with"])),
    "center": lambda a: max(_size(a["value"]), _int(a["width"])),
    "format": lambda a: _printf_size(a["value"], a["args"] or a["kwargs"]),
    "indent": lambda a: (
        _size(a["s"])
        + (str(a["s"]).count("\n") + 1 if isinstance(a["s"], str) else 1) * _width(a["width"])
    ),
    "join": lambda a: _join_size(a["value"], a["d"]),
    "replace": lambda a: _replace_size(a["s"], a["old"], a["new"], a["count"]),
    "slice": lambda a: _size(a["value"]) + _int(a["slices"]) * (1 + _size(a["fill_with"])),
    "sum": lambda a: _sum_size(a["iterable"], a["start"]),
    "tojson": lambda a: _size(a["value"]) * (2 + _width(a["indent"] or 0)),
    "urlize": lambda a: (
        2 * _size(a["value"])
        + (_size(a["value"]) // 4 + 1) * (64 + _size(a["target"] or "") + _size(a["rel"] or ""))
    ),
    "wordwrap": lambda a: (
        _size(a["s"])
        + (_size(a["s"]) // max(_int(a["width"], 79), 1) + 1) * _size(a["wrapstring"] or "\n")
    ),
}
_PASS_ARGS = frozenset({"context", "eval_ctx", "environment", "env"})
# Filters that read their input once: materialised first so that it can be sized.
_MATERIALISED = frozenset({"join", "sum"})


def _guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """The filter, counted as a step, refusing inputs and results over the value budget
    and, for those in `_FILTER_SIZES`, results that would be."""
    size_of = _FILTER_SIZES.get(name)
    signature = inspect.signature(func) if size_of is not None else None
    skip = 1 if hasattr(func, "jinja_pass_arg") else 0  # the context, environment, ...
    # Jinja adds the argument to some filters it makes async-capable without it being
    # in the signature (`slice`): bind the signature to what it names.
    named = signature is not None and next(iter(signature.parameters), "") in _PASS_ARGS
    bind_from = 0 if named else skip
    what = f"the result of filter {name!r}"

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _step()
        if name in _MATERIALISED and len(args) > skip and isinstance(args[skip], Iterable):
            args = (*args[:skip], list(args[skip]), *args[skip + 1 :])
        for value in (*args[skip:], *kwargs.values()):
            _check(_size(value), f"a value given to filter {name!r}")
        if size_of is not None and signature is not None:
            try:
                bound = signature.bind(*args[bind_from:], **kwargs)
            except TypeError:
                pass  # the filter says what is wrong
            else:
                bound.apply_defaults()
                _check(size_of(bound.arguments), what)
        result = func(*args, **kwargs)
        _check(_size(result), what)
        return result

    return guarded


# Upper bounds of what str (and bytes) methods return, from the string and the
# arguments, for those whose result can be much larger than the string.
_METHOD_SIZES: dict[str, Callable[[Any, tuple[Any, ...], Mapping[str, Any]], int]] = {
    "center": lambda s, a, k: max(len(s), _int(a[0] if a else None)),
    "ljust": lambda s, a, k: max(len(s), _int(a[0] if a else None)),
    "rjust": lambda s, a, k: max(len(s), _int(a[0] if a else None)),
    "zfill": lambda s, a, k: max(len(s), _int(a[0] if a else None)),
    "expandtabs": lambda s, a, k: (
        len(s)
        + s.count("\t" if isinstance(s, str) else b"\t")
        * max(_int(a[0] if a else k.get("tabsize"), 8), 0)
    ),
    "replace": lambda s, a, k: _replace_size(
        s,
        a[0] if len(a) > 0 else k.get("old"),
        a[1] if len(a) > 1 else k.get("new"),
        a[2] if len(a) > 2 else k.get("count", -1),
    ),
    "join": lambda s, a, k: _join_size(a[0] if a else None, s),
    "translate": lambda s, a, k: (
        len(s)
        * max(
            (_size(v) for v in (a[0].values() if a and isinstance(a[0], Mapping) else ())),
            default=1,
        )
    ),
    "format": lambda s, a, k: _format_size(s, a, k) if isinstance(s, str) else 0,
    "format_map": lambda s, a, k: _format_size(s, a, k) if isinstance(s, str) else 0,
}


def _lipsum_size(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    try:
        bound = inspect.signature(generate_lorem_ipsum).bind(*args, **kwargs)
    except TypeError:
        return 0
    bound.apply_defaults()
    return _int(bound.arguments["n"]) * _int(bound.arguments["max"]) * 12


# --- the environment --------------------------------------------------------------------


class _Environment(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with every operator, call and filter that can build a
    large value checked against the render's budget."""

    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*" and isinstance(left, int) and isinstance(right, int):
            _check_digits(_digits(left) + _digits(right), "a product")
        elif operator == "*" and isinstance(right, int):
            _check(_size(left) * right, "a repetition")
        elif operator == "*" and isinstance(left, int):
            _check(_size(right) * left, "a repetition")
        elif operator == "**" and isinstance(left, int) and isinstance(right, int):
            if right > 0 and abs(left) > 1:
                _check_digits(_digits(left) * right, "a power")
        elif operator == "+" and not isinstance(left, int | float):
            _check(_size(left) + _size(right), "a sum")
        elif operator == "%":
            _check(_printf_size(left, right), "a formatted string")
        return super().call_binop(context, operator, left, right)

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        _step()
        if isinstance(obj, LoopContext) and args:  # loop(children) of a recursive loop
            args = (_stepped(args[0]), *args[1:])
        target = getattr(obj, "__wrapped__", obj)  # the sandbox wraps str.format
        owner = getattr(target, "__self__", None)
        if isinstance(owner, str | bytes):
            method = getattr(target, "__name__", "")
            if method == "join" and args and isinstance(args[0], Iterable):
                args = (list(args[0]), *args[1:])
            size_of = _METHOD_SIZES.get(method)
            if size_of is not None:
                _check(size_of(owner, args, kwargs), f"the result of {method}()")
        elif obj is generate_lorem_ipsum:
            _check(_lipsum_size(args, kwargs), "lipsum()")
        for value in (*args, *kwargs.values()):
            _check(_size(value), "a value given to a call")
        result = super().call(context, obj, *args, **kwargs)
        _check(_size(result), "the result of a call")
        return result


def _stepped(items: Iterable[Any]) -> Iterator[Any]:
    """The items of a `for` loop, each counted as a step."""
    budget = _BUDGET.get()
    for item in items:
        if budget is not None:
            budget.step()
        yield item


def _text(value: Any) -> Any:
    """A part of a ``~`` concatenation (or the whole), sized before it becomes text."""
    _check(_size(value), "a concatenation")
    return value


def _finalize(value: Any) -> Any:
    """Every ``{{ }}`` output, sized before it becomes text: all the output of a
    render, inside macros and blocks too, counts against `_MAX_VALUE`."""
    size = len(value) if type(value) is str else _size(value)
    budget = _BUDGET.get()
    if budget is None:
        _check(size, "an output")
    else:
        budget.emit(size)
    return value


_LOOP_FILTER = "itsmd_budget_loop"
_TEXT_FILTER = "itsmd_budget_text"


def _filter(node: nodes.Node, name: str) -> nodes.Filter:
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


class _Metered(NodeTransformer):
    """Counts loop iterations as steps and sizes concatenations."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _filter(node.iter, _LOOP_FILTER)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        node.nodes = [_filter(part, _TEXT_FILTER) for part in node.nodes]
        return _filter(node, _TEXT_FILTER)


def _environment() -> _Environment:
    env = _Environment(autoescape=False, keep_trailing_newline=False, finalize=_finalize)
    env.filters = {name: _guard_filter(name, func) for name, func in env.filters.items()}
    env.filters[_LOOP_FILTER] = _stepped
    env.filters[_TEXT_FILTER] = _text
    return env


_ENV = _environment()


# --- templates --------------------------------------------------------------------------


def template_context(
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    rule: str,
    key: str,
    group: Mapping[str, str],
) -> dict[str, Any]:
    return {"labels": labels, "annotations": annotations, "group": group, "key": key, "rule": rule}


@dataclass(frozen=True, slots=True)
class Template:
    """A compiled template that remembers its source (for display and equality)."""

    source: str
    compiled: jinja2.Template = field(compare=False, repr=False)

    def __reduce__(self) -> tuple[Any, ...]:
        # Compiled again from the source where it is unpickled: Jinja's compiled code
        # does not pickle (the ingest process gets the rules this way).
        return compile_template, (self.source,)

    @property
    def is_static(self) -> bool:
        return "{" not in self.source

    def render(self, context: Mapping[str, Any]) -> tuple[str, str | None]:
        """The rendered text, and an error message when rendering failed.

        Rendering happens on the ingest path: a template that fails at run time must
        not drop the alert, so the caller gets a readable fallback and the reason. A
        template over its budget gives no text (the caller's fallback).
        """
        if self.is_static:
            return self.source, None
        token = _BUDGET.set(_Budget())
        try:
            text = self.compiled.render(**context)
        except BudgetExceeded as exc:
            return "", f"template {self.source!r} went over its budget: {exc}"
        except Exception as exc:  # noqa: BLE001 - any template failure is reported, not raised
            return f"<template error: {exc}>", f"template {self.source!r} failed: {exc}"
        finally:
            _BUDGET.reset(token)
        if len(text) > _MAX_OUTPUT:  # all it built was counted: at most _MAX_VALUE
            return "", (
                f"template {self.source!r} went over its budget: "
                f"renders more than {_MAX_OUTPUT} characters"
            )
        return text.strip(), None


@lru_cache(maxsize=4096)  # rules repeat templates (the defaults); compiling costs ~1 ms
def compile_template(source: str) -> Template:
    """Compile; a syntax error becomes ValueError naming the template line."""
    # Compiling folds constant expressions, running filters: under a budget too.
    token = _BUDGET.set(_Budget())
    try:
        tree = _ENV.parse(source)
        _Metered().visit(tree)
        tree.set_environment(_ENV)
        return Template(source, _ENV.from_string(tree))
    except jinja2.TemplateSyntaxError as exc:
        raise ValueError(
            f"template syntax error (template line {exc.lineno}): {exc.message}"
        ) from None
    finally:
        _BUDGET.reset(token)


def variables_used(template: Template) -> set[str]:
    """The names a template reads from its context (not its own `set` names), minus
    the environment's globals (`range`, `dict`, ...)."""
    from jinja2 import meta

    names: set[str] = meta.find_undeclared_variables(_ENV.parse(template.source))
    return names - set(_ENV.globals)
