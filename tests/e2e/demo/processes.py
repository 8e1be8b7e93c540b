"""Stopping a `canary demo` run by a test, and whatever of its mesh outlived it.

The mesh's processes run in process groups of their own, so a SIGKILL of the demo's group leaves
them running; a test that must stop a demo first asks it to stop (SIGTERM, which the demo's
supervisor turns into stopping the mesh) and then kills what still runs from its work dir.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from pathlib import Path

STOP_WAIT_S = 30.0


def stop(demo: subprocess.Popen[bytes], output: str) -> list[int]:
    """Stops the demo and its mesh; returns the pids that had to be killed after it ended."""
    if demo.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(demo.pid, signal.SIGTERM)
        try:
            demo.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    left = survivors(output)
    kill(left)
    return left


def survivors(output: str) -> list[int]:
    """The processes still running from the mesh work dir that the demo's output names."""
    workdir = re.search(r"work dir\s+(\S+)", output.replace("\n", " "))
    if workdir is None:
        return []
    return [
        int(pid)
        for pid in os.listdir("/proc")
        if pid.isdigit() and _cmdline_mentions(int(pid), workdir.group(1).rstrip(")"))
    ]


def kill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _cmdline_mentions(pid: int, text: str) -> bool:
    try:
        return text in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
