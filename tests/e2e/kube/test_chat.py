"""Slack failing for a whole rollout changes nothing about it: one `canary run` on the real API
server rolls out three Canaries at once, identical but for their notifications.

- `plain` has none: the baseline.
- `noisy` notifies a local Slack (tests/slack) that answers every call 429 with a Retry-After
  until the controller has dropped a message, then 500 to every call until the end.
- `healthy` notifies another local Slack that answers every call.

Each Canary's status is polled from the API server in a thread of its own (world.StatusLog),
so the three timelines are read from outside the product with the times they were seen. The
rollouts are judged by time alone (no metrics: no mesh, no Prometheus), which is what a tick
held up by chat would show first. Both Slacks are reached by the controller through a
ChatProvider whose `slack.apiUrl` is the server's URL and whose token is in a Secret.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from canary.demo import scenario
from tests.e2e.kube import harness, world
from tests.kubeenv.cluster import KubeCluster
from tests.slack.fixtures import without_proxies
from tests.slack.server import SlackServer
from tests.slack.state import Workspace

PLAIN, NOISY, HEALTHY = "plain", "noisy", "healthy"
CHANNEL = "C0ROLLOUT"
STEPS = [10, 25, 50]
STEP_SECONDS = 6
CHECK_SECONDS = 1  # one tick
RETRY_AFTER = 2
# In the 500 part each answer also takes this long (under the adapter's 5 s timeout, so it
# arrives): a tick that waited for Slack would last longer than one tick interval.
SLOW_SECONDS = 3.0
# How far apart the poller may see the same transition of two Canaries ticked together: one
# tick, plus one poll interval of each poller.
POLL_SECONDS = 0.1
TOLERANCE = CHECK_SECONDS + 2 * POLL_SECONDS

Json = dict[str, Any]
Transition = tuple[str, int, int]  # (phase, step, canaryWeight)


@pytest.fixture
def slacks(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, SlackServer]]:
    """Two local Slacks with tokens of their own; slack-sdk in `canary run` reads no proxy
    variables (it inherits this environment)."""
    without_proxies(monkeypatch)
    noisy = SlackServer(Workspace(bot_token=f"xoxb-noisy-{secrets.token_hex(12)}"))
    healthy = SlackServer(Workspace(bot_token=f"xoxb-healthy-{secrets.token_hex(12)}"))
    with noisy, healthy:
        yield {NOISY: noisy, HEALTHY: healthy}


def _route(namespace: str, name: str) -> list[Json]:
    """The demo's VirtualService and DestinationRule for the host `name`."""
    vs, dr = scenario.virtual_service(), scenario.destination_rule()
    vs["metadata"].update(name=name, namespace=namespace)
    vs["spec"]["hosts"] = [name]
    for route in vs["spec"]["http"][0]["route"]:
        route["destination"]["host"] = name
    dr["metadata"].update(name=name, namespace=namespace)
    dr["spec"]["host"] = name
    return [vs, dr]


def _canary(namespace: str, name: str, provider: str | None) -> Json:
    body = scenario.canary(step_seconds=STEP_SECONDS, check_seconds=CHECK_SECONDS)
    body["metadata"].update(name=name, namespace=namespace)
    body["spec"]["service"]["host"] = name
    body["spec"]["analysis"].update(stepWeights=STEPS, metrics=[])
    if provider is not None:
        body["spec"]["notifications"] = [{"provider": provider, "channel": CHANNEL}]
    return body


def _provider(namespace: str, name: str, slack: SlackServer) -> list[Json]:
    """A Secret with the bot token and the ChatProvider that reads it, on the local Slack."""
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"{name}-slack", "namespace": namespace},
        "stringData": {"token": slack.workspace.bot_token},
    }
    provider = {
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "ChatProvider",
        "metadata": {"name": f"{name}-slack", "namespace": namespace},
        "spec": {
            "slack": {"token": {"name": f"{name}-slack", "key": "token"}, "apiUrl": slack.url}
        },
    }
    return [secret, provider]


def _objects(namespace: str, slacks: dict[str, SlackServer]) -> list[Json]:
    bodies: list[Json] = []
    for name in (NOISY, HEALTHY):
        bodies += _provider(namespace, name, slacks[name])
    for name in (PLAIN, NOISY, HEALTHY):
        bodies += _route(namespace, name)
        bodies.append(_canary(namespace, name, None if name == PLAIN else f"{name}-slack"))
    return bodies


