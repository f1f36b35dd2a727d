"""The connector toolkit: what every connector needs beside the contract.

- :class:`Emitter`: canonical events for every channel, ids from the platform's identity
  (``Emitter.proven``: a consent whose proof was collected when it occurred;
  ``Emitter.usages``: a report's usage with the send it implies; ``vendor_purposes=``:
  the platform's purpose ids mapped by :func:`map_purposes`);
- :mod:`.times`: event times with one set of bounds (2000..2100);
- :mod:`.fields`: a JSON-object body through the one codec, integers that cannot overflow,
  short vendor texts and export-row cells;
- :func:`secrets`: an instance's secret with its ``<name>_previous`` during rotation;
- :func:`received_ms`: the receive time of a request (the one clock otherwise);
- :func:`map_items`: a batch mapped item by item, bad items refused one by one.

Request helpers (``with_headers``, ``with_query``, ``with_body``) are methods of
``contract.Request``. The contract's names a connector uses are here too, so a connector
module needs one import, ``from consentinel.connectors import toolkit as tk``, and reads
``tk.Connector``, ``tk.Request``, ``tk.Output``.
"""

from consentinel.connectors.contract import (
    Address,
    AuthConfigError,
    ConfigField,
    Connector,
    Edge,
    Instance,
    ItemRejected,
    Output,
    Request,
    Response,
    sending_domain,
)
from consentinel.connectors.toolkit import fields, times
from consentinel.connectors.toolkit.batch import map_batch, map_items
from consentinel.connectors.toolkit.emitter import (
    MAX_ATTR,
    Emitter,
    clean_attributes,
    map_purposes,
    received_ms,
)
from consentinel.connectors.toolkit.fields import (
    bounded_int,
    first_cell,
    json_body,
    json_object,
    short_text,
)
from consentinel.connectors.toolkit.secrets import secrets

__all__ = [
    "MAX_ATTR",
    "Address",
    "AuthConfigError",
    "ConfigField",
    "Connector",
    "Edge",
    "Emitter",
    "Instance",
    "ItemRejected",
    "Output",
    "Request",
    "Response",
    "bounded_int",
    "clean_attributes",
    "fields",
    "first_cell",
    "json_body",
    "json_object",
    "map_batch",
    "map_items",
    "map_purposes",
    "received_ms",
    "secrets",
    "sending_domain",
    "short_text",
    "times",
]
