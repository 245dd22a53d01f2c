"""The Prometheus client: captured answers parsed, and requests to a fake Prometheus on loopback.

`tests/fixtures/prometheus/` holds bodies a real Prometheus 2.42 returned (see its
README and `index.json`, which also records each answer's HTTP status). Every file is
checked here; the fake server replays them with their real status codes, so the
client's error messages are tested end to end without a Prometheus binary.
"""

from __future__ import annotations

import asyncio
import json
import math
import socket
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import pytest
from aiohttp import web

from itsmd_connectors.prometheus import PrometheusClient, PrometheusError, Series, parse_response

FIXTURES = Path(__file__).parents[1] / "fixtures" / "prometheus"
INDEX: dict[str, dict[str, Any]] = json.loads((FIXTURES / "index.json").read_text())
T = 1795834680.0  # the `time`/`end` of the captured queries
AT = datetime.fromtimestamp(T, UTC)
DATA = {
    "device": "/dev/sdb1",
    "fstype": "ext4",
    "instance": "db-1:9100",
    "job": "node",
    "mountpoint": "/data",
}
UP_T = 1795834712.539
AVAIL = {"__name__": "demo_fs_avail_bytes", **DATA}


def load(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


# --- captured answers ------------------------------------------------------------------------

PARSED: dict[str, list[Series]] = {
    "query-vector": [Series(DATA, [(T, 0.4)])],
    "query-post-form": [Series(AVAIL, [(T, 200e9)])],
    "query-predict-linear": [Series(DATA, [(T, -39999999999.98328)])],
    "query-time-to-exhaustion": [Series(DATA, [(T, 72000.00000000447)])],
    "query-scalar": [Series({}, [(T, 500e9)])],
    "query-empty": [],
    "query-stale-after-lookback": [],
    "query-range": [
        Series(
            AVAIL,
            [
                (T - 3600, 210000000000.0),
                (T - 3000, 208333333333.0),
                (T - 2400, 206666666667.0),
                (T - 1800, 205000000000.0),
                (T - 1200, 203333333333.0),
                (T - 600, 201666666667.0),
                (T, 200000000000.0),
            ],
        )
    ],
    "query-range-predict-linear": [
        Series(
            DATA,
            [
                (T - 3600, -29999999999.48172),
                (T - 1800, -34999999999.48172),
                (T, -39999999999.48172),
            ],
        )
    ],
    "query-vector-node-filesystem": [
        Series(
            {
                "__name__": "node_filesystem_avail_bytes",
                "device": "/dev/vda",
                "fstype": "ext4",
                "instance": "127.0.0.1:19100",
                "job": "node",
                "mountpoint": "/",
            },
            [(1795834712.535, 84536721408.0)],
        )
    ],
    "query-textfile-gauge": [
        Series(
            {
                "__name__": "demo_queue_depth",
                "instance": "127.0.0.1:19100",
                "job": "node",
                "queue": "emails",
            },
            [(1795834712.57, 10.0)],
        )
    ],
    "query-self-tsdb-head-series": [
        Series(
            {
                "__name__": "prometheus_tsdb_head_series",
                "instance": "127.0.0.1:19090",
                "job": "prometheus",
            },
            [(1795834712.538, 517.0)],
        )
    ],
    "query-up": [
        Series(
            {"__name__": "up", "instance": "127.0.0.1:19090", "job": "prometheus"}, [(UP_T, 1.0)]
        ),
        Series({"__name__": "up", "instance": "127.0.0.1:19100", "job": "node"}, [(UP_T, 1.0)]),
    ],
}

ERRORS: dict[str, tuple[str, str]] = {  # file -> (errorType, message)
    "query-bad-promql": (
        "bad_data",
        'bad_data: invalid parameter "query": 1:6: parse error: unclosed left parenthesis',
    ),
    "query-unknown-function": (
        "bad_data",
        'bad_data: invalid parameter "query": 1:1: parse error: '
        'unknown function with name "predict_linar"',
    ),
    "query-timeout": ("timeout", "timeout: query timed out in expression evaluation"),
    "query-range-too-many-points": (
        "bad_data",
        "bad_data: exceeded maximum resolution of 11,000 points per timeseries. "
        "Try decreasing the query resolution (?step=XX)",
    ),
}
NOT_QUERY_ANSWERS = {"status-buildinfo"}


def test_every_captured_answer_is_covered() -> None:
    assert set(INDEX) == set(PARSED) | set(ERRORS) | NOT_QUERY_ANSWERS
    assert {path.stem for path in FIXTURES.glob("*.json")} == set(INDEX) | {"index"}


@pytest.mark.parametrize("name", sorted(PARSED))
def test_parse_captured_answer(name: str) -> None:
    assert INDEX[name]["http_status"] == 200
    assert parse_response(load(name)) == PARSED[name]


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_parse_captured_error(name: str) -> None:
    error_type, message = ERRORS[name]
    with pytest.raises(PrometheusError) as caught:
        parse_response(load(name))
    assert (caught.value.error_type, caught.value.message) == (error_type, message)


def test_buildinfo_is_not_a_query_answer() -> None:
    with pytest.raises(PrometheusError, match="unsupported resultType None"):
        parse_response(load("status-buildinfo"))


def test_special_values_are_floats() -> None:
    doc = {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {"metric": {"v": "nan"}, "value": [T, "NaN"]},
                {"metric": {"v": "inf"}, "value": [T, "+Inf"]},
                {"metric": {"v": "-inf"}, "value": [T, "-Inf"]},
            ],
        },
    }
    nan, inf, minus_inf = (series.samples[0][1] for series in parse_response(doc))
    assert math.isnan(nan)
    assert (inf, minus_inf) == (math.inf, -math.inf)


