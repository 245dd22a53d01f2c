"""The reports as Markdown (pure): what a team pastes into its service review page
or an incident commander into the post-incident document."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from itsmd.reports.format import (
    change,
    duration,
    moment,
    number,
    percent,
    period_title,
    seconds,
)

PRIORITIES = ("P1", "P2", "P3", "P4", "P5")


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    if not rows:
        return ["_None._", ""]
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return [*out, ""]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _fig(f: Mapping[str, Any], show: Any = number) -> str:
    return f"{show(f['value'])} ({change(f, show)})"


def review(doc: Mapping[str, Any]) -> str:
    p, before = doc["period"], doc["previous_period"]
    lines = [f"# Service review: {period_title(p)}", ""]
    if doc["service"]:
        lines += [f"Service **{doc['service']}**.", ""]
    lines += [
        f"Period `{p['from']}` to `{p['to']}` (half-open, time zone {p['tz']}, "
        f"{number(p['days'])} days); compared with `{before['from']}` to `{before['to']}`. "
        "Each figure is followed by its change from the previous period. Medians are the "
        "middle value, p90 the nearest-rank percentile.",
        "",
        "## Summary",
        "",
    ]
    t = doc["totals"]
    lines += _table(
        ["figure", "this period", "previous", "change"],
        [
            _row("Incidents", t["incidents"]),
            _row("Alerts", t["alerts"]),
            _row("Alerts per incident", t["alerts_per_incident"], lambda v: number(v, 2)),
            _row("MTTA median", t["mtta_s"]["median"], seconds),
            _row("MTTA p90", t["mtta_s"]["p90"], seconds),
            _row("MTTR median", t["mttr_s"]["median"], seconds),
            _row("MTTR p90", t["mttr_s"]["p90"], seconds),
        ],
    )
    lines += ["## Suggested actions", ""]
    lines += [f"- {s['text']}" for s in doc["suggestions"]] or ["_None: nothing stands out._"]
    lines.append("")
    for svc in doc["services"]:
        lines += _service(svc)
    lines += ["## Rules", ""]
    lines += _table(
        ["rule", "alerts", "incidents", "alerts per incident", "auto-resolved", "reopened"],
        [
            [
                f"`{r['rule']}`" + ("" if r["in_rules"] else " (no longer in the rules)"),
                _fig(r["alerts"]),
                _fig(r["incidents"]),
                _fig(r["alerts_per_incident"], lambda v: number(v, 2)),
                _fig(r["auto_resolved"], percent),
                _fig(r["reopened"], percent),
            ]
            for r in doc["rules"]
        ],
    )
    if doc["unmatched_rules"]:
        names = ", ".join(f"`{n}`" for n in doc["unmatched_rules"])
        lines += [f"Rules that matched no alert: {names}.", ""]
    lines += ["## Noisiest alertnames", ""]
    lines += _table(
        ["alertname", "alerts", "share of all alerts"],
        [
            [f"`{n['alertname'] or '(none)'}`", _fig(n["alerts"]), percent(n["share"])]
            for n in doc["noisy_alertnames"]
        ],
    )
    lines += ["## Weeks", ""]
    lines += _table(
        ["week", "from", "incidents", *PRIORITIES, "MTTA median", "MTTR median"],
        [
            [
                w["week"],
                w["from"],
                str(w["incidents"]),
                *(str(w["by_priority"][p]) for p in PRIORITIES),
                seconds(w["mtta_median_s"]),
                seconds(w["mttr_median_s"]),
            ]
            for w in doc["weeks"]
        ],
    )
    return "\n".join(lines).rstrip() + "\n"


def _row(name: str, f: Mapping[str, Any], show: Any = number) -> list[str]:
    return [name, show(f["value"]), show(f["previous"]), change(f, show)]


def _service(svc: Mapping[str, Any]) -> list[str]:
    name = svc["service"] or "(no service)"
    lines = [f"## Service {name}", ""]
    rows = [_row("Incidents", svc["incidents"])]
    rows += [
        _row(f"{p} incidents", f)
        for p, f in svc["by_priority"].items()
        if f["value"] or f["previous"]
    ]
    rows += [
        _row("MTTA median", svc["mtta_s"]["median"], seconds),
        _row("MTTA p90", svc["mtta_s"]["p90"], seconds),
        _row("MTTR median", svc["mttr_s"]["median"], seconds),
        _row("MTTR p90", svc["mttr_s"]["p90"], seconds),
    ]
    a = svc["availability"]
    if a["ratio"]["value"] is not None or a["ratio"]["previous"] is not None:
        rows += [
            _row("Availability", a["ratio"], lambda v: percent(v, 3)),
            _row("Error budget used", a["error_budget_used"], percent),
            _row("Share of the period measured", a["coverage"], percent),
            _row("Downtime", a["downtime_s"], seconds),
        ]
    lines += _table(["figure", "this period", "previous", "change"], rows)
    if svc["slo"] is not None:
        verdict = {True: "met", False: "**not met**", None: "not measured"}[a["meets_slo"]]
        lines += [f"Objective {svc['slo']:g} %: {verdict}.", ""]
    if svc["sla"]:
        lines += [
            "SLA targets (respond: met / breached / pending / not needed; "
            "resolve: met / breached / pending):",
            "",
        ]
        lines += _table(
            ["priority", "respond", "resolve"],
            [
                [
                    p,
                    " / ".join(_fig(f) for f in s["respond"].values()),
                    " / ".join(_fig(f) for f in s["resolve"].values()),
                ]
                for p, s in svc["sla"].items()
            ],
        )
    if svc["problems"]:
        lines += ["Recurring problems:", ""]
        lines += [
            f"- {p['id']} {p['title']}: {p['incidents']} incident(s), "
            f"{p['status'].replace('_', ' ')}"
            for p in svc["problems"]
        ]
        lines.append("")
    if svc["capacity"]:
        lines += ["Capacity risks (as of now):", ""]
        lines += [
            f"- `{c.get('check')}` {_labels(c.get('labels') or {})} reaches its threshold "
            f"at {moment(c.get('exhausts_at'))}"
            for c in svc["capacity"]
        ]
        lines.append("")
    return lines


def _labels(labels: Mapping[str, Any]) -> str:
    if not labels:
        return ""
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def incident(doc: Mapping[str, Any]) -> str:
    inc = doc["incident"]
    impact = doc["impact"]
    lines = [f"# Post-incident review: {inc['id']} {inc['title']}", ""]
    facts = [
        ("Priority", inc["priority"]),
        ("Status", inc["status"]),
        ("Service", inc["service"] or "–"),
        ("Services touched", ", ".join(doc["services"]) or "–"),
        ("Rule", f"`{inc['rule']}`"),
        ("Opened", moment(inc["opened_at"])),
        ("Resolved", moment(inc["resolved_at"], "not yet")),
        (
            "Impact window",
            f"{moment(impact['from'])} to {moment(impact['to'], 'ongoing')}"
            + (f" ({duration(impact['duration_s'])})" if impact["duration_s"] is not None else ""),
        ),
        ("Alerts", str(inc["alert_count"])),
    ]
    lines += [f"- **{k}**: {v}" for k, v in facts]
    lines.append("")
    if doc["parent"]:
        par = doc["parent"]
        lines += [f"A symptom of {par['id']} {par['title']}.", ""]
    if doc["symptoms"]:
        lines += ["## Symptoms", ""]
        lines += [
            f"- {s['id']} {s['title']} ({s['service'] or 'no service'}, {s['status']})"
            for s in doc["symptoms"]
        ]
        lines.append("")
    lines += ["## SLA", ""]
    sla = doc["sla"]
    for kind in ("respond", "resolve"):
        s = sla[kind]
        verdict = (s["verdict"] or "no target").replace("_", " ")
        lines.append(f"- **{kind}**: {verdict} (due {moment(s['due'])}, done {moment(s['at'])})")
    lines.append("")
    lines += ["## Problem and known error", ""]
    problem = doc["problem"]
    if problem:
        lines.append(f"- Problem {problem['id']} {problem['title']} ({problem['status']})")
        if problem["root_cause"]:
            lines.append(f"- Root cause recorded: {problem['root_cause']}")
    lines.append(f"- Known error: {doc['known_error'] or 'none matched'}")
    lines.append("")
    lines += ["## Alerts", ""]
    if doc["common_labels"]:
        lines += [f"Common labels: `{_labels(doc['common_labels'])}`", ""]
    lines += _table(
        ["started", "ended", "alertname", "labels that differ", "decision"],
        [
            [
                moment(a["startsAt"]),
                moment(a["endsAt"], "firing"),
                f"`{a['alertname'] or ''}`",
                f"`{_labels(a['labels'])}`" if a["labels"] else "",
                a["action"],
            ]
            for a in doc["alerts"]
        ],
    )
    lines += ["## Timeline", ""]
    lines += _table(
        ["at", "who", "what"],
        [
            [moment(e["at"]), e["actor"] if e["by_person"] else "itsmd", e["message"]]
            for e in doc["timeline"]
        ],
    )
    for title in ("Root cause", "What went well", "What did not go well"):
        lines += [f"## {title}", "", "_To be written._", ""]
    lines += ["## Follow-up actions", "", "- [ ] _To be written._", ""]
    return "\n".join(lines).rstrip() + "\n"
