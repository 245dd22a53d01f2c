"""The console in a real browser, fed by a real Alertmanager.

An on-call engineer signs in with a token, finds the incident, opens it, works it
with the buttons, sees a change made elsewhere appear without reloading, finds an
alert by a label and lands on its incident, and does the same on a phone-wide
window. The screenshots stay in test-output/ (the README's picture is one).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.conftest import wait_until
from tests.e2e.browser import Browser, BrowserFactory
from tests.e2e.conftest import WEBHOOK_PATH, AlertmanagerFactory, ItsmdFactory, make_alert

pytestmark = pytest.mark.e2e

SECRETS = {
    "ITSMD_AM_TOKEN": "am-secret-0123456789abcdef",
    "ITSMD_ALICE_TOKEN": "alice-secret-0123456789abcdef",
    "ITSMD_VIEWER_TOKEN": "viewer-secret-0123456789abcdef",
}
AM, ALICE, VIEWER = SECRETS.values()
CONFIG = {
    "auth": {
        "tokens": [
            {"name": "alertmanager", "role": "ingest", "secret_env": "ITSMD_AM_TOKEN"},
            {"name": "alice", "role": "respond", "secret_env": "ITSMD_ALICE_TOKEN"},
            {"name": "viewer", "role": "read", "secret_env": "ITSMD_VIEWER_TOKEN"},
        ]
    },
    "sla": {"P2": {"respond": "30m", "resolve": "8h"}},
}
RULES = {
    "incidents": [
        {
            "name": "by-service",
            "match": "{}",
            "group_by": ["alertname", "service"],
            "title": "{{ labels.alertname }} on {{ labels.service }}",
        }
    ]
}
LIVE_UPDATE_S = 40.0  # the pages poll every 15 s


def _sign_in(browser: Browser, base: str, secret: str, page: str = "/incidents") -> None:
    d = browser.driver
    d.get(base + page)
    browser.wait(lambda d: "/login" in d.current_url, "the redirect to /login")
    d.find_element(By.ID, "token").send_keys(secret)
    d.find_element(By.ID, "sign-in").click()
    browser.wait(lambda d: d.current_url.endswith(page), f"back on {page} after signing in")


def _incident_status(d: WebDriver) -> str | None:
    found = d.find_elements(By.ID, "incident")
    return found[0].get_attribute("data-status") if found else None


def _page_fits(d: WebDriver, width: int) -> bool:
    scroll: int = d.execute_script("return document.documentElement.scrollWidth")
    return scroll <= width


def test_oncall_works_an_incident_in_the_browser(
    itsmd_server: ItsmdFactory,
    alertmanager: AlertmanagerFactory,
    browser: BrowserFactory,
    tmp_path: Path,
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "10-by-service.yml").write_text(yaml.safe_dump(RULES))
    daemon = itsmd_server.start(config=CONFIG, env=SECRETS, rules_dir=rules)
    am = alertmanager.start(f"{daemon.url}{WEBHOOK_PATH}", bearer=AM)
    start = datetime.now(UTC) - timedelta(minutes=3)
    common = {"alertname": "HighLatency", "service": "api", "severity": "critical"}
    am.push(
        [
            make_alert(
                {**common, "pod": pod},
                starts_at=start,
                annotations={"summary": f"p99 latency of {pod} is 2.3 s"},
                generator_url="http://prometheus.example/graph?g0.expr=latency",
            )
            for pod in ("web-7", "web-8")
        ]
    )

    def opened() -> dict[str, Any] | None:
        found = daemon.get("/api/v1/incidents", token=VIEWER).json()["incidents"]
        return found[0] if found and found[0]["alert_count"] == 2 else None

    incident = wait_until(opened, timeout_s=15, what="an incident with both alerts")
    ref = incident["id"]

    # Sign in and find the incident in the list.
    b = browser.open(width=1440, height=1000)
    d = b.driver
    _sign_in(b, daemon.url, ALICE)
    b.wait(
        lambda d: (
            "HighLatency" in d.find_element(By.CSS_SELECTOR, f'tr[data-incident-id="{ref}"]').text
        ),
        f"{ref} in the list",
    )
    assert d.find_element(By.ID, "viewer-name").text == "alice"
    b.screenshot("incidents")

    # Open it: the alerts are told apart by the label that differs, not a fingerprint.
    b.click(By.CSS_SELECTOR, f'tr[data-incident-id="{ref}"] a', f"the link to {ref}")
    b.wait(lambda d: d.current_url.endswith(f"/incidents/{ref}"), "the incident page")
    alerts = d.find_element(By.ID, "alerts").text
    assert "web-7" in alerts
    assert "web-8" in alerts
    for stored in daemon.get(f"/api/v1/incidents/{ref}", token=VIEWER).json()["alerts"]:
        assert stored["fingerprint"] not in alerts

    # Work it with the buttons; each change shows on the page and in the API.
    b.click(By.ID, "action-ack", "Acknowledge")
    b.wait(lambda d: _incident_status(d) == "acknowledged", "the acknowledged status")
    assignee = d.find_element(By.ID, "assign-assignee")
    assignee.clear()
    assignee.send_keys("bob")
    b.click(By.ID, "action-assign", "Assign")
    b.wait(lambda d: d.find_element(By.ID, "fact-assignee").text == "bob", "the assignee")
    d.find_element(By.ID, "comment-text").send_keys("rolling back deploy 1234")
    b.click(By.ID, "action-comment", "Comment")
    b.wait(
        lambda d: "rolling back deploy 1234" in d.find_element(By.ID, "timeline").text,
        "the comment in the timeline",
    )
    b.screenshot("incident", full_page=True)
    shown = daemon.get(f"/api/v1/incidents/{ref}", token=VIEWER).json()
    assert shown["status"] == "acknowledged"
    assert shown["assignee"] == "bob"
    acts = {(e["kind"], e["actor"]) for e in shown["timeline"]}
    assert {("acknowledged", "alice"), ("assigned", "alice"), ("commented", "alice")} <= acts

    # A change made elsewhere (the CLI, another engineer) appears without a reload.
    d.execute_script("window.itsmdTestMarker = 'same page';")
    body = {"note": "fixed by the rollback"}
    assert daemon.post(f"/api/v1/incidents/{ref}/resolve", body, token=ALICE).status == 200
    b.wait(
        lambda d: _incident_status(d) == "resolved",
        "the page to show the resolve made through the API",
        timeout_s=LIVE_UPDATE_S,
    )
    assert d.execute_script("return window.itsmdTestMarker") == "same page"
    assert d.find_elements(By.ID, "action-reopen"), "a resolved incident offers Reopen"

    # Find an alert by a label value and land on its incident.
    d.get(f"{daemon.url}/alerts")
    d.find_element(By.ID, "a-q").send_keys('{pod="web-8"}')
    d.find_element(By.ID, "search").click()
    b.wait(lambda d: "q=" in d.current_url, "the search's answer")
    found = b.wait(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#alert-list tr[data-alert-id]"),
        "the alert search results",
    )
    assert len(found) == 1
    assert "web-8" in found[0].text
    b.screenshot("alerts")
    b.click(By.CSS_SELECTOR, f"#alert-list tr[data-alert-id] a[href$='/{ref}']", "its incident")
    b.wait(lambda d: d.current_url.endswith(f"/incidents/{ref}"), "the incident of the alert")

    # A reader sees the incident and no action buttons.
    reader = browser.open()
    _sign_in(reader, daemon.url, VIEWER, f"/incidents/{ref}")
    assert reader.driver.find_elements(By.ID, "incident")
    assert not reader.driver.find_elements(By.CSS_SELECTOR, "#actions button")

    # The same work on a phone: nothing wider than the screen.
    phone = browser.open(width=375, height=812)
    _sign_in(phone, daemon.url, ALICE)
    assert _page_fits(phone.driver, 375), "the incident list scrolls sideways at 375 px"
    phone.screenshot("phone-incidents")
    phone.click(By.LINK_TEXT, ref, f"the link to {ref}")
    phone.wait(lambda d: d.current_url.endswith(f"/incidents/{ref}"), "the incident on a phone")
    assert _page_fits(phone.driver, 375), "the incident page scrolls sideways at 375 px"
    phone.click(By.ID, "action-reopen", "Reopen")
    phone.wait(lambda d: _incident_status(d) == "open", "the reopened status on a phone")
    phone.screenshot("phone-incident")
    assert daemon.get(f"/api/v1/incidents/{ref}", token=VIEWER).json()["status"] == "open"
