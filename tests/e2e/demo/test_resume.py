"""The demo's store outlives the process: a second canary reads the status, a restarted demo
resumes the rollout where it stopped, and Ctrl-C leaves nothing running."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.e2e.demo import processes

CANARY = [sys.executable, "-c", "from canary.cli import main; main()"]


def _canary(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CANARY, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def _status(state: Path, cwd: Path) -> dict[str, Any]:
    shown = _canary("status", "demo", "--state-dir", str(state), "-o", "json", cwd=cwd)
    assert shown.returncode == 0, shown.stderr
    return dict(json.loads(shown.stdout))


def _events(state: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (state / "events.jsonl").read_text().splitlines()]


def test_a_restarted_demo_resumes_the_rollout_without_repeating_a_step(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = _canary(
        "demo", "--state-dir", str(state), "--timeout", "20", "--report-dir", "r1", cwd=tmp_path
    )
    assert first.returncode == 1, "stopped mid-rollout, which is not the expected end"
    stopped = _status(state, tmp_path)
    assert stopped["phase"] == "Progressing"
    assert stopped["canaryWeight"] in (10, 25)
    text = _canary("status", "demo", "--state-dir", str(state), cwd=tmp_path)
    assert f"weight {stopped['canaryWeight']}% to v2" in text.stdout

    second = _canary("demo", "--state-dir", str(state), "--report-dir", "r2", cwd=tmp_path)
    assert second.returncode == 0, second.stdout[-3000:]
    assert _status(state, tmp_path)["phase"] == "Succeeded"

    reasons = [event["reason"] for event in _events(state)]
    assert reasons.count("RolloutStarted") == 1, reasons
    steps = [e["message"] for e in _events(state) if e["reason"] in ("StepStarted", "StepAdvanced")]
    assert steps == ["step 1/3: weight 10", "step 2/3: weight 25", "step 3/3: weight 50"]
    resumed = json.loads((tmp_path / "r2" / "report.json").read_text())["samples"]
    assert min(s["canary_weight"] for s in resumed) >= stopped["canaryWeight"], (
        "the restarted demo never sent the canary less traffic than it had"
    )


def test_ctrl_c_stops_every_process_the_demo_started(tmp_path: Path) -> None:
    state = tmp_path / "state"
    # A test run started in the background (`.ci/run &`) inherits SIGINT ignored, and so would
    # the demo: Python then never turns Ctrl-C into KeyboardInterrupt. Any handler here is reset
    # to the default in the child at exec, as a terminal would give it.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        demo = subprocess.Popen(
            [*CANARY, "demo", "--state-dir", str(state), "--report-dir", "r"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # A demo that does not stop dumps every thread's stack on SIGABRT (see below).
            env={**os.environ, "PYTHONFAULTHANDLER": "1"},
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        status_file = state / "status" / "default" / "demo.json"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
            status_file.exists() and '"Progressing"' in status_file.read_text()
        ):
            time.sleep(0.5)
        assert status_file.exists(), "the rollout started"
        demo.send_signal(signal.SIGINT)
        try:
            output, _ = demo.communicate(timeout=45)
        except subprocess.TimeoutExpired:
            demo.send_signal(signal.SIGABRT)
            stuck, _ = demo.communicate(timeout=10)
            processes.kill(processes.survivors(stuck.decode(errors="replace")))
            raise AssertionError(
                "the demo did not stop within 45 s of Ctrl-C; its threads:\n"
                + stuck.decode(errors="replace")[-6000:]
            ) from None
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    text = output.decode(errors="replace")
    assert demo.returncode == 130, text[-2000:]
    assert "interrupted" in text
    assert re.search(r"work dir\s+(\S+)", text.replace("\n", " ")), text[-2000:]
    survivors = processes.survivors(text)
    # The mesh's processes run in process groups of their own: whatever outlived the demo is
    # stopped here, so a failure of this test does not leave them running.
    processes.kill(survivors)
    assert survivors == []
