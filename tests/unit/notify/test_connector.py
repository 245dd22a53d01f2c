"""Tests for itsmd.notify.connector: SinkOptions, answers, the sink authors' helpers."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from itsmd.notify import connector
from itsmd.notify.connector import (
    Delivered,
    Failed,
    HttpAnswer,
    Retry,
    SinkConfigError,
    SinkOptions,
)
from tests.connectors.fakes_http import NO_IO, Answer, FakePeer, http_env, refused_url, running_peer


def options(values: dict[str, Any], **environ: str) -> SinkOptions:
    return SinkOptions(values, environ)


def problems(opts: SinkOptions) -> list[tuple[str, str]]:
    with pytest.raises(SinkConfigError) as caught:
        opts.done()
    assert str(caught.value) == "; ".join(f"{key}: {message}" for key, message in opts.problems)
    return caught.value.problems


# --- SinkOptions ---------------------------------------------------------------------------------


def test_typed_getters_read_valid_values_and_done_passes() -> None:
    opts = options(
        {
            "name": "ops",
            "port": 587,
            "tls": False,
            "every": "1m30s",
            "to": "a@example.com",
            "labels": {"team": "ops"},
        }
    )
    assert opts.text("name") == "ops"
    assert opts.optional_text("title") is None
    assert opts.integer("port", 25, lo=1, hi=65535) == 587
    assert opts.flag("tls", True) is False
    assert opts.seconds("every", "10s") == 90.0
    assert opts.texts("to") == ["a@example.com"]  # one string is a list of one
    assert opts.mapping("labels") == {"team": "ops"}
    opts.done()


def test_getters_fall_back_to_their_defaults() -> None:
    opts = options({})
    assert opts.text("table", "incident") == "incident"
    assert opts.integer("port", 587) == 587
    assert opts.flag("starttls", True) is True
    assert opts.seconds("timeout", "10s") == 10.0
    assert opts.texts("to", ["x@example.com"]) == ["x@example.com"]
    assert opts.mapping("headers") == {}
    opts.done()


def test_every_bad_value_is_a_problem_under_its_key() -> None:
    opts = options(
        {
            "name": "  ",
            "title": 7,
            "port": True,
            "retries": 99,
            "tls": "yes",
            "every": "soon",
            "to": [],
            "labels": {"team": 1},
        }
    )
    assert opts.text("name") == ""
    assert opts.text("missing") == ""
    assert opts.optional_text("title") == ""
    assert opts.integer("port", 587) == 587
    assert opts.integer("retries", 3, lo=0, hi=10) == 3
    assert opts.flag("tls", True) is True
    assert opts.seconds("every", "10s") == 10.0
    assert opts.texts("to") == []
    assert opts.mapping("labels") == {}
    found = problems(opts)
    assert [key for key, _ in found] == [
        "name",
        "missing",
        "title",
        "port",
        "retries",
        "tls",
        "every",
        "to",
        "labels",
    ]
    assert found[0] == ("name", "expected a non-empty string, got '  '")
    assert found[1] == ("missing", "required")
    assert found[3] == ("port", "expected an integer from 0 to 2147483648, got True")
    assert found[4] == ("retries", "expected an integer from 0 to 10, got 99")
    assert found[5] == ("tls", "expected true or false, got 'yes'")
    assert found[7] == ("to", "expected a non-empty list of strings, got []")
    assert found[8] == ("labels", "expected a mapping of strings to strings")


def test_done_reports_unknown_keys_in_order() -> None:
    opts = options({"url": "https://x.example", "zeta": 1, "alpha": 2})
    opts.text("url")
    assert problems(opts) == [("alpha", "unknown option"), ("zeta", "unknown option")]


def test_a_secret_comes_from_the_environment() -> None:
    opts = options({"token_env": "TOKEN"}, TOKEN="t0k3n")
    assert opts.secret("token") == "t0k3n"
    opts.done()


def test_a_secret_comes_from_a_file_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t0k3n\n", encoding="utf-8")
    opts = SinkOptions({"token_file": "token"}, base=tmp_path)
    assert opts.secret("token") == "t0k3n"
    opts.done()


@pytest.mark.parametrize(
    ("values", "environ", "expected"),
    [
        (
            {"token": "inline"},
            {},
            ("token", "secrets are never inline: use token_env or token_file"),
        ),
        ({}, {}, ("token", "give token_env or token_file")),
        (
            {"token_env": "T", "token_file": "f"},
            {"T": "x"},
            ("token", "give only one of token_env and token_file"),
        ),
        ({"token_env": "T"}, {}, ("token_env", "environment variable T is not set or empty")),
        (
            {"token_file": "absent"},
            {},
            ("token_file", "cannot read absent: No such file or directory"),
        ),
        ({"token_file": "empty"}, {}, ("token_file", "empty is empty")),
    ],
)
def test_a_bad_secret_is_one_problem(
    tmp_path: Path, values: dict[str, str], environ: dict[str, str], expected: tuple[str, str]
) -> None:
    (tmp_path / "empty").write_text("\n", encoding="utf-8")
    opts = SinkOptions(values, environ, base=tmp_path)
    assert opts.secret("token") is None
    assert problems(opts) == [expected]


def test_an_optional_secret_may_be_absent() -> None:
    opts = options({})
    assert opts.secret("secret", required=False) is None
    opts.done()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://acme.service-now.com/", "https://acme.service-now.com"),
        ("https://jira.example.com/base", "https://jira.example.com/base"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://[::1]:8080/", "http://[::1]:8080"),
        ("http://localhost", "http://localhost"),
    ],
)
def test_api_url_takes_https_or_loopback_http(url: str, expected: str) -> None:
    opts = options({"url": url})
    assert opts.api_url("url") == expected
    opts.done()


@pytest.mark.parametrize(
    "url",
    [
        "http://acme.service-now.com",  # a password in clear
        "ftp://acme.example.com",
        "https://",
        "acme.service-now.com",
        "https://acme.service-now.com/?sysparm=1",
        "https://acme.service-now.com/#top",
        "https://[::1",  # malformed: a problem, not a crash
    ],
)
def test_api_url_refuses_anything_else(url: str) -> None:
    opts = options({"url": url})
    opts.api_url("url")
    assert problems(opts) == [
        ("url", f"expected an https:// URL (http:// only to loopback), got {url!r}")
    ]


def test_basic_auth_reads_the_user_and_the_secret() -> None:
    opts = options({"user": "itsmd", "password_env": "PW"}, PW="s3cret")
    value = opts.basic_auth("user", "password")
    assert value == "Basic " + base64.b64encode(b"itsmd:s3cret").decode()
    opts.done()


def test_basic_auth_reports_a_colon_in_the_user_and_the_missing_secret() -> None:
    opts = options({"user": "it:smd"})
    assert opts.basic_auth("user", "token") == ""
    assert problems(opts) == [
        ("user", "a Basic auth user name has no ':'"),
        ("token", "give token_env or token_file"),
    ]


# --- reading answers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [
        (200, None, Delivered()),
        (204, "30", Delivered()),
        (408, None, Retry("HTTP 408: body")),
        (429, "30", Retry("HTTP 429: body", 30.0)),
        (503, "Wed, 21 Oct 2026 07:28:00 GMT", Retry("HTTP 503: body")),  # a date: not used
        (302, None, Failed("HTTP 302: body")),
        (404, "30", Failed("HTTP 404: body")),
    ],
)
def test_http_delivery_classifies_a_status(
    status: int, retry_after: str | None, expected: connector.Delivery
) -> None:
    assert connector.http_delivery(status, " body\n", retry_after) == expected


def test_http_delivery_keeps_200_characters_of_the_body() -> None:
    assert connector.http_delivery(400, "x" * 500) == Failed("HTTP 400: " + "x" * 200)


def test_an_answer_reads_as_a_delivery_and_as_json() -> None:
    answer = HttpAnswer(201, '{"result": {"sys_id": "abc"}}')
    assert answer.delivery() == Delivered()
    assert answer.json() == {"result": {"sys_id": "abc"}}
    assert HttpAnswer(200, "<html>hibernating</html>").json() is None
    assert HttpAnswer(503, "busy", "5").delivery() == Retry("HTTP 503: busy", 5.0)


# --- times, URLs, credentials, errors ------------------------------------------------------------

PARIS = timezone(timedelta(hours=1))


@pytest.mark.parametrize(
    ("moment", "fraction", "expected"),
    [
        (datetime(2026, 3, 1, 13, 5, 30, tzinfo=PARIS), True, "2026-03-01T12:05:30Z"),
        (datetime(2026, 3, 1, 12, 5, 30, 250, tzinfo=UTC), True, "2026-03-01T12:05:30.000250Z"),
        (datetime(2026, 3, 1, 13, 5, 30, 250, tzinfo=PARIS), False, "2026-03-01T12:05:30Z"),
        (datetime(2026, 3, 1, 12, 5, 30, tzinfo=UTC), False, "2026-03-01T12:05:30Z"),
    ],
)
def test_rfc3339_is_utc_with_a_z(moment: datetime, fraction: bool, expected: str) -> None:
    assert connector.rfc3339(moment, fraction=fraction) == expected


@pytest.mark.parametrize(
    ("url", "any_http", "loopback_http_only"),
    [
        ("https://hooks.slack.com/services/T/B/x", True, True),
        ("http://hooks.example.com/in", True, False),
        ("http://127.0.0.1:8080/", True, True),
        ("http://[::1]/", True, True),
        ("http://localhost:9/", True, True),
        ("https://", False, False),
        ("http:///path", False, False),
        ("ftp://files.example.com/", False, False),
        ("hooks.example.com/in", False, False),
        ("", False, False),
        ("https://[::1", False, False),  # malformed IPv6 host
    ],
)
def test_is_http_url(url: str, any_http: bool, loopback_http_only: bool) -> None:
    assert connector.is_http_url(url) is any_http
    assert connector.is_http_url(url, loopback_http_only=True) is loopback_http_only


def test_basic_auth_is_rfc_7617() -> None:
    assert connector.basic_auth("Aladdin", "open sesame") == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="


@pytest.mark.parametrize(
    ("exc", "peer", "expected"),
    [
        (
            aiohttp.ClientConnectionError("Cannot connect to host h:443"),
            "",
            "Cannot connect to host h:443",
        ),
        (aiohttp.ServerDisconnectedError(), "Jira", "Server disconnected"),
        (
            aiohttp.ClientConnectionError(),
            "Slack",
            "request to Slack failed: ClientConnectionError",
        ),
        (aiohttp.ClientPayloadError("cut short"), "", "request failed: ClientPayloadError"),
        (aiohttp.InvalidURL("https://h/services/t0k3n"), "", "request failed: InvalidURL"),
    ],
)
def test_describe_transport_error_never_shows_the_url(
    exc: aiohttp.ClientError, peer: str, expected: str
) -> None:
    assert connector.describe_transport_error(exc, peer) == expected


# --- requests ------------------------------------------------------------------------------------


async def raising(exc: BaseException) -> connector.Delivery:
    raise exc


async def test_guard_transport_turns_transport_failures_into_retries() -> None:
    env = connector.SinkEnv(http=NO_IO.http, timeout_s=0.5)

    async def delivered() -> connector.Delivery:
        return Delivered(ref="OPS-1")

    assert await connector.guard_transport(env, delivered()) == Delivered(ref="OPS-1")
    timeout = await connector.guard_transport(env, raising(TimeoutError()), "Jira")
    assert timeout == Retry("no answer from Jira within 0.5s")
    assert await connector.guard_transport(env, raising(TimeoutError())) == Retry(
        "no answer within 0.5s"
    )
    failed = await connector.guard_transport(env, raising(aiohttp.ClientPayloadError()), "Jira")
    assert failed == Retry("request to Jira failed: ClientPayloadError")


async def test_guard_transport_lets_other_errors_through() -> None:
    env = NO_IO
    with pytest.raises(KeyError):
        await connector.guard_transport(env, raising(KeyError("bug")))


@pytest.fixture
async def peer() -> AsyncIterator[FakePeer]:
    async with running_peer() as peer:
        yield peer


async def test_http_request_sends_json_with_its_content_type(peer: FakePeer) -> None:
    peer.answer(Answer(201, '{"key": "OPS-1"}', {"Retry-After": "7"}, "application/json"))
    async with http_env() as env:
        answer = await connector.http_request(
            env,
            "POST",
            peer.url("/issue"),
            {"a": [1]},
            headers={"Accept": "application/json"},
            params={"q": "x y"},
        )
    assert answer == HttpAnswer(201, '{"key": "OPS-1"}', "7")
    (seen,) = peer.seen
    assert (seen.method, seen.path, seen.json()) == ("POST", "/issue?q=x+y", {"a": [1]})
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.headers["Accept"] == "application/json"


async def test_http_request_sends_bytes_as_given_and_nothing_without_a_body(
    peer: FakePeer,
) -> None:
    async with http_env() as env:
        await connector.http_request(
            env, "PUT", peer.url(), b"raw", headers={"Content-Type": "text/plain"}
        )
        await connector.http_request(env, "GET", peer.url())
    put, get = peer.seen
    assert (put.method, put.body, put.headers["Content-Type"]) == ("PUT", b"raw", "text/plain")
    assert (get.method, get.body) == ("GET", b"")
    assert "Content-Type" not in get.headers


async def test_http_post_does_not_follow_redirects(peer: FakePeer) -> None:
    peer.answer(Answer(302, "moved", {"Location": "/elsewhere"}))
    async with http_env() as env:
        delivery = await connector.http_post(env, peer.url("/hook"), {"x": 1})
    assert delivery == Failed("HTTP 302: moved")
    assert [seen.path for seen in peer.seen] == ["/hook"]


async def test_http_post_reads_the_answer(peer: FakePeer) -> None:
    peer.answer(Answer(503, "busy", {"Retry-After": "30"}), Answer(202, "queued"))
    async with http_env() as env:
        assert await connector.http_post(env, peer.url(), b"{}") == Retry("HTTP 503: busy", 30.0)
        assert await connector.http_post(env, peer.url(), b"{}") == Delivered()


async def test_http_post_retries_on_a_timeout_and_a_refused_connection(peer: FakePeer) -> None:
    peer.answer(Answer(hang=True))
    async with http_env(timeout_s=0.05) as env:
        late = await connector.http_post(env, peer.url(), {}, peer="PagerDuty")
        with refused_url("/services/t0k3n") as url:
            refused = await connector.http_post(env, url, {}, peer="PagerDuty")
    assert late == Retry("no answer from PagerDuty within 0.05s")
    assert isinstance(refused, Retry)
    assert refused.reason.startswith("Cannot connect to host 127.0.0.1:")
    assert "t0k3n" not in refused.reason


# --- kinds ---------------------------------------------------------------------------------------


def test_the_built_in_sink_kinds_are_installed() -> None:
    kinds = connector.installed_kinds()
    assert {"webhook", "slack", "pagerduty", "servicenow", "jira", "email"} <= set(kinds)
    assert all(kind.kind == name and kind.doc for name, kind in kinds.items())
