"""The outbox as on-call and admins see it: pending, sent and dead notifications."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy import Connection

from itsmd.api.errors import BadRequest
from itsmd.api.keys import OUTBOX, RUNTIME
from itsmd.api.params import (
    MAX_ID,
    acting,
    decode_cursor,
    encode_cursor,
    json_object,
    page_limit,
    store_of,
    writer_of,
)
from itsmd.correlation.lifecycle import Conflict
from itsmd.runtime.actions import NotFound
from itsmd.store import outbox


async def list_notifications(request: web.Request) -> web.Response:
    """`?state=pending|sent|dead|cancelled|muted`, newest first, cursor paging."""
    state = request.query.get("state")
    if state is not None and state not in outbox.STATES:
        raise BadRequest(f"state: expected one of {', '.join(outbox.STATES)}, got {state!r}")
    limit = page_limit(request.query.get("limit"))
    before = decode_cursor(request.query.get("cursor"))
    store = store_of(request.app[RUNTIME])
    found = await store.read(lambda conn: outbox.list_notifications(conn, state, before, limit + 1))
    page = found[:limit]
    return web.json_response(
        {
            "notifications": page,
            "next": encode_cursor(page[-1]["id"]) if len(found) > limit else None,
        }
    )


async def retry_notification(request: web.Request) -> web.Response:
    """Send a dead letter again (admin): it becomes pending with a fresh attempt count."""
    text = request.match_info["id"]
    if not (text.isascii() and text.isdigit()) or len(text) > 10 or int(text) > MAX_ID:
        raise NotFound(f"no notification {text}")
    notification_id = int(text)
    actor = acting(request, await json_object(request))

    def work(conn: Connection, now: datetime) -> dict[str, Any]:
        done = outbox.retry_dead(conn, notification_id, now, actor)
        if done is not None:
            return done
        if not outbox.exists(conn, notification_id):
            raise NotFound(f"no notification {notification_id}")
        raise Conflict(f"notification {notification_id} is not dead; only dead letters retry")

    body = await writer_of(request.app[RUNTIME]).run(work)
    request.app[OUTBOX].wake()
    return web.json_response(body)
