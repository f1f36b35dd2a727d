"""``consentinel ingest``: the webhook server (aiohttp).

Routes (every method):

    /hooks/<instance>[/<anything>][?query]   one configured connector instance
    /healthz                                 liveness and Kafka state (loopback or token)
    /metrics                                 Prometheus metrics (loopback or token)

Per request, in order (connectors/contract.py): read the raw body once (size limit);
``handshake`` -> its answer; ``verify`` -> 401 on ``AuthenticationFailed`` (counted by
reason, nothing produced); ``map_request`` -> on ``InvalidInput`` the raw body is sealed
to the dead-letter topic with its reason and the answer is 400/422 with the code and
sentence (503 if even the dead letter cannot be written); the events are produced and
the answer is 200 only after Kafka acknowledged them; a broker fault is 503 with
Retry-After, so the platform retries and the deterministic ids absorb the duplicate.

Log lines carry the instance, outcome, counts and event ids; never a body or an address.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import logging
import math
import signal
import sys
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web
from consentinel.connectors import config as config_mod
from consentinel.connectors.auth import AuthConfigError
from consentinel.connectors.contract import (
    AuthenticationFailed,
    Connector,
    Edge,
    Request,
)
from consentinel.connectors.runtime.deadletters import DeadLetters
from consentinel.connectors.runtime.producer import EventProducer
from consentinel.streams.events import codec, metrics
from consentinel.streams.events.errors import InvalidInput, RetriableError
from consentinel.streams.events.identity import Pseudonymizer
from consentinel.streams.events.settings import Settings
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger("consentinel.ingest")

MAX_BODY = 5 * 1024 * 1024
#: InvalidInput codes that mean "could not even be decoded" (400); others are 422.
UNDECODABLE = frozenset(
    {"malformed_json", "bad_encoding", "malformed_form", "empty_body", "not_an_object"}
)
_LOOPBACK = ("127.", "::1", "localhost")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _json(
    status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=codec.dumps(dict(body)),
        content_type="application/json",
        headers=dict(headers or {}),
    )


class IngestServer:
    """The connectors of a configuration behind one aiohttp application."""

    def __init__(
        self,
        settings: Settings,
        cfg: config_mod.ConnectorsConfig,
        producer: EventProducer | None = None,
        *,
        max_body: int = MAX_BODY,
    ) -> None:
        self.settings = settings
        self.cfg = cfg
        self.producer = producer or EventProducer(settings, client_id="consentinel-ingest")
        self.deadletters = DeadLetters(settings)
        self.max_body = max_body
        pseudo = Pseudonymizer(settings.pepper.reveal())
        self.connectors: dict[str, Connector] = {}
        for name, inst in cfg.instances.items():
            cls = cfg.classes[name]
            self.connectors[name] = cls(inst, Edge(pseudo, inst.default_region))
        # metric children, looked up once per label set rather than once per request
        self._counters: dict[tuple[str, str], Any] = {}
        self._latency = {n: metrics.INGEST_LATENCY.labels(instance=n) for n in self.connectors}
        self._events = {
            (n, r): metrics.INGEST_EVENTS.labels(instance=n, record=r)
            for n in self.connectors
            for r in ("usage", "consent")
        }

    # -- application -------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_body)
        app.router.add_route("*", "/hooks/{instance}", self.hook)
        app.router.add_route("*", "/hooks/{instance}/{tail:.*}", self.hook)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.metrics)
        app.on_startup.append(self._startup)
        app.on_cleanup.append(self._cleanup)
        return app

    async def _startup(self, app: web.Application) -> None:
        try:
            await self.producer.start()
        except RetriableError as exc:
            log.warning("starting without Kafka: %s; webhooks get 503 until it answers", exc)

    async def _cleanup(self, app: web.Application) -> None:
        await self.producer.stop()

    def _trusted(self, request: web.Request) -> bool:
        remote = request.remote or ""
        if remote.startswith(_LOOPBACK):
            return True
        token = self.settings.token.reveal().decode("utf-8", "replace")
        given = request.headers.get("Authorization", "")
        return bool(token) and hmac.compare_digest(given, f"Bearer {token}")

    async def healthz(self, request: web.Request) -> web.Response:
        if not self._trusted(request):
            return _json(401, {"error": "unauthorized"})
        return _json(
            200,
            {
                "status": "ok",
                "kafka": "connected" if self.producer.connected else "not connected",
                "instances": sorted(self.connectors),
            },
        )

    async def metrics(self, request: web.Request) -> web.Response:
        if not self._trusted(request):
            return _json(401, {"error": "unauthorized"})
        body = generate_latest(metrics.REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    # -- one webhook -------------------------------------------------------------------
    def _request(self, request: web.Request, body: bytes, received: int) -> Request:
        name = request.match_info["instance"]
        inst = self.connectors[name].instance
        tail = request.match_info.get("tail", "")
        qs = request.query_string
        if inst.public_url:
            url = inst.public_url + (f"/{tail}" if tail else "") + (f"?{qs}" if qs else "")
        else:
            url = f"{request.scheme}://{request.host}{request.raw_path}"
        headers: dict[str, str] = {}
        for key, value in request.headers.items():
            k = key.lower()
            if k in headers:
                headers[k] = f"{headers[k]}, {value}"
            else:
                headers[k] = value
        return Request(
            method=request.method,
            url=url,
            path=f"/{tail}" if tail else "/",
            query=parse_qs(qs, keep_blank_values=True) if qs else {},
            headers=headers,
            body=body,
            remote=request.remote or "",
            received_at_ms=received,
        )

    async def hook(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["instance"]
        connector = self.connectors.get(name)
        if connector is None:
            return _json(
                404, {"error": "unknown_instance", "message": "no connector instance at this URL"}
            )
        started = time.perf_counter()
        received = _now_ms()
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            self._count(name, "invalid")
            log.warning("ingest instance=%s outcome=too_large limit=%d", name, self.max_body)
            return _json(
                413, {"error": "too_large", "message": f"the body exceeds {self.max_body} bytes"}
            )
        req = self._request(request, body, received)
        try:
            response = await self._handle(name, connector, req)
        finally:
            self._latency[name].observe(time.perf_counter() - started)
        return response

    async def _handle(self, name: str, connector: Connector, req: Request) -> web.StreamResponse:
        # 1. platform handshakes
        try:
            answer = connector.handshake(req)
        except AuthenticationFailed as exc:
            return self._unauthorized(name, exc)
        except InvalidInput as exc:
            self._count(name, "invalid")
            log.info("ingest instance=%s outcome=bad_handshake code=%s", name, exc.code)
            return _json(400, {"error": exc.code, "message": exc.message})
        if answer is not None:
            self._count(name, "handshake")
            log.info("ingest instance=%s outcome=handshake status=%d", name, answer.status)
            return web.Response(
                status=answer.status, body=answer.body, content_type=answer.content_type
            )
        # 2. authenticate
        try:
            connector.verify(req)
        except AuthenticationFailed as exc:
            return self._unauthorized(name, exc)
        except AuthConfigError as exc:
            self._count(name, "error")
            log.error("ingest instance=%s outcome=misconfigured: %s", name, exc)
            return _json(500, {"error": "misconfigured", "message": "connector misconfigured"})
        except InvalidInput as exc:  # cannot even be checked: not authentic, not kept
            self._count(name, "unauthorized")
            metrics.AUTH_FAILURES.labels(instance=name, reason="malformed_request").inc()
            log.info("ingest instance=%s outcome=unauthorized reason=%s", name, exc.code)
            return _json(401, {"error": "unauthorized", "reason": exc.code})
        # 3. map
        try:
            output = connector.map_request(req)
        except InvalidInput as exc:
            return await self._invalid(name, req, exc)
        except Exception as exc:  # a connector bug: keep the payload, tell the platform
            log.exception(
                "ingest instance=%s outcome=error: connector raised %s", name, type(exc).__name__
            )
            err = InvalidInput("connector_error", f"the connector failed ({type(exc).__name__})")
            return await self._invalid(name, req, err, status=500)
        # 4. produce, answer after the acknowledgement
        try:
            await self.producer.send_all(output)
        except RetriableError as exc:
            return self._unavailable(name, exc)
        self._count(name, "accepted")
        if output.usage:
            self._events[(name, "usage")].inc(len(output.usage))
        if output.consent:
            self._events[(name, "consent")].inc(len(output.consent))
        if log.isEnabledFor(logging.INFO):
            event_ids = [u.event_id for u in output.usage] + [c.event_id for c in output.consent]
            more = len(event_ids) - 10
            log.info(
                "ingest instance=%s outcome=accepted usage=%d consent=%d ids=%s",
                name,
                len(output.usage),
                len(output.consent),
                ",".join(event_ids[:10]) + (f",+{more}" if more > 0 else ""),
            )
        return _json(
            200,
            {"accepted": len(output), "usage": len(output.usage), "consent": len(output.consent)},
        )

    def _count(self, name: str, outcome: str) -> None:
        counter = self._counters.get((name, outcome))
        if counter is None:
            counter = self._counters[(name, outcome)] = metrics.INGEST_REQUESTS.labels(
                instance=name, outcome=outcome
            )
        counter.inc()

    def _unauthorized(self, name: str, exc: AuthenticationFailed) -> web.Response:
        self._count(name, "unauthorized")
        metrics.AUTH_FAILURES.labels(instance=name, reason=exc.reason).inc()
        log.info("ingest instance=%s outcome=unauthorized reason=%s", name, exc.reason)
        return _json(401, {"error": "unauthorized", "reason": exc.reason})

    def _unavailable(self, name: str, exc: RetriableError) -> web.Response:
        self._count(name, "unavailable")
        retry = max(1, math.ceil(exc.retry_after))
        log.warning("ingest instance=%s outcome=unavailable: %s", name, exc)
        return _json(
            503,
            {"error": "unavailable", "message": "events not stored; retry later"},
            {"Retry-After": str(retry)},
        )

    async def _invalid(
        self, name: str, req: Request, exc: InvalidInput, status: int | None = None
    ) -> web.Response:
        letter = self.deadletters.letter(
            name,
            exc,
            req.body,
            stage="ingest",
            content_type=req.header("content-type") or "application/octet-stream",
            attributes={"method": req.method, "bytes": len(req.body)},
            received_at_ms=req.received_at_ms,
        )
        try:
            await self.producer.send_deadletter(letter)
        except RetriableError as err:
            return self._unavailable(name, err)
        self.deadletters.count(name, exc.code)
        self._count(name, "invalid" if status is None else "error")
        log.info("ingest instance=%s outcome=deadlettered code=%s", name, exc.code)
        code = status or (400 if exc.code in UNDECODABLE else 422)
        return _json(code, {"error": exc.code, "message": exc.message, "deadlettered": True})


# -- command line ----------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="consentinel ingest",
        description="Run the webhook ingest server for the instances of a connectors file.",
    )
    p.add_argument(
        "--config",
        help=f"instances file (default ${config_mod.CONFIG_ENV} or ./{config_mod.DEFAULT_FILE})",
    )
    p.add_argument("--host", help="bind address (default CONSENTINEL_WEB_HOST, loopback)")
    p.add_argument("--port", type=int, help="port (default CONSENTINEL_INGEST_PORT)")
    p.add_argument(
        "--max-body-mb",
        type=float,
        default=MAX_BODY / 1024 / 1024,
        help="largest accepted body in MiB (default 5)",
    )
    return p


async def serve(server: IngestServer, host: str, port: int, stop: asyncio.Event) -> None:
    runner = web.AppRunner(server.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    print(
        f"consentinel ingest: listening on http://{host}:{port}/hooks/<instance> for "
        f"{len(server.connectors)} instance(s): {', '.join(sorted(server.connectors))}",
        file=sys.stderr,
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings.from_env()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    cfg = config_mod.load(config_mod.default_path(args.config), settings)
    if not cfg.instances:
        print(
            f"consentinel ingest: {cfg.path} defines no instance; nothing to serve", file=sys.stderr
        )
        return 78
    host = args.host or settings.web_host
    if not host.startswith(_LOOPBACK):
        print(
            f"consentinel ingest: binding {host}, not loopback: put it behind TLS", file=sys.stderr
        )
    server = IngestServer(settings, cfg, max_body=int(args.max_body_mb * 1024 * 1024))

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(server, host, args.port or settings.ingest_port, stop)

    asyncio.run(run())
    return 0
