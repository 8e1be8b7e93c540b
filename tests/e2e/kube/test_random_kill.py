"""The controller SIGKILLed at moments a seed chooses, all through a long rollout with a chaos
experiment, and restarted each time (at once, or after a pause of a few seconds).

Replay a run with the seed it printed: `CANARY_KILL_SEED=<seed> tests/run
tests/e2e/kube/test_random_kill.py -s`.

The evidence is read from outside the product: the splits come from the API server's watch (the
same one that feeds the mesh's Envoys), the versions that answered come from the load
generator's own count of the answers' bodies, and the experiment's fault from the EnvoyFilters
in the API server and the 503s users got. What a resumed controller may do is what
canary/engine documents: the status carries the step and its clock (stepStartedAt), so a
restart re-writes the step's weights if they were not applied yet, and never starts a step's
clock again; only the no-data grace (dataWaitFrom) restarts after an absence.
"""

from __future__ import annotations

import os
import random
import secrets
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from canary.localmesh.loadgen import UNKNOWN_VERSION
from canary.localmesh.mesh import LocalMesh, VersionSpec
from tests.e2e.kube import harness, world
from tests.e2e.kube.meshfeed import MeshFeed
from tests.kubeenv.cluster import KubeCluster

STEPS = [5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90]
EXPERIMENT = "abort-canary"
CHAOS_WEIGHT = 40
MIN_KILLS, MAX_KILLS = 10, 16
# A version the mesh runs but the Canary never names: it must never answer.
STRAY = "v3"
# How soon after its expiry the fault must be gone from the mesh, kills included: a restart
# pause (up to 5 s), the new process ready and leading (a few seconds on a busy 2-core machine),
# its sweep, and the feed's propagation.
FAULT_GONE_WITHIN = 20.0
METRICS = ("request-success-rate", "request-duration")


def _objects(namespace: str) -> list[dict[str, Any]]:
    vs, dr, canary = harness.objects(namespace, step_seconds=4, check_seconds=1)
    spec = canary["spec"]
    spec["progressDeadline"] = "2m"
    analysis = spec["analysis"]
    analysis["stepWeights"] = STEPS
    analysis["threshold"] = 3
    for metric in analysis["metrics"]:
        metric["interval"] = "4s"
        # The grace is long enough for any absence of the controller this test makes, so a
        # kill never turns into a failed check; the checks still need real passes to advance.
        metric["noDataTimeout"] = "60s"
        metric.pop("minRequests", None)
    spec["chaos"] = [
        {
            "name": EXPERIMENT,
            "atWeight": CHAOS_WEIGHT,
            "duration": "3s",
            "fault": {"abort": {"httpStatus": 503, "percentage": 100}},
            # What the callers see is not this test's subject: the verdict is reported and the
            # rollout goes on either way, so the outcome does not hang on it.
            "expect": {"ejection": False, "successRate": 1},
            "onFailure": "continue",
        }
    ]
    return [vs, dr, canary]


def _seed() -> int:
    given = os.environ.get("CANARY_KILL_SEED", "").strip()
    if not given:
        return secrets.randbelow(2**32)
    if not given.isdigit():
        pytest.fail(f"CANARY_KILL_SEED must be a whole number, not {given!r}", pytrace=False)
    return int(given)


def _kill_and_restart(
    rng: random.Random,
    statuses: world.StatusLog,
    controller: harness.ControllerProcess,
    start: Callable[[], harness.ControllerProcess],
    kills: list[tuple[float, str, float]],
) -> tuple[harness.ControllerProcess, bool]:
    """Kills the controller after random waits until the rollout ends or MAX_KILLS, once while
    the experiment runs; restarts it at once or after a pause. Returns the last controller and
    whether a kill landed during the experiment. The seed fixes the waits and pauses (not the
    rollout's own timing, so a replay lands near, not exactly on, the same moments)."""
    began = time.monotonic()
    chaos_killed = False
    deadline = began + 300
    while len(kills) < MAX_KILLS and time.monotonic() < deadline:
        # The first kill comes at once, while the controller starts the rollout (Initializing,
        # the first step's write); the others after a few seconds each.
        wait_until = time.monotonic() + (rng.uniform(1.0, 4.0) if kills else rng.uniform(0, 1))
        while time.monotonic() < wait_until:
            latest = statuses.latest()
            if _terminal(latest):
                return controller, chaos_killed
            if not chaos_killed and _running_experiment(latest):
                time.sleep(rng.uniform(0.0, 1.5))
                break
            time.sleep(0.1)
        latest = statuses.latest()
        if _terminal(latest):
            break
        controller.kill()
        during_chaos = _running_experiment(latest)
        chaos_killed = chaos_killed or during_chaos
        pause = rng.uniform(2.0, 5.0) if rng.random() < 0.3 else 0.0
        if not chaos_killed and latest.get("canaryWeight") == CHAOS_WEIGHT:
            # A pause here could outlast the whole experiment and leave it unkilled.
            pause = 0.0
        where = f"{latest.get('phase')} step {latest.get('step')} weight " + str(
            latest.get("canaryWeight")
        )
        kills.append((time.monotonic() - began, where, pause))
        print(
            f"kill {len(kills)} at {kills[-1][0]:.1f}s: {where}"
            f"{' during the experiment' if during_chaos else ''}, restart after {pause:.1f}s"
        )
        time.sleep(pause)
        controller = start()
    return controller, chaos_killed


