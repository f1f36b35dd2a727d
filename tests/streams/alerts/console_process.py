"""``consentinel console`` as a real process for the Chromium tests (the ``console_proc``
fixture of ``conftest.py``): its token, a free port, and the wait until it answers."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from consentinel.streams.alerts.store import IncidentStore

TOKEN = "chromium-test-token-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_console(tmp_path: Path, extra_env: dict[str, str]) -> Iterator[tuple[str, Path, int]]:
    """The console on a free loopback port, on an empty store; (base URL, store, the port
    its panels read /metrics from). ``extra_env`` adds to (or overrides) its settings."""
    db = tmp_path / "state" / "incidents.db"
    IncidentStore(db).close()  # empty: the first incidents arrive while the page is open
    port = free_port()
    metrics_port = free_port()
    env = {
        **os.environ,
        "CONSENTINEL_ENV": "test",
        "CONSENTINEL_HOME": str(tmp_path / "home"),
        "CONSENTINEL_TOKEN": TOKEN,
        "CONSENTINEL_PEPPER": "chromium-test-pepper-0123456789",
        **extra_env,
    }
    log = open(tmp_path / "console.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "consentinel.streams.cli", "console", "--port", str(port),
         "--store", str(db), "--metrics-url", f"http://127.0.0.1:{metrics_port}/metrics"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}", db, metrics_port
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        log.close()


async def wait_ready(base: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            try:
                async with s.get(
                    f"{base}/api/health", headers={"Authorization": f"Bearer {TOKEN}"}
                ) as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    pytest.fail(f"the console did not answer at {base}; its log:\n{log.read_text()[-3000:]}")
