"""docs/console.md moves with the console: every page, form field and button."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from itsmd import console
from itsmd.console.forms import INCIDENT_DONE

DOC = (Path(__file__).resolve().parents[3] / "docs" / "console.md").read_text(encoding="utf-8")
TEMPLATES = Path(console.__file__).with_name("templates")


def _documented(path: str) -> str:
    return path.replace("/incidents/{id}", "/incidents/INC-n").replace(
        "/problems/{id}", "/problems/PRB-n"
    )


@pytest.mark.parametrize(
    "path",
    sorted(
        {_documented(op.path) for op in console.OPERATIONS if op.method == "GET"}
        - {"/static/{name}"}
    ),
)
def test_every_page_is_documented(path: str) -> None:
    assert f"`{path}`" in DOC


@pytest.mark.parametrize("label", ["Acknowledge", "Assign", "Comment", "Resolve", "Reopen"])
def test_every_action_button_is_documented_and_labelled_so(label: str) -> None:
    assert f"`{label}`" in DOC
    assert f">{label}</button>" in (TEMPLATES / "incident.html").read_text(encoding="utf-8")


def test_every_incident_action_has_a_form() -> None:
    html = (TEMPLATES / "incident.html").read_text(encoding="utf-8")
    assert set(re.findall(r'action="/incidents/\{\{ inc.ref \}\}/(\w+)"', html)) == set(
        INCIDENT_DONE
    )


@pytest.mark.parametrize("field", ["token", "name", "note", "assignee", "text", "csrf", "next"])
def test_every_form_field_is_documented(field: str) -> None:
    assert f"`{field}`" in DOC
