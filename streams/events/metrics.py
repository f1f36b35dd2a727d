"""The one catalog of metrics, shared by every process of consentinel.

Dashboards and alerting rules are checked against ``CATALOG`` by a test, so a renamed
metric cannot leave a panel empty. Labels are bounded: connector instances, topics,
channels, rules, decisions, reasons, sinks. Never a subject, an address or a free-form id.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

_LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)


@dataclass(frozen=True, slots=True)
class MetricDef:
    name: str  # as exposed (counters end in _total)
    kind: str  # counter | gauge | histogram
    doc: str
    labels: tuple[str, ...]


CATALOG: dict[str, MetricDef] = {}


def _def(kind: str, name: str, doc: str, labels: tuple[str, ...] = ()) -> MetricDef:
    d = MetricDef(name, kind, doc, labels)
    CATALOG[name] = d
    return d


def _counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
    _def("counter", name, doc, labels)
    return Counter(name.removesuffix("_total"), doc, labels, registry=REGISTRY)


def _gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
    _def("gauge", name, doc, labels)
    return Gauge(name, doc, labels, registry=REGISTRY)


def _histogram(name: str, doc: str, labels: tuple[str, ...] = ()) -> Histogram:
    _def("histogram", name, doc, labels)
    return Histogram(name, doc, labels, registry=REGISTRY, buckets=_LATENCY_BUCKETS)


# -- stream processors --------------------------------------------------------------------
EVENTS_CONSUMED = _counter(
    "consentinel_events_consumed_total",
    "Events consumed by the workers, by topic, source (connector instance) and channel.",
    ("topic", "source", "channel"),
)
VERDICTS = _counter(
    "consentinel_verdicts_total", "Verdicts emitted, by decision and rule.", ("decision", "rule")
)
ALERTS = _counter(
    "consentinel_alerts_total", "Alerts emitted, by rule and severity.", ("rule", "severity")
)
ALERTS_BY_CONTROLLER = _counter(
    "consentinel_alerts_by_controller_total",
    "Alerts emitted, by controller, rule and severity. Controllers are configured entities "
    "(connector instances and registry declarations name them), so the label is bounded; "
    "increment it wherever ``ALERTS`` is incremented.",
    ("controller", "rule", "severity"),
)
CORRECTIONS = _counter(
    "consentinel_corrections_total", "Alerts resolved by a later consent (corrections).", ("rule",)
)
PENDING = _gauge("consentinel_pending_usages", "Usage events held pending consent (grace period).")
TICKS_SKIPPED = _counter(
    "consentinel_ticks_skipped_total",
    "Grace-period ticks not sent (no partition, registry unread, end offsets unreadable); "
    "held uses wait while it grows.",
)
LEDGER_SUBJECTS = _gauge(
    "consentinel_ledger_subjects", "Subjects with a consent history held by this worker."
)
LEDGER_VERSIONS = _gauge(
    "consentinel_ledger_versions", "Consent versions held by this worker (all subjects)."
)
REGISTRY_DECLARATIONS = _gauge(
    "consentinel_registry_declarations", "Purpose declarations in force."
)
EVENT_TO_VERDICT = _histogram(
    "consentinel_event_to_verdict_seconds",
    "Time from a usage event's receipt by a connector to its verdict.",
)
CONSUMER_LAG = _gauge(
    "consentinel_consumer_lag", "Messages not yet consumed, by topic.", ("topic",)
)
RECORDS_READ_BACK = _counter(
    "consentinel_records_read_back_total",
    "Records Faust's stream skipped (after a seek, a recovery or a rebalance) that the worker "
    "read back from the broker and judged, by topic. Growth is repaired, not lost; steady "
    "growth without restarts or rebalances is worth a look.",
    ("topic",),
)
CHANGELOG_RECORDS_RESTORED = _counter(
    "consentinel_changelog_records_restored_total",
    "Changelog records a worker read back into its state store when it took partitions over "
    "(a start without its state directory, a worker added or lost), by table. It grows in "
    "bursts at rebalances; while it grows, the partitions being restored are not judged.",
    ("table",),
)
CHANGELOG_SENDS_FAILED = _counter(
    "consentinel_changelog_sends_failed_total",
    "Changelog records of the workers' state that Kafka did not acknowledge. The batches "
    "that wrote them are not acknowledged, so their offsets are not committed: they are "
    "judged again after a restart. Any growth needs a look at the broker; the worker's "
    "commits stop at the first such batch until it is restarted.",
)
WORKER_DEADLETTERS = _counter(
    "consentinel_worker_deadletters_total",
    "Records the workers could not decode, by topic and reason.",
    ("topic", "reason"),
)

# -- connectors ---------------------------------------------------------------------------
INGEST_REQUESTS = _counter(
    "consentinel_ingest_requests_total",
    "Webhook requests by connector instance and outcome "
    "(accepted, unauthorized, invalid, unavailable, handshake).",
    ("instance", "outcome"),
)
AUTH_FAILURES = _counter(
    "consentinel_ingest_auth_failures_total",
    "Requests refused for authentication, by connector instance and reason.",
    ("instance", "reason"),
)
INGEST_EVENTS = _counter(
    "consentinel_ingest_events_total",
    "Canonical events produced by connectors, by connector instance and kind of record.",
    ("instance", "record"),
)
DEADLETTERS = _counter(
    "consentinel_deadletters_total",
    "Payloads sent to the dead-letter topic, by source and reason code.",
    ("source", "reason"),
)
INGEST_LATENCY = _histogram(
    "consentinel_ingest_latency_seconds",
    "Webhook handling time, receipt to Kafka acknowledgement, by connector instance.",
    ("instance",),
)
INGEST_SPOOL_EVENTS = _gauge(
    "consentinel_ingest_spool_events",
    "Records (events and dead letters) answered 2xx and kept in the ingest spool, waiting "
    "for Kafka.",
)
INGEST_SPOOL_BYTES = _gauge(
    "consentinel_ingest_spool_bytes", "Bytes of the ingest spool's entries waiting for Kafka."
)
INGEST_SPOOL_OLDEST_AGE = _gauge(
    "consentinel_ingest_spool_oldest_age_seconds",
    "Age of the oldest entry waiting in the ingest spool (0 when it is empty).",
)
INGEST_SPOOL_APPENDED = _counter(
    "consentinel_ingest_spool_appended_total",
    "Records written to the ingest spool because Kafka was away or slow.",
)
INGEST_SPOOL_FORWARDED = _counter(
    "consentinel_ingest_spool_forwarded_total",
    "Records forwarded from the ingest spool to Kafka (acknowledged).",
)
INGEST_BODY_BYTES_IN_FLIGHT = _gauge(
    "consentinel_ingest_body_bytes_in_flight",
    "Bytes of request bodies the ingest server holds at once (reserved by Content-Length).",
)
INGEST_ITEMS_REJECTED = _counter(
    "consentinel_ingest_items_rejected_total",
    "Items of accepted batches refused one by one and dead-lettered, by connector instance "
    "and reason code.",
    ("instance", "reason"),
)

# -- lead certificates (R23) ---------------------------------------------------------------
CERTIFICATE_RESULTS = _counter(
    "consentinel_certificate_results_total",
    "Lead certificates verified, by result: verified, expired, mismatch, or gave_up (no "
    "answer after the last retry: the use's hold runs out and raises R23).",
    ("status",),
)
CERTIFICATE_RETRIES = _counter(
    "consentinel_certificate_retries_total",
    "Verification calls retried after a transient fault (timeout, 429, 5xx).",
)

# -- alerts -------------------------------------------------------------------------------
INCIDENTS_OPEN = _gauge(
    "consentinel_incidents_open",
    "Open (unresolved) incidents by rule and severity.",
    ("rule", "severity"),
)
INCIDENT_TRANSITIONS = _counter(
    "consentinel_incident_transitions_total", "Incident lifecycle transitions.", ("status",)
)
SINK_BACKLOG = _gauge(
    "consentinel_sink_backlog", "Notifications waiting for delivery, by sink.", ("sink",)
)
SINK_DELIVERIES = _counter(
    "consentinel_sink_deliveries_total",
    "Notification attempts by sink and outcome.",
    ("sink", "outcome"),
)
