"""Preflight's mTLS item through the TlsPolicies fake: each broken pairing one line naming the
object and field to change, the subsets' pods known by the Canary's or the rule's labels, and
policies that cannot be read held as unknown, never passed."""

from __future__ import annotations

from typing import Any

import pytest

from canary.api import builtins
from canary.api.spec import CanarySpec
from canary.controller import preflight
from canary.controller.observe import route_of
from canary.controller.sources import Sources
from canary.engine.preflight import ItemState, PreflightItem
from canary.fakes import FakeMetrics, FakeSecrets, FakeStore, FakeTlsPolicies, FakeWebhooks
from canary.ports import CanaryKey

KEY = CanaryKey("shop", "reviews")
SUBSETS = [{"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2"}}]


def spec_of(*, labels: bool = True, **service: Any) -> CanarySpec:
    raw: dict[str, Any] = {
        "service": {"host": "reviews", **service},
        "stable": {"subset": "v1", **({"labels": {"version": "v1"}} if labels else {})},
        "canary": {"subset": "v2", **({"labels": {"version": "v2"}} if labels else {})},
        "analysis": {"stepWeights": [10, 50]},
    }
    return CanarySpec.model_validate(raw)


def item(spec: CanarySpec, tls: FakeTlsPolicies | None, key: CanaryKey = KEY) -> PreflightItem:
    context = preflight.Context(
        key,
        spec,
        route_of(key, spec),
        None,
        preflight.Preflight(tls=tls),
        FakeStore(),
        Sources(builtin=FakeMetrics(), webhooks=FakeWebhooks(), secrets=FakeSecrets()),
        builtins.QuerySet.ISTIO,
    )
    return preflight.mtls_pairings(context)


def peer_authentication(
    namespace: str, mode: str, name: str = "default", selector: dict[str, str] | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {"mtls": {"mode": mode}}
    if selector:
        spec["selector"] = {"matchLabels": selector}
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"namespace": namespace, "name": name},
        "spec": spec,
    }


def rule(
    namespace: str = "shop",
    tls: str | None = None,
    *,
    name: str = "reviews",
    host: str = "reviews",
    subsets: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"host": host, "subsets": SUBSETS if subsets is None else subsets}
    if tls is not None:
        spec["trafficPolicy"] = {"tls": {"mode": tls}}
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"namespace": namespace, "name": name},
        "spec": spec,
    }


def test_strict_workloads_behind_a_plaintext_rule_fail_naming_the_rule_and_field() -> None:
    tls = FakeTlsPolicies([peer_authentication("shop", "STRICT")], [rule(tls="DISABLE")])
    found = item(spec_of(), tls)
    assert found.state is ItemState.FAILED
    assert found.seen.startswith("2 pairing(s) break traffic: ")
    lines = found.seen.removeprefix("2 pairing(s) break traffic: ").split(" | ")
    assert len(lines) == 2, lines
    for subset, line in zip(("v1", "v2"), lines, strict=True):
        assert line.startswith(
            "DestinationRule shop/reviews spec.trafficPolicy.tls.mode: sends plaintext to "
            f"subset {subset}"
        ), line
        assert "which shop/default (spec.mtls.mode: STRICT)" in line
        assert "ISTIO_MUTUAL" in line
    assert "DestinationRule's tls.mode" in found.fix
    assert found.line().startswith("✗ mtls: 2 pairing(s) break traffic: DestinationRule shop/")


def test_matching_settings_pass_and_say_what_was_read() -> None:
    tls = FakeTlsPolicies([peer_authentication("shop", "STRICT")], [rule(tls="ISTIO_MUTUAL")])
    found = item(spec_of(), tls)
    assert (found.state, found.seen) == (
        ItemState.OK,
        "callers' tls meets what subsets v1, v2 accept "
        "(1 PeerAuthentication(s), 1 DestinationRule(s) read)",
    )
    # No policy at all: PERMISSIVE workloads and auto mTLS meet.
    assert item(spec_of(), FakeTlsPolicies()).state is ItemState.OK


def test_the_rules_labels_find_a_workload_policy_when_the_canary_gives_none() -> None:
    only_v2 = peer_authentication("shop", "DISABLE", "v2-plain", {"version": "v2"})
    tls = FakeTlsPolicies([only_v2], [rule(tls="ISTIO_MUTUAL")])
    found = item(spec_of(labels=False), tls)
    assert found.state is ItemState.FAILED
    assert found.seen.startswith(
        "1 pairing(s) break traffic: DestinationRule shop/reviews "
        "spec.trafficPolicy.tls.mode: sends mTLS to subset v2"
    ), found.seen
    assert "subset v1" not in found.seen


