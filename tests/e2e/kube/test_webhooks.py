"""Flagger's eight webhook types, end to end: `canary run` on the real API server calling real
HTTP gate services, with Flagger's semantics and the payload each service received checked.

The gates are tests/gates.py (it records every request: path, headers, JSON body) and Flagger's
own load tester (tests/loadtester, v1.36.1), whose gate store is keyed by the payload's name and
namespace, so its "approved true" proves it decoded our payload. A gate is opened the way a
person or a pipeline opens Flagger's: a POST of `{"name", "namespace"}` to /gate/open (or
/rollback/open).

Most rollouts here have webhooks and no metrics, so they need neither Prometheus nor Envoy: a
split counts as applied once the API server holds it. The confirm-traffic-increase and
confirm-promotion test runs the local mesh fed from the API server, because the gates must
hold while the step's metric checks keep running on real requests.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from canary.demo import scenario
from tests.e2e.conftest import built
from tests.e2e.kube import harness
from tests.gates import REFUSAL, GateService, Received
from tests.gates import running as gates_running
from tests.kubeenv.cluster import KubeCluster
from tests.loadtester import assets, run

NAME = harness.SERVICE
VIRTUAL_SERVICES = "virtualservices.networking.istio.io"
DESTINATION_RULES = "destinationrules.networking.istio.io"
NO_PROMETHEUS = "http://127.0.0.1:1"
TOKEN_HEADER = "Authorization"


@pytest.fixture(scope="module")
def gates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GateService]:
    with gates_running(tmp_path_factory.mktemp("gates")) as service:
        yield service


@pytest.fixture(scope="module")
def loadtester(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[run.LoadTester]:
    """Flagger's load tester (built by tests/loadtester/build if need be; never skipped)."""
    directory = built(pytestconfig, assets.loadtester_dir)
    with run.running(directory / assets.BINARY, tmp_path_factory.mktemp("loadtester")) as started:
        yield started


# What the tests build and read.


