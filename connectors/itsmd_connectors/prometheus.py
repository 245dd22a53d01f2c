"""Prometheus HTTP API client: the data source of `prometheus` checks (docs/rules.md, checks).

Two calls, `query` (instant) and `query_range`, both sent as POST forms so a long
expression never meets a URL length limit (Prometheus takes GET and POST alike).
Answers become `Series`: labels plus (unix seconds, value) samples. Values arrive
as JSON strings and go through `float()`, which also reads "NaN", "+Inf", "-Inf".
`parse_response` is the one function that knows the answer's shape; it works on
a decoded body, so captured answers (tests/fixtures/prometheus) test it directly.

Every failure is a `PrometheusError` whose message says which Prometheus and what
went wrong, in Prometheus' own words when it gave some ("bad_data: ... parse error").
Prometheus is also told our timeout, so it stops evaluating a query nobody waits for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import orjson

from itsmd_connectors.peers import Peer, snippet


@dataclass(frozen=True, slots=True)
class Series:
    labels: dict[str, str]
    samples: list[tuple[float, float]]  # (unix seconds, value), oldest first


class PrometheusError(Exception):
    """A query failed; `error_type` is Prometheus' errorType when it sent one."""

    def __init__(self, message: str, error_type: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.error_type = error_type


class PrometheusClient(Peer):
    """Queries one Prometheus (`Peer`: its URL, timeout and auth headers)."""

    async def query(self, expr: str, at: datetime | None = None) -> list[Series]:
        """Instant query: one sample per series. Without `at`, Prometheus' clock decides."""
        form = {"query": expr}
        if at is not None:
            form["time"] = _unix(at)
        return await self._post("/api/v1/query", form)

    async def query_range(
        self, expr: str, start: datetime, end: datetime, step_s: float
    ) -> list[Series]:
        """Range query: samples every `step_s` from `start` to `end` (both included)."""
        form = {"query": expr, "start": _unix(start), "end": _unix(end), "step": f"{step_s:g}"}
        return await self._post("/api/v1/query_range", form)

    async def _post(self, path: str, form: dict[str, str]) -> list[Series]:
        form["timeout"] = f"{self.timeout_s:g}s"
        return self._series(*await self._send("POST", path, form))

    def _series(self, status: int, body: bytes) -> list[Series]:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise self._error(f"HTTP {status}, not JSON: {snippet(body)}") from None
        is_error_doc = isinstance(doc, dict) and doc.get("status") == "error"
        if status != 200 and not is_error_doc:
            raise self._error(f"HTTP {status}: {snippet(body)}")
        try:
            return parse_response(doc)
        except PrometheusError as exc:
            detail = f"{exc.message} (HTTP {status})" if status != 200 else exc.message
            raise self._error(detail, exc.error_type) from None

    def _error(self, detail: str, error_type: str = "") -> PrometheusError:
        return PrometheusError(f"Prometheus at {self.url}: {detail}", error_type)


def parse_response(doc: object) -> list[Series]:
    """The series of a decoded query answer; PrometheusError for an error or odd shape.

    A `scalar` result becomes one series without labels. `string` results and
    native histograms are not numbers a check can compare, so they are errors.
    """
    if not isinstance(doc, dict):
        raise PrometheusError(f"malformed answer: expected an object, got {_kind(doc)}")
    if doc.get("status") == "error":
        error_type = str(doc.get("errorType", "") or "error")
        raise PrometheusError(f"{error_type}: {doc.get('error', '')}", error_type)
    data = doc.get("data")
    if doc.get("status") != "success" or not isinstance(data, dict):
        raise PrometheusError("malformed answer: no status 'success' with a data object")
    result_type, result = data.get("resultType"), data.get("result")
    if result_type == "scalar":
        return [Series({}, [_sample(result, "result")])]
    if result_type not in ("vector", "matrix"):
        raise PrometheusError(f"unsupported resultType {result_type!r}: expected a number")
    if not isinstance(result, list):
        raise PrometheusError(f"malformed answer: result is {_kind(result)}, not a list")
    return [_one_series(item, result_type, index) for index, item in enumerate(result)]


def _one_series(item: object, result_type: str, index: int) -> Series:
    where = f"result[{index}]"
    if not isinstance(item, dict) or not isinstance(item.get("metric"), dict):
        raise PrometheusError(f"malformed answer: {where} has no metric object")
    labels = {str(name): str(value) for name, value in item["metric"].items()}
    if "histogram" in item or "histograms" in item:
        raise PrometheusError(f"{where} {labels} holds native histograms, not numbers")
    if result_type == "vector":
        return Series(labels, [_sample(item.get("value"), f"{where}.value")])
    values = item.get("values")
    if not isinstance(values, list):
        raise PrometheusError(f"malformed answer: {where}.values is {_kind(values)}")
    return Series(labels, [_sample(pair, f"{where}.values[{i}]") for i, pair in enumerate(values)])


def _sample(pair: object, where: str) -> tuple[float, float]:
    """`[1795834680.5, "0.4"]` -> (1795834680.5, 0.4)."""
    if isinstance(pair, list) and len(pair) == 2:
        at, value = pair
        if isinstance(at, int | float) and not isinstance(at, bool) and isinstance(value, str):
            try:
                return float(at), float(value)
            except ValueError:
                pass
    raise PrometheusError(f'malformed answer: {where} is {pair!r}, not [time, "value"]')


def _unix(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: pass a timezone-aware one")
    return f"{moment.timestamp():.3f}"  # Prometheus keeps milliseconds


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__
