"""The jira sink against a fake REST API v2 on loopback: exact requests, answers.

Descriptions and comments are Jira wiki markup: `shown()` and `inert()` read the
markup as Jira's renderer does, to prove that hostile text arrives as plain text.
"""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar

import pytest
from aiohttp import web

from itsmd.notify.connector import (
    ENTRY_POINT_GROUP,
    Delivered,
    Delivery,
    Failed,
    Retry,
    SinkConfigError,
    SinkEnv,
    SinkOptions,
)
from itsmd_connectors.sinks import jira
from tests.connectors.fakes_tickets import (
    LINK,
    NO_IO,
    FakeApi,
    Scripted,
    http_env,
    incident_event,
    problem_event,
    refused_port,
    serving,
    without_link,
)

USER, TOKEN = "itsmd@example.com", "ATATT3xFfGF0-token"
API = "/rest/api/2"
WORKFLOW = [
    {"id": "11", "name": "To Do", "to": {"name": "To Do"}},
    {"id": "21", "name": "In Progress", "to": {"name": "In Progress"}},
    {"id": "31", "name": "Done", "to": {"name": "Done"}},
]


class FakeJira(FakeApi):
    """Issues of one project with a three-step workflow; answers as Jira Cloud does."""

    unauthorized: ClassVar[Any] = {"errorMessages": ["You are not authenticated."]}

    def __init__(self) -> None:
        super().__init__(USER, TOKEN)
        self.issues: dict[str, dict[str, Any]] = {}
        self.comments: dict[str, list[str]] = {}
        self.transitions = list(WORKFLOW)
        self.app.router.add_post(f"{API}/issue", self.create)
        self.app.router.add_post(f"{API}/issue/{{key}}/comment", self.comment)
        self.app.router.add_get(f"{API}/issue/{{key}}/transitions", self.list_transitions)
        self.app.router.add_post(f"{API}/issue/{{key}}/transitions", self.transition)

    async def create(self, request: web.Request) -> web.Response:
        fields = (await request.json())["fields"]
        issue_id = str(10000 + len(self.issues))
        key = f"{fields['project']['key']}-{len(self.issues) + 1}"
        self.issues[key] = fields | {"status": "To Do"}
        self.comments[key] = []
        self_url = f"{request.url.origin()}{API}/issue/{issue_id}"
        return web.json_response({"id": issue_id, "key": key, "self": self_url}, status=201)

    def missing(self, key: str) -> web.Response | None:
        if key in self.issues:
            return None
        message = "Issue does not exist or you do not have permission to see it."
        return web.json_response({"errorMessages": [message], "errors": {}}, status=404)

    async def comment(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        if (missing := self.missing(key)) is not None:
            return missing
        self.comments[key].append((await request.json())["body"])
        number = sum(map(len, self.comments.values()))
        return web.json_response({"id": str(number), "body": self.comments[key][-1]}, status=201)

    async def list_transitions(self, request: web.Request) -> web.Response:
        if (missing := self.missing(request.match_info["key"])) is not None:
            return missing
        return web.json_response({"expand": "transitions", "transitions": self.transitions})

    async def transition(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        if (missing := self.missing(key)) is not None:
            return missing
        wanted = (await request.json())["transition"]["id"]
        (move,) = [move for move in self.transitions if move["id"] == wanted]
        self.issues[key]["status"] = move["to"]["name"]
        return web.Response(status=204)


@pytest.fixture
async def fake() -> AsyncIterator[FakeJira]:
    async with serving(FakeJira()) as api:
        yield api


def build(env: SinkEnv, url: str, **values: Any) -> jira.JiraSink:
    values = {"url": url, "project": "OPS", "user": USER, "token_env": "JIRA_TOKEN", **values}
    return jira.build(SinkOptions(values, {"JIRA_TOKEN": TOKEN}), env)


def fields(**overrides: Any) -> dict[str, Any]:
    """The issue fields the sink creates for the sample incident."""
    return {
        "project": {"key": "OPS"},
        "summary": "Disk full on db-1",
        "description": "/var on db\\-1 is 97\\% full\n\n"
        "itsmd incident: INC\\-42\n"
        "Priority: P1 (impact high, urgency high)\n"
        "Service: billing\n"
        "Rule: disk\n\n" + LINK,
        "issuetype": {"name": "Task"},
        "labels": ["itsmd"],
        **overrides,
    }


def comment(what: str) -> dict[str, str]:
    return {"body": f"itsmd: INC\\-42 {what} at 2026-03-01T12:05:30Z.\n{LINK}"}


# --- Jira wiki markup as Jira reads it ------------------------------------------------------

# The characters Jira's renderer takes back from a backslash escape
# (BackslashEscapeRendererComponent); each of them starts or ends some markup.
SPECIAL = "-#*_+?^~|%{}[]()!@"
ESCAPED = re.compile(r"\\([" + re.escape(SPECIAL) + r"])")
BARE_URL = re.compile(r"https?://[^\s\[\]{}|!\\<>\"]+")
ENTITY = re.compile(r"&(#[0-9]+|[a-z]+);")
BLOCK = re.compile(r"^[ \t]*(h[1-6]|bq)\.", re.M)


def shown(markup: str) -> str:
    """The characters Jira shows for `markup` without markup in it: escapes taken back,
    entities decoded."""
    return html.unescape(ESCAPED.sub(r"\1", markup))


def inert(markup: str) -> bool:
    """No link, image, mention, macro, table, list, heading, quote, text effect, line
    break or emoticon can start in `markup`: outside bare URLs (which Jira links as
    written) and entities, every special character is escaped and no backslash is left."""
    rest = ESCAPED.sub("", ENTITY.sub("", BARE_URL.sub("", markup)))
    return not set(rest) & set(SPECIAL + "\\") and BLOCK.search(rest) is None


HOSTILE = (
    "Click [here|http://evil.example/login] or [~admin] [^secrets.txt] "
    "!http://evil.example/pixel.png|width=1! {noformat}raw{noformat} {color:red}red{color} "
    "{html}<b>x</b>{html} *bold* _em_ -del- +ins+ ^sup^ ~sub~ ??cite?? {{mono}} (/) :) "
    "\\[x|http://evil.example/2] C:\\temp\\\\share &lt;b&gt; &#91;y&#93; 50%"
    "\nh1. Pay here\n  bq. quoted\n|| a || b ||\n| c | d |\n* item\n# one\n----\n"
    "runbook: https://wiki.example.com/runbooks/disk_full?host=db-1#step-2 done"
)


def test_kind_is_registered_under_its_name() -> None:
    (entry,) = entry_points(group=ENTRY_POINT_GROUP, name="jira")
    assert entry.load() is jira.KIND
    assert jira.KIND.kind == "jira"
    assert jira.KIND.doc


async def test_opened_creates_an_issue(fake: FakeJira, env: SinkEnv) -> None:
    delivery = await build(env, fake.base_url).send(incident_event("opened"))

    assert delivery == Delivered(ref="OPS-1")
    (seen,) = fake.seen
    assert seen.call == ("POST", f"{API}/issue", {}, {"fields": fields()})
    assert seen.auth == (USER, TOKEN)
    assert seen.headers["Accept"] == "application/json"
    assert seen.headers["Content-Type"] == "application/json"


async def test_configured_type_labels_and_priorities_go_into_the_issue(
    fake: FakeJira, env: SinkEnv
) -> None:
    sink = build(
        env,
        fake.base_url + "/",
        issue_type="Incident",
        labels=["ops", "itsmd", "billing"],
        priority_map={"P1": "Highest", "P2": "High"},
    )
    await sink.send(without_link(incident_event("opened", title="a\nb " + "x" * 300)))

    description = fields()["description"].removesuffix("\n\n" + LINK)
    expected = fields(
        summary="a b " + "x" * 250 + "…",
        description=description,
        issuetype={"name": "Incident"},
        labels=["ops", "itsmd", "billing"],
        priority={"name": "Highest"},
    )
    assert fake.calls == [("POST", f"{API}/issue", {}, {"fields": expected})]


async def test_hostile_text_reaches_jira_as_inert_text(fake: FakeJira, env: SinkEnv) -> None:
    """Annotations (the description), labels (service) and names (rule, assignee) with
    Jira markup in them show as the characters they are: no link, image, mention or
    macro; a bare URL stays whole. The summary is plain text in Jira and goes as is."""
    title = "Disk [full|http://evil.example] !http://evil.example/x.png! {noformat}"
    hostile: dict[str, Any] = {
        "title": title,
        "description": HOSTILE,
        "service": "[billing|http://evil.example]",
        "rule": "{noformat}disk",
        "impact": None,
        "urgency": None,
    }
    sink = build(env, fake.base_url)
    await sink.send(incident_event("opened", **hostile))
    await sink.send(incident_event("assigned", ref="OPS-1", assignee="[~admin]!x.png!", **hostile))

    issue = fake.issues["OPS-1"]
    assert issue["summary"] == title
    markup = issue["description"].removesuffix("\n\n" + LINK)
    assert inert(markup), markup
    assert shown(markup) == (
        f"{HOSTILE}\n\nitsmd incident: INC-42\nPriority: P1\n"
        "Service: [billing|http://evil.example]\nRule: {noformat}disk"
    )
    assert "https://wiki.example.com/runbooks/disk_full?host=db-1#step-2 " in markup
    (note,) = fake.comments["OPS-1"]
    line = note.removesuffix("\n" + LINK)
    assert inert(line.replace("2026-03-01T12:05:30Z", "")), line  # the time is itsmd's
    assert shown(line) == "itsmd: INC-42 assigned to [~admin]!x.png! at 2026-03-01T12:05:30Z."


@pytest.mark.parametrize(
    ("text", "markup"),
    [
        ("[a|http://e.example]", "\\[a\\|http://e.example\\]"),
        ("!http://e.example/x.png!", "\\!http://e.example/x.png\\!"),
        ("{noformat}", "\\{noformat\\}"),
        ("a\\[b|c]", "a&#92;\\[b\\|c\\]"),
        ("R&D &amp;", "R&amp;D &amp;amp;"),
        ("h2. big\n bq. q\nhh1. no", "&#104;2. big\n &#98;q. q\nhh1. no"),
        ("see https://w.example/a_b-c?d=1", "see https://w.example/a_b-c?d=1"),
        ("plain text, 42.", "plain text, 42."),
    ],
)
def test_wiki_text_escapes_markup(text: str, markup: str) -> None:
    assert jira.wiki_text(text) == markup
    assert shown(markup) == text
    assert inert(markup)


async def test_an_unmapped_priority_is_left_to_jira(fake: FakeJira, env: SinkEnv) -> None:
    sink = build(env, fake.base_url, priority_map={"P1": "Highest"})
    await sink.send(incident_event("opened", priority="P3"))
    assert "priority" not in fake.seen[0].body["fields"]


@pytest.mark.parametrize(
    ("event", "overrides", "what"),
    [
        ("acknowledged", {"assignee": "alice"}, "acknowledged by alice"),
        ("acknowledged", {}, "acknowledged"),
        ("commented", {}, "has a new comment"),
        ("assigned", {"assignee": "bob"}, "assigned to bob"),
        ("assigned", {}, "unassigned"),
        ("sla_breached", {}, "breached its SLA"),
        ("reopened", {}, "reopened"),
    ],
)
async def test_later_events_comment_on_the_issue(
    fake: FakeJira, env: SinkEnv, event: str, overrides: dict[str, Any], what: str
) -> None:
    sink = build(env, fake.base_url)
    await sink.send(incident_event("opened"))

    delivery = await sink.send(incident_event(event, ref="OPS-1", **overrides))

    assert delivery == Delivered(ref="OPS-1")
    assert fake.calls[1:] == [("POST", f"{API}/issue/OPS-1/comment", {}, comment(what))]
    assert fake.seen[1].auth == (USER, TOKEN)
    assert fake.issues["OPS-1"]["status"] == "To Do"


async def test_resolved_comments_then_applies_the_transition(fake: FakeJira, env: SinkEnv) -> None:
    sink = build(env, fake.base_url, resolve_transition="done")
    await sink.send(incident_event("opened"))

    delivery = await sink.send(incident_event("resolved", ref="OPS-1"))

    assert delivery == Delivered(ref="OPS-1", detail="commented and applied 'done'")
    assert fake.calls[1:] == [
        ("POST", f"{API}/issue/OPS-1/comment", {}, comment("resolved")),
        ("GET", f"{API}/issue/OPS-1/transitions", {}, None),
        ("POST", f"{API}/issue/OPS-1/transitions", {}, {"transition": {"id": "31"}}),
    ]
    assert "Content-Type" not in fake.seen[2].headers
    assert all(seen.auth == (USER, TOKEN) for seen in fake.seen)
    assert fake.issues["OPS-1"]["status"] == "Done"


async def test_resolved_without_the_transition_still_counts_the_comment(
    fake: FakeJira, env: SinkEnv
) -> None:
    sink = build(env, fake.base_url, resolve_transition="Close")
    await sink.send(incident_event("opened"))

    delivery = await sink.send(incident_event("resolved", ref="OPS-1"))

    assert delivery == Delivered(
        ref="OPS-1",
        detail="commented; OPS-1 offers no transition 'Close' (offered: To Do, In Progress, Done)",
    )
    assert [call[:2] for call in fake.calls[1:]] == [
        ("POST", f"{API}/issue/OPS-1/comment"),
        ("GET", f"{API}/issue/OPS-1/transitions"),
    ]


async def test_a_failed_transition_is_retried_and_the_retry_comments_again(
    fake: FakeJira, env: SinkEnv
) -> None:
    sink = build(env, fake.base_url)
    await sink.send(incident_event("opened"))
    transitions = f"{API}/issue/OPS-1/transitions"
    fake.script("POST", transitions, Scripted(503, "try later", {"Retry-After": "5"}))

    first = await sink.send(incident_event("resolved", ref="OPS-1"))
    second = await sink.send(incident_event("resolved", ref="OPS-1", attempt=2))

    assert first == Retry("comment posted, transition not applied: HTTP 503: try later", 5.0)
    assert second == Delivered(ref="OPS-1", detail="commented and applied 'Done'")
    assert fake.comments["OPS-1"] == [comment("resolved")["body"]] * 2  # the known duplicate
    assert fake.issues["OPS-1"]["status"] == "Done"


async def test_a_refused_transition_is_permanent(fake: FakeJira, env: SinkEnv) -> None:
    sink = build(env, fake.base_url)
    await sink.send(incident_event("opened"))
    errors = {"errorMessages": [], "errors": {"resolution": "Resolution is required."}}
    fake.script("POST", f"{API}/issue/OPS-1/transitions", Scripted(400, errors))

    delivery = await sink.send(incident_event("resolved", ref="OPS-1"))

    assert isinstance(delivery, Failed)
    assert delivery.reason.startswith("comment posted, transition not applied: HTTP 400: ")
    assert "Resolution is required." in delivery.reason


async def test_an_event_without_ref_creates_the_issue_first(fake: FakeJira, env: SinkEnv) -> None:
    delivery = await build(env, fake.base_url).send(incident_event("sla_breached"))

    assert delivery == Delivered(ref="OPS-1")
    assert fake.calls == [
        ("POST", f"{API}/issue", {}, {"fields": fields()}),
        ("POST", f"{API}/issue/OPS-1/comment", {}, comment("breached its SLA")),
    ]


@pytest.mark.parametrize("event", ["problem_opened", "problem_resolved"])
async def test_problem_events_are_not_sent(fake: FakeJira, env: SinkEnv, event: str) -> None:
    delivery = await build(env, fake.base_url).send(problem_event(event))
    assert delivery == Delivered(detail="not sent: Jira gets incident events only")
    assert fake.seen == []


BAD_FIELDS = {"errorMessages": [], "errors": {"issuetype": "Specify a valid issue type"}}


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (Scripted(400, BAD_FIELDS), Failed),
        (Scripted(403, {"errorMessages": ["No permission to create issues."]}), Failed),
        (Scripted(429, "Rate limit exceeded.", {"Retry-After": "12"}), Retry),
        (Scripted(500, {"errorMessages": ["Internal server error"]}), Retry),
        (Scripted(503, "<html>Service Unavailable</html>"), Retry),
    ],
)
async def test_answers_are_classified(
    fake: FakeJira, env: SinkEnv, answer: Scripted, expected: type[Delivery]
) -> None:
    fake.script("POST", f"{API}/issue", answer)
    delivery = await build(env, fake.base_url).send(incident_event("opened"))
    assert isinstance(delivery, expected)
    assert delivery.reason.startswith(f"HTTP {answer.status}: ")
    if answer.status == 429:
        assert delivery == Retry("HTTP 429: Rate limit exceeded.", 12.0)


