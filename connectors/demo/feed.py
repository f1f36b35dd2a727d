"""Plays the demo's phases: signs each request as its platform would, delivers it, counts.

Signing uses the connector module's own ``sign(request, instance)`` with the instance's
secrets from the connectors file, so the ingest server authenticates the demo exactly as
it would the platform. Delivery goes through a ``Transport``: ``HttpTransport`` posts to
the ingest server (``/hooks/<instance>``); tests pass one that calls the connector
in-process. A 503 (or 429, 502, 504, a refused connection) is retried with backoff, as
platforms do; any other non-2xx answer is counted as a failure and reported.

Nothing here prints an address: lines carry phases, instance names, counts and statuses.
"""

from __future__ import annotations

import importlib
import socket
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TextIO
from urllib.parse import parse_qs, urlsplit

from consentinel.connectors.config import ConnectorsConfig
from consentinel.connectors.contract import Instance, Request
from consentinel.connectors.demo.cast import Phase
from consentinel.connectors.demo.platforms import Post
from consentinel.streams.events import codec
from consentinel.streams.events.errors import InvalidInput

RETRIED = frozenset({0, 429, 502, 503, 504})  # 0: no answer (connection refused, timeout)
_CODE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.-")

Signer = Callable[[Request, Instance], Request]


@dataclass(frozen=True)
class Answer:
    status: int  # HTTP status; 0 when nothing answered
    reason: str = ""  # a short machine code (server's error code, or the transport error)
    retry_after_s: float | None = None


class Transport(Protocol):
    def base_url(self, instance: Instance) -> str:
        """The URL the platform calls for ``instance`` (the one it signs), without query."""

    def deliver(self, instance: Instance, request: Request) -> Answer:
        """Send one signed request; never raises for an HTTP or network failure."""


class HttpTransport:
    """Posts to the ingest server: ``<ingest>/hooks/<instance>[?query]``."""

    def __init__(self, ingest: str, timeout_s: float = 30.0) -> None:
        self.ingest = ingest.rstrip("/")
        self.timeout_s = timeout_s

    def base_url(self, instance: Instance) -> str:
        return instance.public_url or f"{self.ingest}/hooks/{instance.name}"

    def wait_ready(self, timeout_s: float, sleep: Callable[[float], None] = time.sleep) -> bool:
        """Wait until the ingest server accepts connections (it may still be starting)."""
        parts = urlsplit(self.ingest)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with socket.create_connection((host, port), timeout=2):
                    return True
            except OSError:
                if time.monotonic() >= deadline:
                    return False
                sleep(0.5)

    def deliver(self, instance: Instance, request: Request) -> Answer:
        query = urlsplit(request.url).query
        url = f"{self.ingest}/hooks/{instance.name}" + (f"?{query}" if query else "")
        http = urllib.request.Request(
            url, data=request.body, method=request.method, headers=dict(request.headers)
        )
        try:
            with urllib.request.urlopen(http, timeout=self.timeout_s) as answer:
                answer.read()
                return Answer(answer.status)
        except urllib.error.HTTPError as exc:
            body = exc.read()[:4096]
            retry = exc.headers.get("retry-after") if exc.headers else None
            return Answer(exc.code, _reason(body), _seconds(retry))
        except (urllib.error.URLError, OSError) as exc:
            cause = getattr(exc, "reason", exc)
            return Answer(0, type(cause).__name__)


def _reason(body: bytes) -> str:
    """The server's error code when its answer is JSON carrying one; never free text."""
    try:
        data = codec.loads(body)
    except InvalidInput:
        return ""
    if not isinstance(data, dict):
        return ""
    for key in ("reason", "code", "error"):
        value = data.get(key)
        if isinstance(value, str) and 0 < len(value) <= 64 and set(value) <= _CODE_CHARS:
            return value
    return ""


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


