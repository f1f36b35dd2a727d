"""The case model: what a connector's conformance case declares, and the helpers a test
author builds one with (instances, edges, requests)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import (
    parse_qs,
    urlsplit,
)

from consentinel.connectors.contract import (
    Connector,
    Edge,
    Instance,
    Output,
    Request,
)
from consentinel.streams.events.identity import Pseudonymizer
from consentinel.streams.events.records import ConsentEvent, UsageEvent
from consentinel.streams.events.settings import Secret

TEST_PEPPER = b"consentinel-testkit-pepper-0000"


@dataclass(frozen=True)
class Sample:
    name: str
    request: Request  # a VALID, correctly signed request (exact raw body)
    usage: int = 0  # expected number of UsageEvents
    consent: int = 0  # expected number of ConsentEvents


@dataclass(frozen=True)
class ConnectorCase:
    connector: str  # registry name, e.g. "mandrill"
    instance: Instance  # secrets as settings.Secret
    samples: tuple[Sample, ...]  # at least one
    sign: Callable[[Request, Instance], Request]  # re-sign a modified request
    malformed: tuple[bytes, ...] = ()  # extra raw bodies that must end in InvalidInput
    signed_parts: tuple[str, ...] = ("body",)  # "body", "url", "timestamp", "header:x"...
    rows: tuple[Mapping[str, Any], ...] = ()  # file-import rows, if the connector imports
    signature: str | None = None  # where the signature/secret is; None = look for it


# -- helpers for test authors ------------------------------------------------------------


class RecordingEdge(Edge):
    """An ``Edge`` that remembers every raw value a connector asked to key (tests only)."""

    def __init__(self, pseudonymizer: Pseudonymizer, default_region: str = "FR") -> None:
        super().__init__(pseudonymizer, default_region)
        self.seen: list[str] = []

    def address(self, raw: str, channel: str, region: str | None = None) -> Any:
        if isinstance(raw, str):
            self.seen.append(raw)
        return super().address(raw, channel, region)


def make_edge(default_region: str = "FR") -> RecordingEdge:
    """An edge with the fixed test pepper."""
    return RecordingEdge(Pseudonymizer(TEST_PEPPER), default_region)


def instance(
    connector: str,
    *,
    name: str | None = None,
    controller: str = "acme-test",
    tenant: str = "test",
    default_region: str = "FR",
    secrets: Mapping[str, str | bytes] | None = None,
    options: Mapping[str, Any] | None = None,
    purpose_map: Mapping[str, str] | None = None,
    public_url: str = "",
) -> Instance:
    """An ``Instance`` for tests, secrets given as plain text (wrapped in ``Secret``)."""
    wrapped = {
        k: Secret(v.encode("utf-8") if isinstance(v, str) else v)
        for k, v in (secrets or {}).items()
    }
    return Instance(
        name=name or f"{connector}-test",
        type=connector,
        controller=controller,
        tenant=tenant,
        default_region=default_region,
        purpose_map=dict(purpose_map or {}),
        secrets=wrapped,
        options=dict(options or {}),
        public_url=public_url,
    )


def with_body(request: Request, body: bytes) -> Request:
    """The same request with another raw body (Content-Length adjusted when present)."""
    headers = dict(request.headers)
    if "content-length" in headers:
        headers["content-length"] = str(len(body))
    return dataclasses.replace(request, body=body, headers=headers)


def with_url(request: Request, url: str) -> Request:
    """The same request with another URL; ``query`` follows it, ``path`` keeps its tail."""
    old, new = urlsplit(request.url), urlsplit(url)
    path = request.path
    if old.path != new.path and path and old.path.endswith(path):
        cut = len(old.path) - len(path)
        path = new.path[cut:] if new.path[:cut] == old.path[:cut] else path
    return dataclasses.replace(
        request, url=url, path=path, query=parse_qs(new.query, keep_blank_values=True)
    )


def build_connector(case: ConnectorCase, edge: Edge | None = None) -> Connector:
    """A fresh connector object for the case (resolved through the registry)."""
    from consentinel.connectors import registry

    return registry.connector_class(case.instance)(case.instance, edge or make_edge())


def all_events(output: Output) -> list[UsageEvent | ConsentEvent]:
    return [*output.usage, *output.consent]
