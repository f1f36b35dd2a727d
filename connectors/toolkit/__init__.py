"""The connector toolkit: what every connector needs beside the contract.

- :class:`Emitter`: canonical events for every channel, ids from the platform's identity
  (``Emitter.proven``: a consent whose proof was collected when it occurred;
  ``Emitter.usages``: a report's usage with the send it implies; ``Emitter.scoped``: a
  consent scoped to one of the platform's lists; ``Emitter.at``: an :class:`Occurrence`, the
  events of one platform event about one address; ``vendor_purposes=``:
  the platform's purpose ids mapped by :func:`map_purposes`);
- :mod:`.times`: event times with one set of bounds (2000..2100);
- :mod:`.fields`: a JSON-object body through the one codec, integers that cannot overflow,
  identifiers (string or int64), short vendor texts and export-row cells;
- :func:`secrets`: an instance's secret with its ``<name>_previous`` during rotation, and
  :func:`rotating_secret`, the two options that declare it;
- :mod:`.options`: options declared in one line (:func:`option`), read as text
  (:func:`option_text`), checked at start with every problem listed (:func:`mapping_option`,
  :func:`check_options`);
- :func:`received_ms`: the receive time of a request (the one clock otherwise);
- :func:`map_items`: a batch mapped item by item, bad items refused one by one;
  :func:`map_all`: a page of records mapped whole.

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
from consentinel.connectors.toolkit.batch import map_all, map_batch, map_items
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
    ident,
    json_body,
    json_object,
    nested_form,
    short_text,
)
from consentinel.connectors.toolkit.occurrence import Occurrence
from consentinel.connectors.toolkit.options import (
    check_options,
    mapping_option,
    option,
    option_text,
)
from consentinel.connectors.toolkit.secrets import rotating_secret, secrets

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
    "Occurrence",
    "Output",
    "Request",
    "Response",
    "bounded_int",
    "check_options",
    "clean_attributes",
    "fields",
    "first_cell",
    "ident",
    "json_body",
    "json_object",
    "map_all",
    "map_batch",
    "map_items",
    "map_purposes",
    "mapping_option",
    "nested_form",
    "option",
    "option_text",
    "received_ms",
    "rotating_secret",
    "secrets",
    "sending_domain",
    "short_text",
    "times",
]
