"""``/metrics`` and ``/healthz`` of the router (and the worker's exposition helper): loopback
by default whatever CONSENTINEL_WEB_HOST says, and behind a token when one is set."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from consentinel.streams.alerts import config as router_config
from consentinel.streams.alerts.router import Router
from consentinel.streams.events.errors import FatalConfigError
from consentinel.streams.events.ops_access import OpsAccess

OPS_TOKEN = "ops-token-0123456789abcdef"


def _router(make_settings, ops: OpsAccess | None = None) -> Router:
    settings = make_settings(web_host="0.0.0.0")  # the console is exposed: metrics are not
    cfg = router_config.RouterConfig(console_url="http://127.0.0.1:8686")
    if ops is None:
        return Router(settings, cfg, metrics_port=0)
    return Router(settings, cfg, metrics_port=0, ops=ops)


async def test_router_metrics_bind_loopback_by_default(make_settings) -> None:
    router = _router(make_settings)
    runner = await router._serve_metrics()
    try:
        hosts = {s.getsockname()[0] for site in runner.sites for s in site._server.sockets}
        assert hosts == {"127.0.0.1"}
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{router.bound_port}"
            async with http.get(url + "/metrics") as resp:
                assert resp.status == 200
                assert "consentinel_" in await resp.text()
            async with http.get(url + "/healthz") as resp:
                assert resp.status == 200
                assert (await resp.json())["ok"] is True
    finally:
        await runner.cleanup()
        router.store.close()


async def test_router_metrics_need_the_token_when_one_is_set(make_settings) -> None:
    router = _router(make_settings, OpsAccess(token=OPS_TOKEN.encode()))
    runner = await router._serve_metrics()
    try:
        url = f"http://127.0.0.1:{router.bound_port}"
        async with aiohttp.ClientSession() as http:
            for path in ("/metrics", "/healthz"):
                for headers in ({}, {"Authorization": "Bearer wrong-0123456789abcdefgh"}):
                    async with http.get(url + path, headers=headers) as resp:
                        assert resp.status == 401, (path, headers)
                        assert "CONSENTINEL_METRICS_TOKEN" in await resp.text()
                good = {"Authorization": f"Bearer {OPS_TOKEN}"}
                async with http.get(url + path, headers=good) as resp:
                    assert resp.status == 200, path
    finally:
        await runner.cleanup()
        router.store.close()


def test_ops_access_from_the_environment(tmp_path: Path) -> None:
    assert OpsAccess.from_env({}) == OpsAccess("127.0.0.1", None)
    (tmp_path / "t").write_text(OPS_TOKEN + "\n")
    got = OpsAccess.from_env(
        {"CONSENTINEL_METRICS_TOKEN_FILE": str(tmp_path / "t"), "CONSENTINEL_METRICS_HOST": "::"}
    )
    assert got == OpsAccess("::", OPS_TOKEN.encode())
    with pytest.raises(FatalConfigError) as err:
        OpsAccess.from_env(
            {"CONSENTINEL_METRICS_TOKEN": "short", "CONSENTINEL_METRICS_TOKEN_FILE": ""}
        )
    assert "shorter than 16 bytes" in str(err.value)
    with pytest.raises(FatalConfigError) as err:
        OpsAccess.from_env({"CONSENTINEL_METRICS_TOKEN_FILE": str(tmp_path / "missing")})
    assert "cannot read it" in str(err.value)


def test_ops_access_compares_the_bearer_token() -> None:
    access = OpsAccess(token=OPS_TOKEN.encode())
    assert access.allows(f"Bearer {OPS_TOKEN}")
    assert not access.allows(None)
    assert not access.allows(OPS_TOKEN)
    assert not access.allows(f"Bearer {OPS_TOKEN}x")
    assert OpsAccess().allows(None)
