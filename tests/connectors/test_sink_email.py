"""The email sink against a real SMTP server (aiosmtpd) on loopback, STARTTLS with a test CA."""

from __future__ import annotations

import email
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from email.policy import default as email_policy
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller  # type: ignore[import-untyped]
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from itsmd.notify.connector import (
    ENTRY_POINT_GROUP,
    Delivered,
    Failed,
    Retry,
    SinkConfigError,
    SinkEnv,
    SinkOptions,
)
from itsmd_connectors.sinks import email as email_sink
from tests.conftest import get_free_port
from tests.connectors.fakes_tickets import (
    LINK,
    NO_IO,
    incident_event,
    problem_event,
    refused_port,
)

USER, PASSWORD = "itsmd", "s3cret"
SENDER, ONCALL, BACKUP = "itsmd@example.com", "oncall@example.com", "backup@example.com"
ENV = SinkEnv(http=NO_IO.http, timeout_s=5.0)


@dataclass(frozen=True, slots=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    tls: bool  # the message came over a STARTTLS-protected session


@dataclass
class Mailbox:
    """An aiosmtpd handler that keeps what it got and answers as scripted."""

    port: int = 0
    refuse: dict[str, str] = field(default_factory=dict)  # recipient -> RCPT answer
    data_answer: str | None = None  # instead of accepting the message
    received: list[Received] = field(default_factory=list)
    logins: list[tuple[str, str, str]] = field(default_factory=list)  # mechanism, user, password

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        login = (data.login.decode(), data.password.decode())
        self.logins.append((mechanism, *login))
        return AuthResult(success=login == (USER, PASSWORD), handled=False)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_answer is not None:
            return self.data_answer
        message = email.message_from_bytes(envelope.content, policy=email_policy)
        assert isinstance(message, EmailMessage)
        tls = session.ssl is not None
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message, tls))
        return "250 2.0.0 Message accepted for delivery"


@dataclass(frozen=True, slots=True)
class Tls:
    server: ssl.SSLContext  # presents a certificate for 127.0.0.1 from the test CA
    ca_file: Path  # that CA, for the sink's tls_ca_file


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server)
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return Tls(server, ca_file)


StartServer = Callable[..., Mailbox]


@pytest.fixture
def smtp_server(tls: Tls) -> Iterator[StartServer]:
    """`start(starttls=True, auth=True, **mailbox)`: a running server; all stop at teardown."""
    controllers: list[Controller] = []

    def start(*, starttls: bool = True, auth: bool = True, **mailbox: Any) -> Mailbox:
        box = Mailbox(port=get_free_port(), **mailbox)
        options: dict[str, Any] = {}
        if starttls:
            options |= {"tls_context": tls.server, "require_starttls": True}
        if auth:
            options |= {"authenticator": box.authenticate, "auth_required": True}
        controller = Controller(box, hostname="127.0.0.1", port=box.port, **options)
        controller.start()
        controllers.append(controller)
        return box

    yield start
    for controller in controllers:
        controller.stop()


def build(box: Mailbox, tls: Tls, **values: Any) -> email_sink.EmailSink:
    values = {
        "host": "127.0.0.1",
        "port": box.port,
        "from": SENDER,
        "to": [ONCALL, BACKUP],
        "user": USER,
        "password_env": "SMTP_PASSWORD",
        "tls_ca_file": tls.ca_file.name,
        **values,
    }
    values = {key: value for key, value in values.items() if value is not None}
    options = SinkOptions(values, {"SMTP_PASSWORD": PASSWORD}, base=tls.ca_file.parent)
    return email_sink.build(options, ENV)


BODY = f"""\
INC-42 opened at 2026-03-01T12:05:30Z: Disk full on db-1

Priority:   P1 (impact high, urgency high)
Status:     open
Service:    billing
Rule:       disk
Opened:     2026-03-01T12:05:00Z
Respond by: 2026-03-01T12:20:00Z
Resolve by: 2026-03-01T16:05:00Z

/var on db-1 is 97% full

{LINK}
"""


def text(message: EmailMessage) -> str:
    content = message.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


def test_kind_is_registered_under_its_name() -> None:
    (entry,) = entry_points(group=ENTRY_POINT_GROUP, name="email")
    assert entry.load() is email_sink.KIND
    assert email_sink.KIND.kind == "email"
    assert email_sink.KIND.doc


