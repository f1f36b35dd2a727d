"""/healthz says whether the worker judges yet; /metrics is served beside it."""

from __future__ import annotations

from typing import Any

from consentinel.streams.events import codec
from consentinel.streams.worker.health import Readiness, _app


def _get(app: Any, path: str) -> tuple[str, bytes]:
    seen: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen.append(status)

    body = b"".join(
        app({"PATH_INFO": path, "REQUEST_METHOD": "GET", "QUERY_STRING": ""}, start_response)
    )
    return seen[0], body


def test_healthz_is_503_until_ready_then_200() -> None:
    readiness = Readiness()
    app = _app(readiness)
    status, body = _get(app, "/healthz")
    assert status.startswith("503") and codec.loads(body)["ready"] is False
    readiness.set()
    status, body = _get(app, "/healthz")
    obj = codec.loads(body)
    assert status.startswith("200") and obj["ready"] is True and obj["since_ms"] > 0


def test_metrics_are_served_beside_it() -> None:
    status, body = _get(_app(Readiness()), "/metrics")
    assert status.startswith("200") and b"consentinel_" in body
