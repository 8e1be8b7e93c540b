"""Issue 13: `canary demo --approval` holds at the promotion gate, judged all the while, until a
person decides with `canary approve|reject demo --state-dir D`; approve promotes, reject rolls
back, and the demo says both ended as expected."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.demo import processes
from tests.e2e.demo.test_wait import SUMMARY, Timed

CANARY = [sys.executable, "-c", "from canary.cli import main; main()"]
DEMO_TIMEOUT_S = 150
GATE_S = 120.0
# How long the gate is watched holding before anyone decides.
HOLD_S = 5.0


def _status(state: Path) -> dict[str, Any]:
    path = state / "status" / "default" / "demo.json"
    try:
        found: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return found


def _wait_for(state: Path, demo: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and demo.poll() is None:
        status = _status(state)
        if status.get("waitingFor") == "approval for promotion":
            return status
        time.sleep(0.2)
    return _status(state)


@pytest.mark.parametrize(
    ("verb", "decision", "phase", "weight"),
    [("approve", "approved", "Succeeded", 100), ("reject", "rejected", "Failed", 0)],
)
def test_the_demo_holds_at_the_gate_until_a_person_decides(
    tmp_path: Path, verb: str, decision: str, phase: str, weight: int
) -> None:
    state, report = tmp_path / "state", tmp_path / "report"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "250", "USER": "alice"}
    demo = subprocess.Popen(
        [*CANARY, "demo", "--approval", "--state-dir", str(state), "--report-dir", str(report),
         "--timeout", str(DEMO_TIMEOUT_S)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True, env=env,
    )  # fmt: skip
    assert demo.stdout is not None
    out = Timed(demo.stdout)
    try:
        waiting = _wait_for(state, demo, GATE_S)
        assert waiting.get("waitingFor") == "approval for promotion", out.text()[-3000:]
        assert waiting["canaryWeight"] == 50
        checked_at = waiting.get("lastCheckAt")
        time.sleep(HOLD_S)
        held = _status(state)
        # Held at its weight, still judged: the checks run while a person is asked.
        assert (held["phase"], held["canaryWeight"]) == ("Progressing", 50)
        assert held.get("lastCheckAt") != checked_at
        live = out.text()
        assert f"canary approve demo -n default --state-dir {state}" in live, live[-3000:]
        decided = subprocess.run(
            [*CANARY, verb, "demo", "--state-dir", str(state), "--timeout", "30s"],
            cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env, check=False,
        )  # fmt: skip
        assert decided.returncode == 0, decided.stdout + decided.stderr
        assert f"{decision} by alice via cli" in decided.stdout
        demo.wait(timeout=DEMO_TIMEOUT_S)
        out.join(10)
    finally:
        left = processes.stop(demo, out.text())
    assert left == []
    text = out.text()
    summary = out.when(SUMMARY)
    assert summary is not None, text[-3000:]
    assert (summary[1].group(1), summary[1].group(2)) == (phase, "as expected")
    assert demo.returncode == 0, text[-3000:]
    final = _status(state)
    assert (final["phase"], final["canaryWeight"]) == (phase, weight)
    [record] = final["approvals"]
    assert (record["gate"], record["decision"], record["by"], record["via"]) == (
        "promotion",
        decision,
        "alice",
        "cli",
    )
    # A second decision on the ended rollout is refused and writes nothing.
    again = subprocess.run(
        [*CANARY, "approve", "demo", "--state-dir", str(state), "--timeout", "5s"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert again.returncode == 1
    assert "nothing to approve" in again.stderr + again.stdout
