"""Every dashboard panel returns data from a real Prometheus scraping a real run.

The real processes (`consentinel worker`, `ingest` with the demo connectors, `router` with a
webhook sink, `certificates verify` asking a local fake TrustedForm API, tests/streams/
fake_trustedform.py, about the demo's claimed lead certificates) run on the real broker
with a unique topic prefix; the demo feed posts its story (leads with certificates
included), plus what the demo does not: a webhook with a wrong token (authentication
failure), a payload that cannot be parsed (dead letter) and an undecodable record on the usage topic
(worker dead letter). A real `prometheus` scrapes the four /metrics endpoints every second
with the scrape configuration of dashboards/prometheus/prometheus.yml (honor_labels on the
ingest job) and loads the rules file. Then every panel's query, with Grafana's variables set
to "All" and its range to the whole run, is evaluated through Prometheus's HTTP API and must
return at least one finite value.

``GAPS`` names the metrics no scraped process emits yet, with why; a panel reading one must
return nothing (so the list cannot go stale: once the metric appears, this test says to
remove it from ``GAPS``).
"""

from __future__ import annotations

import http.server
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import promql  # tests/dashboards is on pytest's pythonpath
import pytest
import yaml
from fake_trustedform import KEY as TRUSTEDFORM_KEY  # tests/streams, on the pythonpath too
from fake_trustedform import FakeTrustedForm
from kafka import KafkaProducer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXE = Path(sys.executable).parent / "consentinel"
PROMETHEUS = "/usr/bin/prometheus"
CONNECTORS = ROOT / "deploy" / "demo" / "connectors.yaml"
REGISTRY = ROOT / "deploy" / "demo" / "registry.yaml"
RULES = ROOT / "dashboards" / "prometheus" / "consentinel.rules.yaml"
SCRAPE_EXAMPLE = ROOT / "dashboards" / "prometheus" / "prometheus.yml"
TIMEOUT_S = 300  # generous: 2 shared cores, a Faust worker starting

#: Metrics a panel uses that a real run cannot produce yet (each with why). (`consentinel
#: import` is a one-shot process, so no panel charts its lines: it prints its own summary.)
GAPS: dict[str, str] = {
    "consentinel_ingest_items_rejected_total": (
        "no built-in connector reports ItemRejected yet: the batch connectors (SendGrid, "
        "Mailjet, Mandrill, Brevo, declarative) are being converted"
    ),
}


def _free_port(span: int = 1) -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        try:
            for extra in range(1, span):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port + extra))
        except OSError:
            continue
        return port
    raise AssertionError("no free port range found")


def _wait_for(condition: Callable[[], Any], what: str, timeout_s: float = TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(1.0)


def _http(
    url: str, data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=15) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


class Procs:
    """The processes this test starts (each in its own session), and only those."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def run(self, *args: str, timeout_s: float = 180) -> None:
        with open(self.logs / f"{args[0]}.log", "ab") as log:
            done = subprocess.run(
                [str(EXE), *args], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                timeout=timeout_s, cwd=ROOT, check=False,
            )  # fmt: skip
        assert done.returncode == 0, f"consentinel {' '.join(args)}:\n{self.log(args[0])[-3000:]}"

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        with open(self.logs / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                start_new_session=True,
            )  # fmt: skip
        self.procs[name] = proc
        return proc

    def alive(self) -> bool:
        for name, proc in self.procs.items():
            if name != "demo" and proc.poll() is not None:
                raise AssertionError(
                    f"{name} exited with {proc.returncode}:\n{self.log(name)[-3000:]}"
                )
        return True

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=45)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)


class _Hook(http.server.BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self) -> None:
        self.received.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[str]:
    """A webhook receiver for the router's sink (so the sink metrics exist)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def _scrape_config(tmp: Path, worker: int, ingest: int, router: int, certificates: int) -> Path:
    """dashboards/prometheus/prometheus.yml with this run's ports and a 1 s interval."""
    config = yaml.safe_load(SCRAPE_EXAMPLE.read_text(encoding="utf-8"))
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(RULES)]
    ports = {
        "consentinel-worker": worker,
        "consentinel-ingest": ingest,
        "consentinel-router": router,
        "consentinel-certificates": certificates,
    }
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == set(ports), f"prometheus.yml jobs changed: {sorted(jobs)}"
    assert jobs["consentinel-ingest"].get("honor_labels") is True
    for name, port in ports.items():
        jobs[name]["static_configs"] = [{"targets": [f"127.0.0.1:{port}"]}]
        jobs[name]["scrape_timeout"] = "1s"
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _query(base: str, expr: str) -> list[dict[str, Any]]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    status, body = _http(url)
    assert status == 200, f"Prometheus refused {expr!r}: {body[:500]!r}"
    data = json.loads(body)
    assert data["status"] == "success", data
    result = data["data"]["result"]
    return result if isinstance(result, list) else [{"value": result}]


