"""Email sink: one plain-text message per event, over SMTP submission with STARTTLS.

Follows RFC 6409 submission (port 587) with RFC 3207 STARTTLS and SMTP AUTH,
and RFC 5322 threading: each message's `Message-ID` is `<{event_id}@itsmd>`, the
same on every retry, so a recipient can drop a duplicate; `In-Reply-To` and
`References` name `<INC-42@itsmd>`, so a mail client threads all events of one
incident (or problem) together. `Date` is the event's time, so a message sent
late by a retry still sorts where the event happened, and `Auto-Submitted:
auto-generated` (RFC 3834) keeps vacation responders quiet.

With `starttls` (the default) a server that does not offer STARTTLS is a
permanent failure, and credentials are never configured without it: a password
never crosses the network in clear. Problem events are sent like incident events.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any, Final

import aiosmtplib

from itsmd.notify.connector import (
    Delivered,
    Delivery,
    Failed,
    Notification,
    Retry,
    SinkEnv,
    SinkKind,
    SinkOptions,
    rfc3339,
)

MSGID_DOMAIN: Final = "itsmd"
NOT_IN_MSGID: Final = re.compile(r"[^A-Za-z0-9._-]")
EVENT_NAMES: Final = {"sla_breached": "SLA breached"}

Subject = Mapping[str, Any]  # the Incident or Problem JSON of the API (docs/api.md)


def build(options: SinkOptions, env: SinkEnv) -> EmailSink:
    host = options.text("host")
    port = options.integer("port", 587, lo=1, hi=65535)
    sender = address(options, "from", options.text("from"))
    to = [address(options, "to", value) for value in options.texts("to")]
    starttls = options.flag("starttls", True)
    user = options.optional_text("user")
    password = options.secret("password", required=user is not None)
    if password is not None and user is None:
        options.fail("password", "given without user")
    if user is not None and not starttls:
        options.fail("user", "credentials are only sent after STARTTLS: set starttls: true")
    tls = tls_context(options, options.optional_text("tls_ca_file"))
    prefix = options.text("subject_prefix", "[itsmd]")
    options.done()
    return EmailSink(
        host=host,
        port=port,
        sender=sender,
        to=to,
        starttls=starttls,
        login=None if user is None else (user, password or ""),
        tls=tls,
        subject_prefix=prefix,
        timeout_s=env.timeout_s,
    )


def address(options: SinkOptions, key: str, value: str) -> str:
    """`value` as given when it holds one address (a display name is fine)."""
    if value and "@" not in parseaddr(value)[1]:
        options.fail(key, f"expected an email address, got {value!r}")
    return value


def tls_context(options: SinkOptions, ca_file: str | None) -> ssl.SSLContext | None:
    """Verifying context: the system's CAs, or only those of `tls_ca_file`."""
    try:
        cafile = None if ca_file is None else str(options.base / ca_file)
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        options.fail("tls_ca_file", f"cannot load CAs from {ca_file}: {exc}")
        return None