@dataclass
class Report:
    """What was posted: requests by (instance, what, status), failures, retries."""

    requests: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)  # platform events per instance
    failures: list[str] = field(default_factory=list)
    retries: int = 0
    phase_started: dict[str, float] = field(default_factory=dict)  # phase key -> clock

    @property
    def ok(self) -> bool:
        return not self.failures

    def by_instance(self) -> dict[str, Counter[int]]:
        out: dict[str, Counter[int]] = {}
        for (instance, _, status), n in self.requests.items():
            out.setdefault(instance, Counter())[status] += n
        return out


class Feed:
    def __init__(
        self,
        config: ConnectorsConfig,
        transport: Transport,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        pace_s: float = 0.03,
        attempts: int = 6,
        out: TextIO = sys.stdout,
    ) -> None:
        self.config = config
        self.transport = transport
        self.clock = clock
        self.sleep = sleep
        self.pace_s = pace_s
        self.attempts = attempts
        self.out = out
        self._signers: dict[str, Signer] = {}

    def check(self, instances: dict[str, str]) -> list[str]:
        """Problems with the connectors file for this demo (missing instances, wrong types)."""
        problems = []
        for name, ctype in instances.items():
            inst = self.config.instances.get(name)
            if inst is None:
                problems.append(f"{self.config.path}: no instance {name!r} (type {ctype})")
            elif inst.type != ctype:
                problems.append(
                    f"{self.config.path}: instance {name!r} is of type {inst.type!r}, "
                    f"the demo posts {ctype} webhooks to it"
                )
            else:
                module = importlib.import_module(self.config.classes[name].__module__)
                signer = getattr(module, "sign", None)
                if signer is None:
                    problems.append(f"connector {ctype!r} has no sign(request, instance)")
                else:
                    self._signers[name] = signer
        return problems

    def play(self, phases: list[Phase]) -> Report:
        report = Report()
        start = self.clock()
        for phase in phases:
            if phase.after is not None:
                mark, delay = phase.after
                wait = report.phase_started.get(mark, start) + delay - self.clock()
                if wait > 0:
                    self._say(start, f"waiting {wait:.0f} s ({phase.key})")
                    self.sleep(wait)
            report.phase_started[phase.key] = self.clock()
            posts = phase.build(int(self.clock() * 1000))
            self._say(start, phase.title)
            statuses: Counter[int] = Counter()
            for i, post in enumerate(posts):
                if i:
                    self.sleep(self.pace_s)
                answer = self._post(post, report)
                statuses[answer.status] += 1
                report.requests[(post.instance, post.what, answer.status)] += 1
                if 200 <= answer.status < 300:
                    report.events[post.instance] += post.events
                else:
                    what = f"HTTP {answer.status}" if answer.status else "no answer"
                    code = f" ({answer.reason})" if answer.reason else ""
                    report.failures.append(
                        f"{phase.key}: {post.instance} {post.what} request {i + 1} of "
                        f"{len(posts)}: {what}{code}"
                    )
            counts = ", ".join(f"{n} x {s or 'no answer'}" for s, n in sorted(statuses.items()))
            names = ", ".join(sorted({p.instance for p in posts}))
            self.out.write(f"{'':10}{len(posts)} request(s) to {names}: {counts}\n")
            self.out.flush()
            self.sleep(self.pace_s * 10)
        return report

    def _say(self, start: float, text: str) -> None:
        self.out.write(f"[{self.clock() - start:6.1f}s] {text}\n")
        self.out.flush()

    def _post(self, post: Post, report: Report) -> Answer:
        instance = self.config.instances[post.instance]
        answer = Answer(0)
        for attempt in range(self.attempts):
            base = self.transport.base_url(instance)
            request = Request(
                method="POST",
                url=f"{base}?{post.query}" if post.query else base,
                path="/",
                query=parse_qs(post.query),
                headers={"content-type": post.content_type, **post.headers},
                body=post.body,
                received_at_ms=int(self.clock() * 1000),
            )
            signed = self._signers[post.instance](request, instance)  # fresh, each attempt
            answer = self.transport.deliver(instance, signed)
            if answer.status not in RETRIED or attempt == self.attempts - 1:
                return answer
            report.retries += 1
            backoff = min(8.0, 0.5 * 2**attempt)
            self.sleep(max(backoff, answer.retry_after_s or 0.0))
        return answer
