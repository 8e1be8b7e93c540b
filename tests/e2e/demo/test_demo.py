"""`canary demo` as a user runs it: a real rollout on real Envoys and Prometheus, start to end.

Each test runs the command in its own process (as a user would, and so a hung run can be killed
by its process group), then reads the report it wrote and checks that nothing it started is
still running.
"""

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

REPO = Path(__file__).resolve().parents[3]
CANARY = [sys.executable, "-c", "from canary.cli import main; main()"]


def _children_alive(pids: list[int]) -> list[int]:
    return [pid for pid in pids if Path(f"/proc/{pid}").exists() and not _zombie(pid)]


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except (OSError, IndexError):
        return True


def _mesh_pids(report: dict[str, Any]) -> list[int]:
    return [int(pid) for pid in report["summary"].get("pids", [])]


def _run_demo(tmp_path: Path, *args: str, timeout: float = 240) -> tuple[int, dict[str, Any], str]:
    report_dir = tmp_path / "report"
    process = subprocess.Popen(
        [*CANARY, "demo", "--report-dir", str(report_dir), *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "COLUMNS": "120"},
    )
    output = b""
    try:
        output, _ = process.communicate(timeout=timeout)
    finally:
        # A demo past its time is stopped with its mesh, not left running.
        processes.stop(process, output.decode(errors="replace"))
    text = output.decode(errors="replace")
    written = report_dir / "report.json"
    assert written.exists(), f"no report (exit {process.returncode}); output:\n{text[-4000:]}"
    report = json.loads(written.read_text())
    assert (report_dir / "report.svg").read_text().startswith("<svg")
    return process.returncode, report, text


def test_a_healthy_v2_is_promoted(tmp_path: Path) -> None:
    code, report, output = _run_demo(tmp_path)
    summary = report["summary"]
    assert code == 0, output[-3000:]
    assert (summary["phase"], summary["canary_weight"], summary["stable_subset"]) == (
        "Succeeded",
        100,
        "v2",
    )
    # The demo starts its controller once its mesh can answer preflight (demo/warmup.py), so
    # preflight passes at the first tick: a healthy demo never shows it failing.
    assert "mesh ready for preflight after" in output, output[:3000]
    preflight = [e for e in report["events"] if e["reason"].startswith("Preflight")]
    assert [e["reason"] for e in preflight] == ["PreflightPassed"], preflight
    reasons = [e["reason"] for e in report["events"] if not e["reason"].startswith("Preflight")]
    assert reasons == [
        "RolloutStarted",
        "StepStarted",
        "StepAdvanced",
        "StepAdvanced",
        "Promoting",
        "Promoted",
    ]
    weights = [sample["canary_weight"] for sample in report["samples"]]
    assert weights == sorted(weights), "the canary weight never went down"
    history = summary["status"]["history"]
    assert history, "every step was judged on measurements"
    assert all(entry["verdict"] in ("pass", "inconclusive") for entry in history)
    assert _children_alive(_mesh_pids(report)) == []
    assert "Succeeded" in output


def test_a_v2_that_fails_a_fifth_of_requests_is_rolled_back(tmp_path: Path) -> None:
    code, report, output = _run_demo(tmp_path, "--scenario", "bad", "--error-rate", "0.2")
    summary = report["summary"]
    assert code == 0, output[-3000:]
    assert (summary["phase"], summary["canary_weight"], summary["stable_subset"]) == (
        "Failed",
        0,
        "v1",
    )
    failed = [e for e in summary["status"]["history"] if e["verdict"] == "fail"]
    assert len(failed) >= 2
    assert all(e["name"] == "request-success-rate" and e["value"] < 99 for e in failed)
    reasons = [event["reason"] for event in report["events"]]
    assert reasons[-2:] == ["RollingBack", "RolledBack"]
    assert summary["seconds"] < 60, "a bad canary is caught within its first step"
    assert _children_alive(_mesh_pids(report)) == []


def test_chaos_with_outlier_detection_ejects_v2_hosts_and_v2_is_promoted(tmp_path: Path) -> None:
    code, report, output = _run_demo(tmp_path, "--scenario", "chaos")
    summary = report["summary"]
    assert code == 0, output[-3000:]
    assert (summary["phase"], summary["stable_subset"]) == ("Succeeded", "v2")
    [experiment] = summary["status"]["chaos"]
    assert experiment["phase"] == "Passed", experiment
    assert experiment["weight"] == 25
    assert experiment["ejections"] >= 1
    assert experiment["errors"] >= 1, "the fault reached the callers as real upstream 503s"
    assert experiment["successRate"] >= 95, "the bad pod was ejected: users barely noticed"
    reasons = [event["reason"] for event in report["events"]]
    assert reasons.index("ChaosStarted") < reasons.index("ChaosPassed") < reasons.index("Promoting")
    assert max(sample["ejected"] or 0 for sample in report["samples"]) >= 1
    # The fault's 503s were never judged as v2's own failures.
    assert summary["failed_checks"] == 0
    assert all(entry["verdict"] != "fail" for entry in summary["status"]["history"])
    assert _children_alive(_mesh_pids(report)) == []


def test_chaos_without_outlier_detection_fails_the_experiment_and_rolls_back(
    tmp_path: Path,
) -> None:
    code, report, output = _run_demo(tmp_path, "--scenario", "chaos-unprotected")
    summary = report["summary"]
    assert code == 0, output[-3000:]
    assert (summary["phase"], summary["canary_weight"], summary["stable_subset"]) == (
        "Failed",
        0,
        "v1",
    )
    [experiment] = summary["status"]["chaos"]
    assert experiment["phase"] == "Failed"
    assert "no canary host was ejected" in experiment["message"]
    assert experiment["successRate"] < 95, "without ejection the bad pod kept failing users"
    assert experiment["errors"] >= 1
    reasons = [event["reason"] for event in report["events"]]
    assert reasons[-3:] == ["ChaosFailed", "RollingBack", "RolledBack"]
    # v2 itself was healthy: only the experiment rolled it back.
    assert summary["failed_checks"] == 0
    assert _children_alive(_mesh_pids(report)) == []


def test_a_users_policy_with_its_own_metric_template_runs_as_written(tmp_path: Path) -> None:
    policy = REPO / "tests" / "data" / "demo" / "payments.yaml"
    code, report, output = _run_demo(tmp_path, "--policy", str(policy))
    summary = report["summary"]
    assert code == 0, output[-3000:]
    assert (summary["phase"], summary["stable_subset"]) == ("Succeeded", "green")
    queries = {e["query"] for e in summary["status"]["history"] if e["name"] == "server-errors"}
    assert queries, "the template metric was measured"
    assert all('envoy_response_code_class="5"' in q and "[|]green[|]payments" in q for q in queries)


def test_an_invalid_policy_is_refused_before_anything_starts(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text((REPO / "tests" / "data" / "broken" / "same-subset.yaml").read_text())
    started = time.monotonic()
    result = subprocess.run(
        [*CANARY, "demo", "--policy", str(broken)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "spec.canary.subset" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("missing", ["CANARY_PROMETHEUS", "CANARY_ENVOY"])
def test_a_missing_binary_says_how_to_get_it(tmp_path: Path, missing: str) -> None:
    result = subprocess.run(
        [*CANARY, "demo", "--report-dir", str(tmp_path / "r")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, missing: str(tmp_path / "no-such-binary")},
    )
    assert result.returncode == 2
    assert "cannot run the demo" in result.stdout
    assert missing in result.stdout
