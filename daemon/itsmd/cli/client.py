"""`itsmd incidents ...`: a small client of the JSON API for on-call engineers.

The bearer token comes from `--token-file PATH`, `ITSMD_TOKEN`, `ITSMD_TOKEN_FILE` or
`--token`; the last is visible to every local user (`ps`, /proc), so it draws a warning.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DEFAULT_URL = "http://127.0.0.1:9877"


class ClientError(Exception):
    """The API could not be reached or refused the request."""


def add_commands(sub: Any) -> None:
    incidents = sub.add_parser("incidents", help="read and work incidents through the API")
    actions = incidents.add_subparsers(metavar="ACTION")

    ls = actions.add_parser("list", help="list incidents, newest first")
    _common(ls)
    ls.add_argument("--status", help="open,acknowledged,resolved (comma-separated)")
    ls.add_argument("--priority", help="P1..P5 (comma-separated)")
    ls.add_argument("--service")
    ls.add_argument("-q", "--query", help="text in title or key")
    ls.add_argument("--since", help="RFC 3339 time or duration (24h)")
    ls.add_argument("--limit", type=int, default=50)
    ls.set_defaults(func=_list)

    show = actions.add_parser("show", help="one incident with its alerts and timeline")
    _common(show)
    show.add_argument("id", help="INC-42 or 42")
    show.set_defaults(func=_show)

    for name, helptext in (("ack", "acknowledge"), ("resolve", "resolve"), ("reopen", "reopen")):
        p = actions.add_parser(name, help=helptext)
        _common(p)
        p.add_argument("id")
        p.add_argument("--note", default="", help="a note for the timeline")
        p.set_defaults(func=_action, action=name)

    assign = actions.add_parser("assign", help="assign to someone")
    _common(assign)
    assign.add_argument("id")
    assign.add_argument("assignee")
    assign.add_argument("--note", default="", help="a note for the timeline")
    assign.set_defaults(func=_action, action="assign")

    comment = actions.add_parser("comment", help="add a comment to the timeline")
    _common(comment)
    comment.add_argument("id")
    comment.add_argument("text")
    comment.set_defaults(func=_action, action="comment")


def add_problem_commands(sub: Any) -> None:
    problems = sub.add_parser("problems", help="read problems through the API")
    actions = problems.add_subparsers(metavar="ACTION")
    ls = actions.add_parser("list", help="list problems, newest first")
    _common(ls)
    ls.add_argument("--limit", type=int, default=50)
    ls.set_defaults(func=_problems_list)
    show = actions.add_parser("show", help="one problem with its incidents")
    _common(show)
    show.add_argument("id", help="PRB-7 or 7")
    show.set_defaults(func=_problem_show)


def _problems_list(args: argparse.Namespace) -> int:
    page = request(args, "GET", f"/api/v1/problems?limit={args.limit}")
    if args.json:
        print(json.dumps(page, indent=2))
        return 0
    rows = [
        (p["id"], p["status"], str(p["incident_count"]), p["opened_at"], p["title"])
        for p in page["problems"]
    ]
    _table(("ID", "STATUS", "INCIDENTS", "OPENED", "TITLE"), rows, "problems")
    return 0


def _problem_show(args: argparse.Namespace) -> int:
    problem = request(args, "GET", f"/api/v1/problems/{urllib.parse.quote(args.id)}")
    if args.json:
        print(json.dumps(problem, indent=2))
        return 0
    print(f"{problem['id']}  {problem['status']}  {problem['title']}")
    for field in (
        "rule",
        "key",
        "opened_at",
        "resolved_at",
        "root_cause",
        "workaround",
        "incident_count",
    ):
        print(f"  {field:16} {problem[field] if problem[field] is not None else '-'}")
    print("\nincidents:")
    for inc in problem["incidents"]:
        print(f"  {inc['id']:10} {inc['status']:13} {inc['opened_at']}  {inc['title']}")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--url",
        default=os.environ.get("ITSMD_URL", DEFAULT_URL),
        help=f"itsmd base URL (env ITSMD_URL, default {DEFAULT_URL})",
    )
    token = p.add_mutually_exclusive_group()
    token.add_argument(
        "--token-file",
        metavar="PATH",
        help="read the bearer token from this file (env ITSMD_TOKEN_FILE)",
    )
    token.add_argument(
        "--token",
        help="bearer token; visible to other local users in ps: prefer --token-file "
        "or env ITSMD_TOKEN",
    )
    p.add_argument("--json", action="store_true", help="print the API's JSON")


def bearer_token(args: argparse.Namespace) -> str | None:
    """The token to send: `--token`, `--token-file`, else env `ITSMD_TOKEN` or
    `ITSMD_TOKEN_FILE` (not both); None without any. `--token` warns on stderr."""
    if args.token is not None:
        print(
            "itsmd: warning: --token is visible to other local users (ps, /proc); "
            "use --token-file PATH or env ITSMD_TOKEN instead",
            file=sys.stderr,
        )
        return _checked(args.token, "--token")
    if args.token_file is not None:
        return _token_file(args.token_file, "--token-file")
    value, file = os.environ.get("ITSMD_TOKEN"), os.environ.get("ITSMD_TOKEN_FILE")
    if value and file:
        raise ClientError("both ITSMD_TOKEN and ITSMD_TOKEN_FILE are set: unset one")
    if file:
        return _token_file(file, "ITSMD_TOKEN_FILE")
    return _checked(value, "ITSMD_TOKEN") if value else None


def _token_file(path: str, source: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ClientError(f"cannot read the token file {path} ({source}): {reason}") from None
    return _checked(text.strip(), f"the token file {path} ({source})")


def _checked(token: str, source: str) -> str:
    if not token:
        raise ClientError(f"{source} is empty")
    if any(c.isspace() or not c.isprintable() for c in token):
        raise ClientError(f"{source}: a token has no spaces or control characters")
    return token


def request(args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(args.url.rstrip("/") + path, data=data, method=method)  # noqa: S310
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    token = bearer_token(args)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - operator-given URL
            return json.load(resp)
    except urllib.error.HTTPError as exc:
        try:
            message = json.load(exc).get("error", exc.reason)
        except (ValueError, AttributeError):
            message = exc.reason
        raise ClientError(f"{method} {path}: {exc.code} {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ClientError(f"cannot reach itsmd at {args.url}: {reason}") from None


def _list(args: argparse.Namespace) -> int:
    params = {
        k: v
        for k, v in (
            ("status", args.status),
            ("priority", args.priority),
            ("service", args.service),
            ("q", args.query),
            ("since", args.since),
            ("limit", str(args.limit)),
        )
        if v
    }
    page = request(args, "GET", "/api/v1/incidents?" + urllib.parse.urlencode(params))
    if args.json:
        print(json.dumps(page, indent=2))
        return 0
    rows = [
        (
            i["id"],
            i["status"],
            i["priority"],
            i["service"] or "-",
            str(i["firing_count"]),
            i["opened_at"],
            i["title"],
        )
        for i in page["incidents"]
    ]
    _table(("ID", "STATUS", "PRIO", "SERVICE", "FIRING", "OPENED", "TITLE"), rows)
    return 0


def _show(args: argparse.Namespace) -> int:
    inc = request(args, "GET", f"/api/v1/incidents/{urllib.parse.quote(args.id)}")
    if args.json:
        print(json.dumps(inc, indent=2))
        return 0
    print(f"{inc['id']}  {inc['status']}  {inc['priority']}  {inc['title']}")
    for field in (
        "service",
        "rule",
        "key",
        "assignee",
        "opened_at",
        "acknowledged_at",
        "resolved_at",
        "alert_count",
        "firing_count",
    ):
        print(f"  {field:16} {inc[field] if inc[field] is not None else '-'}")
    if inc["description"]:
        print(f"\n  {inc['description']}")
    print("\nalerts:")
    for alert in inc["alerts"]:
        d = alert["decision"]
        print(
            f"  {alert['status']:8} {alert['labels'].get('alertname', '?')} "
            f"{alert['fingerprint']}  {d['action']}: {d['reason']}"
        )
    print("\ntimeline:")
    for entry in inc["timeline"]:
        print(f"  {entry['at']}  {entry['kind']:16} {entry['message']}  ({entry['actor']})")
    return 0


def _action(args: argparse.Namespace) -> int:
    body: dict[str, str] = {}
    if args.action == "assign":
        body["assignee"] = args.assignee
    if args.action == "comment":
        body["text"] = args.text
    elif args.note:
        body["note"] = args.note
    path = f"/api/v1/incidents/{urllib.parse.quote(args.id)}/{args.action}"
    inc = request(args, "POST", path, body)
    if args.json:
        print(json.dumps(inc, indent=2))
    else:
        print(
            f"{inc['id']}: {inc['status']}"
            + (f", assigned to {inc['assignee']}" if inc.get("assignee") else "")
        )
    return 0


def _table(
    header: tuple[str, ...], rows: Sequence[tuple[str, ...]], what: str = "incidents"
) -> None:
    if not rows:
        print(f"no {what}", file=sys.stderr)
        return
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        print(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
        )
