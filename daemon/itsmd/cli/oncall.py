"""`itsmd alerts`, `checks`, `availability`, `sla` and `notifications`: what on-call
reads besides incidents, as tables (`--json` prints the API's answer)."""

# ruff: noqa: T201 - a command prints

from __future__ import annotations

import argparse
import urllib.parse
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from itsmd.checks.report import window_key
from itsmd.cli import render
from itsmd.cli.client import ClientError, actor, add_actor, api_path, common, print_json, request
from itsmd.cli.selectors import selector
from itsmd.durations import parse_duration

ALERT_STATES = ("firing", "resolved", "suppressed", "unrouted")
NOTIFICATION_STATES = ("pending", "sent", "dead", "cancelled", "muted")


def add_commands(sub: Any) -> None:
    _add_alerts(sub)

    checks = sub.add_parser("checks", help="the checks and their state now")
    common(checks)
    checks.set_defaults(func=_checks)

    reconcile = sub.add_parser(
        "reconcile", help="reconciliation with Alertmanager: its last round and what it repaired"
    )
    common(reconcile)
    reconcile.set_defaults(func=_reconcile)

    availability = sub.add_parser(
        "availability", help="availability of services and checks against their objectives"
    )
    common(availability)
    availability.add_argument(
        "--window", default="30d", help="span of the error budget and burn rate (default 30d)"
    )
    availability.set_defaults(func=_availability)

    sla = sub.add_parser("sla", help="SLA targets met and breached per priority, MTTA and MTTR")
    common(sla)
    sla.add_argument(
        "--window", default="30d", help="incidents opened within this span (default 30d)"
    )
    sla.set_defaults(func=_sla)

    notifications = sub.add_parser("notifications", help="the notification outbox")
    actions = notifications.add_subparsers(metavar="ACTION")
    ls = actions.add_parser("list", help="notifications, newest first")
    common(ls)
    ls.add_argument("--state", choices=NOTIFICATION_STATES, help="only those in this state")
    ls.add_argument("--limit", type=int, default=50, help="page size, 1..500 (default 50)")
    ls.add_argument("--cursor", help="the next page, as the previous page said")
    ls.set_defaults(func=_notifications)
    retry = actions.add_parser("retry", help="send a dead letter again")
    common(retry)
    add_actor(retry)
    retry.add_argument("id", help="the notification's id")
    retry.set_defaults(func=_retry)


def _add_alerts(sub: Any) -> None:
    alerts = sub.add_parser("alerts", help="search stored alerts")
    actions = alerts.add_subparsers(metavar="ACTION")
    query = actions.add_parser(
        "query", help="alerts matching all the matchers, newest first (as amtool alert query)"
    )
    common(query)
    query.add_argument(
        "matchers",
        nargs="*",
        metavar="MATCHER",
        help="pod=web-7, 'pod=\"web-7\"', '{pod=\"web-7\"}', 'severity=~\"crit.*\"' or "
        "an alert name; all must hold",
    )
    query.add_argument(
        "--state",
        action="append",
        choices=ALERT_STATES,
        help="only alerts in this state (repeat for several)",
    )
    query.add_argument(
        "--since", metavar="TIME", help="started since: RFC 3339 time or a duration (24h)"
    )
    query.add_argument("--limit", type=int, default=50, help="page size, 1..500 (default 50)")
    query.add_argument("--cursor", help="the next page, as the previous page said")
    query.set_defaults(func=_alerts_query)
    show = actions.add_parser("show", help="every firing episode of one alert")
    common(show)
    show.add_argument("fingerprint", help="16 hex digits, as `alerts query --json` gives it")
    show.set_defaults(func=_alert_show)


