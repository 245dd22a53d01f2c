"""Tests for itsmd.correlation.templates: sandboxed Jinja2 titles and descriptions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from itsmd.correlation import templates
from itsmd.correlation.rules import load_rules, parse_rule_sections
from itsmd.correlation.templates import Template, compile_template
from itsmd.models import TimelineKind
from tests.unit.correlation.test_correlate import T0, Engine, alert

CONTEXT: dict[str, Any] = {
    "labels": {"alertname": "DiskFull", "service": "db", "env": "prod"},
    "annotations": {"summary": "disk  is full "},
    "rule": "disk",
    "key": 'disk{service="db"}',
    "group": {"service": "db"},
}


def render(source: str, context: dict[str, Any] | None = None) -> tuple[str, str | None]:
    return compile_template(source).render(CONTEXT if context is None else context)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("", ""),
        ("plain text", "plain text"),
        ("{{ labels.service }} failing in {{ labels.env }}", "db failing in prod"),
        ("{{ labels['alertname'] }}", "DiskFull"),
        ("{{ labels.missing }}", ""),  # a missing label renders as an empty string
        ("{{ labels.missing or labels.alertname }}", "DiskFull"),
        ("{{ annotations.summary }}", "disk  is full"),  # the result is stripped
        ("  {{ rule }}\n", "disk"),
        ("{{ key }}", 'disk{service="db"}'),
        ("{{ group.values() | join(', ') }}", "db"),
        ("{% if labels.env %}in {{ labels.env }}{% endif %}", "in prod"),
        ("{{ labels.service | upper }}", "DB"),
        ("{{ labels | length }}", "3"),
        ("<b>{{ '<i>' }}</b>", "<b><i></b>"),  # no HTML escaping: these are plain texts
    ],
)
def test_render(source: str, expected: str) -> None:
    assert render(source) == (expected, None)


def test_static_text_is_returned_as_is_without_rendering() -> None:
    template = compile_template("  no braces here  ")
    assert template.is_static
    assert template.render({}) == ("  no braces here  ", None)
    assert not compile_template("{{ rule }}").is_static


def test_output_up_to_the_budget_renders() -> None:
    assert render("{% for i in range(2500) %}abcd{% endfor %}") == ("abcd" * 2500, None)


def test_templates_compare_by_source() -> None:
    assert compile_template("{{ rule }}") == compile_template("{{ rule }}")
    assert compile_template("{{ rule }}") != compile_template("{{ key }}")
    assert "compiled" not in repr(compile_template("x"))


# --- the sandbox: escapes fail at render time with a message, never a crash or a leak


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ ().__class__.__base__.__subclasses__() }}",
        "{{ labels.__class__.__init__.__globals__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ joiner.__init__.__globals__ }}",
        "{{ lipsum.__globals__['os'].popen('id').read() }}",
        "{{ self.__init__.__globals__ }}",
        "{{ labels.pop('service') }}",  # the context is immutable
        "{{ labels.update({'service': 'x'}) }}",
        "{{ labels.clear() }}",
        "{% set _ = labels.__setitem__('service', 'x') %}",
        "{{ group.setdefault('x', 'y') }}",
    ],
)
def test_sandbox_escape_renders_an_error_message(source: str) -> None:
    labels = dict(CONTEXT["labels"])
    group = dict(CONTEXT["group"])
    text, error = render(source)
    assert error is not None
    assert "is unsafe" in error
    assert error.startswith(f"template {source!r} failed: ")
    assert text.startswith("<template error: ")
    assert "<class" not in text
    assert "subprocess" not in text
    assert CONTEXT["labels"] == labels  # nothing was changed
    assert CONTEXT["group"] == group


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__ }}",
        "{{ labels.__class__ }}",
        "{{ labels['__class__'] }}",
        "{{ labels | attr('__class__') }}",
        "{{ lipsum.__globals__ }}",
        "{{ '{0.__class__}'.format(labels) }}",
        "{{ '%s' % ''.__class__ }}",
    ],
)
def test_unsafe_attribute_alone_renders_as_nothing(source: str) -> None:
    text, _error = render(source)
    assert "class" not in text
    assert "function" not in text
    assert "module" not in text


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("{{ labels.missing.deeper }}", "has no attribute 'missing'"),
        ("{{ nothing_here.attr }}", "'nothing_here' is undefined"),
        ("{{ 1 / 0 }}", "division by zero"),
        ("{{ range(10 ** 9) | list }}", "Range too big"),
        ("{{ labels.service + 1 }}", "can only concatenate str"),
    ],
)
def test_runtime_failure_renders_an_error_message(source: str, reason: str) -> None:
    text, error = render(source)
    assert text.startswith("<template error: ")
    assert reason in text
    assert error is not None
    assert error.startswith(f"template {source!r} failed: ")
    assert reason in error


# --- syntax errors are found when the rule is loaded ---------------------------------------------


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            "{{ labels.service",
            "template syntax error (template line 1): unexpected end of template",
        ),
        ("{{ labels.service }", "template syntax error (template line 1): unexpected '}'"),
        ("{% if labels.env %}x", "template syntax error (template line 1): Unexpected end of"),
        ("{% for %}", "template syntax error (template line 1): "),
        ("{{ x | no_such_filter }}", "template syntax error (template line 1): No filter named"),
        ("{% endif %}", "template syntax error (template line 1): Encountered unknown tag"),
        ("line 1\nline 2\n{{ oops(", "template syntax error (template line 3): "),
    ],
)
def test_syntax_error_at_compile_time(source: str, message: str) -> None:
    with pytest.raises(ValueError, match=r"^template syntax error") as info:
        compile_template(source)
    assert str(info.value).startswith(message)


def test_compile_returns_a_template() -> None:
    template = compile_template("{{ rule }}")
    assert isinstance(template, Template)
    assert template.source == "{{ rule }}"


# --- the render budget: a hostile or runaway template stops, gives no text and says why


BIG = "y" * 500_000  # an annotation as large as a value may be, and more than any output
HOSTILE = [
    # loops and recursion: counted in steps
    (
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "more than 10000 steps (loop iterations, calls, filters)",
    ),
    (
        "{% for x in [1] recursive %}{{ loop(range(100000)) if loop.depth < 4 }}{% endfor %}",
        "more than 10000 steps",
    ),
    (
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
        "{{ f(40) }}",
        "more than 10000 steps",
    ),
    ("{{ range(100000) | map('string') | join }}", "more than 10000 steps"),
    # output, also where it is captured before it is given
    ("{% for i in range(5000) %}abc{% endfor %}", "renders more than 10000 characters"),
    ("{{ annotations.big }}", "renders more than 10000 characters"),
    (
        "{% set x %}{% for i in range(10) %}{{ annotations.big }}{% endfor %}{% endset %}"
        "{{ x | length }}",
        "produces more than 1000000 characters",
    ),
    # operators, calls and filters that would build a huge value refuse before they do
    ("{{ 'x' * 10 ** 9 }}", "a repetition would be longer than 1000000 characters"),
    ("{{ ('x' * 10 ** 9) | length }}", "a repetition would be longer than 1000000"),
    ("{{ [0] * 10 ** 9 }}", "a repetition would be longer than 1000000"),
    ("{{ 10 ** 100000 }}", "a power would have more than 10000 digits"),
    ("{% set a = 10 ** 4000 %}{{ a * a * a }}", "a product would have more than 10000 digits"),
    ("{{ '%0999999999d' % 1 }}", "a formatted string would be longer than 1000000"),
    ("{{ '%*d' % (999999999, 1) }}", "a formatted string would be longer"),
    ("{{ '%0999999999d' | format(1) }}", "the result of filter 'format' would be longer"),
    ("{{ '{:>999999999}'.format(1) }}", "the result of format() would be longer"),
    ("{{ '{:>{w}}'.format(1, w=999999999) }}", "the result of format() would be longer"),
    ("{{ '{0}{0}{0}'.format(annotations.big) }}", "the result of format() would be longer"),
    ("{{ 'x'.ljust(10 ** 9) }}", "the result of ljust() would be longer"),
    ("{{ ('\t' * 1000).expandtabs(10 ** 6) }}", "the result of expandtabs() would be longer"),
    ("{{ annotations.big.replace('y', annotations.big) }}", "the result of replace() would"),
    ("{{ 'x' | center(10 ** 9) }}", "the result of filter 'center' would be longer"),
    ("{{ 'a\nb' | indent(10 ** 9) }}", "the result of filter 'indent' would be longer"),
    ("{{ annotations.big | replace('', 'z') }}", "the result of filter 'replace' would be"),
    ("{{ range(100000) | join(annotations.big) }}", "the result of filter 'join' would be"),
    ("{{ [1] | batch(10 ** 9, 'x') | list }}", "the result of filter 'batch' would be"),
    ("{{ [1] | slice(10 ** 9) | list }}", "the result of filter 'slice' would be"),
    ("{{ lipsum(10 ** 6) }}", "lipsum() would be longer than 1000000 characters"),
    (
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}",
        "a concatenation would be longer than 1000000 characters",
    ),
    (
        "{% set ns = namespace(s=[1]) %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}"
        "{% endfor %}",
        "a sum would be longer than 1000000 characters",
    ),
    (
        "{% set b = annotations.big %}{{ [b, b, b] | upper }}",
        "a value given to filter 'upper' would be longer than 1000000 characters",
    ),
]


@pytest.mark.parametrize(("source", "reason"), HOSTILE)
def test_a_template_over_its_budget_stops_with_no_text(
    source: str, reason: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each limit here is a count; the time budget would cut a slow machine short first.
    monkeypatch.setattr(templates, "_TIME_BUDGET_S", 3600.0)
    text, error = render(source, CONTEXT | {"annotations": {"big": BIG}})
    assert text == ""
    assert error is not None
    assert error.startswith(f"template {source!r} went over its budget: ")
    assert reason in error


def test_a_template_over_its_time_budget_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    # A budget already spent: the first step, or the first piece of output, is too late.
    monkeypatch.setattr(templates, "_TIME_BUDGET_S", -1.0)
    for source in ("{{ rule }}", "{% for i in range(3) %}{% endfor %}", "{{ key | upper }}"):
        assert render(source) == (
            "",
            f"template {source!r} went over its budget: takes longer than -1000 ms",
        )


def test_compiling_folds_no_huge_constant() -> None:
    # Jinja folds constant expressions when it compiles: these would be built then, not
    # refused when rendered.
    text, error = render("{{ 'x' | center(10 ** 9) }}")
    assert (text, "filter 'center'" in (error or "")) == ("", True)
    text, error = render("{{ '%0999999999d' % 1 }}")
    assert (text, "a formatted string" in (error or "")) == ("", True)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ annotations.big | truncate(8) }}", "yyyyy..."),  # a large value, a short result
        ("{{ annotations.big[:3] }}", "yyy"),
        ("{{ '%s on %s' | format(labels.alertname, labels.service) }}", "DiskFull on db"),
        ("{{ '%05d' | format(42) }} {{ '{:,}'.format(1234567) }}", "00042 1,234,567"),
        (
            "{% for k, v in labels | dictsort %}{{ k }}={{ v }} {% endfor %}",
            "alertname=DiskFull env=prod service=db",
        ),
        ("{% for k in group %}{{ loop.index }}/{{ loop.length }}{% endfor %}", "1/1"),
        (
            "{% for x in [1, [2, 3]] recursive %}{{ loop(x) if x is iterable else x }}{% endfor %}",
            "123",
        ),
        (
            "{{ labels.service ~ '-' ~ labels.env }} {{ (labels.env + '!') * 2 }}",
            "db-prod prod!prod!",
        ),
        ("{{ 2 ** 64 }} {{ 7 % 3 }}", "18446744073709551616 1"),
        ("{{ labels.service | upper | center(6) | replace(' ', '.') }}", "..DB.."),
        ("{{ labels | tojson }}", '{"alertname": "DiskFull", "env": "prod", "service": "db"}'),
        ("{% macro m(x) %}<{{ x }}>{% endmacro %}{{ m(rule) }}", "<disk>"),
        (
            "{{ [labels.env] | batch(2, '-') | list }} {{ [1, 2] | slice(2) | list }}",
            "[['prod', '-']] [[1], [2]]",
        ),
        ("{{ 'a b c'.split() | join('|') }} {{ rule.ljust(6, '_') }}", "a|b|c disk__"),
    ],
)
def test_ordinary_templates_stay_within_the_budget(source: str, expected: str) -> None:
    assert render(source, CONTEXT | {"annotations": {"big": BIG}}) == (expected, None)


# --- what a template over its budget does to an incident: the fallback, and the reason


LOOPS = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"


def test_an_incident_opens_with_the_rule_name_as_title_and_the_reason_on_its_timeline() -> None:
    rules = (
        "incidents:\n  - name: slow-title\n    match: '{}'\n"
        f"    title: '{LOOPS}'\n    description: '{LOOPS}'\n    assignee: '{LOOPS}'\n"
    )
    e = Engine(rules)
    inc = e.incident(e.send(alert(), T0))
    assert (inc.title, inc.description, inc.assignee) == ("slow-title", "", None)
    (opened,) = [t for t in e.ws.timeline if t.kind is TimelineKind.OPENED]
    for what in ("title", "description", "assignee"):
        assert f"; {what} template {LOOPS!r} went over its budget: more than 10000 steps" in (
            opened.message
        )


def test_a_workaround_over_its_budget_is_empty_and_the_timeline_says_why(tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(
        "incidents:\n  - name: any\n    match: '{}'\n"
        "known_errors:\n  - name: k\n    match: '{}'\n"
        "    workaround: \"{{ 'x' * 10 ** 9 }}\"\n"
    )
    e = Engine()
    e.ruleset = load_rules([path])
    inc = e.incident(e.send(alert(), T0))
    assert inc.known_error == ""
    (entry,) = [t for t in e.ws.timeline if t.kind is TimelineKind.KNOWN_ERROR]
    assert "workaround template" in entry.message
    assert "went over its budget: a repetition would be longer" in entry.message


def test_a_problem_title_over_its_budget_is_the_problem_rule_name() -> None:
    text = (
        "problems:\n  - name: flapping\n    match: '{}'\n    after: 2\n    within: 1d\n"
        f"    title: '{LOOPS}'\n"
    )
    (rule,) = parse_rule_sections(text, "r.yml").problems
    assert rule.title_for({"service": "db"}, {}) == "flapping"
