"""The console's and the router's OpenAPI documents match their real aiohttp routes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from consentinel.streams.alerts import config as router_config
from consentinel.streams.alerts import console
from consentinel.streams.alerts.openapi import console_document, router_document
from consentinel.streams.alerts.router import Router
from consentinel.streams.alerts.store import IncidentStore
from consentinel.streams.events import codec

TOKEN = "test-token-0123456789abcdef"
_METHODS = {"get", "post", "put", "patch", "delete"}


def _served(app: web.Application) -> set[tuple[str, str]]:
    """(METHOD, path template) of every route the app answers (HEAD rides along GET)."""
    out = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        canonical = route.resource.canonical if route.resource is not None else ""
        out.add((route.method, canonical))
    return out


def _documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method in item
        if method in _METHODS
    }


def _router(make_settings) -> Router:
    cfg = router_config.RouterConfig(console_url="http://127.0.0.1:8686")
    return Router(make_settings(), cfg, metrics_port=0)


def _console(make_settings, tmp_path: Path) -> tuple[web.Application, IncidentStore]:
    store = IncidentStore(tmp_path / "incidents.db")
    return console.make_app(make_settings(), store, []), store


def test_the_console_document_lists_exactly_the_console_routes(make_settings, tmp_path) -> None:
    app, store = _console(make_settings, tmp_path)
    try:
        served, documented = _served(app), _documented(console_document())
        assert served - documented == set(), "routes missing from the console's OpenAPI"
        assert documented - served == set(), "documented routes the console does not serve"
    finally:
        store.close()


def test_the_router_document_lists_exactly_the_router_routes(make_settings) -> None:
    router = _router(make_settings)
    try:
        served, documented = _served(router.ops_app()), _documented(router_document())
        assert served - documented == set(), "routes missing from the router's OpenAPI"
        assert documented - served == set(), "documented routes the router does not serve"
    finally:
        router.store.close()


def test_the_walk_sees_a_route_added_without_documentation(make_settings, tmp_path) -> None:
    app, store = _console(make_settings, tmp_path)
    try:

        async def forget(_: web.Request) -> web.Response:
            return web.Response()

        app.router.add_delete("/api/incidents/{incident_id}", forget)
        assert ("DELETE", "/api/incidents/{incident_id}") in _served(app) - _documented(
            console_document()
        )
    finally:
        store.close()


@pytest.mark.parametrize("doc", [console_document(), router_document()], ids=["console", "router"])
def test_documents_are_well_formed(doc: dict[str, Any]) -> None:
    assert doc["openapi"].startswith("3.") and doc["info"]["title"] and doc["info"]["version"]
    schemas = doc["components"]["schemas"]
    refs = re.findall(r'"\$ref":"#/components/schemas/([^"]+)"', codec.dumps(doc).decode())
    assert refs and set(refs) <= set(schemas), set(refs) - set(schemas)
    for path, item in doc["paths"].items():
        declared = {p["name"] for p in item.get("parameters", []) if p["in"] == "path"}
        for method in set(item) & _METHODS:
            op = item[method]
            declared_here = declared | {
                p["name"] for p in op.get("parameters", []) if p["in"] == "path"
            }
            assert set(re.findall(r"{(\w+)}", path)) == declared_here, (path, method)
            assert op["summary"] and "200" in op["responses"], (path, method)
    # the model's fields are in the document: a field added to Incident shows up
    assert {"incident_key", "rules", "alert_count"} <= set(schemas["Incident"]["properties"])
    assert set(schemas["RuleCount"]["properties"]) == {
        "rule_id", "rule_source", "severity", "alerts", "resolved_alerts"
    }  # fmt: skip


async def test_the_console_serves_its_document_behind_the_token(make_settings, tmp_path) -> None:
    app, store = _console(make_settings, tmp_path)
    try:
        async with TestClient(TestServer(app)) as client:
            resp = await client.get("/api/openapi.json")
            assert resp.status == 401
            resp = await client.get(
                "/api/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}
            )
            assert resp.status == 200
            assert codec.loads(await resp.read()) == codec.loads(codec.dumps(console_document()))
    finally:
        store.close()


async def test_the_router_serves_its_document(make_settings) -> None:
    router = _router(make_settings)
    try:
        async with TestClient(TestServer(router.ops_app())) as client:
            resp = await client.get("/openapi.json")
            assert resp.status == 200
            doc = codec.loads(await resp.read())
            assert set(doc["paths"]) == {"/metrics", "/healthz", "/openapi.json"}
            assert "X-Consentinel-Signature" in codec.dumps(doc["webhooks"]).decode()
    finally:
        router.store.close()