def _alerts_query(args: argparse.Namespace) -> int:
    params = [("filter", selector(args.matchers))] if args.matchers else []
    params += [("state", s) for s in args.state or ()]
    params += [
        (k, v)
        for k, v in (("since", args.since), ("limit", str(args.limit)), ("cursor", args.cursor))
        if v
    ]
    page = request(args, "GET", "/api/v1/alerts?" + urllib.parse.urlencode(params))
    if args.json:
        print_json(page)
        return 0
    alerts = page["alerts"]
    label_sets = [a["labels"] for a in alerts]
    names = render.differing(label_sets, skip=("alertname",))
    shared: dict[str, str] = {}
    if len(alerts) == 1:  # nothing to tell it from: all its labels, as amtool shows them
        names = sorted(n for n in alerts[0]["labels"] if n != "alertname")
    elif alerts:
        shared = {k: v for k, v in label_sets[0].items() if k not in names and k != "alertname"}
    rows = [
        (
            a["incident_id"] or "-",
            a["state"],
            a["labels"].get("alertname", "-"),
            render.labels_text(a["labels"], names),
            render.when(a["startsAt"], args.now),
        )
        for a in alerts
    ]
    render.table(("INCIDENT", "STATE", "ALERTNAME", "LABELS", "STARTS"), rows, "alerts")
    if shared:
        print("labels of all of them:", render.labels_text(shared, sorted(shared)))
    render.more(len(rows), "alerts", page["next"])
    return 0


def _alert_show(args: argparse.Namespace) -> int:
    found = request(args, "GET", api_path("/api/v1/alerts/{}", args.fingerprint))
    if args.json:
        print_json(found)
        return 0
    episodes = found["episodes"]
    latest = max(episodes, key=lambda e: e["startsAt"])
    print(f"{latest['labels'].get('alertname', '?')}  {found['fingerprint']}")
    for name, value in sorted(latest["labels"].items()):
        print(f"  {name} = {value}")
    for name, value in sorted(latest["annotations"].items()):
        print(f"  @{name}: {value}")
    print(f"\nepisodes ({len(episodes)}):")
    rows = [
        (
            e["state"],
            e["incident_id"] or "-",
            render.when(e["startsAt"], args.now),
            render.when(e["endsAt"], args.now) if e["status"] == "resolved" else "-",
            str(e["receive_count"]),
            f"{e['decision']['action']}: {e['decision']['reason']}",
        )
        for e in episodes
    ]
    render.table(("STATE", "INCIDENT", "STARTS", "ENDS", "RECEIVED", "DECISION"), rows, "episodes")
    return 0


def _checks(args: argparse.Namespace) -> int:
    page = request(args, "GET", "/api/v1/checks")
    if args.json:
        print_json(page)
        return 0
    rows = [
        (
            c["name"],
            c["type"],
            c["service"] or "-",
            "unknown" if c["up"] is None else "up" if c["up"] else "DOWN",
            render.age(c["last_run"], args.now) if c["last_run"] else "never",
            str(c["consecutive_failures"]),
            "-" if c["duration_s"] is None else f"{c['duration_s']:.2f} s",
            f"every {render.span(_seconds(c['interval_s']))}",
            c["last_error"] or "",
        )
        for c in page["checks"]
    ]
    header = ("NAME", "TYPE", "SERVICE", "STATE", "LAST RUN", "FAILS", "TOOK", "RUNS", "LAST ERROR")
    render.table(header, rows, "checks")
    return 0


def _reconcile(args: argparse.Namespace) -> int:
    status = request(args, "GET", "/api/v1/reconcile")
    if args.json:
        print_json(status)
        return 0
    if not status["configured"]:
        print("reconciliation is off: no connectors.alertmanager in the config")
        return 0
    print(
        f"every {status['reconcile_every']}, grace {status['grace']}; this replica "
        + ("reconciles" if status["leader"] else "stands by (another one reconciles)")
    )
    last = status["last_round"]
    if last is None:
        print("no round yet on this replica")
        return 0
    outcome = (
        f"every Alertmanager answered; resolved {last['resolved']}"
        if last["complete"]
        else "INCOMPLETE, an Alertmanager did not answer: nothing resolved"
    )
    print(
        f"last round {render.when(last['at'], args.now)}: {outcome}; ingested "
        f"{last['ingested']}; within grace: {last['missing']} missing, "
        f"{last['unseen']} never received"
    )
    rows = [
        (
            a["url"],
            "yes" if a["answered"] else "NO",
            "-" if a["alerts"] is None else str(a["alerts"]),
            a["error"] or "",
        )
        for a in last["alertmanagers"]
    ]
    render.table(("ALERTMANAGER", "ANSWERED", "ALERTS", "ERROR"), rows, "Alertmanagers")
    return 0


