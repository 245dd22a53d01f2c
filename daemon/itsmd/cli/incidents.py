"""`itsmd incidents ...` and `itsmd problems ...`: read and work them through the API."""

# ruff: noqa: T201 - a command prints

from __future__ import annotations

import argparse
import urllib.parse
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from itsmd.cli import render
from itsmd.cli.client import actor, add_actor, api_path, common, print_json, request

# Alerts of one name shown in `incidents show` before the rest is summed up.
SHOWN_PER_GROUP = 20
UNRESOLVED = "open,acknowledged"


def add_commands(sub: Any) -> None:
    incidents = sub.add_parser("incidents", help="read and work incidents through the API")
    actions = incidents.add_subparsers(metavar="ACTION")

    ls = actions.add_parser(
        "list", help="list incidents, newest first (resolved ones only with --all or --status)"
    )
    common(ls)
    ls.add_argument("--status", help="open,acknowledged,resolved (comma-separated)")
    ls.add_argument("--all", action="store_true", help="resolved incidents too")
    ls.add_argument("--priority", help="P1..P5 (comma-separated)")
    ls.add_argument("--service")
    ls.add_argument("-q", "--query", help="text in title or key")
    ls.add_argument("--since", help="opened since: RFC 3339 time or duration (24h)")
    ls.add_argument("--limit", type=int, default=50, help="page size, 1..500 (default 50)")
    ls.add_argument("--cursor", help="the next page, as the previous page said")
    ls.set_defaults(func=_list)

    show = actions.add_parser("show", help="one incident with its alerts and timeline")
    common(show)
    show.add_argument("id", help="INC-42 or 42")
    show.set_defaults(func=_show)

    for name, helptext in (("ack", "acknowledge"), ("resolve", "resolve"), ("reopen", "reopen")):
        p = actions.add_parser(name, help=helptext)
        _action_args(p)
        p.add_argument("--note", default="", help="a note for the timeline")
        p.set_defaults(func=_action, action=name)

    assign = actions.add_parser("assign", help="assign to someone")
    _action_args(assign)
    assign.add_argument("assignee")
    assign.add_argument("--note", default="", help="a note for the timeline")
    assign.set_defaults(func=_action, action="assign")

    comment = actions.add_parser("comment", help="add a comment to the timeline")
    _action_args(comment)
    comment.add_argument("text")
    comment.set_defaults(func=_action, action="comment")


def _action_args(p: argparse.ArgumentParser) -> None:
    common(p)
    add_actor(p)
    p.add_argument("id", help="INC-42 or 42")


def _list(args: argparse.Namespace) -> int:
    status = args.status if args.status or args.all else UNRESOLVED
    params = {
        k: v
        for k, v in (
            ("status", status),
            ("priority", args.priority),
            ("service", args.service),
            ("q", args.query),
            ("since", args.since),
            ("limit", str(args.limit)),
            ("cursor", args.cursor),
        )
        if v
    }
    page = request(args, "GET", "/api/v1/incidents?" + urllib.parse.urlencode(params))
    if args.json:
        print_json(page)
        return 0
    now = args.now
    rows = [
        (
            i["id"],
            i["priority"],
            i["status"],
            render.elapsed(i["opened_at"], now),
            _acked(i),
            i["assignee"] or "-",
            i["service"] or "-",
            f"{i['firing_count']}/{i['alert_count']}",
            i["title"],
        )
        for i in page["incidents"]
    ]
    header = ("ID", "PRI", "STATUS", "AGE", "ACK", "ASSIGNEE", "SERVICE", "ALERTS", "TITLE")
    what = (
        "incidents"
        if status != UNRESOLVED
        else "open or acknowledged incidents (--all: resolved too)"
    )
    render.table(header, rows, what)
    render.more(len(rows), "incidents", page["next"], " (or a larger --limit, up to 500)")
    return 0


def _acked(incident: Mapping[str, Any]) -> str:
    """Who acknowledged it when the answer says, else whether it was."""
    if not incident["acknowledged_at"]:
        return "-"
    return str(incident.get("acknowledged_by") or "yes")


