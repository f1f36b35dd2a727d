"""An aiohttp request as the connector contract sees it (``contract.Request``)."""

from __future__ import annotations

from urllib.parse import parse_qs

from aiohttp import web
from consentinel.connectors.contract import Request


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
