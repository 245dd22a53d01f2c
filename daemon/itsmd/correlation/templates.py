"""Sandboxed Jinja2 templates for incident titles and descriptions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

_ENV = ImmutableSandboxedEnvironment(autoescape=False, keep_trailing_newline=False)
_MAX_RENDERED = 10_000


# What every rule template reads (docs/rules.md, "Templates"); `rules check` warns
# of any other name.
CONTEXT_NAMES = ("labels", "annotations", "group", "key", "rule")


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

    @property
    def is_static(self) -> bool:
        return "{" not in self.source

    def render(self, context: Mapping[str, Any]) -> tuple[str, str | None]:
        """The rendered text, and an error message when rendering failed.

        Rendering happens on the ingest path: a template that fails at run time must
        not drop the alert, so the caller gets a readable fallback and the reason.
        """
        if self.is_static:
            return self.source, None
        try:
            text = self.compiled.render(**context)
        except Exception as exc:  # noqa: BLE001 - any template failure is reported, not raised
            return f"<template error: {exc}>", f"template {self.source!r} failed: {exc}"
        return text.strip()[:_MAX_RENDERED], None


@lru_cache(maxsize=4096)  # rules repeat templates (the defaults); compiling costs ~1 ms
def compile_template(source: str) -> Template:
    """Compile; a syntax error becomes ValueError naming the template line."""
    try:
        return Template(source, _ENV.from_string(source))
    except jinja2.TemplateSyntaxError as exc:
        raise ValueError(
            f"template syntax error (template line {exc.lineno}): {exc.message}"
        ) from None


def variables_used(template: Template) -> set[str]:
    """The names a template reads from its context (not its own `set` names), minus
    the environment's globals (`range`, `dict`, ...)."""
    from jinja2 import meta

    names: set[str] = meta.find_undeclared_variables(_ENV.parse(template.source))
    return names - set(_ENV.globals)
