"""Server-sent events fed from the ``events`` table: polled in id order, resumable by Last-Event-ID.

Polling the append-only table works the same on SQLite and PostgreSQL and across processes (the lab
may run in another process than the console). Each stream ends after ``stream_max_s`` (the browser's
EventSource reconnects on its own with Last-Event-ID) and as soon as its session is revoked.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from labos.web import accounts, queries
from labos.web.accounts import Principal
from labos.web.deps import ConsoleState

KEEPALIVE_S = 15.0
SESSION_RECHECK_S = 30.0
BATCH = 200


def format_event(event_id: int, payload: str, event: str | None = None) -> str:
    lines = [f"id: {event_id}"]
    if event:
        lines.append(f"event: {event}")
    lines.extend(f"data: {line}" for line in payload.splitlines() or [""])
    return "\n".join(lines) + "\n\n"


def _fetch(st: ConsoleState, after: int, kind: str | None) -> list[str]:
    with st.factory() as session:
        return [
            e.model_dump_json() for e in queries.list_events(session, after=after, kind=kind, limit=BATCH)
        ]


def _alive(st: ConsoleState, session_id: int) -> bool:
    with st.factory() as session:
        alive = accounts.session_alive(session, session_id)
        session.rollback()
        return alive


def _latest(st: ConsoleState) -> int:
    with st.factory() as session:
        return queries.latest_event_id(session)


async def event_stream(
    request: Request, st: ConsoleState, principal: Principal, after: int | None, kind: str | None
) -> AsyncIterator[str]:
    last = after if after is not None else await run_in_threadpool(_latest, st)
    started = checked = time.monotonic()
    sent_at = started
    yield f"retry: 2000\n: stream from event {last}\n\n"
    while True:
        if await request.is_disconnected():
            return
        now = time.monotonic()
        if now - started > st.stream_max_s:
            return  # the client reconnects with Last-Event-ID
        if now - checked > SESSION_RECHECK_S:
            checked = now
            if not await run_in_threadpool(_alive, st, principal.session_id):
                yield format_event(last, json.dumps({"reason": "session ended"}), event="auth")
                return
        rows = await run_in_threadpool(_fetch, st, last, kind)
        for payload in rows:
            last = json.loads(payload)["id"]
            yield format_event(last, payload)
            sent_at = time.monotonic()
        if len(rows) == BATCH:
            continue
        if time.monotonic() - sent_at > KEEPALIVE_S:
            sent_at = time.monotonic()
            yield ": keep-alive\n\n"
        await asyncio.sleep(st.event_poll_s)
