"""/healthz says whether the worker judges yet; /metrics is served beside it."""

from __future__ import annotations

from typing import Any

from consentinel.streams.events import codec
from consentinel.streams.events.ops_access import OpsAccess
from consentinel.streams.worker.health import Readiness, _app


def _get(app: Any, path: str, authorization: str | None = None) -> tuple[str, bytes]:
    seen: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen.append(status)

    environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "QUERY_STRING": ""}
    if authorization is not None:
        environ["HTTP_AUTHORIZATION"] = authorization
    body = b"".join(app(environ, start_response))
    return seen[0], body


def test_healthz_is_503_until_ready_then_200() -> None:
    readiness = Readiness()
    app = _app(readiness, OpsAccess())
    status, body = _get(app, "/healthz")
    assert status.startswith("503") and codec.loads(body)["ready"] is False
    readiness.set()
    status, body = _get(app, "/healthz")
    obj = codec.loads(body)
    assert status.startswith("200") and obj["ready"] is True and obj["since_ms"] > 0


def test_metrics_are_served_beside_it() -> None:
    status, body = _get(_app(Readiness(), OpsAccess()), "/metrics")
    assert status.startswith("200") and b"consentinel_" in body


def test_with_a_token_both_need_it() -> None:
    readiness = Readiness()
    readiness.set()
    app = _app(readiness, OpsAccess(token=b"0123456789abcdef-token"))
    for path in ("/healthz", "/metrics"):
        assert _get(app, path)[0].startswith("401")
        assert _get(app, path, "Bearer wrong-token-0123456789")[0].startswith("401")
        assert _get(app, path, "Bearer 0123456789abcdef-token")[0].startswith("200")
