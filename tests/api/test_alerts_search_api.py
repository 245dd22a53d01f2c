"""GET /api/v1/alerts and /api/v1/alerts/{fingerprint} (docs/api.md, Searching alerts):
matchers with Prometheus semantics, states, since, cursor paging, episodes, errors.
Alerts go in through the real webhook; the store is SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Connection

from itsmd.config import Role, Token
from itsmd.correlation.matchers import Matcher, MatchOp, parse_selector
from itsmd.models import StoredAlert
from itsmd.store import alertsearch
from itsmd.store.alertsearch import AlertQuery, AlertState
from tests.api.api_support import T0, ApiClient, MakeClient, alert, resolved, rfc3339

ALERTS = "/api/v1/alerts"
# Alerts with a service open an incident per service; the others match no rule.
RULES = """\
incidents:
  - name: by-service
    match: '{service=~".+"}'
    group_by: [service]
"""
WINDOW = {
    "name": "db-work",
    "match": '{service="db"}',
    "start": rfc3339(T0 - timedelta(hours=1)),
    "end": rfc3339(T0 + timedelta(hours=1)),
    "change": "CHG-7",
}


async def _search(client: ApiClient, *params: tuple[str, str]) -> list[dict[str, Any]]:
    """Every alert the search finds, following `next` to the end."""
    found: list[dict[str, Any]] = []
    query = [*params, ("limit", "500")]
    while True:
        page = await client.get_json(ALERTS, query)
        found += page["alerts"]
        if page["next"] is None:
            return found
        query = [*params, ("limit", "500"), ("cursor", page["next"])]


def _pods(found: list[dict[str, Any]]) -> list[str]:
    return [a["labels"].get("pod", "-") for a in found]


async def _error(client: ApiClient, status: int, path: str, params: Any = None) -> str:
    resp = await client.get(path, params=params)
    body = await resp.json()
    assert resp.status == status, body
    assert set(body) == {"error", "detail"}
    error: str = body["error"]
    return error


@pytest.fixture
async def client(make_client: MakeClient) -> ApiClient:
    """Five alerts, oldest first: web-7 and web-8 firing in INC-1, db-1 suppressed by a
    maintenance window, web-9 unrouted (no service), api-1 fired and resolved (INC-3)."""
    api = await make_client(RULES)
    resp = await api.post("/api/v1/maintenance", json=WINDOW)
    assert resp.status == 201, await resp.text()
    await api.webhook(alert("HighLatency", service="web", pod="web-7", severity="critical"))
    await api.webhook(alert("HighLatency", service="web", pod="web-8", severity="warning"))
    await api.webhook(alert("DiskFull", service="db", pod="db-1", severity="critical"))
    await api.webhook(alert("Lost", pod="web-9", severity="info"))
    cpu = alert("CpuHigh", service="api", pod="api-1", severity="critical")
    await api.webhook(cpu)
    await api.webhook(resolved(cpu, T0 + timedelta(minutes=1)))
    return api


MATCHES: list[tuple[list[str], list[str]]] = [
    ([], ["api-1", "web-9", "db-1", "web-8", "web-7"]),
    (['pod="web-7"'], ["web-7"]),  # one matcher, as Alertmanager's API v2 takes it
    (['{pod="web-7"}'], ["web-7"]),
    (['{pod=~"web-.*"}'], ["web-9", "web-8", "web-7"]),
    (['pod=~"web-[78]"'], ["web-8", "web-7"]),
    (['{pod=~"web"}'], []),  # regexes are anchored at both ends
    (['{pod!~"web-.*"}'], ["api-1", "db-1"]),
    (['{severity!="critical"}'], ["web-9", "web-8"]),
    (['{severity=~"crit.*|info"}'], ["api-1", "web-9", "db-1", "web-7"]),
    (['{service=""}'], ["web-9"]),  # a missing label reads as ""
    (['{service!=""}'], ["api-1", "db-1", "web-8", "web-7"]),
    (['{service=~".*"}'], ["api-1", "web-9", "db-1", "web-8", "web-7"]),
    (['{service=~".+"}'], ["api-1", "db-1", "web-8", "web-7"]),
    (["DiskFull{}"], ["db-1"]),  # an alert name before the braces
    (['service="web"', 'severity="critical"'], ["web-7"]),  # every filter must hold
    (['{service="web", severity="critical"}'], ["web-7"]),
    (['service="web",severity="warning"'], ["web-8"]),  # matchers without braces
    (['{service="web"}', '{service="db"}'], []),
    (['{pod="WEB-7"}'], []),  # values are case-sensitive
    (['{nosuchlabel="x"}'], []),
    (["{}"], ["api-1", "web-9", "db-1", "web-8", "web-7"]),
]


@pytest.mark.parametrize(("filters", "pods"), MATCHES)
async def test_filters_match_as_prometheus_does(
    client: ApiClient, filters: list[str], pods: list[str]
) -> None:
    found = await _search(client, *[("filter", f) for f in filters])
    assert _pods(found) == pods


STATES: list[tuple[list[str], list[str]]] = [
    (["firing"], ["web-8", "web-7"]),
    (["resolved"], ["api-1"]),
    (["suppressed"], ["db-1"]),
    (["unrouted"], ["web-9"]),
    (["firing,resolved"], ["api-1", "web-8", "web-7"]),
    (["suppressed", "unrouted"], ["web-9", "db-1"]),  # repeated
    (["suppressed,unrouted", "firing"], ["web-9", "db-1", "web-8", "web-7"]),
    (["firing,resolved,suppressed,unrouted"], ["api-1", "web-9", "db-1", "web-8", "web-7"]),
]


@pytest.mark.parametrize(("states", "pods"), STATES)
async def test_states(client: ApiClient, states: list[str], pods: list[str]) -> None:
    found = await _search(client, *[("state", s) for s in states])
    assert _pods(found) == pods
    assert all(a["state"] in ",".join(states) for a in found)


async def test_each_alert_has_its_incident_decision_and_state(client: ApiClient) -> None:
    by_pod = {a["labels"]["pod"]: a for a in await _search(client)}
    assert by_pod["web-7"]["incident_id"] == by_pod["web-8"]["incident_id"] == "INC-1"
    assert by_pod["web-7"]["decision"]["action"] == "opened"
    assert by_pod["web-8"]["decision"]["action"] == "joined"
    assert by_pod["db-1"]["incident_id"] is None
    assert by_pod["db-1"]["decision"]["action"] == "suppressed"
    assert "db-work" in by_pod["db-1"]["decision"]["reason"]
    assert by_pod["web-9"]["incident_id"] is None
    assert by_pod["web-9"]["decision"]["action"] == "unrouted"
    assert by_pod["api-1"]["incident_id"] == "INC-2"
    assert by_pod["api-1"]["status"] == "resolved"
    assert [by_pod[p]["state"] for p in ("web-7", "db-1", "web-9", "api-1")] == [
        "firing",
        "suppressed",
        "unrouted",
        "resolved",
    ]


async def test_a_suppressed_alert_released_when_its_window_ends_is_firing(
    client: ApiClient,
) -> None:
    resp = await client.post("/api/v1/maintenance/db-work/end", json={})
    assert resp.status == 200, await resp.text()
    client.clock.advance(timedelta(seconds=2))
    await client.sweep()
    (db,) = await _search(client, ("filter", 'pod="db-1"'))
    assert db["state"] == "firing"
    assert db["incident_id"] is not None
    assert await _search(client, ("state", "suppressed")) == []


async def test_filters_and_states_combine(client: ApiClient) -> None:
    found = await _search(client, ("filter", '{severity="critical"}'), ("state", "firing"))
    assert _pods(found) == ["web-7"]


async def test_since_is_the_last_time_an_alert_was_received(client: ApiClient) -> None:
    client.clock.advance(timedelta(minutes=30))
    await client.webhook(alert("HighLatency", service="web", pod="web-7", severity="critical"))
    await client.webhook(alert("New", service="web", pod="web-10"))
    assert _pods(await _search(client, ("since", "5m"))) == ["web-10", "web-7"]
    assert _pods(await _search(client, ("since", rfc3339(T0 + timedelta(minutes=30))))) == [
        "web-10",
        "web-7",
    ]
    assert len(await _search(client, ("since", rfc3339(T0)))) == 6
    assert _pods(await _search(client, ("since", "5m"), ("filter", 'pod!="web-7"'))) == ["web-10"]


@pytest.mark.parametrize("filters", [[], ['{pod=~"p-.*[02468]"}'], ['{group="even"}']])
async def test_cursor_paging_has_no_duplicates_or_gaps(
    make_client: MakeClient, filters: list[str]
) -> None:
    client = await make_client(RULES)
    for n in range(11):
        group = "even" if n % 2 == 0 else "odd"
        await client.webhook(alert("Busy", service=f"s{n % 3}", pod=f"p-{n}", group=group))
    expected = [f"p-{n}" for n in range(10, -1, -1) if not filters or n % 2 == 0]
    seen: list[str] = []
    params = [("filter", f) for f in filters] + [("limit", "2")]
    page = await client.get_json(ALERTS, params)
    while True:
        assert len(page["alerts"]) <= 2
        seen += _pods(page["alerts"])
        if page["next"] is None:
            break
        page = await client.get_json(ALERTS, [*params, ("cursor", page["next"])])
    assert seen == expected


async def test_episodes_of_a_fingerprint_newest_first(client: ApiClient) -> None:
    first = alert("Flappy", service="web", pod="web-11")
    await client.webhook(first)
    client.clock.advance(timedelta(minutes=5))
    await client.webhook(resolved(first, client.clock.now))
    client.clock.advance(timedelta(minutes=5))
    again = alert("Flappy", service="web", pod="web-11", starts_at=client.clock.now)
    await client.webhook(again)
    (latest, *_) = await _search(client, ("filter", 'pod="web-11"'))
    fingerprint = latest["fingerprint"]
    body = await client.get_json(f"{ALERTS}/{fingerprint}")
    assert body["fingerprint"] == fingerprint
    episodes = body["episodes"]
    assert [e["status"] for e in episodes] == ["firing", "resolved"]
    assert [e["startsAt"][:19] for e in episodes] == [
        rfc3339(client.clock.now)[:19],
        rfc3339(T0)[:19],
    ]
    assert all(e["fingerprint"] == fingerprint for e in episodes)
    assert all(e["incident_id"] == "INC-1" for e in episodes)
    assert [e["state"] for e in episodes] == ["firing", "resolved"]


async def test_episodes_of_a_suppressed_alert(client: ApiClient) -> None:
    (db,) = await _search(client, ("state", "suppressed"))
    body = await client.get_json(f"{ALERTS}/{db['fingerprint']}")
    assert [(e["state"], e["incident_id"]) for e in body["episodes"]] == [("suppressed", None)]


LABELS = {
    "quote": 'say "hi"',
    "backslash": "C:\\temp\\new",
    "dotted": "a.b.c",
    "unicode": "Grüße ✓ 日本語 🚀",
    "html": "<script>alert('x')</script>",
    "newline": "two\nlines",
}


async def test_awkward_label_values_round_trip_and_match(make_client: MakeClient) -> None:
    client = await make_client(RULES)
    await client.webhook(alert("Odd", service="odd", **LABELS))
    await client.webhook(alert("Plain", service="odd", dotted="aXbXc", quote="say hi"))
    for name, value in LABELS.items():
        exact = str(Matcher(name, MatchOp.EQ, value))  # quoted with Go escapes
        found = await _search(client, ("filter", exact))
        assert [a["labels"]["alertname"] for a in found] == ["Odd"], exact
        assert {k: found[0]["labels"][k] for k in LABELS} == LABELS
    written = [
        r'quote="say \"hi\""',
        r'backslash="C:\\temp\\new"',
        r'{backslash=~"C:\\\\temp\\\\.*"}',
        r'dotted=~"a\\.b\\.c"',
        'unicode=~"Grüße.*"',
        r'unicode="Gr\u00fc\u00dfe ✓ 日本語 🚀"',
        "html=`<script>alert('x')</script>`",
        'html=~"<script>.*"',
        r'newline="two\nlines"',
        'newline=~"two.lines"',  # `.` matches a newline, as in Prometheus 3
    ]
    for text in written:
        found = await _search(client, ("filter", text))
        assert [a["labels"]["alertname"] for a in found] == ["Odd"], text
    loose = await _search(client, ("filter", 'dotted=~"a.b.c"'))
    assert [a["labels"]["alertname"] for a in loose] == ["Plain", "Odd"]


BAD_PARAMS: list[tuple[list[tuple[str, str]], str]] = [
    (
        [("filter", 'pod="web-7"'), ("filter", "pod=")],
        "filter: 'pod=': position 4: expected a quoted value after 'pod=', got end of input",
    ),
    ([("filter", '{pod="web-7"')], "filter: "),
    ([("filter", 'pod=~"("')], "filter: "),
    ([("filter", 'pod=~"(?=x)"')], "RE2"),
    ([("filter", 'pod~"x"')], "filter: "),
    ([("filter", "  ")], "filter: empty"),
    ([("filter", 'pod="a\x00b"')], "filter: must not contain a NUL character"),
    ([("state", "firing,open")], "state: expected any of firing, resolved, suppressed, unrouted"),
    ([("state", "FIRING")], "state: "),
    ([("since", "yesterday")], "since: "),
    ([("since", "100000y")], "since: "),
    ([("limit", "0")], "limit: "),
    ([("limit", "501")], "limit: "),
    ([("cursor", "bm9wZQ")], "cursor: "),
]


@pytest.mark.parametrize(("params", "error"), BAD_PARAMS)
async def test_bad_parameters_are_400_naming_them(
    client: ApiClient, params: list[tuple[str, str]], error: str
) -> None:
    assert error in await _error(client, 400, ALERTS, params)


async def test_a_bare_matcher_error_points_into_the_text_as_sent(client: ApiClient) -> None:
    error = await _error(client, 400, ALERTS, [("filter", 'pod=="x"')])
    assert "position 4" in error, error


@pytest.mark.parametrize(
    "fingerprint", ["XYZ", "0123456789ABCDEF", "0123456789abcde", "0123456789abcdef0"]
)
async def test_a_malformed_fingerprint_is_400(client: ApiClient, fingerprint: str) -> None:
    assert "fingerprint: " in await _error(client, 400, f"{ALERTS}/{fingerprint}")


async def test_an_unknown_fingerprint_is_404(client: ApiClient) -> None:
    assert "0123456789abcdef" in await _error(client, 404, f"{ALERTS}/0123456789abcdef")


TOKENS = (
    Token("alertmanager", Role.INGEST, "s3cret-ingest-0123456789"),
    Token("viewer", Role.READ, "s3cret-read-0123456789"),
)


async def test_an_ingest_token_posts_alerts_but_cannot_read_them(
    make_client: MakeClient,
) -> None:
    client = await make_client(RULES, tokens=TOKENS, max_auth_failures=0)
    ingest = {"Authorization": f"Bearer {TOKENS[0].secret}"}
    read = {"Authorization": f"Bearer {TOKENS[1].secret}"}
    body = [{"labels": {"alertname": "Pushed", "service": "api"}}]
    resp = await client.post(ALERTS, json=body, headers=ingest)
    assert resp.status == 200, await resp.text()
    assert (await client.post(ALERTS, json=body, headers=read)).status == 403
    assert (await client.get(ALERTS, headers=ingest)).status == 403
    resp = await client.get(ALERTS, headers=read)
    assert resp.status == 200
    (pushed,) = (await resp.json())["alerts"]
    assert pushed["labels"]["alertname"] == "Pushed"
    one = f"{ALERTS}/{pushed['fingerprint']}"
    assert (await client.get(one, headers=ingest)).status == 403
    assert (await client.get(one, headers=read)).status == 200


# ---- the store function itself: chunks and the scan budget


async def _read(client: ApiClient, query: AlertQuery, **kwargs: Any) -> Any:
    db = client.runtime.db
    assert db is not None

    def read(conn: Connection) -> Any:
        if "scan" in kwargs:
            return alertsearch.search_page(conn, query, **kwargs)
        return alertsearch.search_alerts(conn, query, **kwargs)

    return await db.read(read)


def _pods_of(found: list[StoredAlert]) -> list[str]:
    return [a.labels["pod"] for a in found]


async def test_a_rare_match_is_found_across_chunks(make_client: MakeClient) -> None:
    client = await make_client(RULES)
    for n in range(9):
        await client.webhook(alert("Busy", service="s", pod=f"p-{n}", rare="yes" if n == 1 else ""))
    rare = AlertQuery(selectors=(parse_selector('{rare=~"y.*"}'),))
    assert _pods_of(await _read(client, rare, limit=5, chunk=2)) == ["p-1"]
    some = AlertQuery(selectors=(parse_selector('{pod=~"p-[1-7]"}'),))
    assert _pods_of(await _read(client, some, limit=3, chunk=2)) == ["p-7", "p-6", "p-5"]
    assert _pods_of(await _read(client, some, limit=50, chunk=4)) == [
        f"p-{n}" for n in range(7, 0, -1)
    ]


async def test_a_search_stops_at_its_scan_budget_and_goes_on(make_client: MakeClient) -> None:
    client = await make_client(RULES)
    for n in range(10):
        await client.webhook(alert("Busy", service="s", pod=f"p-{n}"))
    q = AlertQuery(selectors=(parse_selector('{pod=~"p-[05]"}'),))
    first = await _read(client, q, limit=5, scan=3, chunk=2)
    assert first.alerts == []  # p-9, p-8, p-7 looked at
    assert first.resume_below is not None
    found: list[StoredAlert] = []
    page = first
    while page.resume_below is not None:
        q = AlertQuery(selectors=q.selectors, before_id=page.resume_below)
        page = await _read(client, q, limit=5, scan=3, chunk=2)
        found += page.alerts
    assert _pods_of(found) == ["p-5", "p-0"]


async def test_the_query_states_are_the_alert_states(client: ApiClient) -> None:
    everything = await _read(client, AlertQuery(), limit=50)
    for state in AlertState:
        only = await _read(client, AlertQuery(states=frozenset({state})), limit=50)
        assert [a.id for a in only] == [
            a.id for a in everything if alertsearch.state_of(a) is state
        ], state


async def _pages(client: ApiClient, q: AlertQuery, **kwargs: Any) -> list[list[str]]:
    """The pod#id of every page of a search by `search_page`, following `resume_below`."""
    pages: list[list[str]] = []
    while True:
        page = await _read(client, q, **kwargs)
        pages.append([f"{a.labels['pod']}#{a.id}" for a in page.alerts])
        if page.resume_below is None:
            return pages
        q = AlertQuery(selectors=q.selectors, states=q.states, before_id=page.resume_below)


