"""`canary demo --scenario mtls-strict`: the rollout goes on in a STRICT namespace while a
plaintext caller outside the mesh is refused, both shown by Envoy's own counters.

The scenario's own objects, with the Canary cut to one short step so the run costs seconds:
`--policy` runs them as written, and the mesh turns mTLS on because they ask for it.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from canary.demo import scenario
from tests.e2e.demo.test_demo import _children_alive, _mesh_pids, _run_demo


def _short_policy(path: Path) -> Path:
    bodies = scenario.objects(scenario.Scenario.MTLS_STRICT)
    for body in bodies:
        if body["kind"] == "Canary":
            analysis = body["spec"]["analysis"]
            analysis.update(interval="6s", checkInterval="1s", stepWeights=[50])
            for metric in analysis["metrics"]:
                metric["interval"] = "6s"
                metric.pop("minRequests", None)
    path.write_text(yaml.safe_dump_all(bodies, sort_keys=False))
    return path


def test_the_rollout_succeeds_while_a_plaintext_caller_is_refused(tmp_path: Path) -> None:
    policy = _short_policy(tmp_path / "mtls-strict.yaml")
    code, report, output = _run_demo(
        tmp_path, "--scenario", "mtls-strict", "--policy", str(policy), timeout=120
    )
    summary = report["summary"]
    assert code == 0, output[-3000:]
    assert (summary["phase"], summary["canary_weight"]) == ("Succeeded", 100)
    assert output.count("mTLS STRICT") == 4, output[:2000]
    refused = re.search(
        r"plaintext caller at :\d+ \(no sidecar\): (\d+) refused, (\d+) answered", output
    )
    assert refused is not None, output[-3000:]
    assert int(refused.group(1)) > 0
    assert int(refused.group(2)) == 0
    # The refusals are Envoy's: the canary pod's listener matched no filter chain for them.
    refusals = re.findall(r"no_filter_chain_match (\d+)", output)
    assert sum(map(int, refusals)) >= int(refused.group(1))
    handshakes = re.findall(
        r"cluster\.outbound\|80\|v2\|demo\.default\.svc\.cluster\.local\.ssl\.handshake (\d+)",
        output,
    )
    assert handshakes
    assert int(handshakes[0]) > 0
    # Preflight paired the scenario's STRICT policy with its ISTIO_MUTUAL rule before step one.
    passed = [e for e in report["events"] if e["reason"] == "PreflightPassed"]
    assert passed, report["events"]
    assert "mtls ok" in passed[-1]["message"], passed
    assert _children_alive(_mesh_pids(report)) == []
