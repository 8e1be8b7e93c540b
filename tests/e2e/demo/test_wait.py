"""Issue 11: `canary demo --state-dir D` in one terminal and `canary wait demo --state-dir D` in
another exit together, with the same verdict.

The wait starts as soon as the demo has put its Canary in D, which the demo does first of all,
before it starts the mesh; so the wait is there before the rollout begins. A wait started
before the Canary exists exits 2 at once saying it was not found, on purpose: `canary wait`
does not wait for a Canary to be created (a mistyped name in a pipeline must not hang until
the timeout), as `kubectl wait` does not without `--for=create`.

The demo exits 0 in both scenarios (the rollout ended as the scenario expects); the wait's exit
code is the rollout's verdict: 0 Succeeded, 1 Failed. Both are bounded, the demo runs in its own
process group, and it is stopped the way processes.py stops one, also when an assertion failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest

from canary.api.status import Phase
from tests.e2e.demo import processes

CANARY = [sys.executable, "-c", "from canary.cli import main; main()"]
# The demo puts its Canary in the state dir before it starts anything else.
SEED_S = 60.0
# The demo gives up watching after DEMO_TIMEOUT_S; everything is over well before RUN_S.
DEMO_TIMEOUT_S = 150
RUN_S = 240.0
# "Exit together": the wait polls once a second, the demo samples once a second and then stops
# its mesh before it prints its summary.
GAP_S = 5.0
# The demo's summary: "Succeeded after 41s, as expected for the good scenario: ..." (the live
# view's last line may run into it when the output is not a terminal).
SUMMARY = re.compile(
    rf"({'|'.join(Phase)}|None) after \d+s, (as expected|NOT as expected) for the ([\w-]+) "
    "scenario"
)


class Timed:
    """A pipe read to its end on a thread of its own, each chunk with when it arrived."""

    def __init__(self, pipe: IO[bytes]) -> None:
        self.chunks: list[tuple[float, bytes]] = []
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: IO[bytes]) -> None:
        with pipe:
            while chunk := os.read(pipe.fileno(), 65536):
                self.chunks.append((time.monotonic(), chunk))

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def text(self) -> str:
        return b"".join(chunk for _, chunk in self.chunks).decode(errors="replace")

    def when(self, pattern: re.Pattern[str]) -> tuple[float, re.Match[str]] | None:
        """When the output first held a match of `pattern`, and the match."""
        seen = b""
        for moment, chunk in self.chunks:
            seen += chunk
            found = pattern.search(seen.decode(errors="replace"))
            if found is not None:
                return moment, found
        return None


def _until(done: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not done():
        time.sleep(0.05)


def _alive(pids: list[int]) -> list[int]:
    """The pids that still run (a zombie is not running)."""
    running = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1]
        except (OSError, IndexError):
            continue
        if not state.startswith("Z"):
            running.append(pid)
    return running


@pytest.mark.parametrize(
    ("scenario", "phase", "verdict"), [("good", "Succeeded", 0), ("bad", "Failed", 1)]
)
def test_the_demo_and_a_wait_on_its_state_dir_exit_together_with_the_same_verdict(
    tmp_path: Path, scenario: str, phase: str, verdict: int
) -> None:
    state, report = tmp_path / "state", tmp_path / "report"
    # Unbuffered, and wide enough that rich does not wrap the summary line.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "250"}
    demo = subprocess.Popen(
        [*CANARY, "demo", "--scenario", scenario, "--state-dir", str(state),
         "--report-dir", str(report), "--timeout", str(DEMO_TIMEOUT_S)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True, env=env,
    )  # fmt: skip
    assert demo.stdout is not None
    demo_out = Timed(demo.stdout)
    waiter: subprocess.Popen[bytes] | None = None
    try:
        canary = state / "objects" / "Canary" / "default" / "demo.json"
        _until(lambda: canary.exists() or demo.poll() is not None, SEED_S)
        assert canary.exists(), f"the demo never wrote its Canary:\n{demo_out.text()[-3000:]}"
        waiter = subprocess.Popen(
            [*CANARY, "wait", "demo", "--state-dir", str(state), "--timeout", "3m"],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True, env=env,
        )  # fmt: skip
        assert waiter.stdout is not None
        assert waiter.stderr is not None
        wait_out, wait_err = Timed(waiter.stdout), Timed(waiter.stderr)
        # Both run at once: each one's exit time is taken as it happens, whichever comes first.
        exited: dict[str, float] = {}
        deadline = time.monotonic() + RUN_S
        while len(exited) < 2 and time.monotonic() < deadline:
            for label, process in (("demo", demo), ("wait", waiter)):
                if label not in exited and process.poll() is not None:
                    exited[label] = time.monotonic()
            time.sleep(0.02)
        demo_out.join(10)
        wait_out.join(10)
        wait_err.join(10)
        demo_text, wait_text = demo_out.text(), wait_out.text()
        assert set(exited) == {"demo", "wait"}, (
            f"not both exited within {RUN_S:.0f}s: {sorted(exited)}\n"
            f"demo:\n{demo_text[-3000:]}\nwait:\n{wait_text}"
        )
    finally:
        # Also when an assertion failed: nothing started here outlives the test.
        if waiter is not None and waiter.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(waiter.pid, signal.SIGKILL)
            waiter.wait()
        left = processes.stop(demo, demo_out.text())
    assert left == [], "the demo stopped everything it started"

    # The demo: the rollout ended as its scenario expects, so exit 0 for both.
    summary = demo_out.when(SUMMARY)
    assert summary is not None, f"no summary from the demo:\n{demo_text[-3000:]}"
    said_at, said = summary
    assert demo.returncode == 0, demo_text[-3000:]
    assert (said.group(1), said.group(2), said.group(3)) == (phase, "as expected", scenario)

    # The wait: its exit code is the verdict, and its last line names the same phase.
    lines = wait_text.splitlines()
    assert waiter.returncode == verdict, f"{wait_text}\n{wait_err.text()}"
    assert lines, wait_err.text()
    last = lines[-1].split(" ", 1)[1]
    assert last.split(":", 1)[0] == said.group(1), (last, said.group(0))
    # It followed the rollout from its first step: the demo writes its Canary once its mesh
    # is up (the trace scenarios' template needs the mesh's Jaeger address), so the wait may
    # find the controller already at the first step rather than waiting for it to start (it
    # starts once the mesh can answer preflight, which then never holds a healthy demo).
    first = lines[0]
    assert (
        "waiting for the controller to start revision" in first
        or "Progressing, weight 10%, step 1/3" in first
    ), wait_text
    assert any("Progressing, weight 10%, step 1/3" in line for line in lines), wait_text
    assert "preflight" not in wait_text, wait_text
    assert not re.search(r"step (\d+/\d+), step \1", wait_text), "the step said once a line"
    assert wait_err.text() == ""

    # Together: the wait's verdict within GAP_S of the demo's, and of the demo's own exit.
    to_summary = exited["wait"] - said_at
    to_exit = exited["wait"] - exited["demo"]
    print(
        f"\n{scenario}: wait exited {to_summary:+.2f}s after the demo printed its verdict, "
        f"{to_exit:+.2f}s after the demo exited"
    )
    assert abs(to_summary) < GAP_S, f"wait exited {to_summary:+.2f}s from the demo's verdict"
    assert abs(to_exit) < GAP_S, f"wait exited {to_exit:+.2f}s from the demo's exit"

    # Nothing of the mesh outlived the demo.
    summary_pids = json.loads((report / "report.json").read_text())["summary"]["pids"]
    assert summary_pids, "the report lists the mesh's processes"
    assert _alive([int(pid) for pid in summary_pids]) == []
