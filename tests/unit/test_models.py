"""models.evolve: a copy with some fields changed, like dataclasses.replace."""

from __future__ import annotations

from dataclasses import replace

import pytest

from itsmd.models import Action, Decision, evolve
from tests.unit.correlation.test_correlate import T0, alert


def test_evolve_changes_the_named_fields_and_leaves_the_original() -> None:
    original = alert(service="api")

    changed = evolve(original, starts_at=T0.replace(hour=13), source="other")

    assert changed == replace(original, starts_at=T0.replace(hour=13), source="other")
    assert original.source == "test"
    assert type(changed) is type(original)


def test_evolve_refuses_an_unknown_field() -> None:
    with pytest.raises(TypeError, match="no field colour"):
        evolve(Decision(Action.OPENED, "why"), colour="red")