@pytest.mark.parametrize(("limit", "scan"), [(1, None), (2, 3), (3, 2), (50, None)])
async def test_a_rare_value_is_looked_up_through_its_incidents_with_the_same_answer(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch, limit: int, scan: int | None
) -> None:
    """`pod="x"` in alerts of two incidents (b twice, a), a suppressed one and two
    unrouted ones, among others: the pages through `incident_labels` are the pages of a scan."""
    client = await make_client(RULES)
    resp = await client.post("/api/v1/maintenance", json=WINDOW)
    assert resp.status == 201, await resp.text()
    for n in range(12):
        service = ["a", "b", "c", "db", None][n % 5]  # db: suppressed; None: unrouted
        labels = {"pod": "x" if n in (1, 3, 4, 5, 9, 11) else f"p-{n}", "n": str(n)}
        await client.webhook(alert("Busy", **labels, **({"service": service} if service else {})))
    for text, count in (('{pod="x"}', 6), ('{pod="x", n=~"1.*"}', 2), ('{pod="x", service=""}', 2)):
        q = AlertQuery(selectors=(parse_selector(text),))
        monkeypatch.setattr(alertsearch, "NARROW_INCIDENTS", -1)  # a plain scan
        scanned = [a for p in await _pages(client, q, limit=limit, scan=scan, chunk=2) for a in p]
        assert len(scanned) == count, text
        for indexed in (0, 10_000):  # SQLite: down the table, or through the index
            monkeypatch.setattr(alertsearch, "NARROW_INCIDENTS", 5000)
            monkeypatch.setattr(alertsearch, "INDEXED_ALERTS", indexed)
            narrowed = await _pages(client, q, limit=limit, scan=scan, chunk=2)
            # Pages end at other places (the scan budget counts other rows), the
            # alerts they give in turn are the same.
            assert [a for p in narrowed for a in p] == scanned, (text, indexed)
            assert all(len(p) <= limit for p in narrowed)
        monkeypatch.undo()


