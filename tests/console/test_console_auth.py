"""Console sign-in, sessions, roles and CSRF (docs/console.md), on both stores."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

import pytest

from itsmd import console
from itsmd.api import auth
from itsmd.api.routes import Operation
from itsmd.config import Role
from itsmd.console import forms
from tests.api.api_support import alert, metric_value, webhook_body
from tests.console.conftest import SECRETS, TOKENS, ConsoleClient, MakeConsole, text_of

PAGES = (
    "/incidents",
    "/incidents/INC-1",
    "/alerts",
    "/problems",
    "/services",
    "/capacity",
    "/maintenance",
)


@pytest.fixture
async def client(make_console: MakeConsole) -> ConsoleClient:
    """Tokens, no throttle (tested on its own), and INC-1."""
    c = await make_console(tokens=TOKENS, max_auth_failures=0)
    await c.post(
        "/api/v1/webhooks/alertmanager",
        json=webhook_body(alert("Down", service="db")),
        headers={"Authorization": f"Bearer {SECRETS['alertmanager']}"},
    )
    return c


@pytest.mark.parametrize("path", [*PAGES, "/"])
async def test_a_page_without_a_session_sends_the_browser_to_sign_in(
    client: ConsoleClient, path: str
) -> None:
    resp = await client.get(path + "?status=open", allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/login?next=" + quote(path + "?status=open", safe="")


async def test_a_read_token_sees_every_page_and_no_action(client: ConsoleClient) -> None:
    await client.login_as("viewer")
    for path in PAGES:
        html = await client.page(path)
        assert 'id="viewer-name">viewer<' in html
        assert 'method="post" action="/incidents' not in html
        assert 'id="create-window"' not in html
    assert "<button" not in (await client.page("/incidents/INC-1")).split('id="main"')[1]


async def test_a_read_tokens_form_is_refused_and_changes_nothing(client: ConsoleClient) -> None:
    await client.login_as("viewer")
    resp = await client.post(
        "/incidents/INC-1/ack", data={"csrf": "x", "note": "mine"}, allow_redirects=False
    )
    assert resp.status == 403
    assert "text/html" in resp.headers["Content-Type"]
    assert "has role read" in text_of(await resp.text())
    assert (await client.api_incident("INC-1"))["status"] == "open"


async def test_a_respond_token_acts_on_incidents_but_not_on_maintenance(
    client: ConsoleClient,
) -> None:
    await client.login_as("oncall")
    html = await client.page("/incidents/INC-1")
    for label in ("Acknowledge", "Assign", "Comment", "Resolve"):
        assert f">{label}</button>" in html
    assert 'id="create-window"' not in await client.page("/maintenance")
    resp = await client.submit(
        "/maintenance", {"name": "w", "match": '{service="db"}'}, on="/incidents/INC-1"
    )
    assert resp.status == 403


async def test_an_admin_sees_the_maintenance_form(client: ConsoleClient) -> None:
    await client.login_as("root")
    assert 'id="create-window"' in await client.page("/maintenance")


async def test_signing_in_sets_a_strict_http_only_session_cookie(client: ConsoleClient) -> None:
    resp = await client.sign_in({"token": SECRETS["oncall"], "next": "/incidents/INC-1"})
    assert resp.status == 303
    assert resp.headers["Location"] == "/incidents/INC-1"
    cookie = resp.cookies[auth.SESSION_COOKIE]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/"
    assert not cookie["secure"]  # plain HTTP, no https external_url
    assert SECRETS["oncall"] not in cookie.value


async def test_the_cookie_is_secure_behind_an_https_external_url(
    make_console: MakeConsole,
) -> None:
    client = await make_console(tokens=TOKENS, external_url="https://itsmd.example.com")
    form = await client.get("/login")
    login_cookie = form.cookies[forms.LOGIN_COOKIE]
    assert login_cookie["secure"] is True
    # The client speaks plain HTTP and so keeps no Secure cookie: it sends it back itself.
    resp = await client.post(
        "/login",
        data={"token": SECRETS["viewer"], "csrf": login_cookie.value},
        cookies={forms.LOGIN_COOKIE: login_cookie.value},
        allow_redirects=False,
    )
    assert resp.cookies[auth.SESSION_COOKIE]["secure"] is True


async def test_a_wrong_token_shows_the_login_page_again_and_counts(
    client: ConsoleClient,
) -> None:
    resp = await client.sign_in({"token": "wrong-wrong-wrong-wrong"})
    assert resp.status == 401
    html = await resp.text()
    assert 'id="login-form"' in html
    assert "unknown or wrong token" in html
    assert auth.SESSION_COOKIE not in resp.cookies
    exposition = await client.metrics_text()
    assert metric_value(exposition, "itsmd_auth_failures_total", reason="unknown_token") == 1


async def test_an_ingest_token_cannot_sign_in(client: ConsoleClient) -> None:
    resp = await client.sign_in({"token": SECRETS["alertmanager"]})
    assert resp.status == 401
    assert "has role ingest" in text_of(await resp.text())


async def test_wrong_tokens_are_throttled_like_the_apis(make_console: MakeConsole) -> None:
    client = await make_console(tokens=TOKENS, max_auth_failures=2)
    for _ in range(2):
        assert (await client.sign_in({"token": "nope"})).status == 401
    resp = await client.sign_in({"token": SECRETS["root"]})
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) > 0
    assert "too many failed sign-ins" in await resp.text()


@pytest.mark.parametrize(
    ("target", "lands"),
    [
        ("/incidents/INC-1?x=1", "/incidents/INC-1?x=1"),
        ("//evil.example/", "/incidents"),
        ("https://evil.example/", "/incidents"),
        ("/\\evil.example", "/incidents"),
        ("evil.example", "/incidents"),
        ("/login", "/incidents"),
    ],
)
async def test_signing_in_goes_back_to_a_path_of_this_daemon_only(
    client: ConsoleClient, target: str, lands: str
) -> None:
    resp = await client.sign_in({"token": SECRETS["viewer"], "next": target})
    assert resp.status == 303
    assert resp.headers["Location"] == lands


async def test_signing_out_ends_the_session(client: ConsoleClient) -> None:
    await client.login_as("viewer")
    resp = await client.submit("/logout", {}, on="/incidents")
    assert resp.status == 303
    assert resp.headers["Location"] == "/login"
    assert (await client.get("/incidents", allow_redirects=False)).status == 303


async def test_the_sign_in_form_is_refused_without_its_own_csrf_token(
    client: ConsoleClient,
) -> None:
    """Another site's page cannot sign a browser in under its own token."""
    await client.page("/login")  # the form's cookie is set: only the field is missing
    resp = await client.post("/login", data={"token": SECRETS["viewer"]}, allow_redirects=False)
    assert resp.status == 403
    assert auth.SESSION_COOKIE not in resp.cookies
    assert "this sign-in form is out of date or not from this page" in text_of(await resp.text())
    forged = await client.sign_in({"token": SECRETS["viewer"], "csrf": "guessed"})
    assert forged.status == 403
    client.session.cookie_jar.clear()  # a form whose cookie is gone (an hour later)
    resp = await client.post(
        "/login", data={"token": SECRETS["viewer"], "csrf": "x" * 43}, allow_redirects=False
    )
    assert resp.status == 403
    assert (await client.sign_in({"token": SECRETS["viewer"]})).status == 303  # the new form


