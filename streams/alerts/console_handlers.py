"""The console's HTTP handlers: the page, incidents, lifecycle steps, exports and panels.

Each handler answers one route of ``console.make_app``. What blocks: store calls run in
threads (``asyncio.to_thread``); ``panels`` awaits the ``/metrics`` reads (bounded by the
reader's timeout). A bad request is answered 400 with a sentence saying what to send; a
missing incident 404; a step the incident cannot take 409. Nothing here raises to aiohttp
except ``HTTPBadRequest`` for a malformed incident id.
"""

from __future__ import annotations

import asyncio
import logging
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web
from consentinel.streams.events import codec
from consentinel.streams.events.clock import now_ms

from .console_access import ACCESS
from .console_evidence import evidence_csv, evidence_json, incident_view, looks_like_address
from .console_feed import FEED
from .console_metrics import MetricsReader
from .model import Incident, IncidentError, InvalidTransition, UnknownIncident
from .openapi import console_document
from .store import IncidentStore

log = logging.getLogger("consentinel.console")

STATIC = Path(__file__).parent / "static"
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")

STORE = web.AppKey("store", IncidentStore)
METRICS = web.AppKey("metrics", MetricsReader)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=codec.dumps(data), status=status, content_type="application/json")


def _problem(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


def _incident_id(request: web.Request) -> str:
    value = request.match_info["incident_id"]
    if not _ID.match(value):
        raise web.HTTPBadRequest(text="an incident id is letters, digits and -_.: only")
    return value


async def page(request: web.Request) -> web.Response:
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    html = html.replace("__CSRF__", request.app[ACCESS].csrf)
    return web.Response(text=html, content_type="text/html")


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    path = STATIC / name
    if "/" in name or name.startswith(".") or path.suffix not in types or not path.is_file():
        raise web.HTTPNotFound()
    return web.Response(body=path.read_bytes(), content_type=types[path.suffix])


async def list_incidents(request: web.Request) -> web.Response:
    store = request.app[STORE]
    status = request.query.get("status") or None
    try:
        limit = max(1, min(int(request.query.get("limit", "200")), 1000))
    except ValueError:
        return _problem(400, "limit is a whole number (1 to 1000)")
    head = request.app[FEED].head
    try:
        incidents = await asyncio.to_thread(store.list_incidents, status, limit)
    except IncidentError as exc:
        return _problem(400, str(exc))
    return _json({"last_seq": head, "incidents": [incident_view(i) for i in incidents]})


async def get_incident(request: web.Request) -> web.Response:
    store = request.app[STORE]
    incident_id = _incident_id(request)
    inc = await asyncio.to_thread(store.get_incident, incident_id)
    if inc is None:
        return _problem(404, str(UnknownIncident(incident_id)))
    alerts = await asyncio.to_thread(store.alerts_of, incident_id, 500)
    body = evidence_json(inc, alerts, now_ms())
    body["shown"] = len(alerts)
    return _json(body)


def _person_text(value: Any, what: str, limit: int) -> str:
    if not isinstance(value, str):
        raise web.HTTPBadRequest(text=f"{what} must be text")
    text = "".join(ch for ch in value if unicodedata.category(ch)[0] != "C" or ch == "\n").strip()
    if len(text) > limit:
        raise web.HTTPBadRequest(
            text=f"{what} is too long ({len(text)} characters, at most {limit})"
        )
    if looks_like_address(text):
        raise web.HTTPBadRequest(
            text=f"{what} looks like it holds an e-mail address or phone number; the console "
            f"stores no addresses: type a name (and describe people by their masked hint)"
        )
    return text


async def _lifecycle(request: web.Request, step: str) -> web.Response:
    store = request.app[STORE]
    incident_id = _incident_id(request)
    try:
        body = await request.json(loads=codec.loads)
    except Exception:
        return _problem(400, 'send JSON: {"who": "your name", "note": "optional"}')
    if not isinstance(body, dict):
        return _problem(400, 'send a JSON object: {"who": "your name"}')
    try:
        who = _person_text(body.get("who", ""), "who", 100)
        note = _person_text(body.get("note", ""), "note", 2000)
    except web.HTTPBadRequest as exc:
        return _problem(400, exc.text or "bad request")
    if not who:
        return _problem(400, f"say who you are: the incident's history records who {step}s it")
    action = store.acknowledge if step == "acknowledge" else store.resolve
    try:
        inc = await asyncio.to_thread(action, incident_id, who, note)
    except UnknownIncident as exc:
        return _problem(404, str(exc))
    except InvalidTransition as exc:
        return _problem(409, str(exc))
    except IncidentError as exc:
        return _problem(400, str(exc))
    log.info("console: incident %s %s by an operator", incident_id, inc.status.value)
    return _json({"incident": incident_view(inc)})


async def acknowledge(request: web.Request) -> web.Response:
    return await _lifecycle(request, "acknowledge")


async def resolve(request: web.Request) -> web.Response:
    return await _lifecycle(request, "resolve")


async def export(request: web.Request) -> web.Response:
    store = request.app[STORE]
    incident_id = _incident_id(request)
    fmt = request.match_info["fmt"]
    inc = await asyncio.to_thread(store.get_incident, incident_id)
    if inc is None:
        return _problem(404, str(UnknownIncident(incident_id)))
    alerts = await asyncio.to_thread(store.alerts_of, incident_id, 100_000)
    filename = f"consentinel-evidence-{incident_id}.{fmt}"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if fmt == "csv":
        return web.Response(
            text=evidence_csv(alerts), content_type="text/csv", charset="utf-8", headers=headers
        )
    return web.Response(
        body=codec.dumps(evidence_json(inc, alerts, now_ms())),
        content_type="application/json",
        headers=headers,
    )


async def stats(request: web.Request) -> web.Response:
    st = await asyncio.to_thread(request.app[STORE].stats)
    return _json(codec.to_obj(st))


async def panels(request: web.Request) -> web.Response:
    data = await request.app[METRICS].read()
    st = await asyncio.to_thread(request.app[STORE].stats)
    data["incidents"] = codec.to_obj(st)
    active = await asyncio.to_thread(request.app[STORE].list_incidents, "active", 1000)
    data["coverage"]["open_by_controller"] = _by_controller(active)
    data["health"]["sink_backlog"] = {**data["health"]["sink_backlog"], **st.backlog}
    data["read_at_ms"] = now_ms()
    return _json(data)


def _by_controller(incidents: Sequence[Incident]) -> list[dict[str, Any]]:
    """Unresolved incidents and their uses per controller (from the store, not metrics)."""
    rows: dict[str, dict[str, Any]] = {}
    for inc in incidents:
        row = rows.setdefault(inc.controller, {"controller": inc.controller, "count": 0, "uses": 0})
        row["count"] += 1
        row["uses"] += inc.alert_count - inc.resolved_alert_count
    return sorted(rows.values(), key=lambda r: (-r["uses"], r["controller"]))


async def health(request: web.Request) -> web.Response:
    return _json({"ok": True, "feed_head": request.app[FEED].head})


async def openapi(request: web.Request) -> web.Response:
    """``GET /api/openapi.json``: this API as an OpenAPI 3.1 document."""
    return _json(console_document())