def _fault_seconds(
    served: list[tuple[float, tuple[str, ...]]], load_zero: float
) -> list[tuple[int, int]]:
    """The load generator's seconds (first, last) of each stretch the mesh served a fault."""
    stretches: list[tuple[int, int]] = []
    since: float | None = None
    for at, experiments in served:
        if experiments and since is None:
            since = at
        elif not experiments and since is not None:
            stretches.append((int(since - load_zero), int(at - load_zero)))
            since = None
    assert since is None, "a fault was still served at the end"
    return stretches


def _stable_alone(mesh: LocalMesh) -> int:
    """Waits until a whole second of the load was answered by v1 alone (the route, 100% stable,
    is served); returns the load generator's next second, where the evidence starts."""
    load = mesh.load
    assert load is not None

    def check() -> str | None:
        snapshot = load.snapshot()
        last = snapshot.per_second.get(int(snapshot.elapsed_s) - 1) or {}
        versions = {outcome.version for outcome in last}
        return None if versions == {"v1"} else f"second answered by {sorted(versions)}"

    harness.wait_for("the stable-only route to be served", check, timeout=60)
    return int(load.snapshot().elapsed_s) + 1


def _running_experiment(status: dict[str, Any]) -> bool:
    return any(c.get("phase") == "Running" for c in status.get("chaos") or [])


def _terminal(status: dict[str, Any]) -> bool:
    return status.get("phase") in ("Succeeded", "Failed", "Invalid")