async def test_a_value_no_incident_holds_is_looked_for_among_alerts_of_none(
    client: ApiClient,
) -> None:
    """db-1 was suppressed, web-9 unrouted: no incident holds their values."""
    for text, pods in (('{pod="db-1"}', ["db-1"]), ('{pod="web-9"}', ["web-9"])):
        q = AlertQuery(selectors=(parse_selector(text),))
        assert _pods_of(await _read(client, q, limit=5, chunk=2)) == pods


async def test_a_value_found_in_the_labels_text_must_still_match_its_label(
    make_client: MakeClient,
) -> None:
    """The JSON-text test in SQL only drops rows that cannot match: `"x"` as another
    label's value, or as a label name, is looked at and left out by the matcher; values
    it does not look for (non-ASCII, quotes, backslashes) are found as before."""
    client = await make_client(RULES)
    for labels in (
        {"pod": "x"},
        {"pod": "y", "owner": "x"},
        {"x": "pod", "pod": "z"},
        {"pod": "wéb-1"},
        {"pod": 'a"b\\c'},
        {"pod": "x", "n": "2"},
    ):
        await client.webhook(alert("Busy", service="s", **labels))
    for text, pods in (
        ('{pod="x"}', ["x", "x"]),
        ('{pod="x", n="2"}', ["x"]),
        ('{owner="x"}', ["y"]),
        ('{pod="wéb-1"}', ["wéb-1"]),
        ('{pod="a\\"b\\\\c"}', ['a"b\\c']),
    ):
        q = AlertQuery(selectors=(parse_selector(text),))
        for chunk in (1, 2, 1000):
            assert _pods_of(await _read(client, q, limit=10, chunk=chunk)) == pods, (text, chunk)
        page = await _read(client, q, limit=1, scan=1, chunk=1)
        assert len(page.alerts) <= 1


