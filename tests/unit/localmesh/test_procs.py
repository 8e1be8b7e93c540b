"""The supervisor's promises: children stop, with everything they forked, and failures explain."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from canary.localmesh import procs

PYTHON = sys.executable


def _alive(pid: int) -> bool:
    """Running and not a zombie (an orphan's zombie may never be reaped in a container)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def _wait_for_line(path: Path, prefix: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in path.read_text().splitlines() if path.exists() else []:
            if line.startswith(prefix):
                return line
        time.sleep(0.02)
    raise AssertionError(f"{prefix!r} never appeared in {path}")


def test_free_port_can_be_bound_on_loopback() -> None:
    port = procs.free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_free_ports_stay_out_of_the_range_outgoing_connections_take_theirs_from() -> None:
    """An outgoing connection's source port comes from the ephemeral range; a port picked
    there could be taken before the child binds it."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = {procs.free_port() for _ in range(50)}
    assert all(1024 < port < low for port in ports)
    assert len(ports) > 40, "picked at random, so two pickers rarely meet"


def test_a_child_that_ignores_sigterm_is_killed(tmp_path: Path) -> None:
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    with procs.Supervisor(tmp_path) as supervisor:
        child = supervisor.start("stubborn", [PYTHON, "-c", stubborn])
        _wait_for_line(child.log_path, "ready")
        started = time.monotonic()
        child.stop(grace=0.5)
        assert time.monotonic() - started < 3.0
        assert child.popen.returncode == -signal.SIGKILL
        assert not _alive(child.pid)


def test_grandchildren_go_with_the_group_even_after_the_leader_exits(tmp_path: Path) -> None:
    # The leader dies on SIGTERM at once; its child ignores SIGTERM, so only the group-wide
    # SIGKILL that follows can end it.
    script = textwrap.dedent(
        """
        import signal, subprocess, sys, time
        grandchild = subprocess.Popen([sys.executable, "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"])
        print("grandchild", grandchild.pid, flush=True)
        time.sleep(60)
        """
    )
    with procs.Supervisor(tmp_path) as supervisor:
        leader = supervisor.start("leader", [PYTHON, "-c", script])
        grandchild = int(_wait_for_line(leader.log_path, "grandchild").split()[1])
        assert _alive(grandchild)
        leader.stop(grace=0.5)
        assert not _alive(grandchild)
        assert not leader.group_alive()


def test_leaving_the_block_by_an_exception_stops_every_process(tmp_path: Path) -> None:
    started: list[procs.Process] = []
    supervisor = procs.Supervisor(tmp_path)

    def interrupted() -> None:
        with supervisor:
            started.extend(supervisor.start(name, ["sleep", "60"]) for name in ("one", "two"))
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    assert [p.alive() for p in started] == [False, False]
    with pytest.raises(RuntimeError, match="stopped"):
        supervisor.start("late", ["sleep", "60"])


def test_sigterm_to_the_parent_stops_its_children_and_still_ends_the_parent(
    tmp_path: Path,
) -> None:
    script = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from canary.localmesh import procs
        with procs.Supervisor(Path({str(tmp_path)!r})) as supervisor:
            child = supervisor.start("sleeper", ["sleep", "60"])
            print("child", child.pid, flush=True)
            time.sleep(60)
        """
    )
    with subprocess.Popen([PYTHON, "-c", script], stdout=subprocess.PIPE, text=True) as parent:
        try:
            assert parent.stdout is not None
            child = int(parent.stdout.readline().split()[1])
            assert _alive(child)
            parent.send_signal(signal.SIGTERM)
            assert parent.wait(timeout=10) == -signal.SIGTERM
            assert not _alive(child)
        finally:
            parent.kill()


def test_wait_http_reports_a_dead_process_with_its_log_tail(tmp_path: Path) -> None:
    crash = "import sys; print('listen tcp: address already in use'); sys.exit(3)"
    with procs.Supervisor(tmp_path) as supervisor:
        child = supervisor.start("crasher", [PYTHON, "-c", crash])
        with pytest.raises(procs.ProcessFailed) as caught:
            procs.wait_http(f"http://127.0.0.1:{procs.free_port()}/", timeout=10.0, process=child)
    message = str(caught.value)
    assert "exited with 3" in message
    assert "listen tcp: address already in use" in message


def test_wait_http_gives_up_at_its_deadline() -> None:
    started = time.monotonic()
    with pytest.raises(procs.ProcessFailed, match=r"within 0\.5s"):
        procs.wait_http(f"http://127.0.0.1:{procs.free_port()}/", timeout=0.5)
    assert time.monotonic() - started < 2.0


def test_stop_of_a_process_that_already_exited_is_quiet(tmp_path: Path) -> None:
    with procs.Supervisor(tmp_path) as supervisor:
        done = supervisor.start("done", ["true"])
        done.popen.wait(timeout=5)
        done.stop(grace=0.1)
        assert not done.group_alive()
    assert os.path.exists(done.log_path)
