"""Serving the app with uvicorn: one process or several, and a graceful stop on SIGTERM.

On SIGTERM the service first says it is not ready (so a load balancer stops sending it
work), keeps serving for the drain delay, then stops accepting connections and lets
the requests in flight finish within the grace period, and exits 0.
"""

import logging
import multiprocessing
import multiprocessing.process
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from types import FrameType

import uvicorn
from prometheus_client import multiprocess

logger = logging.getLogger(__name__)

# Read by the readiness check of every app in this process.
draining = threading.Event()


@dataclass(frozen=True, slots=True)
class ServerOptions:
    host: str
    port: int
    workers: int
    grace_s: float
    drain_delay_s: float


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, drain_delay_s: float) -> None:
        super().__init__(config)
        self._drain_delay_s = drain_delay_s

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        first = not draining.is_set()
        draining.set()
        if first and sig == signal.SIGTERM and self._drain_delay_s > 0:
            timer = threading.Timer(self._drain_delay_s, self._stop, (sig,))
            timer.daemon = True
            timer.start()
            return
        self._stop(sig)

    def _stop(self, sig: int) -> None:
        # uvicorn's own handle_exit records the signal and raises it again once shut
        # down, which would end a graceful stop with the signal's status instead of 0;
        # setting its flags directly stops it the same way without that.
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self.should_exit = True


def serve(options: ServerOptions) -> None:
    """Serve `entrypoints.asgi` until SIGTERM or SIGINT; workers build their own app."""
    metrics_dir = None
    if options.workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        # Metrics of all workers are added up from files in a folder they share.
        metrics_dir = tempfile.mkdtemp(prefix="task-tracker-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    config = uvicorn.Config(
        "entrypoints.asgi:create_from_environment",
        factory=True,
        host=options.host,
        port=options.port,
        workers=options.workers,
        access_log=False,
        log_config=None,
        server_header=False,
        # The failed-authentication limit and the logs use the peer's address; trusting
        # X-Forwarded-For (uvicorn's default for loopback peers) would let a caller pick it.
        proxy_headers=False,
        timeout_graceful_shutdown=int(options.grace_s),
    )
    if options.workers == 1:
        DrainingServer(config, options.drain_delay_s).run()
        return
    try:
        _supervise(config, options)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _run_worker(config: uvicorn.Config, drain_delay_s: float) -> None:
    DrainingServer(config, drain_delay_s).run(sockets=[_listen(config.host, config.port)])


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket of this worker's own, sharing the port with its siblings.

    With one socket inherited by all workers, whichever worker wakes first accepts a
    whole burst of connections and keeps them, since clients keep connections alive: one
    worker ended up with all the work. SO_REUSEPORT lets the kernel spread new
    connections over the workers' sockets instead.
    """
    family, kind, protocol, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, protocol)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _supervise(config: uvicorn.Config, options: ServerOptions) -> None:
    """Run `workers` processes on one listening socket; on SIGTERM or SIGINT, stop them all.

    A worker that dies on its own is replaced. Each worker drains and stops by itself
    when it gets SIGTERM; one still alive after the drain delay and grace period is
    killed.
    """
    context = multiprocessing.get_context("spawn")
    stopping = threading.Event()

    def start() -> multiprocessing.process.BaseProcess:
        process = context.Process(target=_run_worker, args=(config, options.drain_delay_s))
        process.start()
        return process

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    workers = [start() for _ in range(options.workers)]
    while not stopping.wait(0.5):
        for index, process in enumerate(workers):
            if not process.is_alive():
                logger.warning(
                    "worker %s exited with %s; starting another", process.pid, process.exitcode
                )
                _forget_metrics_of(process)
                workers[index] = start()

    for process in workers:
        if process.pid is not None:
            os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + options.drain_delay_s + options.grace_s + 5
    for process in workers:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            logger.error("worker %s did not stop in time; killing it", process.pid)
            process.kill()
            process.join()
        _forget_metrics_of(process)


def _forget_metrics_of(process: multiprocessing.process.BaseProcess) -> None:
    """Drop a dead worker's live gauges (pool in use, waiting) from the shared sum."""
    if process.pid is not None and "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        multiprocess.mark_process_dead(process.pid)  # type: ignore[no-untyped-call]
