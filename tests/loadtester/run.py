"""Flagger's load tester as a process of its own on a free loopback port.

It runs in its own process group under a `procs.Supervisor` (stopped by its pid), logs JSON
lines (zap) to `loadtester.log` in its working directory, and is ready when `/healthz` is 200.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from canary.localmesh import procs

START_TIMEOUT = 20.0


@dataclass(frozen=True)
class LoadTester:
    port: int
    process: procs.Process

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def log(self) -> list[dict[str, Any]]:
        """Its log so far, one dict per JSON line (other lines are skipped)."""
        entries = []
        with contextlib.suppress(FileNotFoundError):
            for line in self.process.log_path.read_text(errors="replace").splitlines():
                with contextlib.suppress(json.JSONDecodeError):
                    entry = json.loads(line)
                    if isinstance(entry, dict):
                        entries.append(entry)
        return entries

    def wait_for_log(self, text: str, *, timeout: float = 10.0) -> dict[str, Any]:
        """The first log entry whose message holds `text`, waiting at most `timeout` seconds."""
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / 0.1) + 1):
            found = next((e for e in self.log() if text in str(e.get("msg", ""))), None)
            if found is not None:
                return found
            if time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        raise AssertionError(
            f"the load tester logged no {text!r} within {timeout:g}s; its log ends:\n"
            f"{self.process.log_tail(20)}"
        )


@contextlib.contextmanager
def running(binary: Path, workdir: Path) -> Iterator[LoadTester]:
    """The load tester, ready; stopped (its whole process group, by pid) when the block ends."""
    with procs.Supervisor(workdir) as supervisor:
        failure: Exception | None = None
        # The picked port may be taken before the child binds it: then try another, twice.
        for attempt in range(3):
            port = procs.free_port()
            process = supervisor.start(
                "loadtester" if attempt == 0 else f"loadtester-{attempt}",
                [str(binary), "-listen", f"127.0.0.1:{port}", "-log-level", "info"],
                cwd=workdir,
            )
            try:
                procs.wait_http(
                    f"http://127.0.0.1:{port}/healthz", timeout=START_TIMEOUT, process=process
                )
            except procs.ProcessFailed as exc:
                failure = exc
                process.stop()
                continue
            yield LoadTester(port=port, process=process)
            return
        assert failure is not None
        raise failure
