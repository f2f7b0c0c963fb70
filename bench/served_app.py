"""The served app under test: `task-tracker serve` in a subprocess on a free loopback port."""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from bench.loopback_http import HttpConnection
from bench.processes import Descendants, RssSampler, connections_per_worker
from entrypoints.api_keys import digest_of, new_api_key

HOST = "127.0.0.1"
API_CLIENT = "bench"
_READY_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 15.0
_PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ServerFailed(Exception):
    """The server did not come up, or died while it was measured."""


class ServedApp:
    """Starts the product's own server command with production settings; stops it on exit."""

    def __init__(self, database_url: str, *, workers: int, pool_size: int | None) -> None:
        self.api_key = new_api_key()
        self.port = _free_port()
        self.workers = workers
        self._database_url = database_url
        self._pool_size = pool_size
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 closed in stop()
            prefix="tt-bench-server-", suffix=".log", delete=False
        )
        self._process: subprocess.Popen[bytes] | None = None
        self._workers: Descendants | None = None
        self.rss: RssSampler | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def connection(self) -> HttpConnection:
        return HttpConnection(HOST, self.port, {"X-API-Key": self.api_key})

    async def __aenter__(self) -> "ServedApp":
        try:
            await self.start()
        except BaseException:
            self.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    async def start(self) -> None:
        self._process = self._spawn()
        self.rss = RssSampler(self._process.pid)
        self.rss.start()
        await self._wait_until_ready()
        # Remembered now that the workers run, so none can outlive a supervisor that died.
        self._workers = Descendants(self._process.pid)

    def spread(self, client_ports: set[int]) -> list[int]:
        """The clients' connections held by each worker, busiest first."""
        return connections_per_worker(self.pid, self.port, client_ports)

    def check_alive(self) -> None:
        if self._process is not None and self._process.poll() is not None:
            raise ServerFailed(
                f"the server exited with {self._process.returncode}:\n{self.log_tail()}"
            )

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            # uvicorn's supervisor passes SIGTERM on to its workers and waits for them.
            members = Descendants(process.pid)
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            members.kill_survivors()
        if self._workers is not None:
            self._workers.kill_survivors()
        if self.rss is not None:
            self.rss.stop()
        if not self._log.closed:
            self._log.close()
            Path(self._log.name).unlink(missing_ok=True)

    def log_tail(self, lines: int = 30) -> str:
        if self._log.closed:
            return ""
        self._log.flush()
        text = Path(self._log.name).read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self._command(),
            cwd=_PROJECT_ROOT,
            env=self._environment(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def _command(self) -> list[str]:
        script = Path(sys.executable).with_name("task-tracker")
        entry = [str(script)] if script.exists() else [sys.executable, "-m", "entrypoints.cli"]
        return [
            *entry,
            "serve",
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--no-migrate",
        ]

    def _environment(self) -> dict[str, str]:
        # Only the settings chosen here: none leaks in from the shell that runs the benchmark.
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith("TASK_TRACKER_")
        }
        env["TASK_TRACKER_DATABASE_URL"] = self._database_url
        env["TASK_TRACKER_API_KEYS"] = f"{API_CLIENT}:{digest_of(self.api_key).hex()}"
        env["TASK_TRACKER_LOG_LEVEL"] = "WARNING"
        if self._pool_size is not None:
            env["TASK_TRACKER_POOL_SIZE"] = str(self._pool_size)
        return env

    async def _wait_until_ready(self) -> None:
        probe = HttpConnection(HOST, self.port, {})
        deadline = time.monotonic() + _READY_TIMEOUT_S
        last = "no answer"
        try:
            while True:
                self.check_alive()
                try:
                    status, body = await probe.request("GET", "/health/ready")
                except (ConnectionError, asyncio.IncompleteReadError):
                    await probe.close()
                else:
                    if status == 200:
                        return
                    last = f"{status} {body[:300].decode(errors='replace')}"
                if time.monotonic() > deadline:
                    raise ServerFailed(
                        f"the server was not ready in time; last answer: {last}\n{self.log_tail()}"
                    )
                await asyncio.sleep(0.1)
        finally:
            await probe.close()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port
