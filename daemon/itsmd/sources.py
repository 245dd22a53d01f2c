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


class Source(Protocol):
    """Turns one decoded request body into domain alerts, or raises PayloadError."""

    @property
    def name(self) -> str: ...

    def parse(self, body: object, now: datetime) -> Sequence[Alert]: ...


@dataclass(frozen=True, slots=True)
class SourceRoute:
    """Where a source is mounted in the HTTP API."""

    path: str
    source: Source
