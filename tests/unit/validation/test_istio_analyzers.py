"""Istio's own analyzer test cases, each given a Canary: we give the verdict Istio gives.

Each file in tests/data/istio-analyzers/ is our own, modelled on one of the cases in Istio's
`pkg/config/analysis/analyzers/testdata/` (the file says which, and which analyzer and test of
`analyzers_test.go` sets the expected messages), with a Canary managing the route of each
VirtualService the case is about. The table says, per Canary, which Istio codes its findings
carry and which object each names; a Canary not listed must have no finding at all.

Cases left out, and why:
- gateway-* (IngressGatewayPortAnalyzer), conflicting-gateways*: about a Gateway's workload and
  ports, or two Gateways on one port, not about a route a Canary manages.
- destinationrule-subsets-not-select-pods, -with-topology-labels, -empty-topology-labels,
  destinationrule-with-fake-host: need Pods, Nodes or ServiceEntries, which validate does not read.
- destinationrule-*-mutual-*, -simple-*, -with-ca: TLS settings (the mTLS helper's part).
- virtualservice_jwtclaimroute (needs RequestAuthentication), virtualservice_internal_gateway_ref,
  virtualservice_route_rule_no_effects_ingress (need the ingress Pods and Services),
  virtualservice_overlappingmatches (IST0130 between prefixes, asked of routes a Canary does not
  manage).
- analyze-list-type.yaml belongs to the loader (`kind: List`).
"""

from __future__ import annotations

import re
from collections import defaultdict

import pytest

from canary.validation import report
from tests.unit.validation.documents import DATA

CASES = DATA / "istio-analyzers"

# file -> {Canary name: [(code, object named in the message)]}; Canaries not listed: no finding.
EXPECTED: dict[str, dict[str, list[tuple[str, str]]]] = {
    "virtualservice-gateways.yaml": {
        "front": [("IST0132", "VirtualService default/shop-front")],
        "typo": [("IST0101", "Gateway default/storefrnt")],
        "partners": [("IST0132", "Gateway partners/partner-gw")],
    },
    "virtualservice-host-not-found-gateway.yaml": {
        "exact-wrong": [("IST0132", "VirtualService default/exact-wrong")],
        "wild-wrong": [("IST0132", "VirtualService default/wild-wrong")],
        "two-wrong": [("IST0132", "Gateway istio-system/home-gw")],
    },
    "virtualservice-host-not-found-gateway-with-ns-prefix.yaml": {
        "own-away": [("IST0132", "Gateway istio-system/own-ns")],
    },
    "virtualservice-conflicting-mesh-gateway-hosts.yaml": {
        "catalog": [("IST0109", "VirtualService store/catalog-shadow")],
        "shadow": [("IST0109", "VirtualService store/catalog ")],
        "stock-c": [("IST0109", "VirtualService team-d/stock")],
        "stock-d": [("IST0109", "VirtualService team-c/stock")],
    },
    "virtualservice-conflicting-mesh-gateway-hosts-exportto.yaml": {
        "menu-north": [("IST0109", "VirtualService south/menu")],
        "menu-south": [("IST0109", "VirtualService north/menu")],
        "b-north": [("IST0109", "VirtualService south/menu-b")],
        "b-south": [("IST0109", "VirtualService north/menu-b")],
    },
    "virtualservice-destinationhosts.yaml": {
        "bogus": [("IST0101", "Service web-bogus.default.svc.cluster.local")],
        "mirror-bogus": [("IST0101", "Service web-bogus.default.svc.cluster.local")],
        "bogusport": [("IST0101", "web:999")],
        "two-port-missing": [("IST0112", "Service default/web-2port")],
        "api-cross": [("IST0101", "Service default/api is not exported to istio-system")],
    },
    "virtualservice-destinationrules.yaml": {
        "bogus": [("IST0101", "DestinationRule default/web has no subset bogus")],
        "mirror-bogus": [("IST0101", "VirtualService default/web-mirror-bogussubset")],
    },
    "virtualservice-dupmatches.yaml": {
        "slow-first": [("IST0130", "VirtualService default/slow-first spec.http[1]")],
        "twice": [("IST0130", "VirtualService default/twice spec.http[1]")],
        "stream": [("", "cannot be managed: VirtualService default/stream")],
        "sni": [("", "cannot be managed: VirtualService default/sni")],
    },
}


def _findings(name: str) -> dict[str, list[str]]:
    """Each Canary's findings, by its name, as printed."""
    found: dict[str, list[str]] = defaultdict(list)
    for finding in report.validate_paths([CASES / name]).sorted():
        subject = re.match(r"Canary [^/]+/(\S+) ", finding.field)
        assert subject, f"a finding not about a Canary: {finding.line()}"
        found[subject.group(1)].append(f"{finding.code} {finding.message}")
    return found


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_canary_gets_the_verdict_istio_gives(name: str) -> None:
    found = _findings(name)
    expected = EXPECTED[name]
    assert sorted(found) == sorted(expected), found
    for canary, wanted in expected.items():
        lines = found[canary]
        assert len(lines) == len(wanted), lines
        for (code, obj), line in zip(wanted, lines, strict=True):
            assert line.startswith(f"{code} "), line
            assert obj in line, line


def test_every_case_file_is_in_the_table() -> None:
    assert sorted(path.name for path in CASES.glob("*.yaml")) == sorted(EXPECTED)
