"""`canary demo --scenario subtle|noisy`, end to end: the comparison with stable on real Envoys
and Prometheus, one run each.

subtle: v2 fails 3% of requests and v1 1%; both above the check's `min: 95` line, which must
never fail; the sequential test must prove v2 worse and the rollout roll back at once, for that
reason. noisy: both fail 2%; v2 must be promoted without a regression ever proven, while the
`min: 99` line judged beside it as a dry run fails and says where it would have rolled back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from canary.demo import comparing
from tests.e2e.demo.test_demo import _children_alive, _mesh_pids, _run_demo


def _records(report: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """Every distinct record of one check the live view saw (one a tick), oldest first."""
    found = {
        check["at"]: check
        for sample in report["samples"]
        for check in sample["checks"]
        if check["name"] == name
    }
    return [found[at] for at in sorted(found)]


def _width(record: dict[str, Any]) -> float:
    canary = record["comparison"]["canary"]
    return float(canary["high"] - canary["low"])


def test_a_subtle_regression_above_the_line_is_proven_and_rolled_back(tmp_path: Path) -> None:
    code, report, output = _run_demo(tmp_path, "--scenario", "subtle", "--timeout", "150")
    summary = report["summary"]
    assert code == 0, output[-4000:]
    assert (summary["phase"], summary["canary_weight"], summary["stable_subset"]) == (
        "Failed",
        0,
        "v1",
    )
    # Rolled back by the proof, at once, in the comparison's words: the rollback's reason, and
    # the check's latest record in the status.
    reasons = [event["reason"] for event in report["events"]]
    assert reasons[-3:] == ["RegressionProven", "RollingBack", "RolledBack"], reasons
    rolling_back = report["events"][-2]["message"]
    assert rolling_back.startswith("request-success-rate: canary "), rolling_back
    assert "proven worse after" in rolling_back
    (latest,) = [c for c in summary["status"]["checks"] if c["name"] == "request-success-rate"]
    assert "proven worse after" in latest["message"]
    assert summary["status"]["failedChecks"] == 1, "one proof, not threshold failures"
    compared = [r for r in _records(report, "request-success-rate") if r["comparison"]]
    assert len(compared) >= 3, "the live view saw the test tick by tick"
    last = compared[-1]["comparison"]
    assert last["verdict"] == "regression"
    assert last["canary"]["rate"] > last["stable"]["rate"]
    assert _width(compared[-1]) < _width(compared[0]), "the canary's interval narrowed"
    # Its min: 95 line never failed: the check failed once, by the proof alone.
    failed = [r for r in compared if r["verdict"] == "fail"]
    assert [r["comparison"]["verdict"] for r in failed] == ["regression"]
    assert "line never failed" in summary["why"][2], summary["why"]
    # Outlier detection never hid the errors: no v2 host was ejected.
    assert max(sample["ejected"] or 0 for sample in report["samples"]) == 0
    why = summary["why"]
    assert "v2 proven worse after" in why[0], why
    assert summary["seconds"] < 120, "the verdict comes within about two minutes"
    assert _children_alive(_mesh_pids(report)) == []


def test_a_noisy_but_healthy_v2_is_promoted_where_a_min_99_line_would_roll_it_back(
    tmp_path: Path,
) -> None:
    code, report, output = _run_demo(tmp_path, "--scenario", "noisy", "--timeout", "170")
    summary = report["summary"]
    assert code == 0, output[-4000:]
    assert (summary["phase"], summary["canary_weight"], summary["stable_subset"]) == (
        "Succeeded",
        100,
        "v2",
    )
    assert summary["failed_checks"] == 0
    compared = [r for r in _records(report, "request-success-rate") if r["comparison"]]
    assert compared
    assert all(r["comparison"]["verdict"] != "regression" for r in compared)
    # The dry run judged the same requests by a min: 99 line, and failed without counting.
    line = _records(report, comparing.POLICY_CHECK)
    failed = [r for r in line if r["verdict"] == "fail"]
    assert len(failed) >= 2
    assert not any(r["counted"] for r in line)
    said = [text for text in summary["why"] if text.startswith(comparing.POLICY_CHECK)]
    assert said, summary["why"]
    assert "would have rolled v2 back at step" in said[0]
    assert "would have rolled v2 back at step" in output
    assert _children_alive(_mesh_pids(report)) == []