async def test_an_event_is_mailed_over_starttls_after_login(
    smtp_server: StartServer, tls: Tls
) -> None:
    box = smtp_server()
    delivery = await build(box, tls).send(incident_event("opened"))

    assert delivery == Delivered()
    assert box.logins == [("PLAIN", USER, PASSWORD)]
    (got,) = box.received
    assert (got.mail_from, got.rcpt_tos, got.tls) == (SENDER, [ONCALL, BACKUP], True)
    headers = {key: str(value) for key, value in got.message.items()}
    assert headers == {
        "Subject": "[itsmd] P1 opened: Disk full on db-1 (INC-42)",
        "From": SENDER,
        "To": f"{ONCALL}, {BACKUP}",
        "Date": "Sun, 01 Mar 2026 12:05:30 +0000",
        "Message-ID": "<evt-0001@itsmd>",
        "In-Reply-To": "<INC-42@itsmd>",
        "References": "<INC-42@itsmd>",
        "Auto-Submitted": "auto-generated",
        "X-Itsmd-Event": "opened",
        "X-Itsmd-Event-Id": "evt-0001",
        "Content-Type": 'text/plain; charset="utf-8"',
        "Content-Transfer-Encoding": "7bit",
        "MIME-Version": "1.0",
    }
    assert text(got.message) == BODY


async def test_events_of_one_incident_share_a_thread(smtp_server: StartServer, tls: Tls) -> None:
    box = smtp_server()
    sink = build(box, tls, subject_prefix="[ops]")
    acknowledged = incident_event("acknowledged", status="acknowledged", assignee="alice")
    breached = incident_event("sla_breached", title="Disk\nfull", priority="P2")
    await sink.send(acknowledged)
    await sink.send(breached)

    first, second = (got.message for got in box.received)
    assert first["Subject"] == "[ops] P1 acknowledged: Disk full on db-1 (INC-42)"
    assert second["Subject"] == "[ops] P2 SLA breached: Disk full (INC-42)"
    assert first["References"] == second["References"] == "<INC-42@itsmd>"
    assert "Assignee:   alice\n" in text(first)
    assert text(second).startswith("INC-42 SLA breached at 2026-03-01T12:05:30Z: Disk\nfull\n")


async def test_a_problem_event_threads_by_problem(smtp_server: StartServer, tls: Tls) -> None:
    box = smtp_server()
    event = problem_event("problem_opened", workaround="grow /var", status="known_error")
    assert await build(box, tls).send(event) == Delivered()

    message = box.received[0].message
    assert message["Subject"] == "[itsmd] problem opened: Recurring disk full on db hosts (PRB-7)"
    assert (message["Message-ID"], message["In-Reply-To"]) == ("<evt-0002@itsmd>", "<PRB-7@itsmd>")
    assert text(message) == (
        "PRB-7 problem opened at 2026-03-01T12:05:30Z: Recurring disk full on db hosts\n\n"
        "Status:     known_error\n"
        "Rule:       disk\n"
        "Opened:     2026-03-01T12:05:00Z\n"
        "Workaround: grow /var\n"
        "Incidents:  3\n\n"
        "https://itsmd.example.com/problems/PRB-7\n"
    )


async def test_without_credentials_it_mails_over_starttls(
    smtp_server: StartServer, tls: Tls
) -> None:
    box = smtp_server(auth=False)
    sink = build(box, tls, user=None, password_env=None, to=f"On call <{ONCALL}>")
    assert await sink.send(incident_event("resolved")) == Delivered()
    (got,) = box.received
    assert (got.rcpt_tos, got.tls, box.logins) == ([ONCALL], True, [])
    assert got.message["To"] == f"On call <{ONCALL}>"


async def test_a_server_without_starttls_is_refused(smtp_server: StartServer, tls: Tls) -> None:
    box = smtp_server(starttls=False, auth=False)
    delivery = await build(box, tls).send(incident_event("opened"))
    assert delivery == Failed(f"127.0.0.1:{box.port} does not offer STARTTLS")
    assert box.received == []


async def test_plain_smtp_when_starttls_is_off(smtp_server: StartServer, tls: Tls) -> None:
    box = smtp_server(starttls=False, auth=False)
    sink = build(box, tls, starttls=False, user=None, password_env=None, tls_ca_file=None)
    assert await sink.send(incident_event("opened")) == Delivered()
    assert box.received[0].tls is False


async def test_a_certificate_from_an_unknown_ca_is_retried(
    smtp_server: StartServer, tls: Tls
) -> None:
    box = smtp_server()
    delivery = await build(box, tls, tls_ca_file=None).send(incident_event("opened"))
    assert isinstance(delivery, Retry)
    assert "CERTIFICATE_VERIFY_FAILED" in delivery.reason
    assert (box.logins, box.received) == ([], [])


