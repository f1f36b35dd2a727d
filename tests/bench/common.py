"""Shared pieces of the benchmark programs: processes, ports, offsets, percentiles, tables."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    data = sorted(values)
    k = min(len(data) - 1, max(0, round(q / 100 * (len(data) - 1))))
    return data[k]


class Proc:
    """A consentinel subprocess (or, with ``cmd``, any program: a peer) with its log file
    and a peak-RSS sampler."""

    def __init__(
        self,
        name: str,
        args: list[str],
        env: dict[str, str],
        logdir: Path,
        cmd: list[str] | None = None,
    ) -> None:
        logdir.mkdir(parents=True, exist_ok=True)
        self.log_path = logdir / f"{name}.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        argv = [*(cmd or [str(BIN / "consentinel")]), *args]
        self.popen = subprocess.Popen(argv, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self.peak_rss = 0
        self.cpu_s = 0.0  # CPU seconds (user + system) of the process, as last sampled
        self._stop = threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        try:
            p = psutil.Process(self.popen.pid)
            while not self._stop.is_set() and p.is_running():
                rss = p.memory_info().rss + sum(c.memory_info().rss for c in p.children(True))
                self.peak_rss = max(self.peak_rss, rss)
                cpu = p.cpu_times()
                self.cpu_s = cpu.user + cpu.system
                time.sleep(0.5)
        except psutil.Error:
            pass

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> None:
        if self.alive():
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._stop.set()
        self._log.close()

    def tail(self, n: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])


def env_for(prefix: str, home: Path, bootstrap: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENTINEL_")}
    env.update(
        CONSENTINEL_ENV="development",
        CONSENTINEL_HOME=str(home),
        CONSENTINEL_BOOTSTRAP_SERVERS=bootstrap,
        CONSENTINEL_TOPIC_PREFIX=prefix,
        CONSENTINEL_LOG_LEVEL="warning",
    )
    env.update({f"CONSENTINEL_{k.upper()}": str(v) for k, v in extra.items()})
    return env


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def table(rows: Iterable[Iterable[object]], header: list[str]) -> str:
    cells = [header, *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = "+".join("-" * (w + 2) for w in widths)
    out = [" | ".join(c.rjust(w) for c, w in zip(cells[0], widths, strict=True)), line]
    out += [" | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells[1:]]
    return "\n".join(out)


def mib(n: float) -> str:
    return f"{n / 1048576:.0f} MiB"
