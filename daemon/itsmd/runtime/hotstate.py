"""The current incident of each correlation key, kept in memory between batches.

Every ingest batch needs the current incident of the keys its alerts route to;
reading them again for each batch is most of what a small batch costs. The
database stays the source of truth: entries are only ever what this process's
writer committed, and the cache starts over whenever another unit of work (an
incident action, an auto-resolve sweep) wrote an incident or a batch failed. It is
only valid while this writer is the only one writing, so the composition root
enables it for SQLite alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from itsmd.correlation.correlate import WorkingSet
from itsmd.models import Incident, evolve

DEFAULT_LIMIT = 100_000  # keys; beyond it the cache starts over rather than grow


class CurrentIncidents:
    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self._limit = limit
        # key -> its current incident, or None: known to have none.
        self._by_key: dict[str, Incident | None] = {}

    def __len__(self) -> int:
        return len(self._by_key)

    def lookup(self, keys: Iterable[str]) -> tuple[list[Incident], set[str]]:
        """The known current incidents of `keys`, and the keys to read from the store."""
        known: list[Incident] = []
        missing: set[str] = set()
        for key in keys:
            if key not in self._by_key:
                missing.add(key)
            elif (inc := self._by_key[key]) is not None:
                known.append(inc)
        return known, missing

    def remember(self, ws: WorkingSet, ids: Mapping[int, int], keys: Iterable[str]) -> None:
        """After the batch of `ws` committed: its keys' current incidents, with the ids
        the store gave to new ones."""
        if len(self._by_key) > self._limit:
            self.clear()
        for key in keys:  # a key asked for and without an active incident has none
            if key not in ws.current:
                self._by_key[key] = None
        for key, temp_id in ws.current.items():
            inc = ws.incidents[temp_id]
            real = ids.get(temp_id, temp_id)
            self._by_key[key] = inc if inc.id == real else evolve(inc, id=real)

    def clear(self) -> None:
        self._by_key.clear()
