"""Notification routes (pure): which sinks an event goes to, and the config that says so."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from itsmd.config import parse_config
from itsmd.correlation.matchers import parse_selectors
from itsmd.notify.connector import EVENTS
from itsmd.notify.routes import Route, escalation_void, plan, route_labels
from itsmd.yamlsource import LoadError

AT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
INCIDENT = {
    "id": "INC-1",
    "priority": "P1",
    "service": "api",
    "status": "open",
    "rule": "r",
    "assignee": None,
    "labels": {"env": "prod", "service": "x"},
}


def route(
    name: str,
    match: str = "{}",
    *,
    to: str = "s",
    events: Any = EVENTS,
    cont: bool = False,
    after: timedelta | None = None,
) -> Route:
    return Route(
        name,
        parse_selectors(match),
        frozenset(events),
        tuple(to.split(",")),
        cont,
        after,
        "acknowledged" if after else None,
    )


def test_fields_win_over_labels_and_absent_fields_are_empty() -> None:
    assert route_labels(INCIDENT) == {
        "env": "prod",
        "service": "api",
        "priority": "P1",
        "status": "open",
        "rule": "r",
        "assignee": "",
    }


@pytest.mark.parametrize(
    ("routes", "event", "expected"),
    [
        pytest.param([route("a", to="x"), route("b", to="y")], "opened", ["a:x"], id="first-wins"),
        pytest.param(
            [route("a", to="x", cont=True), route("b", to="y")],
            "opened",
            ["a:x", "b:y"],
            id="continue",
        ),
        pytest.param(
            [route("a", '{priority="P2"}', to="x"), route("b", to="y")],
            "opened",
            ["b:y"],
            id="matcher-skips",
        ),
        pytest.param(
            [route("a", to="x", events=["resolved"]), route("b", to="y")],
            "opened",
            ["b:y"],
            id="event-list-skips",
        ),
        pytest.param(
            [route("a", to="x,y", cont=True), route("b", to="y")],
            "opened",
            ["a:x", "a:y"],
            id="a-sink-once",
        ),
        pytest.param(
            [route("a", '{env="prod", service="api"}', to="x")],
            "opened",
            ["a:x"],
            id="labels-and-fields",
        ),
        pytest.param([route("a", '{env="dev"}', to="x")], "opened", [], id="nothing"),
    ],
)
def test_plan_walks_routes_like_alertmanager(
    routes: list[Route], event: str, expected: list[str]
) -> None:
    assert [f"{d.route}:{d.sink}" for d in plan(routes, event, INCIDENT, AT)] == expected


def test_an_escalation_to_the_same_sink_is_a_second_later_delivery() -> None:
    routes = [
        route("now", to="mail", cont=True),
        route("later", to="mail", after=timedelta(minutes=15)),
    ]
    planned = plan(routes, "opened", INCIDENT, AT)
    assert [(d.route, d.due_at, d.unless) for d in planned] == [
        ("now", AT, None),
        ("later", AT + timedelta(minutes=15), "acknowledged"),
    ]


@pytest.mark.parametrize(
    ("unless", "doc", "void"),
    [
        ("acknowledged", {"status": "open", "acknowledged_at": None}, False),
        ("acknowledged", {"status": "acknowledged", "acknowledged_at": "t"}, True),
        ("acknowledged", {"status": "resolved", "acknowledged_at": None}, True),
        ("resolved", {"status": "acknowledged", "acknowledged_at": "t"}, False),
        ("resolved", {"status": "resolved", "acknowledged_at": None}, True),
        (None, {"status": "resolved"}, False),
    ],
)
def test_escalation_void(unless: str | None, doc: dict[str, Any], void: bool) -> None:
    assert escalation_void(unless, doc) is void


def errors(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(LoadError) as info:
        parse_config(text, "itsmd.yml", env or {})
    return [str(p) for p in info.value.findings]


def test_connector_and_route_problems_name_file_line_and_key() -> None:
    text = """\
connectors:
  sinks:
    hook: {type: webhook, url: "http://x", secret: inline, colour: red}
    pd: {type: pagerdoody}
    slack: {type: slack, url_env: UNSET, max_attempts: 0}
routes:
  - {name: a, to: [nope], events: [opened, exploded]}
  - {name: b, to: [hook], unless: acknowledged}
  - {name: a, to: hook, match: '{x=~"("}'}
"""
    assert errors(text) == [
        "itsmd.yml:3: connectors.sinks.hook.secret: secrets are never inline: "
        "use secret_env or secret_file",
        "itsmd.yml:3: connectors.sinks.hook.colour: unknown option",
        "itsmd.yml:4: connectors.sinks.pd.type: expected a sink type "
        "(email, jira, pagerduty, servicenow, slack, webhook)",
        "itsmd.yml:5: connectors.sinks.slack.max_attempts: expected a positive integer, got 0",
        "itsmd.yml:5: connectors.sinks.slack.url_env: environment variable UNSET is not set "
        "or empty",
        "itsmd.yml:7: routes[0].to: no sink 'nope' (hook, pd, slack)",
        "itsmd.yml:7: routes[0].events: unknown event 'exploded' (expected opened, "
        "acknowledged, resolved, reopened, assigned, commented, sla_breached, problem_opened, "
        "problem_resolved)",
        "itsmd.yml:8: routes[1].unless: needs `after`",
        "itsmd.yml:9: routes[2].match: invalid matcher: " + errors_of_regex(),
        "itsmd.yml:9: routes[2].name: route 'a' twice",
    ]


def errors_of_regex() -> str:
    try:
        parse_selectors('{x=~"("}')
    except ValueError as exc:
        return str(exc)
    raise AssertionError("the regex should not compile")


def test_a_valid_config_builds_routes_and_sink_policies() -> None:
    text = """\
connectors:
  prometheus: {url: "http://127.0.0.1:9090/", timeout: 3s, bearer_token_env: PROM}
  sinks:
    pd: {type: pagerduty, routing_key_env: PD, timeout: 5s, max_attempts: 3, concurrency: 2,
         backoff: 1s, max_backoff: 1m}
routes:
  - {name: page, match: '{priority=~"P1|P2"}', events: [opened], to: pd, continue: true}
  - {name: esc, after: 15m, unless: acknowledged, to: [pd]}
"""
    c = parse_config(text, "itsmd.yml", {"PD": "key", "PROM": "tok"}).connectors
    assert c.prometheus is not None
    assert (c.prometheus.url, c.prometheus.timeout_s) == ("http://127.0.0.1:9090", 3.0)
    assert c.prometheus.headers == {"Authorization": "Bearer tok"}
    pd = c.sinks["pd"]
    assert (
        pd.kind,
        pd.timeout_s,
        pd.max_attempts,
        pd.concurrency,
        pd.backoff_s,
        pd.max_backoff_s,
    ) == ("pagerduty", 5.0, 3, 2, 1.0, 60.0)
    page, esc = c.routes
    assert (page.to, page.events, page.continue_) == (("pd",), frozenset({"opened"}), True)
    assert (esc.after, esc.unless, esc.events) == (
        timedelta(minutes=15),
        "acknowledged",
        frozenset(EVENTS),
    )
