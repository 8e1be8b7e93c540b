"""api/mtls: which PeerAuthentication and DestinationRule pairings break traffic to a subset.

Each row is one world and the problems istiod's rules give it. Istio's own analyzer for this
(IST0113, MTLSPolicyConflict) is retired and its test data gone; the rows are written from
istiod's source (`ComposePeerAuthentication`, `MergeSubsetTrafficPolicy`,
`buildUpstreamTLSSettings`, the inbound filter chain options), and where a row shares the
shape of an analyzer test file, the file is named.
"""

from __future__ import annotations

from typing import Any

import pytest

from canary.api import mtls

SUBSETS = {"v1": {"app": "reviews", "version": "v1"}, "v2": {"app": "reviews", "version": "v2"}}


def pa(
    name: str,
    namespace: str = "prod",
    mode: str | None = None,
    *,
    selector: dict[str, str] | None = None,
    ports: dict[str, Any] | None = None,
    created: str | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if mode is not None:
        spec["mtls"] = {"mode": mode}
    if selector is not None:
        spec["selector"] = {"matchLabels": selector}
    if ports is not None:
        spec["portLevelMtls"] = ports
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if created:
        metadata["creationTimestamp"] = created
    return {"kind": "PeerAuthentication", "metadata": metadata, "spec": spec}


def dr(
    tls: str | None = None,
    *,
    name: str = "reviews",
    namespace: str = "prod",
    host: str = "reviews",
    subset_tls: dict[str, str] | None = None,
    port_tls: dict[int, str] | None = None,
) -> dict[str, Any]:
    policy: dict[str, Any] = {}
    if tls is not None:
        policy["tls"] = {"mode": tls}
    if port_tls:
        policy["portLevelSettings"] = [
            {"port": {"number": port}, "tls": {"mode": mode}} for port, mode in port_tls.items()
        ]
    subsets: list[dict[str, Any]] = []
    for subset, labels in SUBSETS.items():
        entry: dict[str, Any] = {"name": subset, "labels": labels}
        if subset_tls and subset in subset_tls:
            entry["trafficPolicy"] = {"tls": {"mode": subset_tls[subset]}}
        subsets.append(entry)
    spec: dict[str, Any] = {"host": host, "subsets": subsets}
    if policy:
        spec["trafficPolicy"] = policy
    return {
        "kind": "DestinationRule",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def lines(
    pas: list[dict[str, Any]], drs: list[dict[str, Any]], **kwargs: Any
) -> list[tuple[str, str, str]]:
    found = mtls.problems(
        namespace="prod",
        host="reviews",
        subsets=SUBSETS,
        peer_authentications=pas,
        destination_rules=drs,
        **kwargs,
    )
    return [(p.subset, p.object, p.path) for p in found]


MESH_STRICT = pa("default", "istio-system", "STRICT")
NS_STRICT = pa("default", "prod", "STRICT")
DR_PATH = "spec.trafficPolicy.tls.mode"

CASES: list[tuple[str, list[dict[str, Any]], list[dict[str, Any]], list[tuple[str, str, str]]]] = [
    ("nothing set: PERMISSIVE and auto mTLS meet", [], [], []),
    ("mesh STRICT, no rule: auto mTLS sends mTLS", [MESH_STRICT], [], []),
    ("mesh STRICT, rule with ISTIO_MUTUAL", [MESH_STRICT], [dr("ISTIO_MUTUAL")], []),
    (
        # The flagger#239 shape and real-istio.md's test rule: tls DISABLE against STRICT.
        "mesh STRICT, rule DISABLE: both subsets refuse the plaintext",
        [MESH_STRICT],
        [dr("DISABLE")],
        [
            ("v1", "DestinationRule prod/reviews", DR_PATH),
            ("v2", "DestinationRule prod/reviews", DR_PATH),
        ],
    ),
    (
        "namespace STRICT, rule DISABLE for the canary subset only",
        [NS_STRICT],
        [dr("ISTIO_MUTUAL", subset_tls={"v2": "DISABLE"})],
        [("v2", "DestinationRule prod/reviews", "spec.subsets[1].trafficPolicy.tls.mode")],
    ),
    (
        "a subset's ISTIO_MUTUAL overrides the host's DISABLE",
        [NS_STRICT],
        [dr("DISABLE", subset_tls={"v1": "ISTIO_MUTUAL", "v2": "ISTIO_MUTUAL"})],
        [],
    ),
    (
        "namespace DISABLE overrides mesh STRICT; ISTIO_MUTUAL then breaks",
        [MESH_STRICT, pa("plain", "prod", "DISABLE")],
        [dr("ISTIO_MUTUAL")],
        [
            ("v1", "DestinationRule prod/reviews", DR_PATH),
            ("v2", "DestinationRule prod/reviews", DR_PATH),
        ],
    ),
    (
        "a workload STRICT policy on the canary only",
        [pa("v2-strict", "prod", "STRICT", selector={"version": "v2"})],
        [dr("DISABLE")],
        [("v2", "DestinationRule prod/reviews", DR_PATH)],
    ),
    (
        "a workload UNSET inherits the namespace's STRICT",
        [NS_STRICT, pa("v2", "prod", None, selector={"version": "v2"})],
        [dr("DISABLE")],
        [
            ("v1", "DestinationRule prod/reviews", DR_PATH),
            ("v2", "DestinationRule prod/reviews", DR_PATH),
        ],
    ),
    (
        "a selector in the root namespace is ignored by istiod",
        [pa("root-sel", "istio-system", "STRICT", selector={"version": "v2"})],
        [dr("DISABLE")],
        [],
    ),
    (
        "a policy in another namespace does not apply",
        [pa("default", "other", "STRICT")],
        [dr("DISABLE")],
        [],
    ),
    (
        "of two namespace policies the oldest wins",
        [
            pa("b-new", "prod", "PERMISSIVE", created="2026-01-02T00:00:00Z"),
            pa("a-old", "prod", "STRICT", created="2026-01-01T00:00:00Z"),
        ],
        [dr("DISABLE")],
        [
            ("v1", "DestinationRule prod/reviews", DR_PATH),
            ("v2", "DestinationRule prod/reviews", DR_PATH),
        ],
    ),
    (
        # Auto mTLS reads namespace and mesh policies only (BestEffortInferServiceMTLSMode).
        "namespace DISABLE, workload STRICT, no tls: auto mTLS sends plaintext",
        [pa("plain", "prod", "DISABLE"), pa("v2", "prod", "STRICT", selector={"version": "v2"})],
        [dr(None)],
        [("v2", "DestinationRule prod/reviews", DR_PATH)],
    ),
    (
        "namespace STRICT, workload DISABLE, no rule: auto mTLS sends mTLS",
        [NS_STRICT, pa("v1-plain", "prod", "DISABLE", selector={"version": "v1"})],
        [],
        [("v1", "PeerAuthentication prod/v1-plain", "spec.mtls.mode")],
    ),
    (
        # Shape of destinationrule-mutual-destination.yaml (IST0128): MUTUAL with own certs.
        "MUTUAL with the user's certificates to a sidecar",
        [],
        [dr("MUTUAL")],
        [
            ("v1", "DestinationRule prod/reviews", DR_PATH),
            ("v2", "DestinationRule prod/reviews", DR_PATH),
        ],
    ),
    (
        "SIMPLE to a DISABLE workload may be the app's own TLS",
        [pa("p", "prod", "DISABLE")],
        [dr("SIMPLE")],
        [],
    ),
    (
        # Shape of destinationrule-mutual-port.yaml: the port entry replaces the host's tls.
        "a port entry's DISABLE against STRICT, port unknown: reported at that port",
        [NS_STRICT],
        [dr("ISTIO_MUTUAL", port_tls={9080: "DISABLE"})],
        [
            (
                "v1",
                "DestinationRule prod/reviews",
                "spec.trafficPolicy.portLevelSettings[0].tls.mode",
            ),
            (
                "v2",
                "DestinationRule prod/reviews",
                "spec.trafficPolicy.portLevelSettings[0].tls.mode",
            ),
        ],
    ),
    (
        "a workload's portLevelMtls DISABLE against ISTIO_MUTUAL",
        [
            pa(
                "v2",
                "prod",
                "STRICT",
                selector={"version": "v2"},
                ports={"8080": {"mode": "DISABLE"}},
            )
        ],
        [dr("ISTIO_MUTUAL")],
        [("v2", "DestinationRule prod/reviews", DR_PATH)],
    ),
    (
        "a root-namespace rule serves callers when the service namespace has none",
        [NS_STRICT],
        [dr("DISABLE", namespace="istio-system", host="reviews.prod.svc.cluster.local")],
        [
            ("v1", "DestinationRule istio-system/reviews", DR_PATH),
            ("v2", "DestinationRule istio-system/reviews", DR_PATH),
        ],
    ),
    (
        # istiod reads a `tls` without a mode as DISABLE (the enum's zero), not as auto mTLS.
        "tls without a mode is DISABLE",
        [NS_STRICT],
        [{**dr(None), "spec": {**dr(None)["spec"], "trafficPolicy": {"tls": {}}}}],
        [
            ("v1", "DestinationRule prod/reviews", DR_PATH),
            ("v2", "DestinationRule prod/reviews", DR_PATH),
        ],
    ),
    (
        "a rule for another host does not apply",
        [NS_STRICT],
        [dr("DISABLE", host="ratings")],
        [],
    ),
]


@pytest.mark.parametrize(
    ("pas", "drs", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_problems_by_table(
    pas: list[dict[str, Any]], drs: list[dict[str, Any]], expected: list[tuple[str, str, str]]
) -> None:
    assert lines(pas, drs) == expected


def test_port_given_picks_that_ports_entry_only() -> None:
    rule = dr("ISTIO_MUTUAL", port_tls={9080: "DISABLE"})
    assert lines([NS_STRICT], [rule], port=8080) == []
    assert [p[2] for p in lines([NS_STRICT], [rule], port=9080)] == [
        "spec.trafficPolicy.portLevelSettings[0].tls.mode"
    ] * 2


def test_auto_mtls_off_sends_plaintext_to_strict() -> None:
    found = mtls.problems(
        namespace="prod",
        host="reviews",
        subsets={"v2": SUBSETS["v2"]},
        peer_authentications=[NS_STRICT],
        destination_rules=[],
        auto_mtls=False,
    )
    assert [(p.object, p.path) for p in found] == [
        ("PeerAuthentication prod/default", "spec.mtls.mode")
    ]
    assert "auto mTLS is off" in found[0].message
    assert "ISTIO_MUTUAL" in found[0].message


def test_message_names_the_server_policy_and_the_fix() -> None:
    (problem, *_) = mtls.problems(
        namespace="prod",
        host="reviews",
        subsets=SUBSETS,
        peer_authentications=[MESH_STRICT],
        destination_rules=[dr("DISABLE")],
    )
    assert problem.line() == (
        "DestinationRule prod/reviews spec.trafficPolicy.tls.mode: sends plaintext to subset "
        "v1, which istio-system/default (spec.mtls.mode: STRICT) accepts mTLS only; set "
        "ISTIO_MUTUAL (or drop tls for auto mTLS)"
    )


@pytest.mark.parametrize(
    ("pas", "drs", "path"),
    [
        ([pa("odd", "prod", "STRICTLY")], [], "spec.mtls.mode"),
        ([], [dr("ISTIO")], DR_PATH),
        (
            [
                pa(
                    "p",
                    "prod",
                    "STRICT",
                    selector={"version": "v1"},
                    ports={"http": {"mode": "DISABLE"}},
                )
            ],
            [],
            "spec.portLevelMtls[http].mode",
        ),
    ],
)
def test_an_unknown_mode_is_a_problem_never_a_pass(
    pas: list[dict[str, Any]], drs: list[dict[str, Any]], path: str
) -> None:
    found = lines(pas, drs)
    assert found
    assert all(p[2] == path for p in found)


@pytest.mark.parametrize(
    "junk",
    [
        {"spec": None},
        {"spec": {"mtls": "STRICT"}},
        {"spec": {"selector": [1]}},
        {"spec": {"portLevelMtls": ["x"]}},
        {"metadata": "x", "spec": {"mtls": {"mode": "STRICT"}}},
    ],
)
def test_malformed_objects_never_raise(junk: dict[str, Any]) -> None:
    rule = {
        "metadata": {"name": "r"},
        "spec": {
            "host": "reviews",
            "subsets": "x",
            "trafficPolicy": {"portLevelSettings": [None, {"port": "x"}]},
        },
    }
    mtls.problems(
        namespace="prod",
        host="reviews",
        subsets=SUBSETS,
        peer_authentications=[junk],
        destination_rules=[rule, {"spec": []}],
    )