def _ok(result_type: str, result: object) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": result_type, "result": result}}


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "malformed answer: expected an object, got list"),
        ({"status": "success"}, "malformed answer: no status 'success' with a data object"),
        ({"status": "error"}, "error: "),
        (_ok("string", [T, "hello"]), "unsupported resultType 'string': expected a number"),
        (_ok("vector", None), "malformed answer: result is null, not a list"),
        (_ok("vector", [{"value": [T, "1"]}]), "malformed answer: result[0] has no metric object"),
        (
            _ok("vector", [{"metric": {}, "value": [T, 1]}]),
            'malformed answer: result[0].value is [1795834680.0, 1], not [time, "value"]',
        ),
        (
            _ok("vector", [{"metric": {}, "value": [T, "many"]}]),
            "malformed answer: result[0].value is [1795834680.0, 'many'], not [time, \"value\"]",
        ),
        (_ok("matrix", [{"metric": {}}]), "malformed answer: result[0].values is null"),
        (
            _ok("vector", [{"metric": {"le": "1"}, "histogram": [T, {"count": "2"}]}]),
            "result[0] {'le': '1'} holds native histograms, not numbers",
        ),
        (_ok("scalar", [T]), 'malformed answer: result is [1795834680.0], not [time, "value"]'),
    ],
)
def test_parse_rejects_odd_shapes(doc: object, message: str) -> None:
    with pytest.raises(PrometheusError) as caught:
        parse_response(doc)
    assert caught.value.message == message


# --- a fake Prometheus on loopback -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    hang: bool = False  # answer only when the server stops


def captured(name: str) -> Answer:
    return Answer(INDEX[name]["http_status"], (FIXTURES / f"{name}.json").read_bytes())


@dataclass(frozen=True, slots=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str]


class FakePrometheus:
    """Answers requests from a script, in order; remembers each request."""

    def __init__(self) -> None:
        self.url = ""
        self.seen: list[Seen] = []
        self.script: deque[Answer] = deque()
        self.released = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        form = {
            key: values[-1] for key, values in parse_qs((await request.read()).decode()).items()
        }
        self.seen.append(Seen(request.method, request.path, dict(request.headers), form))
        answer = self.script.popleft()
        if answer.hang:
            await self.released.wait()
        return web.Response(
            status=answer.status, body=answer.body, content_type=answer.content_type
        )


@pytest.fixture
async def prom() -> AsyncIterator[FakePrometheus]:
    fake = FakePrometheus()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        yield fake
    finally:
        fake.released.set()
        await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A loopback URL whose port is bound but not listening: connecting is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def client(
    session: aiohttp.ClientSession, url: str, timeout_s: float = 5.0, **kwargs: Any
) -> PrometheusClient:
    return PrometheusClient(lambda: session, url, timeout_s, **kwargs)


