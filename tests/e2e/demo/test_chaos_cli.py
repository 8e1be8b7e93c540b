"""`canary chaos` against a running demo: the controller runs the one-off experiment on the real
Envoys, the command prints its verdict, and the rollout carries on."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from canary.demo import scenario
from tests.e2e.demo import processes

CANARY = [sys.executable, "-c", "from canary.cli import main; main()"]


def _canary(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CANARY, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def _status(state: Path, cwd: Path) -> dict[str, Any]:
    shown = _canary("status", "demo", "--state-dir", str(state), "-o", "json", cwd=cwd)
    return dict(json.loads(shown.stdout)) if shown.returncode == 0 else {}


def test_a_one_off_experiment_on_a_live_step_prints_its_verdict(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    # Longer steps than the demo's, so a live step is there to be tested.
    objects = [scenario.virtual_service(), scenario.destination_rule()]
    objects.append(scenario.canary(step_seconds=20))
    policy.write_text(yaml.safe_dump_all(objects))
    state = tmp_path / "state"
    log = tmp_path / "demo.out"
    with log.open("wb") as out:
        demo = subprocess.Popen(
            [*CANARY, "demo", "--policy", str(policy), "--state-dir", str(state)],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not _status(state, tmp_path).get("stepStartedAt"):
            time.sleep(0.5)
        asked = _canary(
            "chaos",
            "demo",
            "--state-dir",
            str(state),
            "--fault",
            "abort:503:100",
            "--duration",
            "8s",
            "--experiment",
            "by-hand",
            cwd=tmp_path,
        )
        assert asked.returncode == 0, asked.stdout + asked.stderr
        assert "\nby-hand passed: " in asked.stdout, asked.stdout
        assert "injected abort 503 to 100% on v2" in asked.stdout
        demo.wait(timeout=180)
    finally:
        # Also when an assertion above failed: nothing of the mesh may outlive the test.
        left = processes.stop(demo, log.read_text(errors="replace"))
    assert left == [], "the demo stopped everything it started"
    final = _status(state, tmp_path)
    assert demo.returncode == 0
    assert final["phase"] == "Succeeded", "a passing one-off experiment lets the rollout go on"
    [result] = final["chaos"]
    assert result["name"] == "by-hand"
    assert result["phase"] == "Passed"
    assert result["ejections"] >= 1
    body = json.loads((state / "objects" / "Canary" / "default" / "demo.json").read_text())
    assert "canary.dev/chaos-request" not in body["metadata"].get("annotations", {})
    assert final["failedChecks"] == 0, "the fault's 503s were not judged as v2's own"
