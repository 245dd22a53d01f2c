"""Tests for itsmd.correlation.templates: sandboxed Jinja2 titles and descriptions."""

from __future__ import annotations

from typing import Any

import pytest

from itsmd.correlation.templates import Template, compile_template

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


def test_rendered_text_is_capped() -> None:
    text, error = render("{% for i in range(5000) %}abc{% endfor %}")
    assert error is None
    assert text == "abc" * 3333 + "a"


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
