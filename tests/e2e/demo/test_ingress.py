"""`canary demo --scenario ingress`: the rollout at the edge, every user request through the
mesh's ingress gateway over HTTPS, as the gateway's own counters show."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.demo.test_demo import _children_alive, _mesh_pids, _run_demo


def test_an_edge_rollout_through_the_gateway_is_promoted(tmp_path: Path) -> None:
    code, report, output = _run_demo(tmp_path, "--scenario", "ingress")
    summary = report["summary"]
    assert code == 0, output[-3000:]
    assert (summary["phase"], summary["canary_weight"]) == ("Succeeded", 100)
    gateway = summary["gateway"]
    assert gateway["url"] == "https://shop.example.test/"
    # 40 requests a second for the whole rollout (30 s and more), every one answered 2xx by
    # the gateway's HTTPS listener, over connections it terminated TLS for. Envoy counts a
    # request when it starts and its status class when it ends, so the one or two in flight
    # when the counters are read have no class yet; none may have another one.
    assert gateway["https requests"] >= 1000
    assert 0 <= gateway["https requests"] - gateway["2xx"] <= 2
    assert gateway["5xx"] == 0
    assert gateway["TLS handshakes"] >= 1
    assert "ingress gateway https://shop.example.test/: https requests" in output
    assert not _children_alive(_mesh_pids(report))
