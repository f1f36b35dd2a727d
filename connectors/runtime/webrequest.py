"""An aiohttp request as the connector contract sees it (``contract.Request``), and the
connector's steps on it (``check``), run together off the event loop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web
from consentinel.connectors.contract import Connector, Output, Request, Response


def request_of(request: web.Request, public_url: str, body: bytes, received_ms: int) -> Request:
    """The contract's request: raw body, lowercase headers (repeats joined), the URL the
    platform called (rebuilt from ``public_url`` behind a proxy). Never blocks."""
    tail = request.match_info.get("tail", "")
    qs = request.query_string
    if public_url:
        url = public_url + (f"/{tail}" if tail else "") + (f"?{qs}" if qs else "")
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
        received_at_ms=received_ms,
    )


@dataclass(slots=True)
class Checked:
    """What a connector's ``handshake``, ``verify`` and ``map_request`` gave for a request:
    where it stopped (``stage``) and the handshake's answer, the output or the exception.
    The accessors give them back, raising the exception at the step that raised it."""

    stage: str  # "handshake" (an answer, or it raised), "verify" (it raised) or "map"
    value: Any

    def handshake(self) -> Response | None:
        if self.stage != "handshake":
            return None
        if isinstance(self.value, BaseException):
            raise self.value
        answer: Response = self.value
        return answer

    def verified(self) -> None:
        if self.stage == "verify":
            raise self.value

    def output(self) -> Output:
        if isinstance(self.value, BaseException):
            raise self.value
        output: Output = self.value
        return output


def check(connector: Connector, req: Request) -> Checked:
    """Handshake, verify and map in one go: CPU work (form parsing, HMACs, JSON) that the
    server runs on its thread pool, off the event loop. Never raises."""
    try:
        answer = connector.handshake(req)
    except Exception as exc:
        return Checked("handshake", exc)
    if answer is not None:
        return Checked("handshake", answer)
    try:
        connector.verify(req)
    except Exception as exc:
        return Checked("verify", exc)
    try:
        return Checked("map", connector.map_request(req))
    except Exception as exc:
        return Checked("map", exc)