def _hook(name: str, kind: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": kind, "url": url, "timeout": "5s", **extra}


def _token_header(secret: str = "gate-token") -> list[dict[str, Any]]:
    return [{"name": TOKEN_HEADER, "valueFrom": {"secretKeyRef": {"name": secret, "key": "token"}}}]


def _objects(
    namespace: str,
    hooks: list[dict[str, Any]],
    *,
    service: str = NAME,
    weights: tuple[int, ...] = (10, 50),
    step_seconds: int = 3,
    check_seconds: int = 1,
    threshold: int = 2,
    metrics: bool = False,
) -> list[dict[str, Any]]:
    """The demo's VirtualService, DestinationRule and Canary for `service`, with `hooks`.

    Without `metrics` the steps are judged by the webhooks alone (Flagger allows that).
    """
    vs = scenario.virtual_service()
    dr = scenario.destination_rule()
    canary = scenario.canary(step_seconds=step_seconds, check_seconds=check_seconds)
    for body in (vs, dr, canary):
        body["metadata"] = {"name": service, "namespace": namespace}
    vs["spec"]["hosts"] = [service]
    for destination in vs["spec"]["http"][0]["route"]:
        destination["destination"]["host"] = service
    dr["spec"]["host"] = service
    canary["spec"]["service"]["host"] = service
    analysis = canary["spec"]["analysis"]
    analysis["stepWeights"] = list(weights)
    analysis["threshold"] = threshold
    analysis["webhooks"] = hooks
    if not metrics:
        analysis["metrics"] = []
    return [vs, dr, canary]


def _create_token(kube: KubeCluster, namespace: str, value: str) -> None:
    kube.kubectl(
        "create", "secret", "generic", "gate-token", "-n", namespace,
        f"--from-literal=token={value}", check=True,
    )  # fmt: skip


def _post(url: str, payload: dict[str, Any]) -> int:
    """A gate opened or closed as a person does it: a POST of the Canary's name and namespace."""
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return int(answer.status)


@contextlib.contextmanager
def _controller(
    kube: KubeCluster,
    workdir: Path,
    *,
    prometheus_url: str = NO_PROMETHEUS,
    envoy_admin: str | None = None,
) -> Iterator[harness.ControllerProcess]:
    """`canary run`, stopped at the end; still alive, healthy and never crashed a tick."""
    controller = harness.ControllerProcess(
        kube,
        workdir,
        prometheus_url,
        envoy_admin=envoy_admin,
        leader_election=False,
        # Without a Prometheus on purpose, preflight would hold every first step.
        preflight=prometheus_url != NO_PROMETHEUS,
    ).start()
    try:
        yield controller
        _assert_healthy(controller)
    finally:
        controller.stop()


def _assert_healthy(controller: harness.ControllerProcess) -> None:
    assert controller.process is not None
    assert controller.process.poll() is None, f"canary run exited:\n{controller.log_tail()}"
    assert controller.get("/healthz")[0] == 200, controller.log_tail()
    log = controller.log_path.read_text(errors="replace")
    assert '"tick.crashed"' not in log, controller.log_tail(120)


def _until(
    kube: KubeCluster,
    namespace: str,
    what: str,
    check: Callable[[dict[str, Any]], bool],
    *,
    timeout: float,
    controller: harness.ControllerProcess,
    name: str = NAME,
) -> dict[str, Any]:
    """The Canary's status once `check` holds; fails after `timeout` seconds saying why."""
    deadline = time.monotonic() + timeout
    current: dict[str, Any] = {}
    while time.monotonic() < deadline:
        current = harness.status(kube, namespace, name)
        if check(current):
            return current
        time.sleep(0.3)
    raise AssertionError(
        f"timed out after {timeout:g}s waiting for {name} {what}; last status: "
        f"{json.dumps(current)[:3000]}\ncontroller log:\n{controller.log_tail(40)}"
    )


def _wait_ticks(controller: harness.ControllerProcess, more: int) -> None:
    start = controller.ticks()
    harness.wait_for(
        f"{more} more ticks",
        lambda: None if controller.ticks() >= start + more else f"{controller.ticks()} ticks",
        timeout=30,
    )


def _condition(current: dict[str, Any], kind: str) -> dict[str, Any]:
    found = [c for c in current.get("conditions") or [] if c.get("type") == kind]
    assert found, f"no {kind} condition: {current.get('conditions')}"
    return found[0]


def _sent(gates: GateService, namespace: str, path: str, name: str = NAME) -> list[Received]:
    """What the gate service received at `path` (query included) for this Canary."""
    return [
        r
        for r in gates.received()
        if r.path == path
        and isinstance(r.body, dict)
        and r.body.get("namespace") == namespace
        and r.body.get("name") == name
    ]


def _assert_payload(
    received: Received,
    *,
    namespace: str,
    phase: str,
    checksum: str,
    metadata: dict[str, str],
    name: str = NAME,
) -> None:
    """Flagger's CanaryWebhookPayload, exactly: no field more, none less."""
    assert received.method == "POST"
    assert received.header("Content-Type") == "application/json"
    assert received.body == {
        "name": name,
        "namespace": namespace,
        "phase": phase,
        "checksum": checksum,
        "metadata": metadata,
    }, received


def _vs(kube: KubeCluster, namespace: str, name: str = NAME) -> dict[str, Any]:
    return harness.get(kube, VIRTUAL_SERVICES, namespace, name)


def _versions(kube: KubeCluster, namespace: str, name: str = NAME) -> tuple[str, str]:
    """The resourceVersions of the Canary's VirtualService and DestinationRule."""
    return (
        _vs(kube, namespace, name)["metadata"]["resourceVersion"],
        harness.get(kube, DESTINATION_RULES, namespace, name)["metadata"]["resourceVersion"],
    )


def _records(current: dict[str, Any], name: str, key: str = "history") -> list[dict[str, Any]]:
    return [record for record in current.get(key) or [] if record.get("name") == name]


def _at(record: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(record["at"])


def _canary_events(kube: KubeCluster, namespace: str, name: str = NAME) -> set[tuple[str, str]]:
    return {
        (event.get("message", ""), event.get("type", ""))
        for event in harness.events(kube, namespace)
        if event.get("involvedObject", {}).get("name") == name
    }


def _told(received: list[Received]) -> set[tuple[str, str]]:
    return {(r.body["metadata"]["eventMessage"], r.body["metadata"]["eventType"]) for r in received}


# The tests.


def test_confirm_rollout_holds_everything_until_flaggers_load_tester_opens_its_gate(
    kube_cluster: KubeCluster,
    kube_namespace: str,
    tmp_path: Path,
    gates: GateService,
    loadtester: run.LoadTester,
) -> None:
    """confirm-rollout on Flagger's load tester; pre-rollout, rollout, post-rollout and event
    hooks on the recording service, each with a token header from a Secret."""
    kube, ns = kube_cluster, kube_namespace
    started_ms = int(time.time() * 1000)
    token = f"Bearer {secrets.token_hex(8)}"
    _create_token(kube, ns, token)
    hooks = [
        _hook("approve", "confirm-rollout", loadtester.url("/gate/check"),
              metadata={"team": "shop"}),
        _hook("migrate", "pre-rollout", gates.url("/ok?hook=migrate"),
              metadata={"schema": "v42"}, headers=_token_header()),
        _hook("smoke", "rollout", gates.url("/ok?hook=smoke"), headers=_token_header()),
        _hook("announce", "post-rollout", gates.url("/ok?hook=announce"),
              metadata={"channel": "#deploys"}, headers=_token_header()),
        _hook("audit", "event", gates.url("/ok?hook=audit"),
              metadata={"sink": "audit-log"}, headers=_token_header()),
    ]  # fmt: skip
    harness.apply(kube, _objects(ns, hooks))
    untouched = _versions(kube, ns)
    with _controller(kube, tmp_path) as controller:
        waiting = "confirm-rollout webhook approve"
        _until(
            kube, ns, f"to wait for {waiting}",
            lambda c: c.get("waitingFor") == waiting, timeout=30, controller=controller,
        )  # fmt: skip
        # The load tester is asked again and again while nothing else happens.
        _wait_ticks(controller, 4)
        loadtester.wait_for_log(f"{NAME}.{ns} gate check: approved false")
        held = harness.status(kube, ns)
        assert held["phase"] == "Initializing", held
        assert held["waitingFor"] == waiting
        assert held["canaryWeight"] == 0
        assert held.get("failedChecks", 0) == 0
        condition = _condition(held, "Waiting")
        assert (condition["status"], condition["reason"]) == ("True", "GateClosed"), condition
        assert condition["message"] == f"waiting for {waiting} to say yes"
        answer = _records(held, "approve", "checks")
        assert [(r["verdict"], r["counted"], r["message"]) for r in answer] == [
            ("fail", False, "HTTP 403: Forbidden")
        ], answer
        # Nothing moved: the route still sends everything to v1, and was never written.
        assert harness.route_weights(_vs(kube, ns)) == {"v1": 100, "v2": 0}
        assert _versions(kube, ns) == untouched
        # `kubectl get canary` says what the rollout waits for.
        table = kube.kubectl("get", "canary", "-n", ns, check=True).stdout
        header, *rows = table.splitlines()
        assert "WAITING" in header.split(), table
        row = next(line for line in rows if line.split()[0] == NAME)
        assert "Initializing" in row.split(), table
        assert waiting in row, table
        # Flagger's order: no pre-rollout hook before confirm-rollout said yes.
        assert _sent(gates, ns, "/ok?hook=migrate") == []
        assert _sent(gates, ns, "/ok?hook=smoke") == []

        opened_at = time.time()
        assert _post(loadtester.url("/gate/open"), {"name": NAME, "namespace": ns}) == 202
        final = _until(
            kube, ns, "to finish", lambda c: c.get("phase") in ("Succeeded", "Failed"),
            timeout=60, controller=controller,
        )  # fmt: skip
        assert final["phase"] == "Succeeded", final
        harness.wait_for(
            "the post-rollout hook",
            lambda: None if _sent(gates, ns, "/ok?hook=announce") else "not called yet",
            timeout=15,
        )
        # The event hook hears every event the rollout wrote, the last ones included.
        harness.wait_for(
            "the event hook to hear every Event",
            lambda: (
                None
                if _canary_events(kube, ns) <= _told(_sent(gates, ns, "/ok?hook=audit"))
                else str(_canary_events(kube, ns) - _told(_sent(gates, ns, "/ok?hook=audit")))
            ),
            timeout=15,
        )
    loadtester.wait_for_log(f"{NAME}.{ns} gate check: approved true")
    revision = final["revision"]
    assert revision
    assert final["canaryWeight"] == 100
    assert final.get("waitingFor", "") == ""
    waited = _condition(final, "Waiting")
    assert (waited["status"], waited["reason"]) == ("False", "GateOpen"), waited
    promoted = _condition(final, "Promoted")
    assert (promoted["status"], promoted["reason"]) == ("True", "Succeeded"), promoted
    assert harness.route_weights(_vs(kube, ns)) == {"v1": 0, "v2": 100}

    migrate = _sent(gates, ns, "/ok?hook=migrate")
    assert migrate, "the pre-rollout hook was never called"
    assert all(r.at >= opened_at for r in migrate), [r.at - opened_at for r in migrate]
    smoke = _sent(gates, ns, "/ok?hook=smoke")
    assert len(smoke) >= 2, smoke
    announce = _sent(gates, ns, "/ok?hook=announce")
    assert len(announce) == 1, announce
    assert min(r.at for r in smoke) > max(r.at for r in migrate)
    # Each call of the rollout hook was a check, judged and kept.
    assert len(_records(final, "smoke")) == len(smoke), (final.get("history"), smoke)
    for received in migrate:
        _assert_payload(
            received, namespace=ns, phase="Initializing", checksum=revision,
            metadata={"schema": "v42"},
        )  # fmt: skip
    for received in smoke:
        _assert_payload(received, namespace=ns, phase="Progressing", checksum=revision, metadata={})
    _assert_payload(
        announce[0], namespace=ns, phase="Succeeded", checksum=revision,
        metadata={"channel": "#deploys"},
    )  # fmt: skip
    audit = _sent(gates, ns, "/ok?hook=audit")
    assert len(audit) >= 4, audit
    ended_ms = int(time.time() * 1000)
    for received in audit:
        body = received.body
        meta = body["metadata"]
        assert set(meta) == {"sink", "eventMessage", "eventType", "timestamp"}, meta
        assert meta["sink"] == "audit-log"
        assert meta["eventType"] in ("Normal", "Warning"), meta
        assert isinstance(meta["timestamp"], str), meta
        assert meta["timestamp"].isdigit(), meta
        assert started_ms <= int(meta["timestamp"]) <= ended_ms, (started_ms, meta, ended_ms)
        assert abs(int(meta["timestamp"]) / 1000 - received.at) < 10, (meta, received.at)
        assert (body["name"], body["namespace"], body["checksum"]) == (NAME, ns, revision)
        assert body["phase"] in ("Initializing", "Progressing", "Promoting", "Succeeded"), body
    messages = [r.body["metadata"]["eventMessage"] for r in audit]
    assert any(waiting in m for m in messages), messages
    assert _told(audit) == _canary_events(kube, ns), (_told(audit), _canary_events(kube, ns))
    # Every call whose hook has headers carried the Secret's value.
    for received in (*migrate, *smoke, *announce, *audit):
        assert received.header(TOKEN_HEADER) == token, received.headers


def test_confirm_traffic_increase_and_promotion_hold_while_the_metric_checks_keep_running(
    kube_cluster: KubeCluster,
    kube_namespace: str,
    tmp_path: Path,
    gates: GateService,
    loadtester: run.LoadTester,
) -> None:
    """confirm-traffic-increase on the recording service, confirm-promotion on the load tester;
    real requests through Envoy judged by Prometheus at every check meanwhile."""
    kube, ns = kube_cluster, kube_namespace
    payload = {"name": NAME, "namespace": ns}
    hooks = [
        _hook("more", "confirm-traffic-increase", gates.url("/gate/check"),
              metadata={"ask": "traffic"}),
        _hook("ship", "confirm-promotion", loadtester.url("/gate/check"),
              metadata={"ask": "promotion"}),
    ]  # fmt: skip
    # Real requests on a busy machine may fail a latency check now and then: the holds make
    # for many checks, and this test is about the gates.
    bodies = _objects(
        ns, hooks, weights=(10, 25, 50), step_seconds=6, check_seconds=1, threshold=5,
        metrics=True,
    )  # fmt: skip
    with harness.mesh_for(kube, ns, tmp_path) as (mesh, feed):
        harness.apply(kube, bodies)
        with _controller(
            kube, tmp_path, prometheus_url=mesh.prometheus_url, envoy_admin=mesh.admin_url
        ) as controller:
            increase = "confirm-traffic-increase webhook more"

            def held_at(weight: int, gate: str) -> dict[str, Any]:
                held = _until(
                    kube, ns, f"to wait for {gate} at weight {weight}",
                    lambda c: c.get("waitingFor") == gate, timeout=60, controller=controller,
                )  # fmt: skip
                assert (held["phase"], held["canaryWeight"]) == ("Progressing", weight), held
                since = max(_at(r) for r in _records(held, "request-success-rate"))
                # The step's checks keep running while the gate is closed.
                later = _until(
                    kube, ns, "to run three more metric checks while held",
                    lambda c: sum(_at(r) > since for r in _records(c, "request-success-rate"))
                    >= 3,
                    timeout=30, controller=controller,
                )  # fmt: skip
                assert later["waitingFor"] == gate, later
                assert (later["phase"], later["canaryWeight"]) == ("Progressing", weight), later
                condition = _condition(later, "Waiting")
                assert (condition["status"], condition["reason"]) == ("True", "GateClosed")
                assert feed.canary_weights()[-1] == weight, feed.splits
                return later

            first = held_at(10, increase)
            table = kube.kubectl("get", "canary", "-n", ns, check=True).stdout
            assert increase in table, table
            assert feed.canary_weights() == [0, 10], feed.splits
            gate = _records(first, "more", "checks")
            assert [(r["verdict"], r["counted"], r["message"]) for r in gate] == [
                ("fail", False, "HTTP 403: Forbidden")
            ], gate

            assert _post(gates.url("/gate/open"), payload) == 202
            _until(
                kube, ns, "to move to 25", lambda c: c.get("canaryWeight") == 25,
                timeout=30, controller=controller,
            )  # fmt: skip
            # Closed again before the 25% step has held: that step waits too.
            assert _post(gates.url("/gate/close"), payload) == 202
            held_at(25, increase)
            assert feed.canary_weights() == [0, 10, 25], feed.splits
            assert _post(gates.url("/gate/open"), payload) == 202
            # The last step waits for confirm-promotion, on Flagger's load tester.
            held_at(50, "confirm-promotion webhook ship")
            loadtester.wait_for_log(f"{NAME}.{ns} gate check: approved false")
            assert feed.canary_weights() == [0, 10, 25, 50], feed.splits
            assert _post(loadtester.url("/gate/open"), payload) == 202
            final = _until(
                kube, ns, "to finish", lambda c: c.get("phase") in ("Succeeded", "Failed"),
                timeout=60, controller=controller,
            )  # fmt: skip
    assert final["phase"] == "Succeeded", final
    assert final.get("waitingFor", "") == ""
    # A closed gate is never counted against the rollout (only a metric could be).
    gated = [r for r in final.get("history") or [] if r["name"] in ("more", "ship")]
    assert gated, final.get("history")
    assert all(r["counted"] is False for r in gated), gated
    assert feed.canary_weights() == [0, 10, 25, 50, 100], feed.splits
    loadtester.wait_for_log(f"{NAME}.{ns} gate check: approved true")
    asked = _sent(gates, ns, "/gate/check")
    # Asked while each of the first two steps waited, and never at the last one.
    assert {r.body["phase"] for r in asked} == {"Progressing"}
    for received in asked:
        _assert_payload(
            received, namespace=ns, phase="Progressing", checksum=final["revision"],
            metadata={"ask": "traffic"},
        )  # fmt: skip


def test_a_rollback_hook_that_says_yes_rolls_back_at_once(
    kube_cluster: KubeCluster,
    kube_namespace: str,
    tmp_path: Path,
    gates: GateService,
    loadtester: run.LoadTester,
) -> None:
    kube, ns = kube_cluster, kube_namespace
    hooks = [
        _hook("pull-cord", "rollback", loadtester.url("/rollback/check"),
              metadata={"why": "pager"}),
        _hook("smoke", "rollout", gates.url("/ok?hook=smoke")),
        _hook("announce", "post-rollout", gates.url("/ok?hook=announce")),
        _hook("audit", "event", gates.url("/ok?hook=audit")),
    ]  # fmt: skip
    # A long step: only the rollback hook can end it within the test.
    harness.apply(kube, _objects(ns, hooks, step_seconds=60, check_seconds=1))
    with _controller(kube, tmp_path) as controller:
        _until(
            kube, ns, "to run its first step",
            lambda c: c.get("canaryWeight") == 10 and bool(c.get("stepStartedAt")),
            timeout=30, controller=controller,
        )  # fmt: skip
        _wait_ticks(controller, 3)
        loadtester.wait_for_log(f"rollback.{NAME}.{ns} rollback check: approved false")
        assert harness.status(kube, ns)["phase"] == "Progressing"
        pulled = time.monotonic()
        assert _post(loadtester.url("/rollback/open"), {"name": NAME, "namespace": ns}) == 202
        final = _until(
            kube, ns, "to roll back", lambda c: c.get("phase") in ("Succeeded", "Failed"),
            timeout=20, controller=controller,
        )  # fmt: skip
        took = time.monotonic() - pulled
        harness.wait_for(
            "the post-rollout hook",
            lambda: None if _sent(gates, ns, "/ok?hook=announce") else "not called yet",
            timeout=15,
        )
    assert final["phase"] == "Failed", final
    # At once: a check interval and the rollback's own write, not the rest of a 60 s step.
    assert took < 10, took
    assert final["canaryWeight"] == 0
    assert harness.route_weights(_vs(kube, ns)) == {"v1": 100, "v2": 0}
    promoted = _condition(final, "Promoted")
    assert (promoted["status"], promoted["reason"]) == ("False", "Failed"), promoted
    verified = _condition(final, "RollbackVerified")
    assert verified["status"] == "True", verified
    said = "rollback webhook pull-cord answered yes (HTTP 200)"
    progressing = _condition(final, "Progressing")
    assert progressing["reason"] == "RolledBack", progressing
    yes = _records(final, "pull-cord", "checks")
    assert [r["message"] for r in yes] == ["answered yes (HTTP 200)"], yes
    loadtester.wait_for_log(f"rollback.{NAME}.{ns} rollback check: approved true")
    announce = _sent(gates, ns, "/ok?hook=announce")
    assert len(announce) == 1, announce
    _assert_payload(
        announce[0], namespace=ns, phase="Failed", checksum=final["revision"], metadata={}
    )
    audit = _sent(gates, ns, "/ok?hook=audit")
    warnings = [r.body for r in audit if r.body["metadata"]["eventType"] == "Warning"]
    assert any(said in w["metadata"]["eventMessage"] for w in warnings), [
        r.body["metadata"] for r in audit
    ]
    assert {w["phase"] for w in warnings} <= {"RollingBack", "Failed"}, warnings


def test_a_refusing_pre_rollout_hook_counts_towards_the_threshold_and_rolls_back(
    kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path, gates: GateService
) -> None:
    kube, ns = kube_cluster, kube_namespace
    hooks = [
        _hook("migrate", "pre-rollout", gates.url("/no?hook=migrate"), metadata={"db": "orders"}),
        _hook("smoke", "rollout", gates.url("/ok?hook=smoke")),
        _hook("announce", "post-rollout", gates.url("/ok?hook=announce")),
    ]
    harness.apply(kube, _objects(ns, hooks, threshold=3))
    untouched = _versions(kube, ns)
    with _controller(kube, tmp_path) as controller:
        final = _until(
            kube, ns, "to finish", lambda c: c.get("phase") in ("Succeeded", "Failed"),
            timeout=30, controller=controller,
        )  # fmt: skip
        harness.wait_for(
            "the post-rollout hook",
            lambda: None if _sent(gates, ns, "/ok?hook=announce") else "not called yet",
            timeout=15,
        )
    assert final["phase"] == "Failed", final
    assert final["failedChecks"] == 3, final
    assert any(
        "pre-rollout webhooks failed" in message and kind == "Warning"
        for message, kind in _canary_events(kube, ns)
    ), _canary_events(kube, ns)
    refused = _records(final, "migrate")
    assert len(refused) == 3, refused
    for record in refused:
        assert (record["verdict"], record["counted"]) == ("fail", True), record
        assert record["message"] == f"HTTP 403: {REFUSAL}", record
    called = _sent(gates, ns, "/no?hook=migrate")
    assert len(called) == 3, called
    for received in called:
        _assert_payload(
            received, namespace=ns, phase="Initializing", checksum=final["revision"],
            metadata={"db": "orders"},
        )  # fmt: skip
    # Not a single step: no weight ever moved, no rollout hook was asked.
    assert _sent(gates, ns, "/ok?hook=smoke") == []
    assert _versions(kube, ns) == untouched
    assert _sent(gates, ns, "/ok?hook=announce")[0].body["phase"] == "Failed"


def test_bad_answers_are_a_no_with_a_clear_message_and_nothing_crashes(
    kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path, gates: GateService
) -> None:
    """A gate service that hangs, fails, answers 3 MB or redirects to another host: as confirm
    gates they stay closed, as rollout hooks they fail and count; the controller carries on."""
    kube, ns = kube_cluster, kube_namespace
    port = gates.port
    bad = {
        "hang": (
            "/hang?seconds=60",
            f"http://127.0.0.1:{port}/hang?seconds=60 timed out after 2s",
        ),
        "error": ("/error", "HTTP 500: internal error"),
        "big": ("/big?status=403&mb=3", "HTTP 403: " + "x" * 200 + "…"),
        "redirect": (
            "/redirect-other",
            f"HTTP 302: redirect to http://127.0.0.2:{port}/ok refused "
            f"(a gate must answer from http://127.0.0.1:{port})",
        ),
    }

    def hooks(kind: str) -> list[dict[str, Any]]:
        return [_hook(name, kind, gates.url(path), timeout="2s") for name, (path, _) in bad.items()]

    harness.apply(kube, _objects(ns, hooks("confirm-rollout"), service="gated"))
    harness.apply(
        kube, _objects(ns, hooks("rollout"), service="checked", threshold=8, step_seconds=30)
    )
    gated_before = _versions(kube, ns, "gated")
    with _controller(kube, tmp_path) as controller:
        names = ", ".join(bad)
        gated = _until(
            kube, ns, "to record every closed gate",
            lambda c: c.get("waitingFor") == f"confirm-rollout webhook {names}"
            and len(_records(c, "redirect", "checks")) == 1,
            timeout=40, controller=controller, name="gated",
        )  # fmt: skip
        checked = _until(
            kube, ns, "to finish", lambda c: c.get("phase") in ("Succeeded", "Failed"),
            timeout=60, controller=controller, name="checked",
        )  # fmt: skip
        # Still asking the gates that hang, and healthy all the while.
        _wait_ticks(controller, 3)
        # A fixed span on purpose: healthy for a while, not once, while the gates hang.
        for _ in range(5):
            assert controller.get("/healthz")[0] == 200
            time.sleep(0.5)
        assert harness.status(kube, ns, "gated")["phase"] == "Initializing"
    assert gated["phase"] == "Initializing", gated
    assert gated["canaryWeight"] == 0
    assert gated.get("failedChecks", 0) == 0
    for name, (_, message) in bad.items():
        closed = _records(gated, name, "checks")
        assert [(r["verdict"], r["counted"], r["message"]) for r in closed] == [
            ("fail", False, message)
        ], (name, closed)
    assert _versions(kube, ns, "gated") == gated_before

    assert checked["phase"] == "Failed", checked
    assert checked["failedChecks"] >= 8, checked
    assert any(
        "failed checks reached the threshold 8" in message
        for message, _ in _canary_events(kube, ns, "checked")
    ), _canary_events(kube, ns, "checked")
    assert harness.route_weights(_vs(kube, ns, "checked")) == {"v1": 100, "v2": 0}
    for name, (_, message) in bad.items():
        failed = _records(checked, name)
        assert failed, (name, checked.get("history"))
        for record in failed:
            assert (record["verdict"], record["counted"]) == ("fail", True), record
            assert record["message"] == message, record


TYPES = (
    "confirm-rollout",
    "pre-rollout",
    "rollout",
    "confirm-traffic-increase",
    "confirm-promotion",
    "post-rollout",
    "rollback",
    "event",
)


def test_a_missing_header_secret_makes_the_canary_invalid_before_anything_is_patched(
    kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path, gates: GateService
) -> None:
    """One Canary per webhook type, each hook with a token header from a Secret nobody made.

    Whatever the type, the Canary becomes Invalid saying which Secret is missing, stays Invalid
    until it is fixed, and neither its VirtualService nor its DestinationRule is written: a hook
    that cannot be called as declared is a broken spec, whether it is due at the first tick or
    at the last.
    """
    kube, ns = kube_cluster, kube_namespace
    for kind in TYPES:
        hook = _hook("tokened", kind, gates.url(f"/ok?hook={kind}"), headers=_token_header())
        harness.apply(kube, _objects(ns, [hook], service=kind, step_seconds=2))
    before = {kind: _versions(kube, ns, kind) for kind in TYPES}
    phases: dict[str, list[str]] = {kind: [] for kind in TYPES}
    with _controller(kube, tmp_path):
        # Long enough for a rollout of two 2 s steps to end, and for an Invalid one to show
        # that it stays so.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for kind in TYPES:
                phase = harness.status(kube, ns, kind).get("phase") or "(none)"
                if not phases[kind] or phases[kind][-1] != phase:
                    phases[kind].append(phase)
            time.sleep(0.3)
    expected = f"spec.analysis.webhooks[tokened].headers: Secret {ns}/gate-token not found"
    problems: dict[str, list[str]] = {}
    for kind in TYPES:
        found: list[str] = []
        current = harness.status(kube, ns, kind)
        seen = phases[kind]
        if "Invalid" not in seen or set(seen[seen.index("Invalid") :]) != {"Invalid"}:
            found.append("phases seen: " + " > ".join(seen[:12]))
        if current.get("message") != expected:
            found.append(f"message: {current.get('message')!r}")
        if _versions(kube, ns, kind) != before[kind]:
            found.append(
                f"route written (VirtualService, DestinationRule resourceVersions {before[kind]}"
                f" > {_versions(kube, ns, kind)}), now {harness.route_weights(_vs(kube, ns, kind))}"
            )
        if found:
            problems[kind] = found
    assert problems == {}, json.dumps(problems, indent=2)
