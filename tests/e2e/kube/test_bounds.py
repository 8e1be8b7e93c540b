"""Out-of-bounds Canaries on a real API server: refused at apply where the CRD schema can say the
bound, otherwise admitted and made Invalid by the controller with the very line `canary
validate` prints, and never a crashed tick.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from canary.api import problems
from canary.api.resources import Canary
from tests.e2e.kube import harness
from tests.kubeenv.cluster import KubeCluster


def _changed(canary: dict[str, Any], name: str, path: str, value: Any) -> dict[str, Any]:
    body = copy.deepcopy(canary)
    body["metadata"]["name"] = name
    *parents, last = path.split(".")
    node = body["spec"]
    for part in parents:
        node = node[part]
    node[last] = value
    return body


def _line(body: dict[str, Any]) -> str:
    """What `canary validate` says of the body: one line, with its field path."""
    with pytest.raises(ValidationError) as caught:
        Canary.model_validate(body)
    [line] = problems.lines(caught.value, Canary)
    return line


# Admitted by the API server (a pattern cannot bound a duration, nor compare two fields).
ADMITTED = {
    "long-interval": ("analysis.interval", "100000000h"),
    "long-deadline": ("progressDeadline", "1000h"),
    "long-timeout": ("analysis.webhooks", [{"name": "h", "url": "http://x/", "timeout": "99h"}]),
    "same-labels": ("canary", {"subset": "v2", "labels": {"app": "demo", "version": "v1"}}),
    "no-labels": ("canary", {"subset": "v2", "labels": {}}),
}
# Refused at apply: the CRD says the bound, or JSON cannot carry the value.
REFUSED = {
    "zero-step": ("analysis.stepWeights", [0, 100], "stepWeights"),
    "huge-threshold": ("analysis.threshold", 99_999_999, "threshold"),
    "nan-bound": ("analysis.metrics", [{"name": "request-success-rate",
                                        "thresholdRange": {"min": float("nan")}}], "NaN"),
}  # fmt: skip


def test_out_of_bounds_values_are_refused_or_made_invalid_never_a_crash(
    kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path
) -> None:
    vs, dr, canary = harness.objects(kube_namespace)
    canary["spec"]["stable"]["labels"] = {"app": "demo", "version": "v1"}
    harness.apply(kube_cluster, [vs, dr])
    for name, (path, value, words) in REFUSED.items():
        refused = harness.apply(kube_cluster, [_changed(canary, name, path, value)], check=False)
        assert refused.returncode != 0, name
        assert words in refused.stderr, refused.stderr
    bad = {name: _changed(canary, name, *change) for name, change in ADMITTED.items()}
    expected = {name: _line(body) for name, body in bad.items()}
    harness.apply(kube_cluster, list(bad.values()))
    controller = harness.ControllerProcess(
        kube_cluster, tmp_path, "http://127.0.0.1:1", leader_election=False
    ).start()
    try:
        for name, line in expected.items():
            found: dict[str, Any] = {}

            def invalid(name: str = name, found: dict[str, Any] = found) -> str | None:
                found.update(harness.status(kube_cluster, kube_namespace, name))
                return None if found.get("phase") == "Invalid" else f"phase {found.get('phase')}"

            harness.wait_for(f"{name} to be Invalid", invalid, timeout=30)
            conditions = [c for c in found.get("conditions") or [] if c["reason"] == "InvalidSpec"]
            assert conditions, json.dumps(found)
            assert conditions[0]["message"] == line, (conditions[0]["message"], line)
        log = controller.log_path.read_text()
        assert "tick.crashed" not in log, controller.log_tail()
    finally:
        controller.stop()
