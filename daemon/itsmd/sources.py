"""The interface every alert source implements (Alertmanager, generic, checks)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from itsmd.models import Alert


class PayloadError(ValueError):
    """A request body that is well-formed JSON but not a valid payload (HTTP 422)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Refusal:
    """One alert of a valid payload refused on its own: its index in the payload, the
    field at fault (`alerts[3].labels`) and what is wrong with it."""

    index: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass(frozen=True, slots=True)
class Parsed:
    """What a source made of a valid payload: the alerts to store, in payload order,
    and the alerts it refused, in payload order too."""

    alerts: list[Alert]
    refused: list[Refusal]

    @property
    def sent(self) -> int:
        """How many alerts the payload held."""
        return len(self.alerts) + len(self.refused)

    def whole(self) -> list[Alert]:
        """The alerts, or PayloadError naming the first refused one."""
        if self.refused:
            first = self.refused[0]
            raise PayloadError(first.field, first.message)
        return self.alerts


class Source(Protocol):
    """Turns one decoded request body into domain alerts.

    `parse_each` is what ingestion calls: a body that is not a valid payload as a
    whole raises PayloadError; within a valid one, each alert that is invalid on its
    own is refused by its index and the others are kept. `parse` takes a payload
    whole (the rule tools): its alerts, or PayloadError for the first invalid one.
    """

    @property
    def name(self) -> str: ...

    def parse_each(self, body: object, now: datetime) -> Parsed: ...

    def parse(self, body: object, now: datetime) -> Sequence[Alert]: ...


@dataclass(frozen=True, slots=True)
class SourceRoute:
    """Where a source is mounted in the HTTP API."""

    path: str
    source: Source
