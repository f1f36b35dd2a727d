"""The console's signed evidence pack: ``GET /api/incidents/{id}/evidence-pack?case=REF``.

The same pack as ``consentinel evidence export`` (``evidence_pack``), signed with the key
``CONSENTINEL_EVIDENCE_KEY`` names, carrying the case reference the operator entered. The
console reads no Kafka topic: the pack's declarations are listed by id with ``in_force``
null (the CLI export reads them from the registry). 400 without a case reference, 404 for
an unknown incident, 503 when no signing key is configured (the message says how to make one).
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from consentinel.streams.events import codec
from consentinel.streams.events.clock import now_ms
from consentinel.streams.events.errors import FatalConfigError
from consentinel.streams.events.settings import Settings

from . import evidence_pack
from .console_handlers import STORE, _incident_id
from .model import UnknownIncident

SETTINGS = web.AppKey("settings", Settings)


def _problem(status: int, message: str) -> web.Response:
    return web.Response(
        body=codec.dumps({"error": message}), status=status, content_type="application/json"
    )


async def evidence_pack_download(request: web.Request) -> web.Response:
    incident_id = _incident_id(request)
    case_ref = request.query.get("case", "").strip()
    if not case_ref or len(case_ref) > 200:
        return _problem(400, "send ?case=REF: the case reference the pack is made for")
    try:
        key = evidence_pack.signing_key(request.app[SETTINGS])
    except FatalConfigError as exc:
        return _problem(503, "; ".join(exc.problems))
    store = request.app[STORE]
    inc = await asyncio.to_thread(store.get_incident, incident_id)
    if inc is None:
        return _problem(404, str(UnknownIncident(incident_id)))
    alerts = await asyncio.to_thread(store.alerts_of, incident_id, 1_000_000)
    data = evidence_pack.build(
        inc, alerts, case_ref=case_ref, declarations={}, key=key, exported_at_ms=now_ms()
    )
    filename = f"consentinel-evidence-pack-{incident_id}.json"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return web.Response(body=data, content_type="application/json", headers=headers)