@dataclass(frozen=True, slots=True)
class EmailSink:
    host: str
    port: int
    sender: str
    to: list[str]
    starttls: bool
    login: tuple[str, str] | None = field(repr=False)  # user and password
    tls: ssl.SSLContext | None
    subject_prefix: str
    timeout_s: float

    async def send(self, notification: Notification) -> Delivery:
        message = self.message(notification)
        try:
            return await self._submit(message)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [refusal.code for refusal in exc.recipients]
            reason = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
            return by_code(min(codes), f"every recipient refused: {reason}")
        except aiosmtplib.SMTPResponseException as exc:
            return by_code(exc.code, exc.message)
        except (OSError, TimeoutError) as exc:  # connection, TLS and SMTP transport errors
            return Retry(f"{self.host}:{self.port}: {type(exc).__name__}: {exc}".rstrip(": "))
        except aiosmtplib.SMTPException as exc:  # e.g. no AUTH mechanism in common
            return Failed(f"{self.host}:{self.port}: {exc}")

    async def _submit(self, message: EmailMessage) -> Delivery:
        smtp = aiosmtplib.SMTP(
            hostname=self.host, port=self.port, timeout=self.timeout_s, start_tls=False
        )
        async with smtp:
            if self.starttls:
                await smtp.ehlo()
                if not smtp.supports_extension("starttls"):
                    return Failed(f"{self.host}:{self.port} does not offer STARTTLS")
                await smtp.starttls(tls_context=self.tls)
            if self.login is not None:
                await smtp.login(*self.login)
            refused, _ = await smtp.send_message(message, sender=self.sender, recipients=self.to)
        if refused:
            some = ", ".join(f"{rcpt} ({answer.code})" for rcpt, answer in refused.items())
            return Delivered(detail=f"refused for {some}")
        return Delivered()

    def message(self, n: Notification) -> EmailMessage:
        doc: Subject = n.incident if n.incident is not None else n.problem or {}
        subject_id = str(doc.get("id", ""))
        message = EmailMessage()
        message["Subject"] = subject_line(self.subject_prefix, n, doc)
        message["From"] = self.sender
        message["To"] = ", ".join(self.to)
        message["Date"] = format_datetime(n.at.astimezone(UTC))
        message["Message-ID"] = f"<{NOT_IN_MSGID.sub('-', n.event_id)}@{MSGID_DOMAIN}>"
        thread = f"<{NOT_IN_MSGID.sub('-', subject_id)}@{MSGID_DOMAIN}>"
        message["In-Reply-To"] = thread
        message["References"] = thread
        message["Auto-Submitted"] = "auto-generated"
        message["X-Itsmd-Event"] = n.event
        message["X-Itsmd-Event-Id"] = n.event_id
        message.set_content(body(n, doc))
        return message


def by_code(code: int, text: str) -> Retry | Failed:
    """SMTP reply classes: 4xx is transient (RFC 5321 section 4.2.1), the rest is not."""
    reason = f"SMTP {code} {text}".strip()
    return Retry(reason) if 400 <= code < 500 else Failed(reason)


def subject_line(prefix: str, n: Notification, doc: Subject) -> str:
    """`[itsmd] P1 opened: Disk full (INC-42)`; problems have no priority."""
    event = EVENT_NAMES.get(n.event, n.event.replace("_", " "))
    title = " ".join(str(doc.get("title", "")).split())
    head = " ".join(part for part in (prefix, str(doc.get("priority") or ""), event) if part)
    return f"{head}: {title} ({doc.get('id', '')})"


def body(n: Notification, doc: Subject) -> str:
    event = EVENT_NAMES.get(n.event, n.event.replace("_", " "))
    known_error = doc.get("known_error")
    if isinstance(known_error, Mapping):
        known_error = known_error.get("workaround")
    sla = doc.get("sla")
    if not isinstance(sla, Mapping):
        sla = {}
    fields = [
        ("Priority", priority(doc)),
        ("Status", doc.get("status")),
        ("Service", doc.get("service")),
        ("Assignee", doc.get("assignee")),
        ("Rule", doc.get("rule")),
        ("Opened", doc.get("opened_at")),
        ("Respond by", sla.get("respond_due")),
        ("Resolve by", sla.get("resolve_due")),
        ("Resolved", doc.get("resolved_at")),
        ("Root cause", doc.get("root_cause")),
        ("Workaround", doc.get("workaround") or known_error),
        ("Incidents", doc.get("incident_count")),
    ]
    facts = "\n".join(f"{name + ':':<12}{value}" for name, value in fields if value)
    head = f"{doc.get('id', '')} {event} at {rfc3339(n.at, fraction=False)}: {doc.get('title', '')}"
    parts = [head, facts, str(doc.get("description") or "").strip(), n.link]
    return "\n\n".join(part for part in parts if part) + "\n"


def priority(doc: Subject) -> str:
    if not doc.get("priority"):
        return ""
    levels = [f"{key} {doc[key]}" for key in ("impact", "urgency") if doc.get(key)]
    return f"{doc['priority']} ({', '.join(levels)})" if levels else str(doc["priority"])


KIND = SinkKind(
    kind="email",
    build=build,
    doc="SMTP with STARTTLS: one plain-text message per event, threaded per incident",
)
