"""The console's panels: flows, consent coverage and pipeline health, read from the
``/metrics`` endpoints of the worker and the ingest server (and any other URL given).

Counters are totals since each process started, summed over every endpoint (several worker
processes add up). Quantiles are estimated from the histogram buckets the way Prometheus's
``histogram_quantile`` does. Nothing here carries an address: metric labels never do.

What blocks: ``MetricsReader.read`` awaits HTTP requests, each bounded by ``timeout_s``; an
endpoint that does not answer is reported as down, never raised.
"""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

Labels = dict[str, str]
Samples = dict[str, list[tuple[Labels, float]]]


@dataclass
class Endpoint:
    url: str
    ok: bool
    error: str | None = None
    series: int = 0


def parse(text: str, into: Samples) -> int:
    """Add every sample of an exposition ``text`` to ``into`` (by sample name)."""
    n = 0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            into.setdefault(s.name, []).append((dict(s.labels), float(s.value)))
            n += 1
    return n


def total(
    samples: Samples, name: str, by: Sequence[str] = (), **match: str
) -> dict[tuple[str, ...], float]:
    """Sum of ``name`` grouped by the ``by`` labels, over samples whose labels ``match``."""
    out: dict[tuple[str, ...], float] = defaultdict(float)
    for labels, value in samples.get(name, []):
        if all(labels.get(k) == v for k, v in match.items()) and not math.isnan(value):
            out[tuple(labels.get(k, "") for k in by)] += value
    return dict(out)


def quantile(samples: Samples, name: str, q: float) -> float | None:
    """``histogram_quantile(q, sum by (le) (name_bucket))`` over cumulative totals."""
    buckets: dict[float, float] = defaultdict(float)
    for labels, value in samples.get(f"{name}_bucket", []):
        buckets[float(labels["le"])] += value
    if not buckets:
        return None
    bounds = sorted(buckets)
    count = buckets[bounds[-1]]
    if count <= 0:
        return None
    rank = q * count
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        if buckets[bound] >= rank:
            if math.isinf(bound):
                return lower_bound  # as Prometheus: the highest finite bound
            width = buckets[bound] - lower_count
            frac = (rank - lower_count) / width if width else 1.0
            return lower_bound + (bound - lower_bound) * frac
        lower_bound, lower_count = bound, buckets[bound]
    return lower_bound


def _rows(values: dict[tuple[str, ...], float], keys: Sequence[str]) -> list[dict[str, Any]]:
    rows = [{**dict(zip(keys, k, strict=True)), "count": v} for k, v in values.items()]
    return sorted(rows, key=lambda r: (-r["count"], *[r[k] for k in keys]))


def _topic_kind(topic: str) -> str:
    for kind in ("usage", "consent", "registry", "verdicts", "alerts", "deadletter"):
        if f".{kind}." in f".{topic}." or topic.endswith(kind) or f"{kind}.v" in topic:
            return kind
    return topic


