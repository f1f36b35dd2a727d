"""The console's and the router's HTTP APIs as OpenAPI 3.1 documents.

Built as dicts and served as JSON through the codec: the console at ``/api/openapi.json``,
the router at ``/openapi.json`` beside ``/metrics``. Each sits behind the same rule as the
routes it describes (the console token; the router's optional metrics token): the document
is harmless, but one rule per server is easier to reason about than exceptions to it.

The record schemas (``Incident``, ``Transition``, ``Stats``) are derived from the model's
dataclasses, so a field added there appears here. A test walks the real aiohttp routes and
fails when a route is missing from a document or documented but absent.

Nothing here blocks or raises: the documents are plain data built once.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Mapping
from typing import Any

from .console_evidence import FIELDS
from .model import Incident, RuleCount, Stats, Transition
from .openapi_subjects import subject_paths
from .sinks.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1"


def json_schema(tp: Any, components: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of a Python annotation; dataclasses become ``components`` entries."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        schema = json_schema(inner[0], components) if len(inner) == 1 else {}
        if len(inner) != 1:
            schema = {"anyOf": [json_schema(a, components) for a in inner]}
        return {"anyOf": [schema, {"type": "null"}]} if type(None) in args else schema
    if origin in (tuple, list) or tp in (tuple, list):
        item = args[0] if args else Any
        return {"type": "array", "items": json_schema(item, components)}
    if origin in (dict, Mapping) or tp is dict:
        value = args[1] if len(args) == 2 else Any
        return {"type": "object", "additionalProperties": json_schema(value, components)}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"type": "string", "enum": [m.value for m in tp]}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if tp.__name__ not in components:
            components[tp.__name__] = {}  # placeholder: a recursive reference terminates
            hints = typing.get_type_hints(tp)
            fields = dataclasses.fields(tp)
            components[tp.__name__] = {
                "type": "object",
                "description": (tp.__doc__ or "").strip().split("\n\n")[0],
                "properties": {f.name: json_schema(hints[f.name], components) for f in fields},
                "required": [f.name for f in fields],
            }
        return {"$ref": f"#/components/schemas/{tp.__name__}"}
    simple = {bool: "boolean", int: "integer", float: "number", str: "string"}
    if tp in simple:
        return {"type": simple[tp]}
    return {}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _text(media: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": {"type": "string"}}}}


_PROBLEM = {
    "type": "object",
    "properties": {"error": {"type": "string", "description": "what to do, for a person"}},
}
_INCIDENT_ID = {
    "name": "incident_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,128}$"},
}
_401 = _text("text/plain", "no valid token (the answer says how to give one)")


def _problem(description: str) -> dict[str, Any]:
    return _json({"$ref": "#/components/schemas/Problem"}, description)


def _get(summary: str, ok: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"get": {"summary": summary, "responses": {"200": ok, "401": _401}, **extra}}


def _lifecycle(step: str) -> dict[str, Any]:
    body = {
        "type": "object",
        "required": ["who"],
        "properties": {
            "who": {"type": "string", "maxLength": 100, "description": "the operator's name"},
            "note": {"type": "string", "maxLength": 2000},
        },
    }
    return {
        "post": {
            "summary": f"{step} an incident (recorded with the operator's name)",
            "parameters": [_INCIDENT_ID],
            "security": [{"bearer": []}, {"session": [], "csrf": []}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": {
                "200": _json(
                    {"type": "object", "properties": {"incident": _INCIDENT_REF}},
                    "the incident after the step",
                ),
                "400": _problem("no name, a name that looks like an address, or not JSON"),
                "401": _text("text/plain", "no valid token, or a cookie without the CSRF value"),
                "404": _problem("no such incident"),
                "409": _problem("the incident cannot take this step (e.g. already resolved)"),
            },
        }
    }


_INCIDENT_REF = {"$ref": "#/components/schemas/IncidentView"}


def console_document() -> dict[str, Any]:
    """The operator console's API (``consentinel console``)."""
    components: dict[str, Any] = {}
    json_schema(Incident, components)
    json_schema(Stats, components)
    components["IncidentView"] = {
        "allOf": [
            {"$ref": "#/components/schemas/Incident"},
            {
                "type": "object",
                "properties": {
                    "is_open": {"type": "boolean"},
                    "opened_at": {"type": "string", "format": "date-time"},
                    "last_seen": {"type": "string", "format": "date-time"},
                },
            },
        ],
        "description": "An incident as the console shows it (raw addresses scrubbed).",
    }
    components["EvidenceItem"] = {
        "type": "object",
        "description": "One alert as evidence; addresses only as masked hints.",
        "properties": {name: {} for name in FIELDS},
    }
    components["Problem"] = _PROBLEM
    evidence = {
        "type": "object",
        "properties": {
            "exported_at": {"type": "string", "format": "date-time"},
            "incident": _INCIDENT_REF,
            "evidence_count": {"type": "integer"},
            "evidence": {"type": "array", "items": {"$ref": "#/components/schemas/EvidenceItem"}},
            "shown": {"type": "integer", "description": "items in this answer (at most 500)"},
        },
    }
    page = _text("text/html", "the console page")
    paths: dict[str, Any] = {
        "/": _get("the console page", page),
        "/incidents/{incident_id}": _get("the console page, opened on one incident", page)
        | {"parameters": [_INCIDENT_ID]},
        "/static/{name}": _get(
            "the page's script, style sheet and icons",
            _text("text/javascript", "the file (JavaScript, CSS or SVG)"),
        )
        | {"parameters": [{"name": "name", "in": "path", "required": True, "schema": {}}]},
        "/api/health": _get(
            "the console is up; the change feed's head",
            _json(
                {
                    "type": "object",
                    "properties": {"ok": {"type": "boolean"}, "feed_head": {"type": "integer"}},
                },
                "up",
            ),
        ),
        "/api/incidents": _get(
            "incidents, most recently active first",
            _json(
                {
                    "type": "object",
                    "properties": {
                        "last_seq": {"type": "integer", "description": "resume the feed here"},
                        "incidents": {"type": "array", "items": _INCIDENT_REF},
                    },
                },
                "the incidents",
            ),
            parameters=[
                {
                    "name": "status",
                    "in": "query",
                    "schema": {"enum": ["open", "acknowledged", "resolved", "active"]},
                },
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 200},
                },
            ],
        ),
        "/api/incidents/{incident_id}": _get(
            "one incident with its evidence (the first 500 alerts)",
            _json(evidence, "the incident and its evidence"),
        )
        | {"parameters": [_INCIDENT_ID]},
        "/api/incidents/{incident_id}/acknowledge": _lifecycle("acknowledge"),
        "/api/incidents/{incident_id}/resolve": _lifecycle("resolve"),
        "/api/incidents/{incident_id}/evidence.{fmt}": _get(
            "the evidence as a file to download (CSV cells quoted against formulas)",
            {
                "description": "the evidence (Content-Disposition: attachment)",
                "content": {
                    "text/csv": {"schema": {"type": "string"}},
                    "application/json": {"schema": evidence},
                },
            },
        )
        | {
            "parameters": [
                _INCIDENT_ID,
                {
                    "name": "fmt",
                    "in": "path",
                    "required": True,
                    "schema": {"enum": ["csv", "json"]},
                },
            ]
        },
        "/api/incidents/{incident_id}/evidence-pack": _get(
            "the signed evidence pack (one canonical JSON file: parts, SHA-256 manifest, "
            "Ed25519 signature; check it with `consentinel evidence verify`)",
            _text("application/json", "the pack (Content-Disposition: attachment)"),
        )
        | {
            "parameters": [
                _INCIDENT_ID,
                {
                    "name": "case",
                    "in": "query",
                    "required": True,
                    "schema": {"type": "string", "maxLength": 200},
                    "description": "the operator's case reference, carried in the pack",
                },
            ]
        },
        "/api/stats": _get(
            "incident counts by status, rule and severity; sink backlogs",
            _json({"$ref": "#/components/schemas/Stats"}, "the counts"),
        ),
        "/api/panels": _get(
            "flows, consent coverage and pipeline health, read from the /metrics endpoints",
            _json({"type": "object"}, "the panels' figures"),
        ),
        "/api/feed": _get(
            "live changes as server-sent events (event: hello | change | resync); resume "
            "with Last-Event-ID or ?since=",
            _text("text/event-stream", "the stream"),
            parameters=[{"name": "since", "in": "query", "schema": {"type": "integer"}}],
        ),
        "/api/openapi.json": _get("this document", _json({"type": "object"}, "OpenAPI 3.1")),
        **subject_paths(),
    }
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "consentinel operator console",
            "version": API_VERSION,
            "description": (
                "Every route needs the console token (CONSENTINEL_TOKEN): "
                "`Authorization: Bearer <token>`, or open `/?token=<token>` once in a "
                "browser, which sets the session cookie and redirects without the token. A "
                "change sent with the cookie must carry the page's CSRF value."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "consentinel_console"},
                "csrf": {"type": "apiKey", "in": "header", "name": "X-Consentinel-CSRF"},
            },
        },
        "security": [{"bearer": []}, {"session": []}],
    }