async def test_query_posts_a_form(prom: FakePrometheus, session: aiohttp.ClientSession) -> None:
    prom.script.append(captured("query-post-form"))
    auth = {"Authorization": "Bearer pr0m"}
    series = await client(session, f"{prom.url}/prom/", headers=auth).query(
        "demo_fs_avail_bytes", at=AT
    )
    assert series == PARSED["query-post-form"]
    (seen,) = prom.seen
    assert (seen.method, seen.path) == ("POST", "/prom/api/v1/query")
    assert seen.form == {"query": "demo_fs_avail_bytes", "time": "1795834680.000", "timeout": "5s"}
    assert seen.headers["Authorization"] == "Bearer pr0m"
    assert seen.headers["Content-Type"] == "application/x-www-form-urlencoded"


async def test_query_without_time_leaves_it_to_prometheus(
    prom: FakePrometheus, session: aiohttp.ClientSession
) -> None:
    prom.script.append(captured("query-up"))
    assert await client(session, prom.url, timeout_s=2.5).query("up") == PARSED["query-up"]
    assert prom.seen[0].form == {"query": "up", "timeout": "2.5s"}


async def test_query_range_posts_start_end_step(
    prom: FakePrometheus, session: aiohttp.ClientSession
) -> None:
    prom.script.append(captured("query-range"))
    start = datetime.fromtimestamp(T - 3600, UTC)
    series = await client(session, prom.url).query_range("demo_fs_avail_bytes", start, AT, 600)
    assert series == PARSED["query-range"]
    (seen,) = prom.seen
    assert seen.path == "/api/v1/query_range"
    assert seen.form == {
        "query": "demo_fs_avail_bytes",
        "start": "1795831080.000",
        "end": "1795834680.000",
        "step": "600",
        "timeout": "5s",
    }


@pytest.mark.parametrize(
    ("answer", "error_type", "detail"),
    [
        (
            captured("query-bad-promql"),
            "bad_data",
            'bad_data: invalid parameter "query": 1:6: parse error: unclosed left parenthesis'
            " (HTTP 400)",
        ),
        (
            captured("query-timeout"),
            "timeout",
            "timeout: query timed out in expression evaluation (HTTP 503)",
        ),
        (
            Answer(422, b'{"status":"error","errorType":"execution","error":"many-to-many"}'),
            "execution",
            "execution: many-to-many (HTTP 422)",
        ),
        (
            Answer(502, b"<html>Bad Gateway</html>", "text/html"),
            "",
            "HTTP 502, not JSON: '<html>Bad Gateway</html>'",
        ),
        (Answer(200, b"ok", "text/plain"), "", "HTTP 200, not JSON: 'ok'"),
        (Answer(500, b'{"oops": 1}'), "", """HTTP 500: '{"oops": 1}'"""),
        (
            Answer(200, b"x" * 300, "text/plain"),
            "",
            f"HTTP 200, not JSON: '{'x' * 200}'...",
        ),
        (
            Answer(200, b'{"status":"success","data":{"resultType":"string","result":[1,"a"]}}'),
            "",
            "unsupported resultType 'string': expected a number",
        ),
    ],
)
async def test_failures_name_prometheus_and_the_cause(
    prom: FakePrometheus,
    session: aiohttp.ClientSession,
    answer: Answer,
    error_type: str,
    detail: str,
) -> None:
    prom.script.append(answer)
    with pytest.raises(PrometheusError) as caught:
        await client(session, prom.url).query("sum((")
    assert str(caught.value) == f"Prometheus at {prom.url}: {detail}"
    assert caught.value.error_type == error_type


async def test_connection_refused(session: aiohttp.ClientSession, refused_url: str) -> None:
    with pytest.raises(PrometheusError) as caught:
        await client(session, refused_url).query("up")
    assert str(caught.value) == f"Prometheus at {refused_url}: connection refused"


async def test_credentials_in_the_url_are_not_shown(
    session: aiohttp.ClientSession, refused_url: str
) -> None:
    with_password = refused_url.replace("http://", "http://itsmd:s3cret@")
    with pytest.raises(PrometheusError) as caught:
        await client(session, with_password).query("up")
    assert str(caught.value) == f"Prometheus at {refused_url}: connection refused"


async def test_no_answer_times_out(prom: FakePrometheus, session: aiohttp.ClientSession) -> None:
    prom.script.append(Answer(hang=True))
    with pytest.raises(PrometheusError) as caught:
        await client(session, prom.url, timeout_s=0.2).query("up")
    assert str(caught.value) == f"Prometheus at {prom.url}: no answer within 0.2s"


async def test_naive_times_are_a_programming_error(session: aiohttp.ClientSession) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await client(session, "http://127.0.0.1:9").query("up", at=datetime(2026, 1, 1))