async def test_signing_out_without_a_session_needs_no_form(client: ConsoleClient) -> None:
    resp = await client.post("/logout", allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (303, "/login")


async def test_sign_out_wants_the_sessions_csrf_token(client: ConsoleClient) -> None:
    await client.login_as("viewer")
    resp = await client.post("/logout", data={"csrf": "guessed"}, allow_redirects=False)
    assert resp.status == 403
    assert "sign out again" in text_of(await resp.text())
    await client.page("/incidents")  # still signed in


async def test_get_logout_is_a_page_with_the_sign_out_button(client: ConsoleClient) -> None:
    assert (await client.get("/logout", allow_redirects=False)).headers["Location"] == "/login"
    await client.login_as("oncall")
    html = await client.page("/logout")
    assert 'id="logout-page-form"' in html
    assert "Signed in as oncall" in text_of(html)
    resp = await client.submit("/logout", {}, on="/logout")
    assert (resp.status, resp.headers["Location"]) == (303, "/login")


async def test_a_session_ends_after_its_time(client: ConsoleClient) -> None:
    await client.login_as("viewer")
    await client.page("/incidents")
    client.clock.advance(auth.SESSION_TTL + timedelta(seconds=1))
    assert (await client.get("/incidents", allow_redirects=False)).status == 303


async def test_the_session_cookie_never_authorises_the_api(client: ConsoleClient) -> None:
    await client.login_as("root")
    assert (await client.get("/api/v1/incidents")).status == 401
    resp = await client.post("/api/v1/incidents/INC-1/ack", json={})
    assert resp.status == 401


async def test_a_header_never_authorises_a_page(client: ConsoleClient) -> None:
    headers = {"Authorization": f"Bearer {SECRETS['root']}"}
    assert (await client.get("/incidents", headers=headers, allow_redirects=False)).status == 303
    resp = await client.post(
        "/incidents/INC-1/ack", data={"csrf": "x"}, headers=headers, allow_redirects=False
    )
    assert resp.status == 403
    assert (await client.api_incident("INC-1"))["status"] == "open"


async def test_a_form_without_the_sessions_csrf_token_is_refused(client: ConsoleClient) -> None:
    await client.login_as("oncall")
    mine = await client.csrf("/incidents/INC-1")
    for wrong in ("", "0" * 64):
        resp = await client.submit("/incidents/INC-1/ack", {}, on="", csrf=wrong)
        assert resp.status == 403
        assert "CSRF" in await resp.text()
    await client.login_as("root")  # another session: the old token is not this one's
    resp = await client.submit("/incidents/INC-1/ack", {}, on="", csrf=mine)
    assert resp.status == 403
    assert (await client.api_incident("INC-1"))["status"] == "open"


async def test_a_form_from_another_origin_is_refused(client: ConsoleClient) -> None:
    await client.login_as("oncall")
    token = await client.csrf("/incidents/INC-1")
    resp = await client.post(
        "/incidents/INC-1/ack",
        data={"csrf": token},
        headers={"Origin": "http://evil.example"},
        allow_redirects=False,
    )
    assert resp.status == 403
    assert (await client.api_incident("INC-1"))["status"] == "open"


async def test_static_files_need_no_session(client: ConsoleClient) -> None:
    resp = await client.get("/static/console.css")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/css")
    assert (await client.get("/static/console.js")).status == 200
    for missing in ("/static/nope.css", "/static/..%2Fpages.py", "/static/.hidden.css"):
        assert (await client.get(missing)).status == 404


def _concrete(path: str) -> str:
    return path.replace("{id}", "INC-1").replace("{action}", "ack").replace("{name}", "w")


@pytest.mark.parametrize("op", console.OPERATIONS, ids=lambda op: f"{op.method} {op.path}")
def test_each_operation_declares_the_least_role_auth_requires(op: Operation) -> None:
    roles = auth.required_roles(op.method, _concrete(op.path))
    order = (Role.READ, Role.RESPOND, Role.ADMIN)
    least = None if roles is None else next(r for r in order if r in roles)
    assert least == op.role


async def test_without_tokens_another_address_gets_a_refusal_page(
    make_console: MakeConsole,
) -> None:
    client = await make_console(remote="192.0.2.7")
    resp = await client.get("/incidents", allow_redirects=False)
    assert resp.status == 403
    assert resp.headers["Content-Type"].startswith("text/html")
    assert "only loopback clients are served" in await resp.text()


async def test_without_tokens_a_foreign_host_is_refused(make_console: MakeConsole) -> None:
    client = await make_console()
    resp = await client.get("/incidents", headers={"Host": "rebound.example:9877"})
    assert resp.status == 403
    assert "is not this daemon's" in text_of(await resp.text())


async def test_a_second_sign_in_tab_keeps_the_first_ones_form_good(client: ConsoleClient) -> None:
    first = await client.csrf("/login")
    second = await client.csrf("/login")
    assert first == second
    resp = await client.post(
        "/login", data={"token": SECRETS["viewer"], "csrf": first}, allow_redirects=False
    )
    assert resp.status == 303
