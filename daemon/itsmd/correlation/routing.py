"""An index over rule matchers, so that routing an alert checks few rules, not all.

Every selector that has an equality matcher with a non-empty value (`alertname=
"DiskFull"`) can only match alerts carrying that label value, so it is filed under
one such (label, value). Routing an alert looks up its own label values in the
index, adds the selectors that have no equality matcher, and evaluates just those
candidates in rule order: the first match is the same as a full scan would find.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Generic, TypeVar

from itsmd.correlation.matchers import Selector

T = TypeVar("T")


class SelectorIndex(Generic[T]):
    """Items (e.g. rules) in priority order, each with its any-of selectors."""

    def __init__(self, items: Sequence[tuple[T, Sequence[Selector]]]) -> None:
        self._items = [item for item, _ in items]
        pairs = Counter(
            pair
            for _, selectors in items
            for s in selectors
            for pair in s.equality_constraints().items()
        )
        names = Counter(name for name, _ in pairs.elements())
        self._by_label: dict[str, dict[str, list[tuple[int, Selector]]]] = {}
        self._unindexed: list[tuple[int, Selector]] = []
        for position, (_, selectors) in enumerate(items):
            for selector in selectors:
                constraints = selector.equality_constraints()
                if not constraints:
                    self._unindexed.append((position, selector))
                    continue
                # File it under its rarest (label, value), so that an alert's lookup
                # finds few candidates: `alertname="X"` rather than `severity="critical"`
                # shared by every rule. Ties go to the most used label: fewer lookups.
                name = min(constraints, key=lambda n: (pairs[n, constraints[n]], -names[n], n))
                values = self._by_label.setdefault(name, {})
                values.setdefault(constraints[name], []).append((position, selector))

    def first(self, labels: Mapping[str, str]) -> T | None:
        """The first item (in order) with a selector that matches `labels`."""
        candidates = list(self._unindexed)
        for name, values in self._by_label.items():
            found = values.get(labels.get(name, ""))
            if found:
                candidates.extend(found)
        if len(candidates) > 1:
            candidates.sort(key=lambda c: c[0])
        for position, selector in candidates:
            if selector.matches(labels):
                return self._items[position]
        return None

    def __len__(self) -> int:
        return len(self._items)
