"""The floor of any durable receiver: a bare aiohttp server that stores each alert of a
webhook with one SQLite upsert and commits once per request, then answers 200.

    python bench/floor.py --port 9999 --db /tmp/floor.db

`bench/run.py` runs it under the same load as itsmd, in the same run (scenarios
`floor-*`), and reports itsmd's throughput as a share of it. Nothing here checks
input, correlates, keeps a timeline or serves reads: it is what storing an alert
durably costs on this machine, with the same server library, the same JSON parser
and the same database settings as itsmd's defaults (WAL, synchronous=NORMAL).
"""

from __future__ import annotations

import argparse
import sqlite3

import orjson
from aiohttp import web

SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    status TEXT NOT NULL,
    ends_at TEXT,
    labels TEXT NOT NULL,
    annotations TEXT NOT NULL,
    generator_url TEXT NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 1,
    UNIQUE (fingerprint, starts_at)
)
"""
UPSERT = """
INSERT INTO alerts (fingerprint, starts_at, status, ends_at, labels, annotations, generator_url)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (fingerprint, starts_at) DO UPDATE SET
    status = excluded.status, ends_at = excluded.ends_at,
    annotations = excluded.annotations, receive_count = receive_count + 1
"""


def app(db: str) -> web.Application:
    conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(SCHEMA)

    async def webhook(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        conn.execute("BEGIN IMMEDIATE")
        for a in body["alerts"]:
            conn.execute(
                UPSERT,
                (
                    a["fingerprint"],
                    a["startsAt"],
                    a["status"],
                    a.get("endsAt"),
                    orjson.dumps(a["labels"]).decode(),
                    orjson.dumps(a.get("annotations", {})).decode(),
                    a.get("generatorURL", ""),
                ),
            )
        conn.execute("COMMIT")
        return web.json_response({"stored": len(body["alerts"])})

    async def ready(_: web.Request) -> web.Response:
        return web.Response(text="ready")

    application = web.Application(client_max_size=64 * 1024 * 1024)
    application.router.add_post("/api/v1/webhooks/alertmanager", webhook)
    application.router.add_get("/-/ready", ready)
    return application


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", required=True)
    args = parser.parse_args()
    web.run_app(app(args.db), host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
