"""The in-memory current incidents: what a committed batch leaves for the next one."""

from __future__ import annotations

from itsmd.correlation.correlate import Correlator, Router, WorkingSet
from itsmd.models import Alert
from itsmd.runtime.hotstate import CurrentIncidents
from tests.unit.correlation.test_correlate import MIN, T0, Engine, alert


def _batch(engine: Engine, *alerts_: Alert) -> tuple[WorkingSet, dict[int, int], set[str]]:
    """Correlate on a fresh working set as the writer does; pretend the store gave
    real ids 100, 101, ... to the new incidents."""
    ws = engine.ws = WorkingSet()
    router = Router(engine.ruleset)
    keys: set[str] = set()
    for a in alerts_:
        route = router.route(a.fingerprint, a.labels)
        if route is not None:
            keys.add(route.key)
        Correlator(router, ws, engine.sla).apply(a, T0)
    ids = {temp: 100 + n for n, temp in enumerate(sorted(i for i in ws.incidents if i < 0))}
    return ws, ids, keys


def test_a_new_incident_is_remembered_under_its_real_id() -> None:
    current = CurrentIncidents()
    ws, ids, keys = _batch(Engine(), alert(service="api"))

    current.remember(ws, ids, keys)

    known, missing = current.lookup(keys)
    assert missing == set()
    assert [(inc.id, inc.key) for inc in known] == [(100, 'outage{service="api"}')]


def test_a_key_asked_for_without_an_incident_is_known_to_have_none() -> None:
    current = CurrentIncidents()
    ws = WorkingSet()
    current.remember(ws, {}, {'outage{service="db"}'})

    assert current.lookup({'outage{service="db"}', 'outage{service="web"}'}) == (
        [],
        {'outage{service="web"}'},
    )


def test_clear_and_the_size_limit_start_over() -> None:
    current = CurrentIncidents(limit=1)
    for service in ("a", "b", "c"):
        ws, ids, keys = _batch(Engine(), alert(service=service, starts_at=T0 + MIN))
        current.remember(ws, ids, keys)
    assert len(current) <= 2  # over the limit it started over instead of growing

    current.clear()
    assert len(current) == 0
