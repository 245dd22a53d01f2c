"""The servicenow sink against a fake Table API on loopback: exact requests, answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from importlib.metadata import entry_points
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
from itsmd_connectors.sinks import servicenow
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

USER, PASSWORD = "itsmd", "s3cret"
TABLE = "/api/now/table/incident"
SYS_ID = "00000000000000000000000000000001"  # the first record the fake creates
NOT_FOUND = {
    "error": {
        "message": "No Record found",
        "detail": "Record doesn't exist or ACL restricts the record retrieval",
    },
    "status": "failure",
}


class FakeServiceNow(FakeApi):
    """The Table API of one instance, any table: create, list by query, update."""

    unauthorized: ClassVar[Any] = {
        "error": {
            "message": "User Not Authenticated",
            "detail": "Required to provide Auth information",
        },
        "status": "failure",
    }

    def __init__(self) -> None:
        super().__init__(USER, PASSWORD)
        self.records: dict[str, dict[str, str]] = {}
        self.app.router.add_post("/api/now/table/{table}", self.create)
        self.app.router.add_get("/api/now/table/{table}", self.list)
        self.app.router.add_patch("/api/now/table/{table}/{sys_id}", self.update)

    def add(self, **fields: str) -> dict[str, str]:
        count = len(self.records) + 1
        record = {"sys_id": f"{count:032x}", "number": f"INC{10000 + count:07d}", "state": "1"}
        record |= fields
        self.records[record["sys_id"]] = record
        return record

    async def create(self, request: web.Request) -> web.Response:
        return web.json_response({"result": self.add(**await request.json())}, status=201)

    async def list(self, request: web.Request) -> web.Response:
        terms = [term.partition("=") for term in request.query["sysparm_query"].split("^")]
        rows = [r for r in self.records.values() if all(r.get(k) == v for k, _, v in terms)]
        fields = request.query["sysparm_fields"].split(",")
        limit = int(request.query["sysparm_limit"])
        return web.json_response({"result": [{f: r[f] for f in fields} for r in rows[:limit]]})

    async def update(self, request: web.Request) -> web.Response:
        record = self.records.get(request.match_info["sys_id"])
        if record is None:
            return web.json_response(NOT_FOUND, status=404)
        record |= await request.json()
        return web.json_response({"result": record})


@pytest.fixture
async def snow() -> AsyncIterator[FakeServiceNow]:
    async with serving(FakeServiceNow()) as api:
        yield api


def build(env: SinkEnv, url: str, **values: Any) -> servicenow.ServiceNowSink:
    values = {"instance_url": url, "user": USER, "password_env": "SNOW_PASSWORD", **values}
    return servicenow.build(SinkOptions(values, {"SNOW_PASSWORD": PASSWORD}), env)


def created(**overrides: str) -> dict[str, str]:
    """The record body the sink POSTs for the sample incident."""
    return {
        "short_description": "Disk full on db-1",
        "description": "/var on db-1 is 97% full\n\n"
        "itsmd incident INC-42, priority P1, service billing\n\n" + LINK,
        "impact": "1",
        "urgency": "1",
        "correlation_id": "INC-42",
        "correlation_display": "itsmd",
        **overrides,
    }


LOOKUP = {
    "sysparm_query": "correlation_id=INC-42^correlation_display=itsmd",
    "sysparm_fields": "sys_id",
    "sysparm_limit": "1",
}


def test_kind_is_registered_under_its_name() -> None:
    (entry,) = entry_points(group=ENTRY_POINT_GROUP, name="servicenow")
    assert entry.load() is servicenow.KIND
    assert servicenow.KIND.kind == "servicenow"
    assert servicenow.KIND.doc


async def test_opened_creates_a_record(snow: FakeServiceNow, env: SinkEnv) -> None:
    delivery = await build(env, snow.base_url).send(incident_event("opened"))

    assert delivery == Delivered(ref=SYS_ID)
    (seen,) = snow.seen
    assert seen.call == ("POST", TABLE, {}, created())
    assert seen.auth == (USER, PASSWORD)
    assert seen.headers["Accept"] == "application/json"
    assert seen.headers["Content-Type"] == "application/json"
    assert snow.records[SYS_ID]["number"] == "INC0010001"


async def test_configured_table_and_fields_go_into_the_record(
    snow: FakeServiceNow, env: SinkEnv
) -> None:
    sink = build(
        env,
        snow.base_url + "/",
        table="u_itsmd_incident",
        assignment_group="287ebd7da9fe198100f92cc8d1d2154e",
        caller_id="itsmd.integration",
        category="software",
    )
    event = without_link(incident_event(impact="medium", urgency="low", title="x" * 200))
    await sink.send(event)

    extra = {
        "assignment_group": "287ebd7da9fe198100f92cc8d1d2154e",
        "caller_id": "itsmd.integration",
        "category": "software",
    }
    description = "/var on db-1 is 97% full\n\nitsmd incident INC-42, priority P1, service billing"
    body = created(
        short_description="x" * 159 + "…", description=description, impact="2", urgency="3"
    )
    assert snow.calls == [("POST", "/api/now/table/u_itsmd_incident", {}, body | extra)]


async def test_unknown_impact_and_urgency_are_left_to_servicenow(
    snow: FakeServiceNow, env: SinkEnv
) -> None:
    await build(env, snow.base_url).send(incident_event(impact=None, urgency="severe"))
    body = snow.seen[0].body
    assert "impact" not in body
    assert "urgency" not in body


NOTE = f"at 2026-03-01T12:05:30Z.\n{LINK}"


@pytest.mark.parametrize(
    ("event", "overrides", "patch"),
    [
        (
            "acknowledged",
            {"assignee": "alice"},
            {"state": "2", "work_notes": f"itsmd: INC-42 acknowledged by alice {NOTE}"},
        ),
        (
            "resolved",
            {},
            {
                "state": "6",
                "close_code": "Solved (Permanently)",
                "close_notes": f"itsmd: INC-42 resolved {NOTE}",
            },
        ),
        ("reopened", {}, {"state": "2", "work_notes": f"itsmd: INC-42 reopened {NOTE}"}),
        ("assigned", {"assignee": "bob"}, {"work_notes": f"itsmd: INC-42 assigned to bob {NOTE}"}),
        ("commented", {}, {"work_notes": f"itsmd: INC-42 has a new comment {NOTE}"}),
        ("sla_breached", {}, {"work_notes": f"itsmd: INC-42 breached its SLA {NOTE}"}),
    ],
)
async def test_later_events_update_the_record_by_ref(
    snow: FakeServiceNow, env: SinkEnv, event: str, overrides: dict[str, Any], patch: Any
) -> None:
    record = snow.add(correlation_id="INC-42", correlation_display="itsmd")
    delivery = await build(env, snow.base_url).send(
        incident_event(event, ref=record["sys_id"], **overrides)
    )

    assert delivery == Delivered(ref=record["sys_id"])
    (seen,) = snow.seen
    assert seen.call == ("PATCH", f"{TABLE}/{record['sys_id']}", {}, patch)
    assert seen.auth == (USER, PASSWORD)
    assert seen.headers["Content-Type"] == "application/json"
    assert snow.records[record["sys_id"]].items() >= patch.items()


async def test_an_update_without_ref_finds_the_record_by_correlation_id(
    snow: FakeServiceNow, env: SinkEnv
) -> None:
    snow.add(correlation_id="INC-41", correlation_display="itsmd")
    record = snow.add(correlation_id="INC-42", correlation_display="itsmd")
    delivery = await build(env, snow.base_url).send(without_link(incident_event("commented")))

    assert delivery == Delivered(ref=record["sys_id"])
    note = "itsmd: INC-42 has a new comment at 2026-03-01T12:05:30Z."
    assert snow.calls == [
        ("GET", TABLE, LOOKUP, None),
        ("PATCH", f"{TABLE}/{record['sys_id']}", {}, {"work_notes": note}),
    ]
    assert "Content-Type" not in snow.seen[0].headers
    assert snow.seen[0].headers["Accept"] == "application/json"


async def test_an_update_without_ref_and_without_record_creates_it_first(
    snow: FakeServiceNow, env: SinkEnv
) -> None:
    delivery = await build(env, snow.base_url).send(incident_event("resolved"))

    assert delivery == Delivered(ref=SYS_ID)
    resolve = {
        "state": "6",
        "close_code": "Solved (Permanently)",
        "close_notes": f"itsmd: INC-42 resolved {NOTE}",
    }
    assert snow.calls == [
        ("GET", TABLE, LOOKUP, None),
        ("POST", TABLE, {}, created()),
        ("PATCH", f"{TABLE}/{SYS_ID}", {}, resolve),
    ]


async def test_a_retried_opened_finds_the_record_its_lost_answer_created(
    snow: FakeServiceNow, env: SinkEnv
) -> None:
    sink = build(env, snow.base_url)
    snow.script("POST", TABLE, Scripted(201, hang=True))  # created, but the answer is lost
    record = snow.add(**created())
    async with http_env(timeout_s=0.2) as impatient:
        first = await build(impatient, snow.base_url).send(incident_event("opened"))
    assert first == Retry("no answer from ServiceNow within 0.2s")

    second = await sink.send(incident_event("opened", attempt=2))

    assert second == Delivered(ref=record["sys_id"])
    assert snow.calls[1:] == [("GET", TABLE, LOOKUP, None)]
    assert len(snow.records) == 1


async def test_a_retried_opened_creates_when_nothing_was_created(
    snow: FakeServiceNow, env: SinkEnv
) -> None:
    delivery = await build(env, snow.base_url).send(incident_event("opened", attempt=2))
    assert delivery == Delivered(ref=SYS_ID)
    assert snow.calls == [("GET", TABLE, LOOKUP, None), ("POST", TABLE, {}, created())]


@pytest.mark.parametrize("event", ["problem_opened", "problem_resolved"])
async def test_problem_events_are_not_sent(snow: FakeServiceNow, env: SinkEnv, event: str) -> None:
    delivery = await build(env, snow.base_url).send(problem_event(event))
    assert delivery == Delivered(detail="not sent: ServiceNow gets incident events only")
    assert snow.seen == []


ERROR = {"error": {"message": "Invalid table", "detail": None}, "status": "failure"}


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (Scripted(400, ERROR), Failed),
        (Scripted(403, ERROR), Failed),
        (Scripted(429, ERROR, {"Retry-After": "30"}), Retry),
        (Scripted(500, ERROR), Retry),
        (Scripted(503, "<html>Hibernating</html>"), Retry),
    ],
)
async def test_answers_are_classified(
    snow: FakeServiceNow, env: SinkEnv, answer: Scripted, expected: type[Delivery]
) -> None:
    snow.script("POST", TABLE, answer)
    delivery = await build(env, snow.base_url).send(incident_event("opened"))
    assert isinstance(delivery, expected)
    assert delivery.reason.startswith(f"HTTP {answer.status}: ")
    if answer.status == 429:
        assert delivery == Retry(delivery.reason, 30.0)


async def test_a_wrong_password_is_permanent(snow: FakeServiceNow, env: SinkEnv) -> None:
    values = {"instance_url": snow.base_url, "user": USER, "password_env": "P"}
    sink = servicenow.build(SinkOptions(values, {"P": "wrong"}), env)
    delivery = await sink.send(incident_event("opened"))
    assert isinstance(delivery, Failed)
    assert delivery.reason.startswith("HTTP 401: ")
    assert "User Not Authenticated" in delivery.reason


async def test_a_deleted_record_is_permanent(snow: FakeServiceNow, env: SinkEnv) -> None:
    delivery = await build(env, snow.base_url).send(incident_event("commented", ref="f" * 32))
    assert isinstance(delivery, Failed)
    assert delivery.reason.startswith("HTTP 404: ")


async def test_a_failed_update_keeps_no_ref(snow: FakeServiceNow, env: SinkEnv) -> None:
    record = snow.add(correlation_id="INC-42", correlation_display="itsmd")
    snow.script("PATCH", f"{TABLE}/{record['sys_id']}", Scripted(502, "Bad Gateway"))
    delivery = await build(env, snow.base_url).send(incident_event("resolved"))
    assert delivery == Retry("HTTP 502: Bad Gateway")


async def test_a_create_answered_without_json_is_retried(
    snow: FakeServiceNow, env: SinkEnv
) -> None:
    # a hibernating developer instance answers 200 with an HTML page
    snow.script("POST", TABLE, Scripted(200, "<html>Your instance is hibernating</html>"))
    delivery = await build(env, snow.base_url).send(incident_event("opened"))
    assert isinstance(delivery, Retry)
    assert delivery.reason.startswith("create answered without a sys_id: <html>")


async def test_a_refused_connection_is_retried(env: SinkEnv) -> None:
    with refused_port() as port:
        delivery = await build(env, f"http://127.0.0.1:{port}").send(incident_event("opened"))
    assert isinstance(delivery, Retry)
    assert f"127.0.0.1:{port}" in delivery.reason


def test_options_are_all_checked_at_once() -> None:
    values = {
        "instance_url": "http://acme.service-now.com",
        "password": "inline",
        "table": "incident/../sys_user",
        "category": "",
        "colour": "blue",
    }
    with pytest.raises(SinkConfigError) as caught:
        servicenow.build(SinkOptions(values), NO_IO)
    assert caught.value.problems == [
        (
            "instance_url",
            "expected an https:// URL (http:// only to loopback), "
            "got 'http://acme.service-now.com'",
        ),
        ("user", "required"),
        ("password", "secrets are never inline: use password_env or password_file"),
        ("table", "expected a table name like u_itsmd_incident, got 'incident/../sys_user'"),
        ("category", "expected a non-empty string, got ''"),
        ("colour", "unknown option"),
    ]


def test_building_does_no_io() -> None:
    values = {"instance_url": "https://acme.service-now.com", "user": USER, "password_env": "P"}
    sink = servicenow.build(SinkOptions(values, {"P": PASSWORD}), NO_IO)
    assert sink.table_url == "https://acme.service-now.com/api/now/table/incident"
