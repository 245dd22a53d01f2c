"""How the API's JSON reads in a terminal: tables, local times with their age, the
labels that tell alerts apart, repeated timeline entries folded into one.

Pure functions of the JSON and `now` (the command's clock), so they are tested
without a daemon; times are shown in the local time zone (`TZ`).
"""

# ruff: noqa: T201 - a command prints

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TextIO

from itsmd.folding import fold


def parse(text: str | None) -> datetime | None:
    """An RFC 3339 time of the API (`...Z`), or None."""
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def local(at: datetime, now: datetime) -> str:
    """`14:03` today, `Nov 27 14:03` this year, `2025-11-27 14:03` before."""
    here, today = at.astimezone(), now.astimezone()
    if here.date() == today.date():
        return here.strftime("%H:%M")
    if here.year == today.year:
        return here.strftime("%b %d %H:%M")
    return here.strftime("%Y-%m-%d %H:%M")


def local_text(text: str | None, now: datetime) -> str:
    """`local` of an API time; `-` for none."""
    at = parse(text)
    return "-" if at is None else local(at, now)


def span(delta: timedelta) -> str:
    """A duration as people say it, to two units: `45 s`, `12 min`, `3 h 5 min`, `2 d 4 h`."""
    seconds = int(abs(delta).total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if hours == 0:
        return f"{minutes} min"
    if days == 0:
        rest = minutes % 60
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    rest = hours % 24
    return f"{days} d {rest} h" if rest else f"{days} d"


def age(text: str | None, now: datetime) -> str:
    """`12 min ago`, `in 20 min`, `just now`; `-` for no time."""
    at = parse(text)
    if at is None:
        return "-"
    delta = now - at
    if abs(delta) < timedelta(seconds=5):
        return "just now"
    return f"{span(delta)} ago" if delta > timedelta(0) else f"in {span(delta)}"


def elapsed(text: str | None, now: datetime) -> str:
    """How long since an API time: `12 min`; `-` for none."""
    at = parse(text)
    return "-" if at is None else span(now - at)


def when(text: str | None, now: datetime) -> str:
    """Local time and age: `14:03 (12 min ago)`; `-` for no time."""
    at = parse(text)
    if at is None:
        return "-"
    return f"{local(at, now)} ({age(text, now)})"


def more(shown: int, what: str, cursor: str | None, hint: str = "") -> None:
    """After a page of a list: how many were shown and how to get the next page
    (on stderr, so that the table on stdout stays a table)."""
    if cursor:
        print(
            f"{shown} {what} shown, newest first; the next page: --cursor {cursor}{hint}",
            file=sys.stderr,
        )


def table(
    header: Sequence[str], rows: Sequence[Sequence[str]], what: str, out: TextIO | None = None
) -> None:
    """Columns padded to their widest cell; the last column is not padded. `no WHAT`
    on stderr when there are no rows."""
    if not rows:
        print(f"no {what}", file=sys.stderr)
        return
    out = out or sys.stdout
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]).rstrip(), file=out)


def differing(label_sets: Sequence[Mapping[str, str]], skip: Iterable[str] = ()) -> list[str]:
    """The label names whose values are not the same in all the sets (a label missing
    from some counts as differing), sorted."""
    skipped = set(skip)
    names = {n for labels in label_sets for n in labels if n not in skipped}
    return sorted(n for n in names if len({labels.get(n) for labels in label_sets}) > 1)


def labels_text(labels: Mapping[str, str], names: Iterable[str]) -> str:
    return " ".join(f"{n}={labels[n]}" for n in names if n in labels) or "-"


# A fingerprint in parentheses and numbers: what changes between the entries of a run
# placing alerts ("alert Down (a1b2...): joined ... (3 firing)").
_VARYING = re.compile(r"\([0-9a-f]{16}\)|\d+")


def folded(entries: Sequence[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], int, str]]:
    """The timeline as the console folds it (`itsmd.folding`), as (first entry, how
    many, the last one's time); a run of placements goes on here only while the
    messages differ in nothing but a fingerprint or a number (one line per alertname)."""
    return [
        (f.first, f.count, f.last["at"])
        for f in fold(
            entries,
            lambda e: (e["kind"], e["actor"], e["message"]),
            lambda kind, message: (kind, _VARYING.sub("#", message)),
        )
    ]


def reasons(messages: Iterable[str]) -> list[tuple[str, int]]:
    """Decisions' reasons, each once with how many alerts gave it, in first-seen order;
    reasons that differ only in a fingerprint or a number ("(3 firing)") are one."""
    found: dict[str, tuple[str, int]] = {}
    for message in messages:
        key = _VARYING.sub("#", message)
        first, count = found.get(key, (message, 0))
        found[key] = (first, count + 1)
    return list(found.values())
