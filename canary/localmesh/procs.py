"""The local mesh's child processes: started in their own process groups, and none outlives us.

Envoy, Prometheus and the demo apps are real processes. Each starts in a session of its own
(`start_new_session=True`), so a Ctrl-C in the terminal reaches only `canary` and not the
children mid-shutdown, and so one `killpg` stops a child together with anything it forked.
Output goes to `<workdir>/<name>.log`, which is where a failure to start is explained: the
errors raised here carry the tail of that log.

A `Supervisor` owns every process it started and stops them all when its `with` block ends,
normally, on an exception or on KeyboardInterrupt; an atexit hook and a SIGTERM handler stop
any supervisor still open when the interpreter goes down some other way.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import os
import random
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType, TracebackType

from canary.errors import Unavailable

# Its own generator: a test that seeds the global one must not make every run pick the same ports.
_random = random.Random()


class ProcessFailed(Unavailable):
    """A child exited, or never answered, while we waited for it; the message ends with its log."""


# Below the kernel's ephemeral range (ip_local_port_range, 32768-60999 by default), where a port
# the kernel hands out as port 0 would be: every outgoing connection (to the API server, etcd,
# Prometheus...) takes a source port from that range, so a port picked there and bound a moment
# later by a child is often taken meanwhile (CI saw a demo app fail with EADDRINUSE).
_LOWEST_PORT = 10000
_PICK_ATTEMPTS = 100
# Every port free_port gave in this process (a few hundred in a whole test run, of ~20,000).
_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


def free_port() -> int:
    """A port free on 127.0.0.1 now, outside the ephemeral range; the child binds it a moment
    later, so a race with another picker stays possible, if unlikely. A port this process
    handed out is never handed out again: a caller often picks several before binding any (an
    app, its Envoy and the Envoy's admin), and a second pick of the first would still be free."""
    upper = _ephemeral_floor() - 1
    for _ in range(_PICK_ATTEMPTS):
        port = _random.randint(_LOWEST_PORT, upper)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            with _handed_out_lock:
                _handed_out.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ephemeral_floor() -> int:
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768
    # A range that starts too low leaves no room below it: take the default split then.
    return low if low > _LOWEST_PORT + 1000 else 32768


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) pids in a process group.

    `killpg(pgid, 0)` is not enough: an orphaned grandchild that has exited stays a zombie
    until PID 1 reaps it, and in containers PID 1 often never does, so it would look alive.
    """
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses, so parse after its last ")".
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


class Process:
    """One child: its pid (also its process group id), its log, and how to stop it."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes], log_path: Path) -> None:
        self.name = name
        self.popen = popen
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def group_alive(self) -> bool:
        """Whether the child or anything in its process group still runs."""
        return self.alive() or bool(_group_members(self.pid))

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def failure(self, what: str) -> ProcessFailed:
        code = self.popen.poll()
        state = "running" if code is None else f"exited with {code}"
        return ProcessFailed(
            f"{self.name} (pid {self.pid}, {state}) {what}; last lines of {self.log_path}:\n"
            f"{self.log_tail()}"
        )

    def stop(self, *, grace: float = 5.0) -> None:
        """SIGTERM to the whole group, up to `grace` seconds to go, then SIGKILL."""
        if not self.group_alive():
            # Once the group is empty its id may be handed to a new process: never signal it.
            return
        self._signal_group(signal.SIGTERM)
        if not self._wait_group(grace):
            self._signal_group(signal.SIGKILL)
            self._wait_group(2.0)

    def _signal_group(self, signum: signal.Signals) -> None:
        # The group outlives its leader while grandchildren run, so signal it even when the
        # leader is gone; a pid that is no group any more is simply done.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    def _wait_group(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=seconds)
        while _group_members(self.pid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return self.popen.poll() is not None


class Supervisor:
    """Starts processes with logs in `workdir` and stops every one of them on exit."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.processes: list[Process] = []
        # Re-entrant: the SIGTERM handler runs on the main thread, maybe inside start() or stop().
        self._lock = threading.RLock()
        self._closed = False

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Process:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"supervisor is stopped; not starting {name}")
            self.workdir.mkdir(parents=True, exist_ok=True)
            log_path = self.workdir / f"{name}.log"
            with log_path.open("wb") as log:
                popen = subprocess.Popen(
                    list(argv),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=None if env is None else {**os.environ, **env},
                    cwd=cwd,
                    start_new_session=True,
                )
            process = Process(name, popen, log_path)
            self.processes.append(process)
            return process

    def stop(self) -> None:
        """Stops every process, newest first (clients before the servers they talk to)."""
        with self._lock:
            self._closed = True
            processes = list(self.processes)
        # The list stays: callers check afterwards, by pid, that nothing is left. Stopping a
        # process twice costs one failed killpg.
        for process in reversed(processes):
            process.stop()

    def __enter__(self) -> Supervisor:
        _register(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.stop()
        finally:
            _OPEN.discard(self)


def wait_http(
    url: str,
    *,
    timeout: float,
    expect: int = 200,
    process: Process | None = None,
    interval: float = 0.1,
) -> bytes:
    """Polls `url` until it answers `expect`; returns the body.

    Raises `ProcessFailed` with the log's tail as soon as `process` has exited, or at the
    deadline; the number of attempts is bounded by the deadline and the interval.
    """
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    deadline = time.monotonic() + timeout
    attempts = max(1, int(timeout / interval) + 1)
    last = "no answer"
    for _ in range(attempts):
        if process is not None and not process.alive():
            raise process.failure(f"exited before {url} answered")
        try:
            conn = http.client.HTTPConnection(host, port, timeout=max(interval, 1.0))
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                body = response.read()
            finally:
                conn.close()
            if response.status == expect:
                return body
            last = f"status {response.status}"
        except OSError as exc:
            last = str(exc)
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    message = f"did not answer {expect} at {url} within {timeout:g}s (last: {last})"
    if process is not None:
        raise process.failure(message)
    raise ProcessFailed(message)


# Supervisors still open; the atexit hook and the SIGTERM handler stop these.
_OPEN: weakref.WeakSet[Supervisor] = weakref.WeakSet()
_installed = False
# What SIGTERM did before us: called after our stop, or restored and re-raised.
_previous_sigterm: Callable[[int, FrameType | None], object] | int | None = signal.SIG_DFL


def _stop_open() -> None:
    for supervisor in list(_OPEN):
        supervisor.stop()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _stop_open()
    previous = _previous_sigterm
    if callable(previous):
        previous(signum, frame)
        return
    # Die of SIGTERM as we would have without this handler, so our own parent sees why.
    signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
    os.kill(os.getpid(), signal.SIGTERM)


def _register(supervisor: Supervisor) -> None:
    global _installed, _previous_sigterm  # noqa: PLW0603 - installed once per interpreter
    _OPEN.add(supervisor)
    if _installed:
        return
    atexit.register(_stop_open)
    # Signal handlers can only be set from the main thread; elsewhere atexit still holds.
    if threading.current_thread() is threading.main_thread():
        _previous_sigterm = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, _on_sigterm)
    _installed = True
