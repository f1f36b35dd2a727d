"""The console's data-subject lookup: ``POST /api/subjects/lookup``.

The same lookup as ``consentinel subject show`` (``subjects``), behind the console token:
the address travels in the JSON body (``{"address": ..., "who": "your name"}``), never in
the URL, so it is in no access log, browser history or Referer. The lookup is written to
the audit topic first (actor: the operator's name, via ``console``); a lookup that cannot be
audited is not shown (503). The answer holds masked hints and a short subject reference,
never the address.

Answers 400 for a body that is not JSON, an address that is neither an e-mail address nor a
phone number, or no name; 503 when Kafka does not answer (nothing was shown).
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from consentinel.streams.events import codec
from consentinel.streams.events.errors import InvalidInput, RetriableError

from .console_handlers import STORE, _person_text
from .console_pack import SETTINGS
from .subjects import audit, file_view, look_up, subject_key

log = logging.getLogger("consentinel.console")

_ASK = 'send JSON: {"address": "the e-mail address or phone number", "who": "your name"}'


def _problem(status: int, message: str) -> web.Response:
    return web.Response(
        body=codec.dumps({"error": message}), status=status, content_type="application/json"
    )


async def subject_lookup(request: web.Request) -> web.Response:
    try:
        body = await request.json(loads=codec.loads)
    except Exception:
        return _problem(400, _ASK)
    if not isinstance(body, dict) or not isinstance(body.get("address"), str):
        return _problem(400, _ASK)
    address = body["address"].strip()
    if not address or len(address) > 320:
        return _problem(400, "the address is empty or longer than an address can be")
    try:
        who = _person_text(body.get("who", ""), "who", 100)
    except web.HTTPBadRequest as exc:
        return _problem(400, exc.text or "bad request")
    if not who:
        return _problem(400, "say who you are: the audit trail records who looked a person up")
    settings = request.app[SETTINGS]
    try:
        key = subject_key(settings, address)
    except InvalidInput as exc:
        return _problem(400, f"not an address consentinel can look up: {exc}")
    try:
        await asyncio.to_thread(audit, settings, key, who, "console")
        found = await asyncio.to_thread(look_up, settings, key, request.app[STORE])
    except RetriableError as exc:
        log.warning("console: a subject lookup was not done: %s", exc)
        return _problem(503, f"{exc}; nothing was shown. Check the broker and try again")
    log.info("console: a subject lookup by an operator (audited)")
    return web.Response(body=codec.dumps(file_view(found)), content_type="application/json")
