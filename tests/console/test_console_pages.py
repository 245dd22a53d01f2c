"""What the console's pages show (docs/console.md), on both stores; loopback without
tokens unless a test says otherwise."""

from __future__ import annotations

import re
import socket
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from itsmd.console import pages
from itsmd.correlation.sla import SlaTarget
from itsmd.models import Priority
from tests.api.api_support import alert, resolved
from tests.console.conftest import ConsoleClient, MakeConsole, text_of

RULES = """\
incidents:
  - name: paging
    match: '{severity="critical"}'
    group_by: [service]
    priority: P1
    auto_resolve: 0s
  - name: rest
    match: '{service=~".+"}'
    group_by: [service]
    priority: P4
    auto_resolve: 0s
known_errors:
  - name: disk
    match: '{alertname="DiskFull"}'
    workaround: 'Rotate logs on {{ labels.instance }}'
"""
HOSTILE = "<script>alert(1)</script>"


def main_of(html: str) -> str:
    return html.split('<main id="main"', 1)[1]


async def test_the_root_redirects_to_the_incident_list(make_console: MakeConsole) -> None:
    client = await make_console(RULES)
    resp = await client.get("/", allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (303, "/incidents")


async def test_unknown_incidents_and_problems_are_404_pages(make_console: MakeConsole) -> None:
    client = await make_console(RULES)
    for path in (
        "/incidents/INC-9",
        "/incidents/nope",
        "/incidents/INC-99999999999",
        "/problems/PRB-3",
        "/problems/x",
    ):
        resp = await client.get(path)
        assert resp.status == 404, path
        assert resp.headers["Content-Type"].startswith("text/html")
        assert 'id="error"' in await resp.text()


async def test_labels_annotations_and_titles_stay_text(make_console: MakeConsole) -> None:
    client = await make_console(
        RULES.replace(
            "group_by: [service]\n    priority: P4",
            "group_by: [service]\n    title: '{{ labels.service }} is down'\n    priority: P4",
        )
    )
    bad = alert(
        "Down",
        service=HOSTILE,
        pod=HOSTILE + "1",
        annotations={"summary": HOSTILE, "description": '"><img src=x onerror=alert(1)>'},
    )
    bad["generatorURL"] = "javascript:alert(1)"
    await client.webhook(bad)
    await client.webhook(alert("Down", service=HOSTILE, pod="web-2"))
    for path in ("/incidents", "/incidents/INC-1", "/alerts", "/alerts?q=pod%3D~%22.%2B%22"):
        html = await client.page(path)
        assert "<script>alert" not in html, path
        assert "<img" not in html, path
        assert 'href="javascript:' not in html, path
    html = await client.page("/incidents/INC-1")
    assert "&lt;script&gt;alert(1)&lt;/script&gt; is down" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in main_of(html)


async def test_the_list_puts_open_before_resolved_then_priority_then_newest(
    make_console: MakeConsole,
) -> None:
    client = await make_console(RULES)
    await client.webhook(alert("Slow", service="a"))  # INC-1 P4
    crit = alert("Down", service="b", severity="critical")
    await client.webhook(crit)  # INC-2 P1
    await client.webhook(alert("Slow", service="c"))  # INC-3 P4
    client.clock.advance(timedelta(minutes=1))
    await client.webhook(resolved(crit, client.clock.now))  # INC-2 resolves (auto_resolve 0s)
    await client.sweep()
    await client.webhook(alert("Down", service="d", severity="critical"))  # INC-4 P1
    html = await client.page("/incidents")
    order = re.findall(r'<tr class="incident[^"]*" data-incident-id="(INC-\d+)"', html)
    assert order == ["INC-4", "INC-3", "INC-1", "INC-2"]


async def test_filters_stay_in_the_url_and_narrow_the_list(make_console: MakeConsole) -> None:
    client = await make_console(RULES)
    await client.webhook(alert("Slow", service="api"))
    await client.webhook(alert("Slow", service="db"))
    await client.submit("/incidents/INC-2/assign", {"assignee": "alice"}, on="/incidents/INC-2")
    html = await client.page("/incidents?service=db&status=open")
    assert re.findall(r'data-incident-id="(INC-\d+)"', main_of(html)) == ["INC-2"]
    assert 'id="status-open" checked' in html
    assert 'id="f-service" name="service" value="db"' in html
    html = await client.page("/incidents?assignee=alice")
    assert re.findall(r'data-incident-id="(INC-\d+)"', main_of(html)) == ["INC-2"]
    html = await client.page("/incidents?q=nothing-like-this")
    assert 'id="no-incidents"' in html
    assert (await client.get("/incidents?status=sleeping")).status == 400
    assert (await client.get("/incidents?cursor=garbage")).status == 400


async def test_the_list_pages_with_its_filters_kept(
    make_console: MakeConsole, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pages, "PAGE_SIZE", 2)
    client = await make_console(RULES)
    for name in ("a", "b", "c", "d", "e"):
        await client.webhook(alert("Slow", service=name))
    seen: list[str] = []
    path: str | None = "/incidents?status=open"
    while path is not None:
        html = await client.page(path.replace("&amp;", "&"))
        seen += re.findall(r'data-incident-id="(INC-\d+)"', main_of(html))
        found = re.search(r'href="([^"]+)" id="next-page"', html)
        path = found.group(1) if found else None
        if path:
            assert "status=open" in path
    assert seen == ["INC-5", "INC-4", "INC-3", "INC-2", "INC-1"]


async def test_a_breached_sla_turns_red_with_words(make_console: MakeConsole) -> None:
    sla = {Priority.P1: SlaTarget(respond=timedelta(minutes=15), resolve=timedelta(hours=1))}
    client = await make_console(RULES, sla=sla)
    await client.webhook(alert("Down", service="db", severity="critical"))
    html = await client.page("/incidents")
    assert 'data-sla="respond"' in html
    assert "in 15 min" in html
    assert "breached" not in main_of(html).split("<tbody>")[1]
    client.clock.advance(timedelta(minutes=20))
    html = await client.page("/incidents")
    row = main_of(html).split("<tbody>")[1]
    assert 'class="due breached"' in row
    assert "respond SLA breached" in text_of(row)
    detail = await client.page("/incidents/INC-1")
    assert 'data-verdict="breached"' in detail
    assert 'data-verdict="pending"' in detail  # resolve is still to come


async def test_the_incident_shows_its_known_error_first_and_its_alerts_by_what_differs(
    make_console: MakeConsole,
) -> None:
    client = await make_console(RULES)
    await client.webhook(
        alert("DiskFull", service="db", instance="db-1"),
        alert("DiskFull", service="db", instance="db-2"),
    )
    html = await client.page("/incidents/INC-1")
    assert html.index('id="known-error"') < html.index('id="actions"')
    assert "Rotate logs on db-1" in html
    common = html.split('class="labels common"')[1].split("</ul>")[0]
    assert "alertname" in common
    assert "instance" not in common
    rows = re.findall(r'<ul class="labels inline">(.*?)</ul>', html)
    assert [text_of(r).replace(" ", "") for r in rows] == ["instance=db-2", "instance=db-1"]
    assert "fingerprint" not in text_of(main_of(html)).lower()
    assert 'href="http://prometheus.example:9090/graph?g0.expr=up"' in html


async def test_a_large_incident_shows_its_newest_alerts_and_all_on_demand(
    make_console: MakeConsole, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pages, "ALERTS_SHOWN", 2)
    client = await make_console(RULES)
    await client.webhook(*(alert("DiskFull", service="db", instance=f"db-{n}") for n in range(5)))
    html = await client.page("/incidents/INC-1")
    assert len(re.findall(r'<li class="alert ', html)) == 2
    assert "Firing (5)" in text_of(html)
    assert 'href="?alerts=all#alerts"' in html
    everything = await client.page("/incidents/INC-1?alerts=all")
    assert len(re.findall(r'<li class="alert ', everything)) == 5
    assert "alerts=all" not in everything


async def test_a_flapping_alerts_repeated_lines_collapse_with_a_count(
    make_console: MakeConsole,
) -> None:
    client = await make_console(RULES.replace("auto_resolve: 0s", "auto_resolve: 1h"))
    firing = alert("Flappy", service="web")
    await client.webhook(firing)
    for _ in range(3):
        client.clock.advance(timedelta(minutes=1))
        await client.webhook(resolved(firing, client.clock.now))
        await client.webhook(firing)
    detail = await client.api_incident("INC-1")
    kinds = [e["kind"] for e in detail["timeline"]]
    html = await client.page("/incidents/INC-1")
    lines = re.findall(r'<li data-kind="([a-z_]+)"', html)
    assert len(lines) < len(kinds)
    assert 'data-count="' in html


async def _suppress_and_unroute(client: ConsoleClient) -> None:
    await client.submit(
        "/maintenance",
        {"name": "quiet", "match": '{service="quiet"}', "duration": "1h"},
        on="/maintenance",
    )
    await client.webhook(alert("Noise", service="quiet"))  # suppressed
    await client.webhook(alert("Lost"))  # no service label: no rule matches, unrouted
    await client.webhook(alert("Down", service="web", pod="web-7"))  # INC-1


async def test_the_alert_search_finds_by_matchers_and_state(make_console: MakeConsole) -> None:
    client = await make_console(RULES)
    await _suppress_and_unroute(client)
    html = await client.page("/alerts?q=" + "%7Bpod%3D%22web-7%22%7D")
    rows = re.findall(r'<tr class="alert state-(\w+)"[^>]*data-incident-id="(INC-\d+)"', html)
    assert rows == [("firing", "INC-1")]
    assert 'href="/incidents/INC-1"' in html
    for state, name in (("suppressed", "Noise"), ("unrouted", "Lost")):
        html = await client.page(f"/alerts?state={state}")
        assert re.findall(r'data-state="(\w+)"', main_of(html).split("<tbody>")[1]) == [state]
        assert name in html
    html = await client.page("/alerts?filter=pod%3D%22web-7%22")  # `filter`, braces optional
    assert 'data-incident-id="INC-1"' in html
    bad = await client.get("/alerts?q=%7Bpod%3D~%22(%22%7D")
    assert bad.status == 400
    assert 'id="error"' in await bad.text()


async def test_services_show_availability_against_the_slo_and_check_states(
    make_console: MakeConsole,
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, not listening: refused
        port = closed.getsockname()[1]
        rules = (
            RULES
            + "services:\n  - {name: shop, slo: 99.9}\n"
            + "checks:\n"
            + f"  - {{name: shop-port, type: tcp, service: shop, target: '127.0.0.1:{port}',"
            + " timeout: 1s, failures_before_alert: 1}\n"
        )
        client = await make_console(rules)
        await client.run_check("shop-port")
        client.clock.advance(timedelta(minutes=10))
        await client.run_check("shop-port")
    html = await client.page("/services")
    card = html.split('data-service="shop"')[1]
    assert 'data-check="shop-port" data-state="down"' in card
    assert "against an objective of 99.9 %" in card
    assert '<svg class="bar"' in card
    assert "below objective" in card or "no data" in card
    assert "Error budget left" in card


async def test_capacity_shows_each_forecast_with_a_chart(
    make_console: MakeConsole, tmp_path: Path
) -> None:
    rules = RULES + (
        "checks:\n"
        f"  - {{name: scratch, type: disk, path: '{tmp_path}', interval: 1m, warn: {{below: 1}}}}\n"
    )
    client = await make_console(rules)
    await client.run_check("scratch")
    html = await client.page("/capacity")
    section = html.split('data-check="scratch"')[1]
    assert "<svg" in section
    assert 'class="threshold"' in section
    assert "below 1" in text_of(section)


async def test_maintenance_lists_windows_past_and_coming(make_console: MakeConsole) -> None:
    rules = RULES + (
        "maintenance:\n"
        "  - name: nightly\n    match: '{service=\"batch\"}'\n"
        "    every: '0 2 * * *'\n    duration: 1h\n"
        "  - name: last-week\n    match: '{service=\"old\"}'\n"
        "    start: 2026-11-20T00:00:00Z\n    end: 2026-11-20T01:00:00Z\n"
    )
    client = await make_console(rules)
    html = await client.page("/maintenance")
    coming = html.split('id="coming-title"')[1].split('id="create-title"')[0]
    past = html.split('id="past-title"')[1]
    assert 'data-window="nightly"' in coming
    assert 'data-window="last-week"' in past
    assert "End now" not in html  # windows of rule files end in their files


async def test_every_page_carries_the_security_headers(make_console: MakeConsole) -> None:
    client = await make_console(RULES)
    resp = await client.get("/incidents")
    csp: Any = resp.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "same-origin"