def summarize(samples: Samples) -> dict[str, Any]:
    """The three panels from the samples of every endpoint."""
    consumed = total(samples, "consentinel_events_consumed_total", ("topic", "source", "channel"))
    flows: dict[tuple[str, ...], float] = defaultdict(float)
    for (topic, source, channel), v in consumed.items():
        flows[(_topic_kind(topic), source, channel)] += v
    verdicts = {
        k[0]: v for k, v in total(samples, "consentinel_verdicts_total", ("decision",)).items()
    }
    decided = sum(v for d, v in verdicts.items() if d != "pending")
    findings = total(samples, "consentinel_verdicts_total", ("rule", "decision"))
    return {
        "flows": {
            "consumed": _rows(flows, ("kind", "source", "channel")),
            "requests": _rows(
                total(samples, "consentinel_ingest_requests_total", ("instance", "outcome")),
                ("instance", "outcome"),
            ),
            "records": _rows(
                total(samples, "consentinel_ingest_events_total", ("instance", "record")),
                ("instance", "record"),
            ),
        },
        "coverage": {
            "verdicts": verdicts,
            "decided": decided,
            "share_with_consent": (verdicts.get("allowed", 0.0) / decided) if decided else None,
            "findings": _rows(
                {k: v for k, v in findings.items() if k[1] in ("violation", "warning")},
                ("rule", "decision"),
            ),
            "alerts": _rows(
                total(samples, "consentinel_alerts_total", ("rule", "severity")),
                ("rule", "severity"),
            ),
            "by_controller": _rows(
                total(samples, "consentinel_alerts_by_controller_total", ("controller",)),
                ("controller",),
            ),
            "corrections": sum(total(samples, "consentinel_corrections_total").values()),
        },
        "health": {
            "consumer_lag": {
                k[0]: v for k, v in _max(samples, "consentinel_consumer_lag", "topic").items()
            },
            "pending": _sum_or_none(samples, "consentinel_pending_usages"),
            "ledger_subjects": _sum_or_none(samples, "consentinel_ledger_subjects"),
            "ledger_versions": _sum_or_none(samples, "consentinel_ledger_versions"),
            "declarations": _max_or_none(samples, "consentinel_registry_declarations"),
            "event_to_verdict": _latency(samples, "consentinel_event_to_verdict_seconds"),
            "ingest_latency": _latency(samples, "consentinel_ingest_latency_seconds"),
            "deadletters": _rows(
                total(samples, "consentinel_deadletters_total", ("source", "reason")),
                ("source", "reason"),
            ),
            "worker_deadletters": _rows(
                total(samples, "consentinel_worker_deadletters_total", ("topic", "reason")),
                ("topic", "reason"),
            ),
            "auth_failures": _rows(
                total(samples, "consentinel_ingest_auth_failures_total", ("instance", "reason")),
                ("instance", "reason"),
            ),
            "sink_backlog": {
                k[0]: v for k, v in _max(samples, "consentinel_sink_backlog", "sink").items()
            },
        },
    }


def _max(samples: Samples, name: str, label: str) -> dict[tuple[str], float]:
    out: dict[tuple[str], float] = {}
    for labels, value in samples.get(name, []):
        key = (labels.get(label, ""),)
        out[key] = max(out.get(key, value), value)
    return out


def _sum_or_none(samples: Samples, name: str) -> float | None:
    found = samples.get(name)
    return None if not found else sum(v for _, v in found)


def _max_or_none(samples: Samples, name: str) -> float | None:
    found = samples.get(name)
    return None if not found else max(v for _, v in found)


def _latency(samples: Samples, name: str) -> dict[str, float | None]:
    count = _sum_or_none(samples, f"{name}_count")
    return {
        "count": count,
        "p50": quantile(samples, name, 0.5),
        "p99": quantile(samples, name, 0.99),
    }


class MetricsReader:
    """Reads the endpoints; one ``aiohttp`` session for the console's lifetime."""

    def __init__(
        self, urls: Sequence[str], timeout_s: float = 3.0, token: bytes | None = None
    ) -> None:
        self.urls = list(urls)
        self._headers = {"Authorization": f"Bearer {token.decode()}"} if token else {}
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _fetch(self, url: str, into: Samples) -> Endpoint:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        try:
            async with self._session.get(url, headers=self._headers) as resp:
                if resp.status != 200:
                    return Endpoint(url, False, f"answered HTTP {resp.status}")
                text = await resp.text()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            reason = str(exc) or type(exc).__name__
            return Endpoint(url, False, f"not reachable ({reason})")
        try:
            part: Samples = {}
            n = parse(text, part)
        except Exception as exc:  # a malformed exposition is the endpoint's fault
            return Endpoint(url, False, f"not Prometheus text format ({exc})")
        for name, values in part.items():
            into.setdefault(name, []).extend(values)
        return Endpoint(url, True, None, n)

    async def read(self) -> dict[str, Any]:
        samples: Samples = {}
        endpoints = await asyncio.gather(*(self._fetch(u, samples) for u in self.urls))
        out = summarize(samples)
        out["endpoints"] = [e.__dict__ for e in endpoints]
        return out
