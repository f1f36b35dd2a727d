"""The OpenAPI description of the console's data-subject lookup (``console_subjects``),
merged into ``openapi.console_document``. Plain data, built on each call."""

from __future__ import annotations

from typing import Any


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ROWS = {"type": "array", "items": {"type": "object"}}
_PROBLEM = {"$ref": "#/components/schemas/Problem"}


def subject_paths() -> dict[str, Any]:
    body = {
        "type": "object",
        "required": ["address", "who"],
        "properties": {
            "address": {
                "type": "string",
                "maxLength": 320,
                "description": "the e-mail address or phone number asked about (in the body, "
                "never in the URL: it stays out of access logs)",
            },
            "who": {"type": "string", "maxLength": 100, "description": "the operator's name"},
        },
    }
    found = {
        "type": "object",
        "description": "What is held about the subject; masked hints only, never the address.",
        "properties": {
            "subject_ref": {"type": "string", "description": "the start of the subject key"},
            "consent": _ROWS | {"description": "the consent history, oldest first"},
            "uses": _ROWS | {"description": "recent uses (as far as the usage topic keeps)"},
            "holds": _ROWS | {"description": "uses held: pending consent, or alerted"},
            "alerts": _ROWS | {"description": "alerts about the subject"},
            "incidents": _ROWS | {"description": "their incidents and statuses"},
        },
    }
    return {
        "/api/subjects/lookup": {
            "post": {
                "summary": "look one data subject up (written to the audit topic first, with "
                "the operator's name, as `consentinel subject show` is)",
                "security": [{"bearer": []}, {"session": [], "csrf": []}],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": body}},
                },
                "responses": {
                    "200": _json(found, "the subject's file"),
                    "400": _json(_PROBLEM, "not JSON, not an address, or no name"),
                    "401": {
                        "description": "no valid token, or a cookie without the CSRF value",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "503": _json(_PROBLEM, "Kafka does not answer: not audited, not shown"),
                },
            }
        }
    }
