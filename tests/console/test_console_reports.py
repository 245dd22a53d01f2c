"""The console's /reports page: the service review for a form's period, drawn by the
server, without JavaScript, under the console's roles and CSP (both stores)."""

from __future__ import annotations

from datetime import timedelta

from tests.api.api_support import alert
from tests.console.conftest import TOKENS, MakeConsole, text_of

RULES = """\
incidents:
  - name: paging
    match: '{severity="critical"}'
    group_by: [service]
    priority: P1
  - name: idle
    match: '{severity="none-such"}'
services:
  - name: api
    slo: 99.9
"""


async def test_the_page_shows_the_review_of_the_period_asked(make_console: MakeConsole) -> None:
    client = await make_console(RULES)
    await client.webhook(alert("Down", severity="critical", service="api"))
    client.clock.advance(timedelta(minutes=10))
    assert (await client.act("INC-1", "ack")).status == 200

    resp = await client.get("/reports?from=2026-11-01&to=2026-12-01&tz=UTC")
    assert resp.status == 200
    assert "'unsafe-inline'" not in resp.headers["Content-Security-Policy"]
    html = await resp.text()
    assert '<a href="/reports" aria-current="page">Reports</a>' in html
    assert html.count("<svg") >= 2
    assert "style=" not in html.split('<main id="main"', 1)[1]  # the CSP allows none
    text = text_of(html)
    assert "Service review: 2026-11-01 to 2026-12-01" in text
    assert "MTTA median 10m 0s" in text
    assert "Rule idle matched no alert in the period" in text
    assert 'value="2026-11-01"' in html


async def test_without_parameters_it_is_last_month(make_console: MakeConsole) -> None:
    client = await make_console(RULES)  # the clock is on 2026-11-28
    text = text_of(await client.page("/reports"))
    assert "Service review: 2026-10-01 to 2026-11-01" in text


async def test_a_bad_period_is_a_400_page_that_says_why(make_console: MakeConsole) -> None:
    client = await make_console(RULES)
    html = await client.page("/reports?from=2026-12-01&to=2026-11-01", status=400)
    assert "from: must be before to" in text_of(html)
    assert 'id="report-form"' in html  # the form stays, to correct it


async def test_a_read_token_may_read_it_and_nobody_without_one(make_console: MakeConsole) -> None:
    client = await make_console(RULES, tokens=TOKENS)
    resp = await client.get("/reports", allow_redirects=False)
    assert resp.status in (303, 401)
    await client.login_as("viewer")
    assert "Service review" in text_of(await client.page("/reports"))
