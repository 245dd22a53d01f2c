"""Console sessions and where a sign-in may lead (pure parts of api/auth.py and
console/session.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from itsmd.api.auth import SESSION_TTL, session_of, sign_session
from itsmd.config import Role, Token
from itsmd.console.session import clean_name, safe_next

NOW = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
ALICE = Token("alice", Role.RESPOND, "alice-secret-0123456789")
BOB = Token("bob", Role.READ, "bob-secret-0123456789abc")


def test_a_session_is_good_until_it_expires() -> None:
    session = sign_session(ALICE, NOW)
    found = session_of(session.value, [BOB, ALICE], NOW + SESSION_TTL - timedelta(seconds=1))
    assert found is not None
    assert found.token == ALICE
    assert session_of(session.value, [ALICE], NOW + SESSION_TTL) is None


def test_a_session_ends_with_its_token_or_its_secret() -> None:
    value = sign_session(ALICE, NOW).value
    assert session_of(value, [BOB], NOW) is None  # the token was removed
    rotated = Token("alice", Role.RESPOND, "alice-new-secret-0123456")
    assert session_of(value, [rotated], NOW) is None


@pytest.mark.parametrize(
    "forged",
    [
        "",
        "garbage",
        "YWxpY2U.99999999999.",
        "YWxpY2U.notanumber.00",
        "Ym9i.{expires}.{mac}",  # alice's signature under bob's name
        "YWxpY2U.{later}.{mac}",  # a later expiry under alice's signature
        "x" * 600,
    ],
)
def test_a_forged_or_altered_session_is_refused(forged: str) -> None:
    session = sign_session(ALICE, NOW)
    _, expires, mac = session.value.split(".")
    value = forged.format(expires=expires, later=int(expires) + 3600, mac=mac)
    assert session_of(value, [ALICE, BOB], NOW) is None


@pytest.mark.parametrize(
    ("target", "lands"),
    [
        (None, "/incidents"),
        ("", "/incidents"),
        ("/incidents/INC-4?x=1", "/incidents/INC-4?x=1"),
        ("/alerts?q=%7Bpod%3D%22a%22%7D", "/alerts?q=%7Bpod%3D%22a%22%7D"),
        ("//evil.example", "/incidents"),
        ("/\\evil.example", "/incidents"),
        ("https://evil.example/x", "/incidents"),
        ("javascript:alert(1)", "/incidents"),
        ("/incidents\r\nSet-Cookie: x=1", "/incidents"),
        ("/login?next=/x", "/incidents"),
        ("/logout", "/incidents"),
    ],
)
def test_a_sign_in_leads_to_a_path_of_this_daemon_only(target: str | None, lands: str) -> None:
    assert safe_next(target) == lands


def test_a_typed_name_is_printable_trimmed_and_short() -> None:
    assert clean_name("  Dana\x00\n ") == "Dana"
    assert len(clean_name("x" * 500)) == 100