def _availability(args: argparse.Namespace) -> int:
    window = _window_key(args.window)
    where = "/api/v1/availability?" + urllib.parse.urlencode({"window": args.window})
    report = request(args, "GET", where)
    if args.json:
        print_json(report)
        return 0
    entries = [("service", e["service"], e) for e in report["services"]]
    entries += [("check", e["check"], e) for e in report["checks"]]
    keys = list(entries[0][2]["availability"]) if entries else [window]
    rows = [
        (
            kind,
            name,
            *(_percent(e["availability"].get(k)) for k in keys),
            _percent(e["coverage"].get(window)),
            "-" if e["slo"] is None else f"{e['slo']:g}%",
            _percent(e["error_budget_left"]),
            "-" if e["burn_rate"] is None else f"{e['burn_rate']:.2f}",
        )
        for kind, name, e in entries
    ]
    header = (
        "KIND",
        "NAME",
        *(k.upper() for k in keys),
        f"COVERED {window}",
        "SLO",
        f"BUDGET LEFT {window}",
        f"BURN {window}",
    )
    render.table(header, rows, "services or checks measured")
    return 0


def _sla(args: argparse.Namespace) -> int:
    where = "/api/v1/sla?" + urllib.parse.urlencode({"window": args.window})
    summary = request(args, "GET", where)
    if args.json:
        print_json(summary)
        return 0
    rows = [
        (
            p["priority"],
            str(p["incidents"]),
            _verdicts(p["respond"]),
            _verdicts(p["resolve"]),
            "-" if p["mtta_s"] is None else render.span(_seconds(p["mtta_s"])),
            "-" if p["mttr_s"] is None else render.span(_seconds(p["mttr_s"])),
        )
        for p in summary["priorities"]
    ]
    print(f"incidents opened in the last {summary['window']}")
    header = ("PRI", "INCIDENTS", "RESPOND", "RESOLVE", "MTTA", "MTTR")
    render.table(header, rows, f"incidents opened in the last {summary['window']}")
    return 0


def _verdicts(counts: Mapping[str, int]) -> str:
    """`3 met, 1 breached, 0 pending` (and `not needed` when any)."""
    parts = [f"{counts[k]} {k}" for k in ("met", "breached", "pending")]
    if counts.get("not_needed"):
        parts.append(f"{counts['not_needed']} not needed")
    return ", ".join(parts)


def _notifications(args: argparse.Namespace) -> int:
    params = {
        k: v
        for k, v in (
            ("state", args.state),
            ("limit", str(args.limit)),
            ("cursor", args.cursor),
        )
        if v
    }
    page = request(args, "GET", "/api/v1/notifications?" + urllib.parse.urlencode(params))
    if args.json:
        print_json(page)
        return 0
    rows = [
        (
            str(n["id"]),
            n["state"],
            n["event"],
            n["subject"],
            f"{n['route']} -> {n['connector']}",
            str(n["attempts"]),
            render.when(n["created_at"], args.now),
            _next(n, args),
            n["last_error"] or "",
        )
        for n in page["notifications"]
    ]
    header = ("ID", "STATE", "EVENT", "SUBJECT", "ROUTE", "TRIES", "CREATED", "NEXT", "LAST ERROR")
    render.table(header, rows, "notifications" + (f" {args.state}" if args.state else ""))
    render.more(len(rows), "notifications", page["next"])
    return 0


def _next(n: Mapping[str, Any], args: argparse.Namespace) -> str:
    """When it is sent or was: the due time of a pending one, the send time of a sent one."""
    if n["state"] == "sent":
        return "sent " + render.age(n["sent_at"], args.now)
    if n["state"] == "pending":
        return "due " + render.age(n["due_at"], args.now)
    return "-"


def _retry(args: argparse.Namespace) -> int:
    text = args.id.strip()
    if not (text.isascii() and text.isdigit()):
        raise ClientError(f"notification id: expected a number, got {args.id!r}")
    where = api_path("/api/v1/notifications/{}/retry", text)
    done = request(args, "POST", where, {"actor": actor(args)})
    if args.json:
        print_json(done)
    else:
        due = render.age(done["due_at"], args.now)
        print(f"notification {done['id']}: {done['state']}, due {due}")
    return 0


def _percent(ratio: float | None) -> str:
    if ratio is None:
        return "-"
    return f"{ratio * 100:.3f}%".replace(".000%", "%")


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


def _window_key(text: str) -> str:
    """The key the API gives the window (`30d`, `12h`); a clear error for a bad one."""
    try:
        return window_key(parse_duration(text))
    except ValueError as exc:
        raise ClientError(f"--window: {exc}") from None