def test_a_controller_killed_at_random_moments_resumes_every_time(
    kube_cluster: KubeCluster,
    kube_namespace: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seed = _seed()
    # Past the capture, so a passing CI run shows the seed too.
    with capsys.disabled():
        print(f"\nrandom kill: CANARY_KILL_SEED={seed}")
    rng = random.Random(seed)
    began = time.monotonic()
    mesh = LocalMesh(
        service=harness.SERVICE,
        versions=[VersionSpec("v1"), VersionSpec("v2"), VersionSpec(STRAY)],
        namespace=kube_namespace,
        workdir=tmp_path / "mesh",
        rate=40.0,
        instances_per_version=1,
    )
    kills: list[tuple[float, str, float]] = []
    with mesh:
        rest = harness.admin_rest(kube_cluster)
        feed = MeshFeed(rest, mesh, kube_namespace).start()
        splits = world.Splits(kube_namespace).attach(feed)
        fault_feed = world.FaultFeed(rest, mesh, kube_namespace).start()
        statuses = world.StatusLog(kube_cluster, kube_namespace).start()
        controller: harness.ControllerProcess | None = None
        try:
            load_began = mesh.load.snapshot().elapsed_s if mesh.load else 0.0
            load_zero = time.monotonic() - load_began
            wall_offset = time.time() - time.monotonic()
            harness.apply(kube_cluster, _objects(kube_namespace))
            routed_from = _stable_alone(mesh)

            def start() -> harness.ControllerProcess:
                return harness.ControllerProcess(
                    kube_cluster, tmp_path, mesh.prometheus_url, envoy_admin=mesh.admin_url
                ).start()

            controller = start()
            controller, chaos_killed = _kill_and_restart(rng, statuses, controller, start, kills)
            final = statuses.wait(
                "the rollout to end", _terminal, timeout=180, controller=controller
            )
            time.sleep(1.0)
            served_faults = fault_feed.served[-1][1] if fault_feed.served else ()
            faulted = mesh.faulted()
            snapshot = mesh.load.snapshot() if mesh.load else None
        finally:
            if controller is not None:
                controller.stop()
            statuses.stop()
            fault_feed.stop()
            feed.stop()
        elapsed = time.monotonic() - began
        with capsys.disabled():
            print(f"random kill: seed {seed}, {len(kills)} kills, {elapsed:.0f}s in all")
        log_tail = controller.log_tail(80)

        assert len(kills) >= MIN_KILLS, (seed, kills, final)
        assert chaos_killed, f"seed {seed}: no kill landed during the experiment: {kills}"
        assert final["phase"] == "Succeeded", (seed, final.get("message"), log_tail)
        assert final["stableSubset"] == "v2"

        # No step repeated or skipped: the API server's watch saw the plan's weights, in order,
        # each once (a restart re-writing a step's weight is no change of the split).
        assert splits.canary_weights() == [0, *STEPS, 100], (seed, splits.seen)
        assert feed.refused is None, feed.refused
        # A step's clock is never started twice: a resumed controller keeps stepStartedAt.
        clocks = statuses.step_clocks()
        assert sorted(clocks) == list(range(len(STEPS))), (seed, clocks)
        restarted = {step: sorted(seen) for step, seen in clocks.items() if len(seen) != 1}
        assert not restarted, f"seed {seed}: a step's clock started again: {restarted}"
        # Every step judged: each metric passed at least once at each step's weight.
        for step, weight in enumerate(STEPS):
            passed = {
                name
                for (name, at_step, _), record in statuses.records.items()
                if at_step == step and record.get("weight") == weight and record.get("passed")
            }
            assert passed == set(METRICS), (seed, step, weight, passed)
        assert final.get("failedChecks", 0) == 0, (seed, final.get("checks"))

        # The experiment ran once and was judged once, and no fault is left anywhere.
        chaos = [c for c in final.get("chaos") or [] if c["name"] == EXPERIMENT]
        assert len(chaos) == 1, (seed, final.get("chaos"))
        assert chaos[0]["phase"] in ("Passed", "Failed"), chaos
        assert chaos[0]["judgedAt"], chaos
        judged_at = {
            c["judgedAt"]
            for _, s in statuses.samples
            for c in s.get("chaos") or []
            if c["name"] == EXPERIMENT and c.get("judgedAt")
        }
        assert len(judged_at) == 1, (seed, judged_at)
        started_at = {
            c["startedAt"]
            for _, s in statuses.samples
            for c in s.get("chaos") or []
            if c["name"] == EXPERIMENT
        }
        assert len(started_at) == 1, (seed, started_at)
        verdicts = world.event_count(kube_cluster, kube_namespace, "ChaosPassed") + (
            world.event_count(kube_cluster, kube_namespace, "ChaosFailed")
        )
        # The status is written before its Event: a kill in between loses the Event, never
        # doubles it.
        assert verdicts <= 1, (seed, verdicts)
        assert world.envoy_filters(kube_cluster, kube_namespace) == []
        assert served_faults == (), served_faults
        assert all(fault is None for fault in faulted.values()), faulted
        assert fault_feed.errors == [], fault_feed.errors
        assert any(experiments == (EXPERIMENT,) for _, experiments in fault_feed.served)

        # Real requests: only the stable and the canary answered, the canary none before its
        # first step was written, and the experiment's 503s reached users.
        assert snapshot is not None
        # Before the route existed the host was a plain Service over every version's pods;
        # from the second the stable-only route was served, only v1 and v2 may answer.
        counted = {
            second: outcomes
            for second, outcomes in snapshot.per_second.items()
            if second >= routed_from
        }
        answered: dict[str, dict[int, int]] = {}
        for outcomes in counted.values():
            for outcome, count in outcomes.items():
                codes = answered.setdefault(outcome.version, {})
                codes[outcome.status] = codes.get(outcome.status, 0) + count
        assert set(answered) <= {"v1", "v2", UNKNOWN_VERSION}, answered
        assert answered.get("v2", {}).get(200, 0) > 0, answered
        assert answered.get(UNKNOWN_VERSION, {}).get(503, 0) > 0, answered
        assert set(answered.get(UNKNOWN_VERSION, {})) <= {503}, answered
        first_canary = splits.first_with("v2")
        assert first_canary is not None
        before = int(first_canary - load_zero)
        early = {
            second: count
            for second, outcomes in counted.items()
            if second < before
            for outcome, count in outcomes.items()
            if outcome.version == "v2"
        }
        assert early == {}, (seed, before, early)
        # The 503s were the experiment's alone: every one in a second when the EnvoyFilter was
        # served (give or take a second), and the fault was gone soon after its expiry even
        # with kills around it (a restarted controller sweeps an expired fault first).
        served = _fault_seconds(fault_feed.served, load_zero)
        stray_503 = {
            second: count
            for second, outcomes in counted.items()
            for outcome, count in outcomes.items()
            if outcome.status == 503 and not any(on - 1 <= second <= off + 1 for on, off in served)
        }
        assert stray_503 == {}, (seed, served, stray_503)
        expires = datetime.fromisoformat(chaos[0]["expiresAt"].replace("Z", "+00:00"))
        removed = wall_offset + max(off for _, off in served) + load_zero
        assert removed <= expires.timestamp() + FAULT_GONE_WITHIN, (seed, removed, expires)
        lines = world.log_lines(controller)
        crashed = [line for line in lines if line.get("event") == "tick.crashed"]
        assert crashed == [], crashed[:3]