_SAMPLE = re.compile(r'^canary_notifications_total\{provider="([^"]*)",result="([^"]*)"\} (\S+)$')


def _notifications(controller: harness.ControllerProcess) -> dict[tuple[str, str], float]:
    """canary_notifications_total by (provider, result), from the controller's /metrics."""
    _, text = controller.get("/metrics")
    found: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match:
            found[(match[1], match[2])] = float(match[3])
    return found


def _ticks(controller: harness.ControllerProcess) -> dict[str, float]:
    """canary_ticks_total by outcome, and how many ticks took at most a second (`fast`) of
    all that were timed (`timed`), from canary_tick_seconds."""
    _, text = controller.get("/metrics")
    found: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(r'^canary_ticks_total\{outcome="([^"]*)"\} (\S+)$', line)
        if match:
            found[match[1]] = float(match[2])
        elif line.startswith('canary_tick_seconds_bucket{le="1.0"} '):
            found["fast"] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("canary_tick_seconds_count "):
            found["timed"] = float(line.rsplit(" ", 1)[1])
    return found


def _timeline(log: world.StatusLog) -> list[tuple[float, Transition]]:
    """Each (phase, step, weight) the poller saw, with when it first saw it."""
    out: list[tuple[float, Transition]] = []
    for at, status in list(log.samples):
        if not status.get("phase"):
            continue
        state = (str(status["phase"]), int(status.get("step") or 0), int(status["canaryWeight"]))
        if not out or out[-1][1] != state:
            out.append((at, state))
    return out


def _terminal(status: Json) -> bool:
    return status.get("phase") in ("Succeeded", "Failed", "Invalid")


def _condition(status: Json, kind: str) -> Json | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), None)


