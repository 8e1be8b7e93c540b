"""`canary demo --scenario slow-traces`, end to end: real Envoys tracing into a real Jaeger.

v2 makes a share of its `POST /checkout` requests slower. The built-in request-duration check
(the p99 over all of v2's requests) must pass at every judged tick, the trace check on the p99
of v2's checkout spans must fail, and v2 must be rolled back for that reason; the record names
the slowest traces, which the demo looked up in its Jaeger before stopping it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from canary.demo import scenario
from tests.e2e.demo.test_demo import CANARY, _children_alive, _mesh_pids, _run_demo


def _records(report: dict[str, Any], name: str) -> dict[str, dict[str, Any]]:
    """Every distinct record of one check the live view saw (one a tick), by when it was made."""
    return {
        check["at"]: check
        for sample in report["samples"]
        for check in sample["checks"]
        if check["name"] == name
    }


def test_a_slow_checkout_is_caught_by_its_spans_while_the_overall_p99_passes(
    tmp_path: Path, jaeger_binary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The demo finds Jaeger as a user's would; here, the one the fixture built.
    monkeypatch.setenv("CANARY_JAEGER", str(jaeger_binary))
    code, report, output = _run_demo(
        tmp_path,
        "--scenario",
        "slow-traces",
        "--timeout",
        "120",
        "--state-dir",
        str(tmp_path / "state"),
        timeout=150,
    )
    summary = report["summary"]
    assert code == 0, output[-4000:]
    assert (summary["phase"], summary["canary_weight"], summary["stable_subset"]) == (
        "Failed",
        0,
        "v1",
    )
    status = summary["status"]
    # Failed for the trace check's reason, and for nothing else.
    failed = [entry for entry in status["history"] if entry["verdict"] == "fail"]
    assert len(failed) >= 2
    assert {entry["name"] for entry in failed} == {scenario.TRACE_CHECK}
    for entry in failed:
        # A measured value over the threshold: never too few spans for too long.
        assert entry["kind"] == "value", entry
        assert entry["value"] > scenario.CHECKOUT_P99_MS
        assert f"outside <= {scenario.CHECKOUT_P99_MS}" in entry["message"]
        assert entry["spans"]["operation"] == "POST /checkout"
        assert entry["spans"]["spans"] >= 1
    latest = {check["name"]: check for check in status["checks"]}
    assert latest[scenario.TRACE_CHECK]["verdict"] == "fail"
    reasons = [event["reason"] for event in report["events"]]
    assert reasons[-2:] == ["RollingBack", "RolledBack"]
    warned = [event["message"] for event in report["events"] if event["reason"] == "MetricFailed"]
    assert warned
    assert all(message.startswith(f"{scenario.TRACE_CHECK} ") for message in warned)

    # The overall p99 passed at every tick it was judged, and was judged.
    duration = _records(report, "request-duration")
    judged = [check for check in duration.values() if check["verdict"] != "inconclusive"]
    assert judged, "request-duration was judged on measurements"
    assert all(check["verdict"] == "pass" for check in judged), judged
    assert all(check["value"] <= 500 for check in judged)
    assert all(e["verdict"] != "fail" for e in status["history"] if e["name"] == "request-duration")

    # The record names the slowest traces, and they were in Jaeger: the worst is a slow checkout.
    traces = summary["traces"]
    assert traces["operation"] == "POST /checkout"
    examples = traces["record"]["spans"]["examples"]
    assert examples
    assert [example["traceId"] for example in traces["examples"]] == examples
    assert all(example["inJaeger"] for example in traces["examples"]), traces["examples"]
    assert traces["examples"][0]["durationMs"] >= scenario.SLOW_MS
    # Each version's checkout spans, as the view showed them: only v2's were slow.
    per_version = traces["per_version"]
    assert per_version["v2"]["max"] >= scenario.SLOW_MS
    assert per_version["v1"]["max"] is not None
    assert per_version["v1"]["max"] < scenario.CHECKOUT_P99_MS
    assert "POST /checkout p99 ms" in output
    assert "example trace" in output

    # `canary explain` names the operation and the example traces.
    explained = subprocess.run(
        [*CANARY, "explain", "demo", "-n", "default", "--state-dir", str(tmp_path / "state")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert explained.returncode == 0, explained.stdout + explained.stderr
    assert "of 'POST /checkout' judged" in explained.stdout, explained.stdout
    assert f"example traces: {examples[0]}" in explained.stdout, explained.stdout

    assert summary["seconds"] < 90, "a slow checkout is caught within a couple of steps"
    assert _children_alive(_mesh_pids(report)) == []


def test_without_jaeger_the_scenario_says_how_to_get_it(tmp_path: Path) -> None:
    result = subprocess.run(
        [*CANARY, "demo", "--scenario", "slow-traces", "--report-dir", str(tmp_path / "r")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "CANARY_JAEGER": str(tmp_path / "no-such-jaeger"), "COLUMNS": "200"},
    )
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "cannot run the demo" in result.stdout
    assert "tests/jaeger/build" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_the_span_metrics_built_in_reaches_the_same_verdict(
    tmp_path: Path, jaeger_binary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same v2, judged by the built-in trace-duration from span metrics in Prometheus (the
    spanmetrics connector's histogram) instead of Jaeger's API: rolled back for that check."""
    monkeypatch.setenv("CANARY_JAEGER", str(jaeger_binary))
    code, report, output = _run_demo(
        tmp_path, "--scenario", "slow-traces-metrics", "--timeout", "120", timeout=150
    )
    summary = report["summary"]
    assert code == 0, output[-4000:]
    assert (summary["phase"], summary["canary_weight"]) == ("Failed", 0)
    status = summary["status"]
    failed = [entry for entry in status["history"] if entry["verdict"] == "fail"]
    assert len(failed) >= 2
    assert {entry["name"] for entry in failed} == {scenario.SPAN_METRICS_CHECK}
    for entry in failed:
        assert entry["kind"] == "value", entry
        assert entry["value"] > scenario.CHECKOUT_P99_MS
        assert 'span_name="POST /checkout"' in entry["query"]
    duration = _records(report, "request-duration")
    judged = [check for check in duration.values() if check["verdict"] != "inconclusive"]
    assert judged
    assert all(check["verdict"] == "pass" for check in judged), judged
    assert _children_alive(_mesh_pids(report)) == []
