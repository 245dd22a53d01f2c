"""How a timeline folds for reading, the one rule the console and the CLI share
(docs/console.md, docs/cli.md): what people did never folds; an entry of the daemon
that says exactly what an earlier one said folds into it, wherever it is (a flapping
alert's re-fires read as one line "x40"); a run of the daemon's entries placing
alerts folds into its first (500 alerts joining in a storm: each alert's decision is
in the alert list, the JSON keeps every entry).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from itsmd.models import SYSTEM_ACTOR, TimelineKind

T = TypeVar("T")

# Entries that place one alert each.
PER_ALERT = frozenset({TimelineKind.ALERT_JOINED.value, TimelineKind.SYMPTOM_ATTACHED.value})


@dataclass(frozen=True, slots=True)
class Folded(Generic[T]):
    first: T
    last: T  # the last entry folded into `first` (itself when none)
    count: int = 1
    run: bool = False  # a run of placements: `first` is the first of `count`


def by_kind(kind: str, _message: str) -> Hashable:
    return kind


def fold(
    entries: Sequence[T],
    read: Callable[[T], tuple[str, str, str]],
    run_key: Callable[[str, str], Hashable] = by_kind,
) -> list[Folded[T]]:
    """`read` gives an entry's (kind, actor, message); placements continue a run while
    `run_key(kind, message)` stays the same (by default: while the kind does)."""
    out: list[Folded[T]] = []
    seen: dict[tuple[str, str], int] = {}  # (kind, message) -> index in out
    run: Hashable | None = None  # the run key of out[-1] when it is the daemon's placement
    for entry in entries:
        kind, actor, message = read(entry)
        system = actor == SYSTEM_ACTOR
        key = run_key(kind, message) if system and kind in PER_ALERT else None
        if key is not None and key == run:
            last = out[-1]
            out[-1] = Folded(last.first, entry, last.count + 1, run=True)
            continue
        at = seen.get((kind, message)) if system else None
        if at is not None:
            line = out[at]
            out[at] = Folded(line.first, entry, line.count + 1, line.run)
            continue
        if system:
            seen[(kind, message)] = len(out)
        out.append(Folded(entry, entry))
        run = key
    return out