def _show(args: argparse.Namespace) -> int:
    inc = request(args, "GET", api_path("/api/v1/incidents/{}", args.id))
    if args.json:
        print_json(inc)
        return 0
    now = args.now
    print(f"{inc['id']}  {inc['status']}  {inc['priority']}  {inc['title']}")
    if inc.get("known_error"):  # what to do first, before anything else
        print(f"  workaround    {inc['known_error']}")
    acked_by = _last_actor(inc["timeline"], "acknowledged")
    fields = [
        ("service", inc["service"] or "-"),
        ("priority", f"{inc['priority']} (impact {inc['impact']}, urgency {inc['urgency']})"),
        ("assignee", inc["assignee"] or "-"),
        ("opened", render.when(inc["opened_at"], now)),
        (
            "acknowledged",
            render.when(inc["acknowledged_at"], now)
            + (f" by {acked_by}" if inc["acknowledged_at"] and acked_by else ""),
        ),
        ("resolved", render.when(inc["resolved_at"], now)),
    ]
    if inc.get("auto_resolve_at"):
        fields.append(("auto-resolves", render.when(inc["auto_resolve_at"], now)))
    fields += [
        *_sla(inc.get("sla") or {}, now),
        ("problem", inc.get("problem_id") or "-"),
        ("parent", inc.get("parent_id") or "-"),
        ("rule", inc["rule"]),
        ("key", inc["key"]),
    ]
    for name, value in fields:
        print(f"  {name:13} {value}")
    if inc["description"]:
        print(f"\n  {inc['description']}")
    _alerts(inc, now)
    print("\ntimeline:")
    entries = render.folded(inc["timeline"])
    width = max((len(render.local_text(e["at"], now)) for e, _, _ in entries), default=0)
    for entry, count, last in entries:
        at = render.local_text(entry["at"], now)
        line = f"  {at:{width}}  {entry['kind']:16} {entry['message']}"
        if count > 1:
            until = render.local_text(last, now)
            line += f" … ×{count}" + (f" (until {until})" if until != at else "")
        print(f"{line}  ({entry['actor']})")
    return 0


def _last_actor(timeline: Sequence[Mapping[str, Any]], kind: str) -> str | None:
    found = [e["actor"] for e in timeline if e["kind"] == kind]
    return str(found[-1]) if found else None


def _sla(sla: Mapping[str, Any], now: datetime) -> list[tuple[str, str]]:
    """Each target's due time and where it stands (met, breached, pending, not needed)."""
    out = []
    for target in ("respond", "resolve"):
        due, verdict = sla.get(f"{target}_due"), sla.get(target)
        if due is None and verdict is None:
            continue
        text = f"due {render.when(due, now)}" if due else "no target"
        out.append((f"sla {target}", f"{text}: {(verdict or '-').replace('_', ' ')}"))
    return out or [("sla", "no targets for this priority")]


def _alerts(inc: Mapping[str, Any], now: datetime) -> None:
    """The alerts grouped by name, each with the labels that tell it apart from the
    others (not the fingerprint), and why they are here."""
    alerts = inc["alerts"]
    firing = sum(a["status"] == "firing" for a in alerts)
    print(f"\nalerts ({len(alerts)}, {firing} firing):")
    all_labels = [a["labels"] for a in alerts]
    names = render.differing(all_labels, skip=("alertname",))
    if not names and len(alerts) == 1:  # nothing to tell apart: what the group does not say
        names = [n for n in all_labels[0] if n not in inc["labels"] and n != "alertname"]
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for a in alerts:
        groups.setdefault(a["labels"].get("alertname", "?"), []).append(a)
    for alertname, members in groups.items():
        on = sum(a["status"] == "firing" for a in members)
        print(f"  {alertname}: {len(members)} alerts, {on} firing")
        decisions = (a["decision"] for a in members)
        for reason, count in render.reasons(f"{d['action']}: {d['reason']}" for d in decisions):
            print(f"    why: {reason}" + (f" … ×{count}" if count > 1 else ""))
        width = max(len(render.labels_text(a["labels"], names)) for a in members)
        for a in members[:SHOWN_PER_GROUP]:
            line = f"    {a['status']:8}  {render.labels_text(a['labels'], names):{width}}"
            line += f"  since {render.when(a['startsAt'], now)}"
            if a["status"] == "resolved" and a.get("endsAt"):
                line += f", ended {render.local_text(a['endsAt'], now)}"
            print(line)
        if len(members) > SHOWN_PER_GROUP:
            print(f"    … and {len(members) - SHOWN_PER_GROUP} more (--json shows all)")


