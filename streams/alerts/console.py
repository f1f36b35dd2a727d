"""``consentinel console``: the operator console (one page, plain HTML/JS/CSS, no CDN).

Live incident feed (server-sent events from the store's change feed), incident detail with
its evidence, acknowledge and resolve (with the operator's name), evidence export (CSV,
JSON), and panels for flows, consent coverage and pipeline health read from the worker's
and the ingest server's ``/metrics``.

Access: every route needs the token (``CONSENTINEL_TOKEN``). Open the console once with
``?token=...``: it sets a session cookie (HttpOnly, SameSite=Strict, derived from the token,
not the token itself) and redirects to the same page without the token in the address.
Scripts may send ``Authorization: Bearer <token>`` instead. A POST with the cookie must also
carry the page's CSRF value (``X-Consentinel-CSRF``). Comparisons are constant-time; anything
else is 401. It binds ``settings.web_host`` (loopback by default).

What blocks: store calls run in threads (``asyncio.to_thread``); one poller per process
tails the change feed and fans it out to every browser (``Feed``).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import hashlib
import hmac
import logging
import re
import sys
import time
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from consentinel.streams.events import codec
from consentinel.streams.events.settings import Settings

from .console_evidence import evidence_csv, evidence_json, incident_view, looks_like_address
from .console_metrics import MetricsReader
from .model import Change, Incident, IncidentError, InvalidTransition, UnknownIncident
from .store import IncidentStore, wall_ms

log = logging.getLogger("consentinel.console")

STATIC = Path(__file__).parent / "static"
COOKIE = "consentinel_console"
CSRF_HEADER = "X-Consentinel-CSRF"
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_PAGE_PATHS = ("/", "/incidents/{incident_id}")

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


# -- access ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Access:
    """The token and the two values derived from it (session cookie, CSRF)."""

    token: bytes

    def _derive(self, what: str) -> str:
        return hmac.new(
            self.token, f"consentinel-console:{what}".encode(), hashlib.sha256
        ).hexdigest()

    @property
    def session(self) -> str:
        return self._derive("session")

    @property
    def csrf(self) -> str:
        return self._derive("csrf")

    def token_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode("utf-8"), self.token)

    def session_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(
            given.encode("utf-8"), self.session.encode()
        )

    def csrf_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode("utf-8"), self.csrf.encode())


_UNAUTHORIZED = (
    "401: this console needs its token. Open the address `consentinel console` printed "
    "(it ends in ?token=...), or send `Authorization: Bearer <token>`. The token is "
    "CONSENTINEL_TOKEN (in development: the file under CONSENTINEL_HOME/secrets/dev-token)."
)


def _unauthorized(request: web.Request) -> web.Response:
    log.info("console: refused %s %s (no valid token)", request.method, request.path)
    return web.Response(status=401, text=_UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})


@web.middleware
async def _auth(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    access: Access = request.app[ACCESS]
    bearer = request.headers.get("Authorization", "")
    if bearer.startswith("Bearer "):
        if not access.token_ok(bearer[7:].strip()):
            return _unauthorized(request)
        return await handler(request)
    if "token" in request.query:
        if not access.token_ok(request.query["token"]):
            return _unauthorized(request)
        if request.method != "GET":
            return await handler(request)
        # Once: the cookie from now on, and the token out of the address bar and history.
        query = {k: v for k, v in request.query.items() if k != "token"}
        location = request.rel_url.with_query(query)
        resp = web.Response(status=303, headers={"Location": str(location)})
        resp.set_cookie(COOKIE, access.session, httponly=True, samesite="Strict", path="/")
        return resp
    if not access.session_ok(request.cookies.get(COOKIE)):
        return _unauthorized(request)
    if request.method not in ("GET", "HEAD") and not access.csrf_ok(
        request.headers.get(CSRF_HEADER)
    ):
        return web.Response(
            status=401,
            text="401: a change needs the page's CSRF value (reload the console and try again)",
        )
    return await handler(request)


@web.middleware
async def _headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        resp = await handler(request)
    except web.HTTPException as exc:
        resp = exc
    for k, v in SECURITY_HEADERS.items():
        resp.headers.setdefault(k, v)
    if isinstance(resp, web.HTTPException):
        raise resp
    return resp


# -- the live feed ---------------------------------------------------------------------------


class Feed:
    """One poller tails ``changes_since`` and keeps the recent changes for every browser."""

    def __init__(self, store: IncidentStore, poll_s: float = 0.5, keep: int = 2000) -> None:
        self.store = store
        self.poll_s = poll_s
        self.head = 0
        self.recent: collections.deque[tuple[int, bytes]] = collections.deque(maxlen=keep)
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self.closed = False

    async def start(self) -> None:
        self.head = await asyncio.to_thread(self._last_seq)
        self._task = asyncio.create_task(self._run(), name="console-feed")

    def _last_seq(self) -> int:
        # Thin adapter: the store has no "last sequence number" read, so page to the end
        # once at start; from then on the poller keeps ``head``.
        seq = 0
        while True:
            page = self.store.changes_since(seq, limit=5000)
            if not page:
                return seq
            seq = page[-1].seq

    async def stop(self) -> None:
        self.closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        async with self._changed:
            self._changed.notify_all()

    async def _run(self) -> None:
        while True:
            try:
                changes = await asyncio.to_thread(self.store.changes_since, self.head, 500)
                if changes:
                    payloads = await asyncio.to_thread(self._payloads, changes)
                    async with self._changed:
                        self.recent.extend(payloads)
                        self.head = changes[-1].seq
                        self._changed.notify_all()
                    continue
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("console: reading the change feed failed; retrying")
            await asyncio.sleep(self.poll_s)

    def _payloads(self, changes: list[Change]) -> list[tuple[int, bytes]]:
        incidents: dict[str, Any] = {}
        out = []
        for c in changes:
            if c.incident_id not in incidents:
                inc = self.store.get_incident(c.incident_id)
                incidents[c.incident_id] = incident_view(inc) if inc is not None else None
            body = {
                "seq": c.seq,
                "kind": c.kind.value,
                "incident_id": c.incident_id,
                "status": c.status.value,
                "revision": c.revision,
                "at_ms": c.at_ms,
                "who": c.who,
                "incident": incidents[c.incident_id],
            }
            out.append((c.seq, codec.dumps(body)))
        return out

    async def follow(self, since: int) -> AsyncIterator[tuple[int, bytes] | None]:
        """Changes after ``since``; ``None`` means "reload the list" (nothing to resume from);
        ``(seq, b"")`` is a heartbeat (nothing new for 15 s). Yields outside the lock."""
        while not self.closed:
            async with self._changed:
                batch, behind = self._after(since)
                if not batch and not behind:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), timeout=15)
                    batch, behind = self._after(since)
                head = self.head
            if behind:
                # Older than what the poller keeps: read the missed changes from the store.
                missed = await asyncio.to_thread(self.store.changes_since, since, 500)
                if not missed:
                    since = head
                    yield None
                    continue
                batch = await asyncio.to_thread(self._payloads, missed)
            if not batch:
                yield (since, b"")
                continue
            for item in batch:
                yield item
                since = item[0]

    def _after(self, since: int) -> tuple[list[tuple[int, bytes]], bool]:
        oldest = self.recent[0][0] if self.recent else self.head + 1
        if since < self.head and since < oldest - 1:
            return [], True
        return [item for item in self.recent if item[0] > since], False


# -- handlers --------------------------------------------------------------------------------

STORE = web.AppKey("store", IncidentStore)
ACCESS = web.AppKey("access", Access)
FEED = web.AppKey("feed", Feed)
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
    body = evidence_json(inc, alerts, wall_ms())
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
        body=codec.dumps(evidence_json(inc, alerts, wall_ms())),
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
    data["read_at_ms"] = wall_ms()
    return _json(data)


def _by_controller(incidents: Sequence[Incident]) -> list[dict[str, Any]]:
    """Unresolved incidents and their uses per controller (from the store, not metrics)."""
    rows: dict[str, dict[str, Any]] = {}
    for inc in incidents:
        row = rows.setdefault(inc.controller, {"controller": inc.controller, "count": 0, "uses": 0})
        row["count"] += 1
        row["uses"] += inc.alert_count - inc.resolved_alert_count
    return sorted(rows.values(), key=lambda r: (-r["uses"], r["controller"]))


async def feed(request: web.Request) -> web.StreamResponse:
    hub = request.app[FEED]
    try:
        since = int(request.headers.get("Last-Event-ID") or request.query.get("since") or hub.head)
    except ValueError:
        since = hub.head
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await resp.prepare(request)
    await resp.write(f"retry: 2000\nevent: hello\ndata: {since}\n\n".encode())
    try:
        async for item in hub.follow(since):
            if item is None:
                await resp.write(b"event: resync\ndata: {}\n\n")
            elif not item[1]:
                await resp.write(b": still here\n\n")
            else:
                await resp.write(b"id: %d\nevent: change\ndata: %s\n\n" % item)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    return resp


async def health(request: web.Request) -> web.Response:
    return _json({"ok": True, "feed_head": request.app[FEED].head})


# -- the app ---------------------------------------------------------------------------------


def make_app(
    settings: Settings,
    store: IncidentStore,
    metrics_urls: Sequence[str],
    *,
    poll_s: float = 0.5,
) -> web.Application:
    token = settings.token.reveal()
    if len(token) < 16:
        from consentinel.streams.events.errors import FatalConfigError

        raise FatalConfigError(
            ["CONSENTINEL_TOKEN: the console needs a token of at least 16 bytes"],
            "consentinel console",
        )
    app = web.Application(middlewares=[_headers, _auth], client_max_size=64 * 1024)
    app[STORE] = store
    app[ACCESS] = Access(token)
    app[FEED] = Feed(store, poll_s=poll_s)
    app[METRICS] = MetricsReader(metrics_urls)
    for path in _PAGE_PATHS:
        app.router.add_get(path, page)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/api/health", health)
    app.router.add_get("/api/incidents", list_incidents)
    app.router.add_get("/api/incidents/{incident_id}", get_incident)
    app.router.add_post("/api/incidents/{incident_id}/acknowledge", acknowledge)
    app.router.add_post("/api/incidents/{incident_id}/resolve", resolve)
    app.router.add_get("/api/incidents/{incident_id}/evidence.{fmt:csv|json}", export)
    app.router.add_get("/api/stats", stats)
    app.router.add_get("/api/panels", panels)
    app.router.add_get("/api/feed", feed)

    async def on_startup(app: web.Application) -> None:
        await app[FEED].start()

    async def on_shutdown(app: web.Application) -> None:
        await app[FEED].stop()

    async def on_cleanup(app: web.Application) -> None:
        await app[METRICS].close()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    return app


def default_metrics_urls(settings: Settings) -> list[str]:
    host = settings.web_host if settings.web_host not in ("0.0.0.0", "::") else "127.0.0.1"
    return [
        f"http://{host}:{settings.metrics_port}/metrics",  # the worker
        f"http://{host}:{settings.ingest_port}/metrics",  # the ingest server
        f"http://{host}:{settings.metrics_port + 2}/metrics",  # the alert router
    ]


def _parse(argv: list[str], settings: Settings) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="consentinel console",
        description="Run the operator console: incidents, evidence, flows and pipeline health.",
    )
    p.add_argument("--host", default=settings.web_host, help="address to bind (%(default)s)")
    p.add_argument("--port", type=int, default=settings.console_port, help="port (%(default)s)")
    p.add_argument(
        "--metrics-url",
        action="append",
        dest="metrics_urls",
        metavar="URL",
        help="a /metrics endpoint to read for the panels (repeat it; default: the worker's, "
        "the ingest server's and the router's, from the settings)",
    )
    p.add_argument(
        "--store",
        type=Path,
        default=None,
        help="the incident store (default: CONSENTINEL_HOME/state/incidents.db)",
    )
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    settings = Settings.from_env()
    args = _parse(argv, settings)
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    store = IncidentStore(args.store) if args.store else IncidentStore.open(settings)
    urls = args.metrics_urls or default_metrics_urls(settings)
    app = make_app(settings, store, urls)
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    print(
        f"consentinel console: http://{shown}:{args.port}/?token=<CONSENTINEL_TOKEN>\n"
        f"  (the token is CONSENTINEL_TOKEN; in development the file "
        f"{settings.home / 'secrets' / 'dev-token'})\n"
        f"  incidents from {store.path}\n"
        f"  panels from {', '.join(urls)}",
        file=sys.stderr,
        flush=True,
    )
    started = time.monotonic()
    try:
        web.run_app(app, host=args.host, port=args.port, print=None, handle_signals=True)
    finally:
        store.close()
    log.info("console: stopped after %.0f s", time.monotonic() - started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