@pytest.mark.parametrize(("chunk", "scan"), [(4, None), (1000, None), (4, 5)])
async def test_a_dense_value_reads_the_rows_of_a_page_not_of_a_chunk(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch, chunk: int, scan: int | None
) -> None:
    """`{env="prod"}` on most of 20 alerts (every fourth has env="dev" and "prod" as
    another label's value: the text test lets it through, the matcher drops it). A page
    of 2 holds the 2 newest matches and reads 4 rows in full, not every passing row of
    its chunk; its pages go down through all 15 without gaps or repeats."""
    client = await make_client(RULES)
    for n in range(20):
        env = {"env": "dev", "owner": "prod"} if n % 4 == 1 else {"env": "prod"}
        await client.webhook(alert("Busy", service="s", pod=f"p-{n}", **env))
    prod = [f"p-{n}" for n in range(19, -1, -1) if n % 4 != 1]
    q = AlertQuery(selectors=(parse_selector('{env="prod"}'),))
    loaded: list[int] = []
    load = alertsearch._load

    def counted(conn: Connection, ids: list[int]) -> list[StoredAlert]:
        loaded.append(len(ids))
        return load(conn, ids)

    monkeypatch.setattr(alertsearch, "_load", counted)
    first = await _read(client, q, limit=2, scan=scan, chunk=chunk)
    assert _pods_of(first.alerts) == prod[:2]
    assert loaded == [3, 1]  # p-19, p-18, p-17 (dropped), then p-16: one more than a page
    pages = await _pages(client, q, limit=2, scan=scan, chunk=chunk)
    assert [a.split("#")[0] for p in pages for a in p] == prod
    assert all(len(p) <= 2 for p in pages)
    if scan is None:
        assert [len(p) for p in pages] == [2] * 7 + [1]


def test_only_plain_ascii_values_of_equality_matchers_are_looked_for_in_the_text() -> None:
    selector = parse_selector('{pod="x-1", a=~"b", c="wé", d="", e!="f", g="h\\"i"}')
    assert alertsearch._json_strings((selector,)) == ['"x-1"']