def _action(args: argparse.Namespace) -> int:
    body: dict[str, str] = {"actor": actor(args)}
    if args.action == "assign":
        body["assignee"] = args.assignee
    if args.action == "comment":
        body["text"] = args.text
    elif args.note:
        body["note"] = args.note
    inc = request(args, "POST", api_path("/api/v1/incidents/{}/", args.id) + args.action, body)
    if args.json:
        print_json(inc)
    else:
        print(
            f"{inc['id']}: {inc['status']}"
            + (f", assigned to {inc['assignee']}" if inc.get("assignee") else "")
        )
    return 0


# ---- problems

# CLI name -> (help, the API's action, the body field of its text, its metavar and help)
PROBLEM_ACTIONS: dict[str, tuple[str, str, str | None, tuple[str, str] | None]] = {
    "root-cause": ("record the root cause", "root_cause", "text", ("TEXT", "the root cause")),
    "known-error": (
        "mark it a known error: new incidents of it get the workaround",
        "known_error",
        "workaround",
        ("WORKAROUND", "what on-call should do"),
    ),
    "resolve": ("resolve the problem", "resolve", None, None),
}


def add_problem_commands(sub: Any) -> None:
    problems = sub.add_parser("problems", help="read and work problems through the API")
    actions = problems.add_subparsers(metavar="ACTION")
    ls = actions.add_parser("list", help="list problems, newest first")
    common(ls)
    ls.add_argument("--limit", type=int, default=50, help="page size, 1..500 (default 50)")
    ls.add_argument("--cursor", help="the next page, as the previous page said")
    ls.set_defaults(func=_problems_list)
    show = actions.add_parser("show", help="one problem with its incidents")
    common(show)
    show.add_argument("id", help="PRB-7 or 7")
    show.set_defaults(func=_problem_show)
    for name, (helptext, _, _, text) in PROBLEM_ACTIONS.items():
        p = actions.add_parser(name, help=helptext)
        common(p)
        add_actor(p)
        p.add_argument("id", help="PRB-7 or 7")
        if text is not None:
            p.add_argument("text", metavar=text[0], help=text[1])
        p.set_defaults(func=_problem_action, action=name)


def _problems_list(args: argparse.Namespace) -> int:
    params = {"limit": str(args.limit), **({"cursor": args.cursor} if args.cursor else {})}
    page = request(args, "GET", "/api/v1/problems?" + urllib.parse.urlencode(params))
    if args.json:
        print_json(page)
        return 0
    rows = [
        (
            p["id"],
            p["status"],
            str(p["incident_count"]),
            render.when(p["opened_at"], args.now),
            p["title"],
        )
        for p in page["problems"]
    ]
    render.table(("ID", "STATUS", "INCIDENTS", "OPENED", "TITLE"), rows, "problems")
    render.more(len(rows), "problems", page["next"])
    return 0


def _by(what: str | None, who: str | None) -> str | None:
    """`what (by who)`: who did it, when the daemon recorded someone."""
    return f"{what} (by {who})" if what and who else what


def _problem_show(args: argparse.Namespace) -> int:
    problem = request(args, "GET", api_path("/api/v1/problems/{}", args.id))
    if args.json:
        print_json(problem)
        return 0
    now = args.now
    print(f"{problem['id']}  {problem['status']}  {problem['title']}")
    for name, value in (
        ("workaround", _by(problem["workaround"], problem["workaround_by"])),
        ("root cause", _by(problem["root_cause"], problem["root_cause_by"])),
        ("opened", render.when(problem["opened_at"], now)),
        ("resolved", _by(render.when(problem["resolved_at"], now), problem["resolved_by"])),
        ("incidents", problem["incident_count"]),
        ("rule", problem["rule"]),
        ("key", problem["key"]),
    ):
        print(f"  {name:11} {value if value is not None else '-'}")
    print("\nincidents:")
    rows = [
        (i["id"], i["status"], render.when(i["opened_at"], now), i["title"])
        for i in problem["incidents"]
    ]
    render.table(("ID", "STATUS", "OPENED", "TITLE"), rows, "incidents")
    return 0


def _problem_action(args: argparse.Namespace) -> int:
    _, api_action, field, _ = PROBLEM_ACTIONS[args.action]
    body = {"actor": actor(args)}
    if field is not None:
        body[field] = args.text
    where = api_path("/api/v1/problems/{}/", args.id) + api_action
    problem = request(args, "POST", where, body)
    if args.json:
        print_json(problem)
    else:
        print(f"{problem['id']}: {problem['status']}")
    return 0
