"""Meta Lead Ads CSV export (Ads Manager / Leads Center "Download leads") as Graph lead
objects, so that one mapping (``meta_leads``) reads both.

A row's columns [U: from exports seen in Meta's help pages; not in connectors.md]: ``id``,
``created_time``, ``ad_id``, ``adset_id``, ``campaign_id``, ``form_id`` (ids may carry
Meta's type prefixes ``l:``, ``ag:``, ``as:``, ``c:``, ``f:``, which are dropped),
``is_organic``, ``platform``, one column per form question (``email``, ``phone_number``...:
only the address columns of ``meta_leads.EMAIL_FIELDS``/``PHONE_FIELDS`` are read, names and
free-text answers are left unread) and one column per consent checkbox, named by its key.

Which columns are checkboxes: the instance's ``export_consent_columns``, else every column
named like a key of its ``purpose_map`` (an unlisted checkbox gives no consent: it fails
closed).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from consentinel.connectors import toolkit as tk
from consentinel.connectors.builtin._leads import flag
from consentinel.connectors.builtin.meta_leads import EMAIL_FIELDS, PHONE_FIELDS

_ID_PREFIX = re.compile(r"^(?:l|ag|as|c|f|ad|p):(?=\d)")
_IDS = ("id", "form_id", "ad_id", "adset_id", "campaign_id")


def _cells(row: Mapping[str, Any]) -> dict[str, Any]:
    """The row with its column names trimmed and lowercased (exports vary in case)."""
    return {str(k).strip().lower(): v for k, v in row.items() if k is not None}


def consent_columns(
    row: Mapping[str, Any], listed: Iterable[str], mapped: Iterable[str]
) -> list[str]:
    """The row's checkbox columns: ``listed`` when given, else the ``mapped`` keys present."""
    names = [str(n).strip() for n in listed] or [str(n).strip() for n in mapped]
    cells = _cells(row)
    return [n for n in dict.fromkeys(names) if n.lower() in cells]


def lead_of_row(row: Mapping[str, Any], checkboxes: Iterable[str]) -> dict[str, Any]:
    """The Graph lead object of one export row (see the module text). Pure."""
    cells = _cells(row)
    lead: dict[str, Any] = {}
    for key in _IDS:
        value = tk.first_cell(cells, key)
        if value is not None:
            lead[key] = _ID_PREFIX.sub("", value)
    created = tk.first_cell(cells, "created_time")
    if created is not None:
        lead["created_time"] = created
    platform = tk.first_cell(cells, "platform")
    if platform is not None:
        lead["platform"] = platform
    if tk.first_cell(cells, "is_organic") is not None:
        lead["is_organic"] = flag(cells["is_organic"], "is_organic")
    addresses = EMAIL_FIELDS | PHONE_FIELDS
    lead["field_data"] = [
        {"name": name, "values": [value]}
        for name in sorted(addresses & cells.keys())
        if (value := tk.first_cell(cells, name)) is not None
    ]
    lead["custom_disclaimer_responses"] = [
        {"checkbox_key": name, "is_checked": cells.get(name.lower()) or ""} for name in checkboxes
    ]
    return lead
