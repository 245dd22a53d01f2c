"""`itsmd report review` and `itsmd report incident`: the reports the daemon renders
(docs/reports.md), printed as it answers them, or written to `--output`."""

# ruff: noqa: T201 - a command prints

from __future__ import annotations

import argparse
import json
import urllib.parse
from pathlib import Path
from typing import Any

from itsmd.cli.client import ClientError, api_path, common, fetch_text

FORMATS = ("md", "html", "json")


def add_commands(sub: Any) -> None:
    report = sub.add_parser("report", help="service review and post-incident review")
    kinds = report.add_subparsers(metavar="KIND")

    review = kinds.add_parser(
        "review", help="the service review of a period, beside the previous period"
    )
    common(review)
    review.add_argument("--from", dest="start", required=True, help="first day (2026-11-01)")
    review.add_argument("--to", dest="end", required=True, help="the day after the last")
    review.add_argument("--service", help="one service only")
    review.add_argument("--tz", default="UTC", help="time zone of the days (default UTC)")
    _output(review)
    review.set_defaults(func=_review)

    incident = kinds.add_parser("incident", help="the post-incident review of one incident")
    common(incident)
    incident.add_argument("id", metavar="INC-42", help="the incident")
    _output(incident)
    incident.set_defaults(func=_incident)


def _output(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=FORMATS, default="md", help="default md (Markdown)")
    p.add_argument("--output", "-o", type=Path, metavar="FILE", help="write it here, not stdout")


def _review(args: argparse.Namespace) -> int:
    query = {"from": args.start, "to": args.end, "tz": args.tz, "format": _format(args)}
    if args.service:
        query["service"] = args.service
    return _emit(args, "/api/v1/reports/review?" + urllib.parse.urlencode(query))


def _incident(args: argparse.Namespace) -> int:
    where = api_path("/api/v1/reports/incidents/{}", args.id)
    return _emit(args, f"{where}?format={_format(args)}")


def _format(args: argparse.Namespace) -> str:
    return "json" if args.json else str(args.format)


def _emit(args: argparse.Namespace, where: str) -> int:
    text = fetch_text(args, where)
    if _format(args) == "json":
        text = json.dumps(json.loads(text), indent=2) + "\n"
    if args.output is None:
        print(text, end="")
        return 0
    try:
        args.output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ClientError(f"cannot write {args.output}: {exc.strerror}") from None
    return 0