def router_document() -> dict[str, Any]:
    """The alert router's API (``/metrics``, ``/healthz``) and the webhook it sends."""
    components: dict[str, Any] = {}
    incident = json_schema(Incident, components)
    json_schema(Transition, components)
    json_schema(RuleCount, components)
    notification = {
        "type": "object",
        "properties": {
            "idempotency_key": {"type": "string", "description": "<incident_id>:<revision>"},
            "kind": {"type": "string", "description": "what changed (opened, resolved, ...)"},
            "link": {"type": "string", "description": "the incident in the console"},
            "notified_at": {"type": "string", "format": "date-time"},
            "incident": incident,
        },
    }
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "consentinel alert router",
            "version": API_VERSION,
            "description": (
                "Operational endpoints, on 127.0.0.1 unless CONSENTINEL_METRICS_HOST says "
                "otherwise; when CONSENTINEL_METRICS_TOKEN is set, every request needs "
                "`Authorization: Bearer <token>`."
            ),
        },
        "paths": {
            "/metrics": _get(
                "Prometheus metrics (text exposition format)",
                _text("text/plain", "the metrics of the catalog"),
            ),
            "/healthz": _get(
                "the router is up; undelivered notifications per sink",
                _json(
                    {
                        "type": "object",
                        "properties": {
                            "ok": {"type": "boolean"},
                            "backlog": {
                                "type": "object",
                                "additionalProperties": {"type": "integer"},
                            },
                        },
                    },
                    "up",
                ),
            ),
            "/openapi.json": _get("this document", _json({"type": "object"}, "OpenAPI 3.1")),
        },
        "webhooks": {
            "incident": {
                "post": {
                    "summary": "what a `type: webhook` sink POSTs to its url on every change",
                    "parameters": [
                        {
                            "name": SIGNATURE_HEADER,
                            "in": "header",
                            "required": True,
                            "description": "sha256=<hex>: HMAC-SHA256(secret, "
                            "<timestamp> + '.' + <raw body>); compare in constant time",
                            "schema": {"type": "string"},
                        },
                        {
                            "name": TIMESTAMP_HEADER,
                            "in": "header",
                            "required": True,
                            "description": "Unix seconds of this attempt; refuse old ones",
                            "schema": {"type": "string"},
                        },
                        {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}},
                    ],
                    "requestBody": {"content": {"application/json": {"schema": notification}}},
                    "responses": {"2XX": {"description": "delivered (anything else is retried)"}},
                }
            }
        },
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}, {}],
    }