def test_a_subset_without_labels_beside_a_workload_policy_is_unknown() -> None:
    only_v2 = peer_authentication("shop", "STRICT", "v2-strict", {"version": "v2"})
    tls = FakeTlsPolicies([only_v2], [rule(subsets=[{"name": "v1"}, {"name": "v2"}])])
    found = item(spec_of(labels=False), tls)
    assert found.state is ItemState.UNKNOWN
    assert found.seen.startswith("subset(s) v1, v2 have no labels"), found.seen


def test_a_mesh_wide_strict_policy_and_a_root_namespace_rule_are_joined_by_host() -> None:
    mesh = peer_authentication("istio-system", "STRICT")
    root_rule = rule(
        "istio-system", "DISABLE", name="all-reviews", host="reviews.shop.svc.cluster.local"
    )
    found = item(spec_of(destinationRule="absent"), FakeTlsPolicies([mesh], [root_rule]))
    assert found.state is ItemState.FAILED
    assert found.seen.startswith(
        "2 pairing(s) break traffic: DestinationRule istio-system/all-reviews "
        "spec.trafficPolicy.tls.mode: sends plaintext"
    ), found.seen
    assert "which istio-system/default (spec.mtls.mode: STRICT)" in found.seen


def test_the_workload_namespace_is_the_hosts_when_the_canary_lives_elsewhere() -> None:
    # The Canary in `ops` rolls out reviews in `shop`: shop's policy applies, not ops's.
    policies = [peer_authentication("shop", "STRICT"), peer_authentication("ops", "DISABLE")]
    tls = FakeTlsPolicies(policies, [rule(tls="DISABLE")])
    found = item(spec_of(host="reviews.shop.svc.cluster.local"), tls, CanaryKey("ops", "r"))
    assert found.state is ItemState.FAILED
    assert "which shop/default (spec.mtls.mode: STRICT)" in found.seen
    assert "ops/default" not in found.seen


def test_a_port_level_setting_counts_for_the_canarys_port_only() -> None:
    strict = peer_authentication("shop", "STRICT")
    plain_on_9080 = rule(tls="ISTIO_MUTUAL")
    plain_on_9080["spec"]["trafficPolicy"]["portLevelSettings"] = [
        {"port": {"number": 9080}, "tls": {"mode": "DISABLE"}}
    ]
    tls = FakeTlsPolicies([strict], [plain_on_9080])
    assert item(spec_of(port=9080), tls).state is ItemState.FAILED
    assert item(spec_of(port=9443), tls).state is ItemState.OK


def test_policies_that_cannot_be_read_are_unknown_and_none_given_is_skipped() -> None:
    missing = "peerauthentications.security.istio.io is not served: CRDs are not installed"
    found = item(spec_of(), FakeTlsPolicies(unreadable=missing))
    assert found.state is ItemState.UNKNOWN
    assert found.seen == f"cannot read the mesh's TLS policies: {missing}"
    assert "security.istio.io" in found.fix
    skipped = item(spec_of(), None)
    assert (skipped.state, skipped.seen) == (
        ItemState.SKIPPED,
        "not checked: no mesh policy source here",
    )


@pytest.mark.parametrize(
    ("policy", "state"),
    [
        # Fields of the wrong type read as absent, as mtls_settings reads them: no traceback.
        # No policy left: PERMISSIVE takes the rule's plaintext.
        ({"metadata": "x", "spec": "x"}, ItemState.OK),
        # A selector that is no map selects no workload: the namespace's STRICT policy.
        (
            {
                "metadata": {"namespace": "shop", "name": "p"},
                "spec": {"selector": ["a"], "mtls": {"mode": "STRICT"}},
            },
            ItemState.FAILED,
        ),
        # A mode nobody knows is never read as PERMISSIVE.
        (peer_authentication("shop", "STRICTT"), ItemState.FAILED),
    ],
)
def test_malformed_objects_are_read_without_a_traceback(
    policy: dict[str, Any], state: ItemState
) -> None:
    odd_rule = {"metadata": None, "spec": {"host": "reviews", "subsets": "x"}}
    tls = FakeTlsPolicies([policy], [rule(tls="DISABLE"), odd_rule])
    found = item(spec_of(), tls)
    assert found.state is state, found.seen