async def test_a_wrong_password_is_permanent(smtp_server: StartServer, tls: Tls) -> None:
    box = smtp_server()
    options = SinkOptions(
        {"host": "127.0.0.1", "port": box.port, "from": SENDER, "to": [ONCALL], "user": USER}
        | {"password_env": "P", "tls_ca_file": str(tls.ca_file)},
        {"P": "wrong"},
    )
    delivery = await email_sink.build(options, ENV).send(incident_event("opened"))
    assert delivery == Failed("SMTP 535 5.7.8 Authentication credentials invalid")
    assert box.received == []


@pytest.mark.parametrize(
    ("mailbox", "expected"),
    [
        (
            {"data_answer": "451 4.3.0 Try again later"},
            Retry("SMTP 451 4.3.0 Try again later"),
        ),
        (
            {"data_answer": "554 5.6.0 Message rejected"},
            Failed("SMTP 554 5.6.0 Message rejected"),
        ),
        (
            {"refuse": {ONCALL: "550 5.1.1 No such user", BACKUP: "550 5.1.1 No such user"}},
            Failed(
                f"SMTP 550 every recipient refused: {ONCALL}: 550 5.1.1 No such user; "
                f"{BACKUP}: 550 5.1.1 No such user"
            ),
        ),
        (
            {"refuse": {ONCALL: "450 4.2.1 Mailbox busy", BACKUP: "550 5.1.1 No such user"}},
            Retry(
                f"SMTP 450 every recipient refused: {ONCALL}: 450 4.2.1 Mailbox busy; "
                f"{BACKUP}: 550 5.1.1 No such user"
            ),
        ),
        (
            {"refuse": {BACKUP: "550 5.1.1 No such user"}},
            Delivered(detail=f"refused for {BACKUP} (550)"),
        ),
    ],
    ids=["data-4xx", "data-5xx", "all-rcpt-5xx", "some-rcpt-4xx", "one-rcpt-refused"],
)
async def test_smtp_replies_are_classified(
    smtp_server: StartServer, tls: Tls, mailbox: dict[str, Any], expected: Any
) -> None:
    box = smtp_server(**mailbox)
    assert await build(box, tls).send(incident_event("opened")) == expected


async def test_a_refused_connection_is_retried(tls: Tls) -> None:
    with refused_port() as port:
        box = Mailbox(port=port)
        delivery = await build(box, tls).send(incident_event("opened"))
    assert isinstance(delivery, Retry)
    assert delivery.reason.startswith(f"127.0.0.1:{port}: ")


@pytest.mark.parametrize(
    ("event_id", "message_id"),
    [("evt-0001", "<evt-0001@itsmd>"), ("42 <x>@y", "<42--x--y@itsmd>")],
)
def test_the_message_id_is_the_event_id(event_id: str, message_id: str, tls: Tls) -> None:
    event = replace(incident_event("opened"), event_id=event_id)
    message = build(Mailbox(port=587), tls).message(event)
    assert (message["Message-ID"], message["X-Itsmd-Event-Id"]) == (message_id, event_id)


def test_options_are_all_checked_at_once(tmp_path: Path) -> None:
    values = {
        "port": 70000,
        "from": "itsmd",
        "to": [ONCALL, "nobody"],
        "starttls": False,
        "user": USER,
        "tls_ca_file": "missing.pem",
        "cc": [BACKUP],
    }
    with pytest.raises(SinkConfigError) as caught:
        email_sink.build(SinkOptions(values, base=tmp_path), NO_IO)
    problems = dict(caught.value.problems)
    assert problems.pop("tls_ca_file").startswith("cannot load CAs from missing.pem: ")
    assert problems == {
        "host": "required",
        "port": "expected an integer from 1 to 65535, got 70000",
        "from": "expected an email address, got 'itsmd'",
        "to": "expected an email address, got 'nobody'",
        "password": "give password_env or password_file",
        "user": "credentials are only sent after STARTTLS: set starttls: true",
        "cc": "unknown option",
    }


def test_a_password_needs_a_user() -> None:
    values = {"host": "smtp.example.com", "from": SENDER, "to": ONCALL, "password_env": "P"}
    with pytest.raises(SinkConfigError) as caught:
        email_sink.build(SinkOptions(values, {"P": PASSWORD}), NO_IO)
    assert caught.value.problems == [("password", "given without user")]


def test_defaults_and_no_secret_in_repr() -> None:
    values = {"host": "smtp.example.com", "from": SENDER, "to": ONCALL}
    values |= {"user": USER, "password_env": "P"}
    sink = email_sink.build(SinkOptions(values, {"P": PASSWORD}), NO_IO)
    assert (sink.port, sink.starttls, sink.subject_prefix, sink.to) == (
        587,
        True,
        "[itsmd]",
        [ONCALL],
    )
    assert PASSWORD not in repr(sink)
