"""Warnings about rules that load but cannot do what their author meant.

`itsmd rules check` prints them after the errors: a rule that an earlier rule
always takes the alerts of, a selector that no label set can satisfy, and a
template that reads a variable the context does not have.
"""

from __future__ import annotations

from collections.abc import Iterator

from itsmd.correlation.matchers import Matcher, MatchOp, Selector
from itsmd.correlation.rules import IncidentRule, RuleSet
from itsmd.correlation.templates import CONTEXT_NAMES, Template, variables_used
from itsmd.yamlsource import Finding


def lint(rules: RuleSet) -> list[Finding]:
    warnings: list[Finding] = []
    seen: list[IncidentRule] = []
    for rule in rules.incident_rules:
        where = f"incidents: rule {rule.name}"
        for selector in rule.match:
            why = impossible(selector)
            if why is not None:
                warnings.append(_warn(rule, f"{where}: {selector} can never match: {why}"))
        shadow = next((earlier for earlier in seen if covers(earlier, rule)), None)
        if shadow is not None:
            warnings.append(
                _warn(
                    rule,
                    (
                        f"{where} is never used: rule {shadow.name} ({shadow.file}:{shadow.line}) "
                        "comes first and matches every alert it matches"
                    ),
                )
            )
        for field, template in _templates(rule):
            unknown = sorted(variables_used(template) - set(CONTEXT_NAMES))
            if unknown:
                warnings.append(
                    _warn(
                        rule,
                        (
                            f"{where}: {field} uses {', '.join(unknown)}, which templates "
                            f"do not have (they have {', '.join(CONTEXT_NAMES)})"
                        ),
                    )
                )
        seen.append(rule)
    for known in rules.known_errors:
        unknown = sorted(variables_used(known.workaround) - set(CONTEXT_NAMES))
        if unknown:
            warnings.append(
                Finding(
                    known.file,
                    known.line,
                    (
                        f"known_errors: {known.name}: workaround uses {', '.join(unknown)}, which "
                        f"templates do not have (they have {', '.join(CONTEXT_NAMES)})"
                    ),
                    warning=True,
                )
            )
    return warnings


def _warn(rule: IncidentRule, message: str) -> Finding:
    return Finding(rule.file, rule.line, message, warning=True)


def _templates(rule: IncidentRule) -> Iterator[tuple[str, Template]]:
    for field in ("title", "description", "assignee", "impact", "urgency"):
        value = getattr(rule, field)
        if isinstance(value, Template):
            yield field, value


def covers(earlier: IncidentRule, later: IncidentRule) -> bool:
    """Whether `earlier` surely matches every alert `later` matches (first match wins,
    so `later` never sees one). Sound, not complete: it may miss a cover."""
    return all(any(implies(b, a) for a in earlier.match) for b in later.match)


def implies(narrow: Selector, wide: Selector) -> bool:
    """Every label set `narrow` matches, `wide` matches: each matcher of `wide` follows
    from one of `narrow`'s."""
    return all(any(_follows(m, n) for n in narrow.matchers) for m in wide.matchers)


def _follows(m: Matcher, n: Matcher) -> bool:
    if m.name != n.name:
        return False
    if n.op is MatchOp.EQ:  # the value is known: check m on it
        return m.matches({n.name: n.value})
    return (m.op, m.value) == (n.op, n.value)


def impossible(selector: Selector) -> str | None:
    """Why no label set satisfies the selector, when two matchers on one label
    contradict (an equality against another matcher of the same label)."""
    for n in selector.matchers:
        if n.op is not MatchOp.EQ:
            continue
        for m in selector.matchers:
            if m is not n and m.name == n.name and not m.matches({n.name: n.value}):
                return f"{n} and {m} contradict"
    return None