def test_slack_rate_limiting_then_failing_changes_nothing_about_the_rollout(
    kube_cluster: KubeCluster,
    kube_namespace: str,
    tmp_path: Path,
    slacks: dict[str, SlackServer],
) -> None:
    began = time.monotonic()
    kube, namespace = kube_cluster, kube_namespace
    noisy, healthy = slacks[NOISY], slacks[HEALTHY]
    noisy_provider, healthy_provider = f"{namespace}/{NOISY}-slack", f"{namespace}/{HEALTHY}-slack"
    noisy.rate_limit(retry_after=RETRY_AFTER)
    harness.apply(kube, _objects(namespace, slacks))
    logs = {
        name: world.StatusLog(kube, namespace, name, every=POLL_SECONDS).start()
        for name in (PLAIN, NOISY, HEALTHY)
    }
    controller = harness.ControllerProcess(
        kube,
        tmp_path,
        prometheus_url="http://127.0.0.1:9",
        leader_election=False,
        preflight=False,
    ).start()
    try:
        # 429 until the outbox gave a message up, then 500 to the end.
        harness.wait_for(
            "the controller to drop a rate-limited message",
            lambda: (
                None
                if _notifications(controller).get((noisy_provider, "dropped"))
                else str(_notifications(controller))
            ),
            timeout=30,
        )
        noisy.fail(500)
        noisy.slow(SLOW_SECONDS)
        switched = time.time()
        at_switch = logs[NOISY].latest()
        finals = {
            name: log.wait(f"{name} to end", _terminal, timeout=60, controller=controller)
            for name, log in logs.items()
        }
        # The healthy Slack's message says how it ended once the outbox sent the last update;
        # the noisy one has had a 500 by then.
        harness.wait_for(
            "the healthy message to say Succeeded",
            lambda: (
                None
                if any("Succeeded" in m.text for m in healthy.messages(CHANNEL) if not m.thread_ts)
                else "not yet"
            ),
            timeout=15,
        )
        harness.wait_for(
            "a 500 from the noisy Slack",
            lambda: None if any(r.status == 500 for r in noisy.requests()) else "not yet",
            timeout=15,
        )
        counted = _notifications(controller)
        ticks = _ticks(controller)
    finally:
        for log in logs.values():
            log.stop()
        controller.stop()
    print(f"\nchat e2e: {time.monotonic() - began:.1f}s; notifications {counted}; ticks {ticks}")
    timelines = {name: _timeline(log) for name, log in logs.items()}
    for name, timeline in timelines.items():
        print(name, [(round(at - began, 2), state) for at, state in timeline])

    # The premise: the 500s began while the rollout was still going.
    assert at_switch.get("phase") == "Progressing", at_switch

    # The same rollout, the same timing: each transition within a tick of the baseline's.
    for name in (NOISY, HEALTHY):
        assert finals[name]["phase"] == finals[PLAIN]["phase"] == "Succeeded", finals[name]
        assert finals[name]["canaryWeight"] == finals[PLAIN]["canaryWeight"]
        states = [state for _, state in timelines[name]]
        assert states == [state for _, state in timelines[PLAIN]], (name, timelines)
        skew = [
            round(at - base, 2)
            for (at, _), (base, _) in zip(timelines[name], timelines[PLAIN], strict=True)
        ]
        assert all(abs(s) <= TOLERANCE for s in skew), (name, skew)
    # And no tick of the one process was held up: each step lasted its interval, to a tick.
    live = [at for at, (phase, _, weight) in timelines[PLAIN] if weight in STEPS]
    assert len(live) == len(STEPS), timelines[PLAIN]
    lengths = [round(b - a, 2) for a, b in itertools.pairwise(live)]
    # (A step moves on at the first tick after its interval: up to a tick late, and the poller
    # may see it later still on a busy machine.)
    assert all(STEP_SECONDS - TOLERANCE <= d <= STEP_SECONDS + 2 * TOLERANCE for d in lengths), (
        lengths
    )
    for name, log in logs.items():
        failed = [s for _, s in list(log.samples) if _condition(s, "TickFailed") is not None]
        assert not failed, (name, failed[:1])
    assert ticks.get("error", 0) == 0, ticks
    assert ticks.get("unavailable", 0) == 0, ticks
    assert ticks["fast"] == ticks["timed"] > 0, f"a tick took over a second: {ticks}"

    # The noisy Slack was asked, and honoured: 429s spaced by Retry-After, then 500s; nothing
    # it was sent ever went through.
    calls = noisy.requests()
    assert {r.status for r in calls} == {429, 500}, [(r.method, r.status) for r in calls]
    assert noisy.messages(CHANNEL) == []
    limited = [r.at for r in calls if r.status == 429]
    assert len(limited) >= 3, limited
    gaps = [b - a for a, b in itertools.pairwise(limited)]
    assert min(gaps) >= RETRY_AFTER - 0.1, gaps
    assert all(r.at <= switched for r in calls if r.status == 429)
    assert all(r.at >= switched - 0.5 for r in calls if r.status == 500)
    # What was dropped is logged, and counted in /metrics; nothing as sent.
    dropped = [
        line
        for line in world.log_lines(controller)
        if line.get("event") == "chat.dropped" and line.get("provider") == noisy_provider
    ]
    assert len(dropped) == counted.get((noisy_provider, "dropped")), dropped
    assert counted.get((noisy_provider, "dropped"), 0) > 0, counted
    assert counted.get((noisy_provider, "retried"), 0) > 0, counted
    assert counted.get((noisy_provider, "sent"), 0) == 0, counted
    # The Canary says its chat is failing, naming the provider; the others do not.
    notified = _condition(finals[NOISY], "Notified")
    assert notified is not None, finals[NOISY]
    assert notified["status"] == "False", notified
    assert f"ChatProvider {NOISY}-slack" in notified["message"], notified
    assert "dropped" in notified["message"], notified
    for name in (PLAIN, HEALTHY):
        condition = _condition(finals[name], "Notified")
        assert condition is None or condition["status"] == "True", (name, condition)

    # The healthy Slack: one message, posted once and updated in place, details in its thread.
    assert {r.status for r in healthy.requests()} == {200}, healthy.requests()
    posted = healthy.messages(CHANNEL)
    top = [m for m in posted if m.thread_ts is None]
    assert len(top) == 1, [(m.ts, m.text) for m in posted]
    assert top[0].updates >= 1, top[0]
    replies = [m for m in posted if m.thread_ts == top[0].ts]
    assert len(replies) == len(posted) - 1 >= 1, [(m.thread_ts, m.text) for m in posted]
    assert all(r.params.get("ts") == top[0].ts for r in healthy.requests("chat.update"))
    assert counted.get((healthy_provider, "sent"), 0) == len(healthy.requests()), counted
    assert counted.get((healthy_provider, "dropped"), 0) == 0, counted

    # No token anywhere it should not be: the controller's log, the statuses.
    text = controller.log_path.read_text(errors="replace")
    shown = json.dumps(finals)
    for slack in slacks.values():
        token = slack.workspace.bot_token
        assert token not in text, "a bot token is in the controller's log"
        assert token not in shown, "a bot token is in a Canary's status"