async def test_a_wrong_token_is_permanent(fake: FakeJira, env: SinkEnv) -> None:
    values = {"url": fake.base_url, "project": "OPS", "user": USER, "token_env": "T"}
    sink = jira.build(SinkOptions(values, {"T": "expired"}), env)
    delivery = await sink.send(incident_event("opened"))
    assert delivery == Failed('HTTP 401: {"errorMessages":["You are not authenticated."]}')


async def test_a_deleted_issue_is_permanent(fake: FakeJira, env: SinkEnv) -> None:
    delivery = await build(env, fake.base_url).send(incident_event("commented", ref="OPS-99"))
    assert isinstance(delivery, Failed)
    assert delivery.reason.startswith("HTTP 404: ")
    assert fake.calls == [("POST", f"{API}/issue/OPS-99/comment", {}, comment("has a new comment"))]


async def test_a_create_answered_without_a_key_is_retried(fake: FakeJira, env: SinkEnv) -> None:
    fake.script("POST", f"{API}/issue", Scripted(200, "<html>Log in</html>"))
    delivery = await build(env, fake.base_url).send(incident_event("opened"))
    assert delivery == Retry("create answered without an issue key: <html>Log in</html>")


async def test_a_refused_connection_is_retried(env: SinkEnv) -> None:
    with refused_port() as port:
        delivery = await build(env, f"http://127.0.0.1:{port}").send(incident_event("opened"))
    assert isinstance(delivery, Retry)
    assert f"127.0.0.1:{port}" in delivery.reason


