"""The reports as HTML (pure): a fragment the console's /reports page embeds, and a
standalone page (`?format=html`, `itsmd report ... --format html`) around the same
fragment. The Markdown carries the text; this adds the charts (SVG drawn here)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from markupsafe import Markup, escape

from itsmd.reports import charts
from itsmd.reports.format import change, moment, number, percent, period_title, seconds

_STYLE = (
    "body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1000px;"
    "color:#24292f;padding:0 1rem}table{border-collapse:collapse;margin:.5rem 0 1rem}"
    "th,td{border:1px solid #d0d7de;padding:.25rem .5rem;text-align:left;vertical-align:top}"
    "th{background:#f6f8fa}td.n{text-align:right;font-variant-numeric:tabular-nums}"
    "svg.chart{max-width:100%;height:auto;display:block;margin:.5rem 0}"
    "code{background:#f6f8fa;padding:0 .2rem}"
)


def _page(title: str, body: Markup) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def _cell(f: Mapping[str, Any], show: Any = number) -> Markup:
    cells = (show(f["value"]), show(f["previous"]), change(f, show))
    return Markup("".join(f'<td class="n">{escape(c)}</td>' for c in cells))  # noqa: S704


def _rows(rows: list[tuple[str, Mapping[str, Any], Any]]) -> Markup:
    head = "<tr><th>figure</th><th>this period</th><th>previous</th><th>change</th></tr>"
    body = "".join(f'<tr><th scope="row">{escape(n)}</th>{_cell(f, s)}</tr>' for n, f, s in rows)
    return Markup(f'<table class="figures">{head}{body}</table>')  # noqa: S704


def _both(f: Mapping[str, Any], show: Any = number) -> str:
    return f"{show(f['value'])} ({change(f, show)})"


def _decimal(v: float | None) -> str:
    return number(v, 2)


def _ratio3(v: float | None) -> str:
    return percent(v, 3)


def review_fragment(doc: Mapping[str, Any]) -> Markup:
    p, before = doc["period"], doc["previous_period"]
    t = doc["totals"]
    parts = [
        f'<section class="report review"><h1>Service review: {escape(period_title(p))}</h1>',
        "<p>",
        f"Service <strong>{escape(doc['service'])}</strong>. " if doc["service"] else "",
        f"Period <code>{escape(p['from'])}</code> to <code>{escape(p['to'])}</code> (half-open, "
        f"time zone {escape(p['tz'])}, {escape(number(p['days']))} days), compared with "
        f"<code>{escape(before['from'])}</code> to <code>{escape(before['to'])}</code>. Medians "
        "are the middle value, p90 the nearest-rank percentile.</p>",
        "<h2>Summary</h2>",
        _rows(
            [
                ("Incidents", t["incidents"], number),
                ("Alerts", t["alerts"], number),
                ("Alerts per incident", t["alerts_per_incident"], _decimal),
                ("MTTA median", t["mtta_s"]["median"], seconds),
                ("MTTA p90", t["mtta_s"]["p90"], seconds),
                ("MTTR median", t["mttr_s"]["median"], seconds),
                ("MTTR p90", t["mttr_s"]["p90"], seconds),
            ]
        ),
        '<h2>Suggested actions</h2><ul class="suggestions">',
        *(
            f'<li data-kind="{escape(s["kind"])}">{escape(s["text"])}</li>'
            for s in doc["suggestions"]
        ),
        "</ul>" if doc["suggestions"] else "<li>None: nothing stands out.</li></ul>",
        "<h2>Incidents per week by priority</h2>",
        charts.incidents_per_week(doc["weeks"]),
        "<h2>MTTA and MTTR trend</h2>",
        charts.trend(doc["weeks"]),
    ]
    avail = charts.availability(doc["services"])
    if avail is not None:
        parts += ["<h2>Availability against the objective</h2>", avail]
    for svc in doc["services"]:
        parts.append(_service(svc))
    parts.append("<h2>Rules</h2>")
    ratio = charts.compression(doc["rules"])
    if ratio is not None:
        parts += ["<h3>Alerts per incident</h3>", ratio]
    parts.append(
        '<table class="rules"><tr><th>rule</th><th>alerts</th><th>incidents</th>'
        "<th>alerts per incident</th><th>auto-resolved</th><th>reopened</th></tr>"
    )
    for r in doc["rules"]:
        parts.append(
            f'<tr data-rule="{escape(r["rule"])}"><td><code>{escape(r["rule"])}</code></td>'
            f'<td class="n">{escape(_both(r["alerts"]))}</td>'
            f'<td class="n">{escape(_both(r["incidents"]))}</td>'
            f'<td class="n">{escape(_both(r["alerts_per_incident"], _decimal))}</td>'
            f'<td class="n">{escape(_both(r["auto_resolved"], percent))}</td>'
            f'<td class="n">{escape(_both(r["reopened"], percent))}</td></tr>'
        )
    parts.append("</table>")
    if doc["unmatched_rules"]:
        names = ", ".join(f"<code>{escape(n)}</code>" for n in doc["unmatched_rules"])
        parts.append(f"<p>Rules that matched no alert: {names}.</p>")
    parts.append(
        '<h2>Noisiest alertnames</h2><table class="noisy"><tr><th>alertname</th>'
        "<th>alerts</th><th>share</th></tr>"
    )
    for n in doc["noisy_alertnames"]:
        parts.append(
            f"<tr><td><code>{escape(n['alertname'] or '(none)')}</code></td>"
            f'<td class="n">{escape(_both(n["alerts"]))}</td>'
            f'<td class="n">{escape(percent(n["share"]))}</td></tr>'
        )
    parts.append("</table></section>")
    return Markup("".join(str(x) for x in parts))  # noqa: S704 - escaped above


def _service(svc: Mapping[str, Any]) -> Markup:
    name = svc["service"] or "(no service)"
    a = svc["availability"]
    rows: list[tuple[str, Mapping[str, Any], Any]] = [("Incidents", svc["incidents"], number)]
    rows += [
        (f"{p} incidents", f, number)
        for p, f in svc["by_priority"].items()
        if f["value"] or f["previous"]
    ]
    rows += [
        ("MTTA median", svc["mtta_s"]["median"], seconds),
        ("MTTA p90", svc["mtta_s"]["p90"], seconds),
        ("MTTR median", svc["mttr_s"]["median"], seconds),
        ("MTTR p90", svc["mttr_s"]["p90"], seconds),
    ]
    if a["ratio"]["value"] is not None or a["ratio"]["previous"] is not None:
        rows += [
            ("Availability", a["ratio"], _ratio3),
            ("Error budget used", a["error_budget_used"], percent),
            ("Share of the period measured", a["coverage"], percent),
            ("Downtime", a["downtime_s"], seconds),
        ]
    parts = [
        f'<section class="service" data-service="{escape(name)}"><h2>Service {escape(name)}</h2>',
        _rows(rows),
    ]
    if svc["slo"] is not None:
        verdict = {True: "met", False: "not met", None: "not measured"}[a["meets_slo"]]
        parts.append(f"<p>Objective {svc['slo']:g} %: <strong>{verdict}</strong>.</p>")
    if svc["sla"]:
        parts.append(
            '<table class="sla"><tr><th>priority</th><th>respond met</th><th>breached</th>'
            "<th>pending</th><th>not needed</th><th>resolve met</th><th>breached</th>"
            "<th>pending</th></tr>"
        )
        for p, s in svc["sla"].items():
            cells = [*s["respond"].values(), *s["resolve"].values()]
            parts.append(
                f"<tr><th>{escape(p)}</th>"
                + "".join(f'<td class="n">{escape(_both(f))}</td>' for f in cells)
                + "</tr>"
            )
        parts.append("</table>")
    if svc["problems"]:
        parts.append("<p>Recurring problems:</p><ul>")
        parts += [
            f"<li>{escape(p['id'])} {escape(p['title'])}: {p['incidents']} incident(s), "
            f"{escape(p['status'].replace('_', ' '))}</li>"
            for p in svc["problems"]
        ]
        parts.append("</ul>")
    if svc["capacity"]:
        parts.append("<p>Capacity risks (as of now):</p><ul>")
        parts += [
            f"<li><code>{escape(str(c.get('check')))}</code> reaches its threshold at "
            f"{escape(moment(c.get('exhausts_at')))}</li>"
            for c in svc["capacity"]
        ]
        parts.append("</ul>")
    parts.append("</section>")
    return Markup("".join(str(x) for x in parts))  # noqa: S704 - escaped above


def review_page(doc: Mapping[str, Any]) -> str:
    return _page(f"Service review {period_title(doc['period'])}", review_fragment(doc))


def incident_fragment(doc: Mapping[str, Any]) -> Markup:
    from itsmd.reports.markdown import _labels  # one spelling of label sets

    inc, impact, sla = doc["incident"], doc["impact"], doc["sla"]
    facts = [
        ("Priority", inc["priority"]),
        ("Status", inc["status"]),
        ("Service", inc["service"] or "–"),
        ("Services touched", ", ".join(doc["services"]) or "–"),
        ("Rule", inc["rule"]),
        ("Opened", moment(inc["opened_at"])),
        ("Resolved", moment(inc["resolved_at"], "not yet")),
        (
            "Impact window",
            f"{moment(impact['from'])} to {moment(impact['to'], 'ongoing')}"
            + (f" ({seconds(impact['duration_s'])})" if impact["duration_s"] is not None else ""),
        ),
        ("Alerts", str(inc["alert_count"])),
    ]
    parts = [
        f'<section class="report incident"><h1>Post-incident review: {escape(inc["id"])} '
        f"{escape(inc['title'])}</h1><dl>",
        *(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in facts),
        "</dl><h2>SLA</h2><ul>",
    ]
    for kind in ("respond", "resolve"):
        s = sla[kind]
        verdict = (s["verdict"] or "no target").replace("_", " ")
        parts.append(
            f"<li><strong>{kind}</strong>: {escape(verdict)} (due {escape(moment(s['due']))}, "
            f"done {escape(moment(s['at']))})</li>"
        )
    parts.append("</ul><h2>Problem and known error</h2><ul>")
    if doc["problem"]:
        pr = doc["problem"]
        parts.append(
            f"<li>Problem {escape(pr['id'])} {escape(pr['title'])} ({escape(pr['status'])})</li>"
        )
    parts.append(f"<li>Known error: {escape(doc['known_error'] or 'none matched')}</li></ul>")
    if doc["symptoms"]:
        parts.append("<h2>Symptoms</h2><ul>")
        parts += [f"<li>{escape(s['id'])} {escape(s['title'])}</li>" for s in doc["symptoms"]]
        parts.append("</ul>")
    parts.append("<h2>Alerts</h2>")
    if doc["common_labels"]:
        parts.append(f"<p>Common labels: <code>{escape(_labels(doc['common_labels']))}</code></p>")
    parts.append(
        '<table class="alerts"><tr><th>started</th><th>ended</th><th>alertname</th>'
        "<th>labels that differ</th><th>decision</th></tr>"
    )
    for al in doc["alerts"]:
        parts.append(
            f"<tr><td>{escape(moment(al['startsAt']))}</td>"
            f"<td>{escape(moment(al['endsAt'], 'firing'))}</td>"
            f"<td><code>{escape(al['alertname'] or '')}</code></td>"
            f"<td><code>{escape(_labels(al['labels']))}</code></td><td>{escape(al['action'])}</td></tr>"
        )
    parts.append(
        '</table><h2>Timeline</h2><table class="timeline">'
        "<tr><th>at</th><th>who</th><th>what</th></tr>"
    )
    for e in doc["timeline"]:
        parts.append(
            f"<tr><td>{escape(moment(e['at']))}</td><td>{escape(e['actor'])}</td>"
            f"<td>{escape(e['message'])}</td></tr>"
        )
    parts.append("</table>")
    for title in ("Root cause", "What went well", "What did not go well", "Follow-up actions"):
        parts.append(f"<h2>{title}</h2><p><em>To be written.</em></p>")
    parts.append("</section>")
    return Markup("".join(str(x) for x in parts))  # noqa: S704 - escaped above


def incident_page(doc: Mapping[str, Any]) -> str:
    inc = doc["incident"]
    return _page(f"Post-incident review {inc['id']}", incident_fragment(doc))
