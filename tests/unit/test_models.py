"""models.evolve: a copy with some fields changed, like dataclasses.replace; and
models.quick_init: a frozen dataclass's __init__, the same but cheaper."""

from __future__ import annotations

import inspect
from dataclasses import FrozenInstanceError, dataclass, field, replace

import pytest

from itsmd.models import Action, Decision, evolve, quick_init
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


@dataclass(frozen=True, slots=True)
class _Plain:
    name: str
    size: int = 3
    tags: list[str] = field(default_factory=list)


@quick_init
@dataclass(frozen=True, slots=True)
class _Quick:
    name: str
    size: int = 3
    tags: list[str] = field(default_factory=list)


def test_quick_init_builds_what_the_dataclass_init_builds() -> None:
    quick = inspect.signature(_Quick.__init__).parameters.values()
    plain = inspect.signature(_Plain.__init__).parameters.values()
    assert [(p.name, p.kind) for p in quick] == [(p.name, p.kind) for p in plain]
    assert [p.default for p in quick][:3] == [p.default for p in plain][:3]  # not the factory
    for args, kwargs in [(("a",), {}), (("a", 5), {}), ((), {"name": "b", "tags": ["x"]})]:
        quick, plain = _Quick(*args, **kwargs), _Plain(*args, **kwargs)
        assert (quick.name, quick.size, quick.tags) == (plain.name, plain.size, plain.tags)
    assert _Quick("a").tags is not _Quick("a").tags  # a fresh default each time


def test_quick_init_keeps_the_class_frozen_and_its_errors() -> None:
    quick = _Quick("a")
    with pytest.raises(FrozenInstanceError):
        quick.name = "b"  # type: ignore[misc]
    with pytest.raises(TypeError, match="name"):
        _Quick()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="colour"):
        _Quick("a", colour="red")  # type: ignore[call-arg]
    assert _Quick("a", 1) == _Quick("a", 1) != _Quick("a", 2)


def test_quick_init_refuses_what_it_would_get_wrong() -> None:
    @dataclass(frozen=True, slots=True)
    class KeywordOnly:
        a: int = field(kw_only=True)

    @dataclass(frozen=True, slots=True)
    class NotInInit:
        a: int
        b: int = field(init=False, default=0)

    @dataclass(frozen=True, slots=True)
    class Checked:
        a: int

        def __post_init__(self) -> None:
            raise ValueError

    for cls in (KeywordOnly, NotInInit, Checked):
        with pytest.raises(TypeError, match="needs the dataclass's own __init__"):
            quick_init(cls)