async def test_no_answer_in_time_is_retried(fake: FakeJira) -> None:
    fake.script("POST", f"{API}/issue/OPS-1/comment", Scripted(201, hang=True))
    async with http_env(timeout_s=0.2) as env:
        delivery = await build(env, fake.base_url).send(incident_event("commented", ref="OPS-1"))
    assert delivery == Retry("no answer from Jira within 0.2s")


def test_options_are_all_checked_at_once() -> None:
    values = {
        "url": "ftp://jira.example.com",
        "user": "a:b",
        "token": "inline",
        "labels": ["ok", "two words"],
        "priority_map": {"P1": "Highest", "SEV1": "Blocker"},
        "transition": "Done",
    }
    with pytest.raises(SinkConfigError) as caught:
        jira.build(SinkOptions(values), NO_IO)
    assert caught.value.problems == [
        (
            "url",
            "expected an https:// URL (http:// only to loopback), got 'ftp://jira.example.com'",
        ),
        ("project", "required"),
        ("user", "a Basic auth user name has no ':'"),
        ("token", "secrets are never inline: use token_env or token_file"),
        ("labels", "Jira labels have no spaces, got ['ok', 'two words']"),
        ("priority_map", "keys are priorities P1..P5, got ['SEV1']"),
        ("transition", "unknown option"),
    ]


def test_building_does_no_io_and_keeps_the_token_out_of_repr(tmp_path: Path) -> None:
    (tmp_path / "jira.token").write_text(TOKEN + "\n", encoding="utf-8")
    values = {"url": "https://acme.atlassian.net", "project": "OPS", "user": USER}
    options = SinkOptions(values | {"token_file": "jira.token"}, base=tmp_path)
    sink = jira.build(options, NO_IO)
    assert sink.api == "https://acme.atlassian.net/rest/api/2"
    assert TOKEN not in repr(sink)
