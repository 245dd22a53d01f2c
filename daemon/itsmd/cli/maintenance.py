"""`itsmd maintenance add|list|end|delete`: change windows from the terminal, as
`amtool silence add|query|expire` does silences."""

# ruff: noqa: T201 - a command prints

from __future__ import annotations

import argparse
import secrets
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from itsmd.cli import render
from itsmd.cli.client import ClientError, actor, add_actor, api_path, common, print_json, request
from itsmd.cli.selectors import selector
from itsmd.durations import format_time, parse_duration


def add_commands(sub: Any) -> None:
    maintenance = sub.add_parser("maintenance", help="maintenance windows: add, list, end")
    actions = maintenance.add_subparsers(metavar="ACTION")

    add = actions.add_parser(
        "add",
        help="add a window for the alerts matching all the matchers (as amtool silence add)",
        description="Alerts matching every MATCHER are suppressed (or annotated) while the "
        "window is on. Examples: itsmd maintenance add --for 2h --comment 'pg upgrade' "
        "service=db; itsmd maintenance add --start 2026-12-01T02:00 --until "
        "2026-12-01T04:00 --comment reboot '{instance=~\"db-.*\"}'",
    )
    common(add)
    add_actor(add)
    add.add_argument(
        "matchers",
        nargs="+",
        metavar="MATCHER",
        help='service=db, \'service="db"\', \'{service="db", env!="dev"}\' or an alert '
        "name; all must hold",
    )
    span = add.add_mutually_exclusive_group(required=True)
    span.add_argument("--for", dest="duration", metavar="DURATION", help="how long: 2h, 30m")
    span.add_argument("--until", metavar="TIME", help="when it ends (see --start for the form)")
    add.add_argument(
        "--start",
        metavar="TIME",
        help="when it begins (default now): RFC 3339, or 2026-12-01T02:00 in local time",
    )
    add.add_argument(
        "--comment", required=True, metavar="TEXT", help="why: the change, what is done"
    )
    add.add_argument("--name", help="the window's name (default: generated and printed)")
    add.add_argument("--change", metavar="ID", help="the change ticket, e.g. CHG-42")
    add.add_argument(
        "--action",
        choices=("suppress", "annotate"),
        default="suppress",
        help="suppress: open no incidents (default); annotate: open them, marked",
    )
    add.set_defaults(func=_add)

    ls = actions.add_parser("list", help="windows on now and to come (--all: ended ones too)")
    common(ls)
    ls.add_argument("--all", action="store_true", help="ended windows too")
    ls.set_defaults(func=_list)

    end = actions.add_parser(
        "end", help="end a window now; it stays listed as ended (as amtool silence expire)"
    )
    common(end)
    add_actor(end)
    end.add_argument("name")
    end.set_defaults(func=_end)

    delete = actions.add_parser("delete", help="delete a window created through the API")
    common(delete)
    delete.add_argument("name")
    delete.set_defaults(func=_delete)


def parse_when(text: str, option: str) -> datetime:
    """An RFC 3339 time, or one without an offset, read in the local time zone."""
    try:
        at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ClientError(
            f"{option}: expected a time such as 2026-12-01T02:00:00Z or 2026-12-01T02:00 "
            f"(local), got {text!r}"
        ) from None
    return at.astimezone(UTC) if at.tzinfo else at.astimezone().astimezone(UTC)


def _add(args: argparse.Namespace) -> int:
    now: datetime = args.now
    start = parse_when(args.start, "--start") if args.start else now
    if args.duration is not None:
        try:
            length = parse_duration(args.duration)
        except ValueError as exc:
            raise ClientError(f"--for: {exc}") from None
        end = start + length
    else:
        end = parse_when(args.until, "--until")
    if end <= now:
        raise ClientError(f"the window would be over already: it ends at {format_time(end)}")
    if end <= start:
        raise ClientError(f"the window would end ({format_time(end)}) before it starts")
    if not args.comment.strip():
        raise ClientError("--comment: say why (the change, what is done)")
    name = args.name or f"mw-{start:%Y%m%d-%H%M}-{secrets.token_hex(2)}"
    body: dict[str, Any] = {
        "name": name,
        "match": selector(args.matchers),
        # Without --start the daemon starts it by its own clock: a client clock a few
        # seconds ahead would otherwise leave the window "scheduled" for those seconds.
        **({"start": format_time(start)} if args.start else {}),
        "end": format_time(end),
        "action": args.action,
        "comment": args.comment,
        "actor": actor(args),
    }
    if args.change:
        body["change"] = args.change
    window = request(args, "POST", "/api/v1/maintenance", body)
    if args.json:
        print_json(window)
        return 0
    print(window["name"])  # alone on stdout, as amtool prints a silence's id
    print(
        f"{window['action']} {', '.join(window['match'])} from "
        f"{render.when(window['start'], now)} until {render.when(window['end'], now)}",
        file=sys.stderr,
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    page = request(args, "GET", "/api/v1/maintenance")
    windows = [w for w in page["maintenance"] if args.all or w.get("state") != "ended"]
    if args.json:
        print_json({**page, "maintenance": windows})
        return 0
    rows = [
        (
            w["name"],
            w.get("state") or ("active" if w["active"] else "-"),
            w["action"],
            " or ".join(w["match"]),
            _when(w, args.now),
            w["change"] or "-",
            w["source"] if w["source"] != "api" else f"api, by {w.get('created_by') or '?'}",
            w.get("comment") or "",
        )
        for w in windows
    ]
    header = ("NAME", "STATE", "ACTION", "MATCH", "WHEN", "CHANGE", "SOURCE", "COMMENT")
    render.table(header, rows, "maintenance windows" if args.all else _none_now(page))
    return 0


def _none_now(page: Mapping[str, Any]) -> str:
    ended = sum(w.get("state") == "ended" for w in page["maintenance"])
    return "maintenance windows on or to come" + (f" ({ended} ended: --all)" if ended else "")


def _when(w: Mapping[str, Any], now: datetime) -> str:
    if w["every"]:
        text = f"cron '{w['every']}' for {w['duration']} ({w['timezone']})"
        if w["active_until"]:
            text += f", on until {render.local_text(w['active_until'], now)}"
        if w["end"]:
            text += f", ended {render.local_text(w['end'], now)}"
        return text
    return f"{render.when(w['start'], now)} .. {render.when(w['end'], now)}"


def _end(args: argparse.Namespace) -> int:
    where = api_path("/api/v1/maintenance/{}/end", args.name)
    window = request(args, "POST", where, {"actor": actor(args)})
    if args.json:
        print_json(window)
        return 0
    print(f"maintenance window {window['name']} ended {render.when(window['end'], args.now)}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    request(args, "DELETE", api_path("/api/v1/maintenance/{}", args.name))
    print(f"maintenance window {args.name} deleted")
    return 0
