"""Uptime maths over state changes (pure: every function takes its time span).

A check's history is a list of state changes `(at, state)`: each state holds from
its change until the next one. The store keeps those changes and per-day
aggregates (`aggregate`), so that 90 days of availability never need every
probe. Maintenance and unknown time (daemon down, check just added) count
neither for nor against availability.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import NamedTuple


class State(StrEnum):
    UP = "up"
    DOWN = "down"
    MAINTENANCE = "maintenance"
    UNKNOWN = "unknown"


class Change(NamedTuple):
    """From `at` on, the check (or service) is in `state`."""

    at: datetime
    state: State


@dataclass(frozen=True, slots=True)
class Uptime:
    """Seconds spent in each state within a window; daily aggregates add up."""

    up_s: float = 0.0
    down_s: float = 0.0
    maintenance_s: float = 0.0
    unknown_s: float = 0.0

    @property
    def ratio(self) -> float | None:
        """up / (up + down): maintenance and unknown time are left out; None when
        nothing was measured (a ratio of 1 would claim uptime nobody saw)."""
        measured = self.up_s + self.down_s
        return None if measured <= 0 else self.up_s / measured

    @property
    def coverage(self) -> float | None:
        """The share of the time whose state is known (up, down or maintenance), 0..1;
        None for no time at all."""
        known = self.up_s + self.down_s + self.maintenance_s
        total = known + self.unknown_s
        return None if total <= 0 else known / total

    def __add__(self, other: Uptime) -> Uptime:
        return Uptime(
            self.up_s + other.up_s,
            self.down_s + other.down_s,
            self.maintenance_s + other.maintenance_s,
            self.unknown_s + other.unknown_s,
        )

    def plus(self, state: State, seconds: float) -> Uptime:
        return self + Uptime(**{_FIELD[state]: seconds})


_FIELD = {
    State.UP: "up_s",
    State.DOWN: "down_s",
    State.MAINTENANCE: "maintenance_s",
    State.UNKNOWN: "unknown_s",
}


def intervals(
    changes: Iterable[tuple[datetime, State]], start: datetime, end: datetime
) -> list[tuple[datetime, datetime, State]]:
    """The `(start, end, state)` spans that cover [start, end).

    The state at `start` is that of the last change at or before it (so a store that
    prunes old changes must keep the last one before its cutoff); before any change
    the state is unknown. Changes need not be sorted; of two at one instant the
    later in the list wins.
    """
    ordered = sorted(changes, key=lambda change: change[0])
    current = State.UNKNOWN
    spans: list[tuple[datetime, datetime, State]] = []
    cursor = start
    for at, state in ordered:
        if at <= start:
            current = state
            continue
        if at >= end:
            break
        if at > cursor:
            spans.append((cursor, at, current))
        cursor, current = at, state
    if end > cursor:
        spans.append((cursor, end, current))
    return spans


def aggregate(changes: Iterable[tuple[datetime, State]], start: datetime, end: datetime) -> Uptime:
    """Seconds per state in [start, end), e.g. one day for the store's daily rows."""
    total = Uptime()
    for span_start, span_end, state in intervals(changes, start, end):
        total = total.plus(state, (span_end - span_start).total_seconds())
    return total


def uptime(changes: Iterable[tuple[datetime, State]], now: datetime, span: timedelta) -> Uptime:
    """Seconds per state in the window [now - span, now)."""
    return aggregate(changes, now - span, now)


def service_state(states: Iterable[State]) -> State:
    """A service is down when any of its checks is down; else in maintenance when
    any is; else up when any is; else unknown."""
    seen = set(states)
    for state in (State.DOWN, State.MAINTENANCE, State.UP):
        if state in seen:
            return state
    return State.UNKNOWN


def combine(streams: Sequence[Iterable[tuple[datetime, State]]]) -> list[Change]:
    """The change stream of a service from those of its checks (see `service_state`).

    Changes at one instant are applied together, so a hand-over from one check to
    another at the same time leaves no spurious blip.
    """
    ordered = [sorted(stream, key=lambda change: change[0]) for stream in streams]
    merged = heapq.merge(
        *([(at, index, state) for at, state in stream] for index, stream in enumerate(ordered)),
        key=lambda item: item[0],
    )
    current = [State.UNKNOWN] * len(ordered)
    out: list[Change] = []
    pending: datetime | None = None
    for at, index, state in merged:
        if pending is not None and at != pending:
            _emit(out, pending, service_state(current))
        current[index] = state
        pending = at
    if pending is not None:
        _emit(out, pending, service_state(current))
    return out


def _emit(out: list[Change], at: datetime, state: State) -> None:
    if not out or out[-1].state is not state:
        out.append(Change(at, state))


def error_budget_left(u: Uptime, slo_percent: float | None) -> float | None:
    """Fraction of a window's error budget left: 1 untouched, 0 spent, negative overspent.

    `u` is the whole window. The budget is `1 - slo` of the window's time outside
    maintenance, measured or not: a window's budget is set by its length, and time
    nobody measured spent none of it. So a young history starts with its budget
    whole instead of stretching a few minutes of failure over the window; once the
    window is fully measured this is `1 - burn_rate`. None without an objective or
    before anything was measured; for a 100 % objective, 1 until anything failed,
    then None (it has no budget to divide by).
    """
    if slo_percent is None or u.ratio is None:
        return None
    budget_s = (1.0 - slo_percent / 100.0) * (u.up_s + u.down_s + u.unknown_s)
    if budget_s <= 0:
        return 1.0 if u.down_s <= 0 else None
    return 1.0 - u.down_s / budget_s


def burn_rate(ratio: float | None, slo_percent: float | None) -> float | None:
    """How fast the budget burns over the measured time: 1 spends exactly the budget
    over the window, 2 would spend it in half of it."""
    if ratio is None or slo_percent is None:
        return None
    budget = 1.0 - slo_percent / 100.0
    spent = 1.0 - ratio
    if budget <= 0:
        return 0.0 if spent <= 0 else None
    return spent / budget
