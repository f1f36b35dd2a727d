"""The conformance kit: every connector passes the same tests, from one line.

    from consentinel.connectors.testkit import ConnectorCase, Sample, conformance_suite

    TestMandrillConformance = conformance_suite(mandrill_case())

``conformance_suite`` returns a pytest test class. What it checks, for every connector:

- the class declares ``name`` (= ``case.connector``), ``title``, ``produces``, ``auth``, and
  the case's instance carries every required secret of ``config_schema``;
- every valid sample: ``handshake`` returns None, ``verify`` passes, ``map_request`` gives
  exactly ``sample.usage`` usage and ``sample.consent`` consent events;
- every event round-trips through the codec, names the instance as ``source``, carries a
  64-hex subject key, a controller and plausible times;
- redelivery: mapping the same sample twice (even by a new connector object) gives the
  same event ids; ids never repeat between samples (samples must be distinct events);
- no raw address anywhere in the encoded events: every e-mail and ``+``/``00`` phone
  number found in the raw body (also URL-decoded, JSON-unescaped, lowercased, normalized,
  E.164 with and without ``+``) and every value the connector passed to ``Edge.address``.
  A business address the connector reports as ``sender`` may appear in ``sender`` only;
- tampering: a one-character change of each ``case.signed_parts`` part and of the
  signature itself fails ``verify`` with ``AuthenticationFailed``; so does a missing one;
- malformed input, re-signed with ``case.sign`` so it is authentic: empty body, garbage
  bytes, truncated JSON/form, wrong types, missing addresses, huge and odd unicode values,
  plus ``case.malformed``. Outcomes allowed (the documented decision):

    * ``InvalidInput`` with a short machine code (``[a-z0-9_.]{1,64}``) and a message that
      repeats no address from the body, or
    * ``AuthenticationFailed`` from ``verify`` (a scheme that cannot sign that body), or
    * an ``Output`` whose events are all valid (a platform batch with unusable parts may
      still yield events) — except for undecodable input (empty body, garbage bytes,
      truncated JSON), which must give ``InvalidInput`` or an empty ``Output``
      (an empty ``Output`` means "the platform legitimately sends nothing here").

    Any other exception is a failure: it would be a 500 and a lost payload.
- file rows (``case.rows``): each maps to valid events with stable ids, and an empty or
  blank row gives ``InvalidInput`` (or no events).

Part names for ``signed_parts`` and ``signature``: ``"body"``, ``"url"``,
``"timestamp"`` (the one header whose name contains ``timestamp``), ``"header:<name>"``,
``"query:<name>"``, ``"form:<name>"`` and, for ``signature`` only, ``"json:<key>"`` (a
top-level key of a JSON body). When ``signature`` is None the kit looks for it: a header
named like ``*signature*``/``authorization``/``*token*``/``*sig``, URL credentials, a
query or form parameter named ``sig``/``signature``/``token``/``key``/``secret``.
"""

from __future__ import annotations

from consentinel.connectors.testkit.case import (
    TEST_PEPPER,
    ConnectorCase,
    RecordingEdge,
    Sample,
    all_events,
    build_connector,
    instance,
    make_edge,
    with_body,
    with_url,
)
from consentinel.connectors.testkit.malformed import (
    malformed_bodies,
)
from consentinel.connectors.testkit.privacy import (
    address_forms,
    assert_no_raw_address,
    assert_valid_events,
    raw_addresses,
)
from consentinel.connectors.testkit.suite import (
    conformance_suite,
)
from consentinel.connectors.testkit.tamper import (
    locate_signature,
    tamper,
)

__all__ = [
    "TEST_PEPPER",
    "ConnectorCase",
    "RecordingEdge",
    "Sample",
    "address_forms",
    "all_events",
    "assert_no_raw_address",
    "assert_valid_events",
    "build_connector",
    "conformance_suite",
    "instance",
    "locate_signature",
    "make_edge",
    "malformed_bodies",
    "raw_addresses",
    "tamper",
    "with_body",
    "with_url",
]
