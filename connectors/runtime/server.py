"""``consentinel ingest``: the webhook server (aiohttp).

Routes (every method):

    /hooks/<instance>[/<anything>][?query]   one configured connector instance
    /healthz                                 liveness and Kafka state (loopback or token)
    /metrics                                 Prometheus metrics (loopback or token)

Per request, in order (connectors/contract.py): refuse a declared body over the limit
(413, ``limits``) and reserve its bytes (``busy_status`` when the budget stays full);
read the raw body once (408 when it is too slow); then, off the event loop on a small
thread pool, ``handshake`` -> its answer; ``verify`` -> 401 on ``AuthenticationFailed``
(counted by reason, nothing produced); ``map_request`` -> on ``InvalidInput`` the raw
body is sealed to the dead-letter topic with its reason and the answer is 400/422 with
the code and sentence. Each ``ItemRejected`` of an output, and each event too large to
be written, becomes a dead letter of its own and the rest is produced: 200. The answer
comes only after Kafka acknowledged, or, when Kafka is away or slower than
``ack_timeout``, after the records are fsync'd in the ingest spool (``spool``), which
forwards them in order. Only when the spool is full (or disabled) is the answer the
connector's ``busy_status`` with Retry-After.

Log lines carry the instance, outcome, counts and event ids; never a body or an address.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import math
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web
from consentinel.connectors import config as config_mod
from consentinel.connectors.auth import AuthConfigError
from consentinel.connectors.contract import (
    AuthenticationFailed,
    Connector,
    Edge,
    Request,
)
from consentinel.connectors.runtime.deadletters import DeadLetters, output_records
from consentinel.connectors.runtime.limits import ByteBudget, Limits, protocol_logger
from consentinel.connectors.runtime.producer import EventProducer, Record
from consentinel.connectors.runtime.spool import Spool
from consentinel.connectors.runtime.webrequest import check, request_of
from consentinel.streams.events import codec, metrics, topics
from consentinel.streams.events.clock import now_ms
from consentinel.streams.events.errors import InvalidInput, RetriableError
from consentinel.streams.events.identity import Pseudonymizer
from consentinel.streams.events.settings import Settings
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger("consentinel.ingest")

#: InvalidInput codes that mean "could not even be decoded" (400); others are 422.
UNDECODABLE = frozenset(
    {"malformed_json", "bad_encoding", "malformed_form", "empty_body", "not_an_object"}
)
_LOOPBACK = ("127.", "::1", "localhost")


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
        max_body: int | None = None,
        limits: Limits | None = None,
        spool: Spool | None = None,
    ) -> None:
        self.settings = settings
        self.cfg = cfg
        self.producer = producer or EventProducer(settings, client_id="consentinel-ingest")
        self.limits = limits or Limits.for_record(self.producer.max_request_size, max_body)
        self.max_body = self.limits.max_body
        self.deadletters = DeadLetters(settings, self.limits.max_record)
        self.spool = spool
        self.budget = ByteBudget(self.limits.inflight_bytes)
        self._pool = ThreadPoolExecutor(self.limits.verify_threads, "ingest-verify")
        self._forwarder: asyncio.Task[None] | None = None
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

    def runner_kwargs(self) -> dict[str, Any]:
        """aiohttp server options: no access log, protocol errors logged without the
        request, idle (and header) timeout."""
        return {
            "access_log": None,
            "logger": protocol_logger(),
            "keepalive_timeout": self.limits.header_timeout_s,
        }

    async def _startup(self, app: web.Application) -> None:
        if self.spool is not None:
            self._forwarder = asyncio.ensure_future(self.spool.forward(self.producer.send_records))
        try:
            await self.producer.start()
        except RetriableError as exc:
            log.warning("starting without Kafka: %s; requests are spooled until it answers", exc)

    async def _cleanup(self, app: web.Application) -> None:
        if self._forwarder is not None:
            self._forwarder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._forwarder
        await self.producer.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)

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
        spool = self.spool
        return _json(
            200,
            {
                "status": "ok",
                "kafka": "connected" if self.producer.connected else "not connected",
                "instances": sorted(self.connectors),
                "spooled": spool.events if spool is not None else 0,
            },
        )

    async def metrics(self, request: web.Request) -> web.Response:
        if not self._trusted(request):
            return _json(401, {"error": "unauthorized"})
        body = generate_latest(metrics.REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    # -- one webhook -------------------------------------------------------------------
    async def hook(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["instance"]
        connector = self.connectors.get(name)
        if connector is None:
            return _json(
                404, {"error": "unknown_instance", "message": "no connector instance at this URL"}
            )
        started = time.perf_counter()
        received = now_ms()
        declared = request.content_length
        if declared is not None and declared > self.max_body:
            return self._too_large(name)
        # a body of unknown length (chunked) may be as large as the limit
        share = declared if declared is not None else self.max_body if request.body_exists else 0
        if not await self.budget.acquire(share, self.limits.busy_wait_s):
            err = RetriableError("too many request bodies at once", retry_after=2.0)
            return self._busy(name, connector, err)
        try:
            try:
                async with asyncio.timeout(self.limits.body_timeout_s):
                    body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                return self._too_large(name)
            except TimeoutError:
                self._count(name, "invalid")
                log.info("ingest instance=%s outcome=slow_body", name)
                answer = _json(408, {"error": "timeout", "message": "the body came too slowly"})
                answer.force_close()
                return answer
            req = request_of(request, connector.instance.public_url, body, received)
            return await self._handle(name, connector, req)
        finally:
            await self.budget.release(share)
            self._latency[name].observe(time.perf_counter() - started)

    async def _handle(self, name: str, connector: Connector, req: Request) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        checked = await loop.run_in_executor(self._pool, check, connector, req)
        # 1. platform handshakes (and token endpoints)
        try:
            answer = checked.handshake()
        except AuthenticationFailed as exc:
            return self._unauthorized(name, exc)
        except AuthConfigError as exc:
            self._count(name, "error")
            log.error("ingest instance=%s outcome=misconfigured: %s", name, exc)
            return _json(500, {"error": "misconfigured", "message": "connector misconfigured"})
        except InvalidInput as exc:
            self._count(name, "invalid")
            log.info("ingest instance=%s outcome=bad_handshake code=%s", name, exc.code)
            return _json(400, {"error": exc.code, "message": exc.message})
        if answer is not None:
            self._count(name, "handshake")
            log.info("ingest instance=%s outcome=handshake status=%d", name, answer.status)
            return web.Response(
                status=answer.status,
                body=answer.body,
                content_type=answer.content_type,
                headers=dict(answer.headers),
            )
        # 2. authenticate
        try:
            checked.verified()
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
            output = checked.output()
        except InvalidInput as exc:
            return await self._invalid(name, connector, req, exc)
        except Exception as exc:  # a connector bug: keep the payload, tell the platform
            log.exception(
                "ingest instance=%s outcome=error: connector raised %s", name, type(exc).__name__
            )
            err = InvalidInput("connector_error", f"the connector failed ({type(exc).__name__})")
            return await self._invalid(name, connector, req, err, status=500)
        # 4. produce (or spool), answer after the acknowledgement (or the fsync)
        records, rejected = output_records(
            output, self.settings, self.deadletters, self.producer.fits, name, req
        )
        try:
            spooled = await self._deliver(records)
        except InvalidInput as exc:  # Kafka refused a record it was expected to take
            return await self._invalid(name, connector, req, exc)
        except RetriableError as exc:
            return self._busy(name, connector, exc)
        self._count(name, "accepted")
        for code in rejected:
            self.deadletters.count(name, code)
            metrics.INGEST_ITEMS_REJECTED.labels(instance=name, reason=code).inc()
        usage = len(output.usage) - rejected["usage_too_large"]
        consent = len(output.consent) - rejected["consent_too_large"]
        self._events[(name, "usage")].inc(usage)
        self._events[(name, "consent")].inc(consent)
        if log.isEnabledFor(logging.INFO):
            event_ids = [u.event_id for u in output.usage] + [c.event_id for c in output.consent]
            more = len(event_ids) - 10
            log.info(
                "ingest instance=%s outcome=accepted usage=%d consent=%d rejected=%d spooled=%s "
                "ids=%s",
                name,
                usage,
                consent,
                rejected.total(),
                spooled,
                ",".join(event_ids[:10]) + (f",+{more}" if more > 0 else ""),
            )
        return _json(
            200,
            {
                "accepted": usage + consent,
                "usage": usage,
                "consent": consent,
                "rejected": rejected.total(),
                "spooled": spooled,
            },
        )

    async def _deliver(self, records: list[Record]) -> bool:
        """Kafka, or the spool; True when spooled. ``RetriableError`` when neither keeps
        them (spool full or disabled); ``InvalidInput`` when Kafka refuses a record."""
        spool = self.spool
        if not records:
            return False
        if spool is None:
            await self.producer.send_records(records)
            return False
        if not spool.empty:  # keep the order: behind what already waits
            await spool.append(records)
            return True
        try:
            await self.producer.send_records(records)
            return False
        except RetriableError as exc:
            log.warning("ingest: Kafka did not take a request (%s); spooling it", exc)
            await spool.append(records)
            return True

    def _count(self, name: str, outcome: str) -> None:
        counter = self._counters.get((name, outcome))
        if counter is None:
            counter = self._counters[(name, outcome)] = metrics.INGEST_REQUESTS.labels(
                instance=name, outcome=outcome
            )
        counter.inc()

    def _too_large(self, name: str) -> web.Response:
        self._count(name, "invalid")
        log.warning("ingest instance=%s outcome=too_large limit=%d", name, self.max_body)
        answer = _json(
            413, {"error": "too_large", "message": f"the body exceeds {self.max_body} bytes"}
        )
        answer.force_close()  # the rest of the body is not read
        return answer

    def _unauthorized(self, name: str, exc: AuthenticationFailed) -> web.Response:
        self._count(name, "unauthorized")
        metrics.AUTH_FAILURES.labels(instance=name, reason=exc.reason).inc()
        log.info("ingest instance=%s outcome=unauthorized reason=%s", name, exc.reason)
        return _json(401, {"error": "unauthorized", "reason": exc.reason})

    def _busy(self, name: str, connector: Connector, exc: RetriableError) -> web.Response:
        self._count(name, "unavailable")
        retry = max(1, math.ceil(exc.retry_after))
        log.warning("ingest instance=%s outcome=unavailable: %s", name, exc)
        return _json(
            connector.busy_status,
            {"error": "unavailable", "message": "events not stored; retry later"},
            {"Retry-After": str(retry)},
        )

    async def _invalid(
        self,
        name: str,
        connector: Connector,
        req: Request,
        exc: InvalidInput,
        status: int | None = None,
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
        topic = self.settings.topic(topics.DEADLETTER)
        try:
            await self._deliver([(topic, name.encode("utf-8"), codec.encode(letter))])
        except RetriableError as err:
            return self._busy(name, connector, err)
        except InvalidInput as err:  # the broker refuses what fits max_request_size
            self._count(name, "error")
            msg = "Kafka refuses records under --max-record-kb: raise message.max.bytes"
            log.error("ingest instance=%s outcome=unwritable code=%s: %s", name, err.code, msg)
            return _json(500, {"error": "unwritable", "message": "the record cannot be stored"})
        self.deadletters.count(name, exc.code)
        self._count(name, "invalid" if status is None else "error")
        log.info("ingest instance=%s outcome=deadlettered code=%s", name, exc.code)
        code = status or (400 if exc.code in UNDECODABLE else 422)
        return _json(code, {"error": exc.code, "message": exc.message, "deadlettered": True})
