"""``consentinel certificates verify``: the verifiers it builds from the settings, and its
/metrics and /healthz (the router's ops_endpoints, in a thread)."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

import pytest
from consentinel.streams.certificates.command import Health, serve_ops, verifier_from
from consentinel.streams.certificates.service import RESULTS, declare_metrics
from consentinel.streams.events import codec
from consentinel.streams.events.errors import FatalConfigError
from consentinel.streams.events.ops_access import OpsAccess
from consentinel.streams.events.settings import Settings

TOKEN = "ops-token-0123456789abcdef"


def _get(url: str, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_leadid_alone_is_enough_and_trustedform_stays_off(monkeypatch) -> None:
    built = verifier_from(Settings.from_env({"CONSENTINEL_CERTIFICATE_LEADID_ACCOUNT": "LAC-1"}))
    assert built.trustedform is None and built.leadid is not None
    assert built.leadid.endpoint == "https://api.leadid.com"
    assert "Authorization" not in built.leadid._headers


def test_both_issuers_with_keys_by_reference(monkeypatch) -> None:
    monkeypatch.setenv("TF_KEY_T", "tf-key-0123456789")
    monkeypatch.setenv("LID_KEY_T", "lid-key-0123456789")
    built = verifier_from(
        Settings.from_env(
            {
                "CONSENTINEL_CERTIFICATE_KEY": "env:TF_KEY_T",
                "CONSENTINEL_CERTIFICATE_LEADID_ACCOUNT": "LAC-1",
                "CONSENTINEL_CERTIFICATE_LEADID_KEY": "env:LID_KEY_T",
                "CONSENTINEL_CERTIFICATE_LEADID_ENDPOINT": "https://leadid.example",
            }
        )
    )
    assert built.trustedform is not None and built.leadid is not None
    assert built.leadid.endpoint == "https://leadid.example"
    assert built.leadid._headers["Authorization"] == "Bearer lid-key-0123456789"


def test_every_problem_is_listed_at_once(monkeypatch) -> None:
    monkeypatch.delenv("MISSING_TF", raising=False)
    monkeypatch.delenv("MISSING_LID", raising=False)
    settings = Settings.from_env(
        {
            "CONSENTINEL_CERTIFICATE_KEY": "env:MISSING_TF",
            "CONSENTINEL_CERTIFICATE_LEADID_KEY": "env:MISSING_LID",
            "CONSENTINEL_CERTIFICATE_LEADID_ENDPOINT": "http://leadid.example",
        }
    )
    with pytest.raises(FatalConfigError) as caught:
        verifier_from(settings)
    text = "\n".join(caught.value.problems)
    assert "MISSING_TF" in text and "MISSING_LID" in text
    assert "CONSENTINEL_CERTIFICATE_LEADID_ACCOUNT is not" in text
    assert "lid-key" not in text


def test_metrics_and_healthz_are_served_like_the_routers() -> None:
    declare_metrics()
    health = Health()
    ops = serve_ops(0, health, OpsAccess())
    try:
        base = f"http://127.0.0.1:{ops.port}"
        status, body = _get(f"{base}/healthz")
        assert status == 503 and codec.loads(body)["ready"] is False
        health.set()
        status, body = _get(f"{base}/healthz")
        assert status == 200 and codec.loads(body)["ready"] is True
        status, body = _get(f"{base}/metrics")
        text = body.decode()
        assert status == 200
        for result in RESULTS:  # every child exists from the start, gave_up at 0 included
            assert f'consentinel_certificate_results_total{{status="{result}"}}' in text
        assert "consentinel_certificate_retries_total" in text
    finally:
        ops.close()


def test_the_metrics_token_is_required_when_set() -> None:
    ops = serve_ops(0, Health(), OpsAccess(token=TOKEN.encode()))
    try:
        base = f"http://127.0.0.1:{ops.port}"
        assert _get(f"{base}/metrics")[0] == 401
        assert _get(f"{base}/healthz", "wrong-token-0123456789")[0] == 401
        assert _get(f"{base}/metrics", TOKEN)[0] == 200
    finally:
        ops.close()


def test_a_taken_port_stops_it_saying_what_to_do() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(FatalConfigError, match="--metrics-port"):
            serve_ops(taken.getsockname()[1], Health(), OpsAccess())