def _finite(result: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(r["value"][1])) for r in result)


def _mailchimp_token() -> str:
    return (ROOT / "deploy" / "demo" / "secrets" / "mailchimp-token").read_text().strip()


def test_every_panel_returns_data_from_a_real_run(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, hook: str
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    metrics_port, ingest_port, prom_port = _free_port(span=4), _free_port(), _free_port()
    issuer = FakeTrustedForm(page_url="https://jeux.example.net/grand-concours-2027")
    issuer.default = "verified"  # every demo lead's certificate names its partners
    # the demo's leads opted in 50 to 270 minutes ago: the issuer saw the forms before that
    issuer.created_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 5 * 3600))
    sinks = tmp_path / "sinks.yaml"
    sinks.write_text(
        yaml.safe_dump(
            {
                "sinks": [
                    {
                        "name": "oncall-hook",
                        "type": "webhook",
                        "url": hook,
                        "secret": "env:HOOK_SECRET",
                    }
                ]
            }
        ),
        encoding="utf-8",
    )
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CONSENTINEL_ENV": "test",
        "CONSENTINEL_HOME": str(tmp_path / "home"),
        "CONSENTINEL_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "CONSENTINEL_TOPIC_PREFIX": topic_prefix,
        "CONSENTINEL_APP_ID": f"prom{uuid.uuid4().hex[:6]}",
        "CONSENTINEL_PARTITIONS": "3",
        "CONSENTINEL_GRACE_SECONDS": "6",
        "CONSENTINEL_PEPPER": "prom-pepper-" + uuid.uuid4().hex,
        "CONSENTINEL_TOKEN": "prom-token-" + uuid.uuid4().hex,
        "CONSENTINEL_INGEST_PORT": str(ingest_port),
        "CONSENTINEL_METRICS_PORT": str(metrics_port),
        "CONSENTINEL_CONSOLE_PORT": str(_free_port()),
        "CONSENTINEL_WORKER_PORT": str(_free_port()),
        "HOOK_SECRET": "hook-secret-" + uuid.uuid4().hex,
        "CONSENTINEL_CERTIFICATE_ENDPOINT": issuer.endpoint,
        "CONSENTINEL_CERTIFICATE_KEY": "env:TRUSTEDFORM_KEY",
        "TRUSTEDFORM_KEY": TRUSTEDFORM_KEY,
    }
    procs = Procs(env, logs)
    prom = f"http://127.0.0.1:{prom_port}"
    started = time.time()
    try:
        issuer.__enter__()
        procs.run("topics", "create")
        procs.run("registry", "apply", str(REGISTRY))
        procs.start("worker", [str(EXE), "worker"])
        procs.start("ingest", [str(EXE), "ingest", "--config", str(CONNECTORS)])
        procs.start("router", [str(EXE), "router", "--sinks", str(sinks)])
        # the certificate service on its default port (CONSENTINEL_METRICS_PORT + 3)
        procs.start("certificates", [str(EXE), "certificates", "verify"])
        config = _scrape_config(
            tmp_path, metrics_port, ingest_port, metrics_port + 2, metrics_port + 3
        )
        procs.start(
            "prometheus",
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
        )  # fmt: skip
        _wait_for(lambda: procs.alive() and _http(f"{prom}/-/ready")[0] == 200, "Prometheus")
        _wait_for(
            lambda: procs.alive() and "purpose registry read" in procs.log("worker"),
            "the worker to be ready (purpose registry read)",
        )

        # the demo's story through the real connectors
        demo = procs.start(
            "demo",
            [str(EXE), "demo", "--config", str(CONNECTORS), "--ingest", f"http://127.0.0.1:{ingest_port}",
             "--seed", "2027", "--scale", "small", "--grace", "6", "--pace", "0.01"],
        )  # fmt: skip
        _wait_for(lambda: procs.alive() and demo.poll() is not None, "the demo feed to finish")
        assert demo.returncode == 0, procs.log("demo")[-3000:]

        # what the demo does not do
        hook_url = f"http://127.0.0.1:{ingest_port}/hooks/mailchimp-lequotidien"
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        status, _ = _http(f"{hook_url}?token=wrong-token-0123456789", b"type=subscribe", form)
        assert status == 401
        status, _ = _http(f"{hook_url}?token={_mailchimp_token()}", b"\xff\xfe not a form", form)
        assert status in (200, 202, 400, 422), status
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
        producer.send(f"{topic_prefix}consentinel.usage.v1", key=b"k", value=b"{not json")
        producer.flush(timeout=30)
        producer.close()

        window = lambda: f"{int(time.time() - started) + 60}s"  # noqa: E731 - the whole run
        exprs = promql.panel_expressions()

        def uses_gap(expr: str) -> bool:
            return any(s.metric in GAPS for s in promql.uses(expr).selectors)

        def missing() -> list[str]:
            procs.alive()
            rng = window()
            out = []
            for e in exprs:
                if uses_gap(e.expr):
                    continue
                q = promql.grafana_to_prometheus(e.expr, rate_interval=rng, range_=rng)
                if not _finite(_query(prom, q)):
                    out.append(f"{e.where}: {q}")
            return out

        last: list[str] = []

        def all_there() -> bool:
            last[:] = missing()
            return not last

        try:
            _wait_for(all_there, "every panel to return data", timeout_s=180)
        except AssertionError:
            pytest.fail("panels with no data from the real run:\n  " + "\n  ".join(last))

        # the gap list is still true (a panel reading a gap metric has nothing)
        rng = window()
        for e in exprs:
            if uses_gap(e.expr):
                q = promql.grafana_to_prometheus(e.expr, rate_interval=rng, range_=rng)
                assert not _query(prom, q), (
                    f"{e.where} now returns data: remove its metric from GAPS in {__file__}"
                )

        # the rules loaded in the real Prometheus and evaluate without error
        status, body = _http(f"{prom}/api/v1/rules")
        groups = json.loads(body)["data"]["groups"]
        assert {g["name"] for g in groups} == {
            "consentinel.recording", "consentinel.compliance", "consentinel.pipeline"
        }  # fmt: skip
        bad = [
            (r["name"], r.get("lastError"))
            for g in groups
            for r in g["rules"]
            if r["health"] == "err"
        ]
        assert not bad, bad
        # every job was scraped, and the ingest metrics kept their `instance` label
        up = _query(prom, 'up{job=~"consentinel.*"}')
        assert {r["metric"]["job"] for r in up if r["value"][1] == "1"} == {
            "consentinel-worker", "consentinel-ingest", "consentinel-router",
            "consentinel-certificates",
        }  # fmt: skip
        assert _query(prom, 'consentinel_ingest_requests_total{instance="mailchimp-lequotidien"}')
        assert _Hook.received, "the router never notified its webhook sink"
        # the demo's claimed certificates were verified through the fake issuer
        assert issuer.requests, "the certificate service never asked the issuer"
        verified = _query(prom, 'consentinel_certificate_results_total{status="verified"}')
        assert verified and float(verified[0]["value"][1]) >= 1, verified
        gave_up = _query(prom, 'consentinel_certificate_results_total{status="gave_up"}')
        assert gave_up and float(gave_up[0]["value"][1]) == 0, gave_up
    finally:
        procs.stop()
        issuer.__exit__()
