"""Leader election against a real API server, as the controller's ServiceAccount.

Given two candidates for one Lease, when they campaign, then only one leads; when the leader
stops, the other takes over at once (the Lease was released); when the leader is killed, the
other takes over once the lease time has passed since the last renewal it saw, and not before.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from canary.adapters.kube import lease
from canary.adapters.kube.lease import Attempt, LeaderElector
from tests.kubeenv import cluster

REPO = Path(__file__).resolve().parents[3]
LEASE = "canary-controller"
LEASE_SECONDS, RENEW_SECONDS, RETRY_SECONDS = 3.0, 1.0, 0.25

# A candidate in its own process, so the test can SIGKILL it: no release, no goodbye.
CHILD = """
import sys, threading
from kubernetes import config
from canary.adapters.kube.lease import LeaderElector
kubeconfig, namespace, lease, renew, retry = sys.argv[1:]
api = config.new_client_from_config(config_file=kubeconfig)
elector = LeaderElector(api, namespace=namespace, name="canary-controller", identity="doomed",
                        lease_seconds=float(lease), renew_seconds=float(renew),
                        retry_seconds=float(retry))
elector.run(threading.Event(), lambda: print("LEADING", flush=True), lambda: None)
"""


@pytest.fixture
def controller_api(kube_cluster: cluster.KubeCluster) -> Iterator[k8s.ApiClient]:
    api: k8s.ApiClient = k8s_config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(kube_cluster.controller_kubeconfig)
    )
    with api:
        yield api


def elector(api: k8s.ApiClient, namespace: str, identity: str) -> LeaderElector:
    return LeaderElector(
        api,
        namespace=namespace,
        name=LEASE,
        identity=identity,
        lease_seconds=LEASE_SECONDS,
        renew_seconds=RENEW_SECONDS,
        retry_seconds=RETRY_SECONDS,
    )


class Candidate:
    """One elector's `run` on a thread."""

    def __init__(self, api: k8s.ApiClient, namespace: str, identity: str) -> None:
        self.elector = elector(api, namespace, identity)
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=self.elector.run, args=(self.stop, _nothing, _nothing), daemon=True
        )
        self.thread.start()

    def end(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()


def _nothing() -> None:
    pass


def wait_until(what: str, predicate: Callable[[], bool], *, within: float) -> float:
    """Polls `predicate` every 20 ms; returns the monotonic time it first held."""
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: not within {within} s"
        time.sleep(0.02)
    return time.monotonic()


def read_lease(kube: cluster.KubeCluster, namespace: str) -> dict[str, Any]:
    status, body = kube.request(
        "GET", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{LEASE}"
    )
    assert status == 200, body
    spec: dict[str, Any] = body["spec"]
    return spec


def test_one_of_two_leads_and_the_other_takes_over_when_it_stops(
    kube_cluster: cluster.KubeCluster, kube_namespace: str, controller_api: k8s.ApiClient
) -> None:
    a = Candidate(controller_api, kube_namespace, "a")
    b = Candidate(controller_api, kube_namespace, "b")
    try:
        wait_until("a leader", lambda: a.elector.is_leader or b.elector.is_leader, within=10)
        # A fixed span on purpose: never two leaders at once, over two renewals.
        until = time.monotonic() + 2 * RENEW_SECONDS
        while time.monotonic() < until:
            assert not (a.elector.is_leader and b.elector.is_leader)
            time.sleep(0.02)
        leader, standby = (a, b) if a.elector.is_leader else (b, a)
        assert read_lease(kube_cluster, kube_namespace)["holderIdentity"] == (
            leader.elector.identity
        )
        stopped = time.monotonic()
        leader.end()
        took_over = wait_until("the takeover", lambda: standby.elector.is_leader, within=5)
        # Released on stop: the standby's next attempt wins, long before the lease runs out.
        assert took_over - stopped < LEASE_SECONDS / 2
        spec = read_lease(kube_cluster, kube_namespace)
        assert spec["holderIdentity"] == standby.elector.identity
        assert spec["leaseTransitions"] == 1
    finally:
        a.end()
        b.end()
    assert read_lease(kube_cluster, kube_namespace)["holderIdentity"] in ("", None)


def test_a_killed_leader_is_replaced_after_the_lease_time_and_not_before(
    kube_cluster: cluster.KubeCluster, kube_namespace: str, controller_api: k8s.ApiClient
) -> None:
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            str(kube_cluster.controller_kubeconfig),
            kube_namespace,
            *(str(seconds) for seconds in (LEASE_SECONDS, RENEW_SECONDS, RETRY_SECONDS)),
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    leading = threading.Event()
    output: list[str] = []

    def read() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            output.append(line)
            if line.strip() == "LEADING":
                leading.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    survivor: Candidate | None = None
    try:
        assert leading.wait(30), "".join(output)
        survivor = Candidate(controller_api, kube_namespace, "survivor")
        # The survivor sees two renewals by the leader, and is refused all the while.
        renewals = {read_lease(kube_cluster, kube_namespace)["renewTime"]}

        def renewed_twice() -> bool:
            assert survivor is not None
            assert not survivor.elector.is_leader
            renewals.add(read_lease(kube_cluster, kube_namespace)["renewTime"])
            return len(renewals) >= 3

        wait_until("two renewals by the leader", renewed_twice, within=4 * RENEW_SECONDS + 5)
        assert not survivor.elector.is_leader
        killed = time.monotonic()
        child.send_signal(signal.SIGKILL)
        took_over = wait_until(
            "the takeover", lambda: survivor is not None and survivor.elector.is_leader, within=10
        )
        waited = took_over - killed
        # The last renewal came at most renew_seconds before the kill and was seen at most a
        # retry later; the survivor waits the lease time from then.
        assert waited > LEASE_SECONDS - RENEW_SECONDS - 0.1
        assert waited < LEASE_SECONDS + 2 * RETRY_SECONDS + 0.5
        spec = read_lease(kube_cluster, kube_namespace)
        assert (spec["holderIdentity"], spec["leaseTransitions"]) == ("survivor", 1)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=10)
        reader.join(timeout=5)
        if child.stdout is not None:
            child.stdout.close()
        if survivor is not None:
            survivor.end()


def test_a_renewal_on_a_whole_second_is_accepted(
    kube_cluster: cluster.KubeCluster,
    kube_namespace: str,
    controller_api: k8s.ApiClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server parses MicroTime with exactly six fraction digits; isoformat() drops zeros."""

    class WholeSecond(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> WholeSecond:
            return cls(2026, 1, 2, 3, 4, 5, 0, tzinfo=UTC)

    monkeypatch.setattr(lease, "datetime", WholeSecond)
    assert elector(controller_api, kube_namespace, "a").try_acquire_or_renew() is Attempt.HELD
    assert read_lease(kube_cluster, kube_namespace)["renewTime"] == "2026-01-02T03:04:05.000001Z"
