"""The CLI against a state directory, with a stand-in for the controller where one must answer.

The stand-in is a thread that does what the controller promises the CLI: it carries out a
command whose id differs from status.lastCommand.id and records the answer there, moving the
phase as the engine would. Everything else (reading, refusing, writing the annotation, waiting,
removing it) is the real command, invoked as a user would.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from canary.api.commands import Command, CommandResult, Verb
from canary.api.people import Decision
from canary.api.spec import TargetRef
from canary.api.status import CanaryStatus, Phase
from canary.cli import ask, main, wait
from canary.engine import revision
from canary.localmesh.store import LocalStore
from canary.ports import CanaryKey

NS, NAME = "shop", "accounts"
KEY = CanaryKey(NS, NAME)


def canary_body(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "Canary",
        "metadata": {"name": NAME, "namespace": NS},
        "spec": {
            "service": {"host": "accounts"},
            "stable": {
                "subset": "v1",
                "labels": {"app": "accounts", "version": "v1"},
                "targetRef": {"name": "accounts-v1"},
            },
            "canary": {
                "subset": "v2",
                "labels": {"app": "accounts", "version": "v2"},
                "targetRef": {"name": "accounts-v2"},
            },
            "analysis": {
                "interval": "30s",
                "threshold": 2,
                "stepWeights": [10, 25, 50],
                "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}}],
            },
            **spec,
        },
    }


def deployment(name: str, image: str = "accounts:1") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": 1,
            "template": {
                "metadata": {"labels": {"app": "accounts"}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ask, "POLL_SECONDS", 0.05)
    monkeypatch.setattr(wait, "POLL_SECONDS", 0.05)


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    store = LocalStore(tmp_path / "state")
    store.put(canary_body())
    for version in ("v1", "v2", "v3"):
        store.put(deployment(f"accounts-{version}", f"accounts:{version}"))
    return store


def current_revision(store: LocalStore) -> str:
    """The revision the controller would judge now, worked out as observe.py does."""
    stored = store.canary(KEY)
    assert stored is not None
    assert stored.spec is not None
    ref = stored.spec.canary.target_ref
    target = "" if ref is None else store.target(NS, TargetRef(name=ref.name)).template_revision
    return revision.of(stored.spec, target_revision=target)


def set_status(store: LocalStore, **fields: Any) -> CanaryStatus:
    """A status about the current release unless `revision` says otherwise."""
    values: dict[str, Any] = {
        "revision": current_revision(store),
        "stable_subset": "v1",
        "canary_subset": "v2",
        **fields,
    }
    status = CanaryStatus(**values)
    store.write_status(KEY, status)
    return status


def body(store: LocalStore) -> dict[str, Any]:
    found = store.get("Canary", NS, NAME)
    assert found is not None
    return found


def cli(store: LocalStore, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, [*args, "--state-dir", str(store.root)], env=env)


Answer = Callable[[Command, CanaryStatus], tuple[dict[str, Any], bool, str]]


def engine_like(command: Command, status: CanaryStatus) -> tuple[dict[str, Any], bool, str]:
    """What the engine promises for each verb: (status updates, accepted, message)."""
    phase = status.phase
    live = phase in (Phase.INITIALIZING, Phase.PROGRESSING, Phase.PROMOTING)
    if command.verb is Verb.ABORT and live:
        updates = {"phase": Phase.FAILED, "canary_weight": 0, "message": "aborted"}
        return updates, True, f"rolling back {status.canary_subset}: aborted by {command.by}"
    if command.verb is Verb.PROMOTE and phase in (Phase.INITIALIZING, Phase.PROGRESSING):
        if command.force:
            updates = {"phase": Phase.SUCCEEDED, "canary_weight": 100, "message": "promoted"}
            return updates, True, "promoting now, checks skipped (--force)"
        return {"promote_requested": "checks"}, True, "promoting once this step's checks pass"
    if command.verb in (Verb.APPROVE, Verb.REJECT) and status.approvals:
        decision = Decision.APPROVED if command.verb is Verb.APPROVE else Decision.REJECTED
        record = status.approvals[-1].model_copy(
            update={"decision": decision, "by": command.by, "via": command.via}
        )
        told = f"approval for {record.gate}: {decision} by {command.by} via {command.via}"
        return {"approvals": (record,), "waiting_for": ""}, True, told
    if command.verb is Verb.RETRY and phase is Phase.FAILED:
        updates = {"phase": Phase.INITIALIZING, "step": 0, "message": "starting over"}
        return updates, True, "starting over from the first step"
    return {}, False, f"nothing to do in {phase}"


class FakeController:
    """Answers commands in the store the way the controller does, on a thread of its own."""

    def __init__(self, store: LocalStore, answer: Answer = engine_like) -> None:
        self.store = store
        self.answer = answer
        self.handled: list[Command] = []
        self.annotations_seen: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> FakeController:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            stored = self.store.canary(KEY)
            if stored is None or stored.command is None:
                continue
            last = stored.status.last_command
            if last is not None and last.id == stored.command.id:
                continue
            self.annotations_seen.append(dict(body(self.store)["metadata"]["annotations"]))
            self.handled.append(stored.command)
            updates, accepted, message = self.answer(stored.command, stored.status)
            result = CommandResult(
                id=stored.command.id,
                verb=stored.command.verb,
                accepted=accepted,
                message=message,
                at=datetime.now(UTC),
            )
            status = stored.status.model_copy(update={**updates, "last_command": result})
            self.store.write_status(KEY, status)


@pytest.fixture
def controller(store: LocalStore) -> Iterator[FakeController]:
    with FakeController(store) as running:
        yield running


def later(actions: Sequence[tuple[float, Callable[[], object]]]) -> threading.Thread:
    """Runs each action after its delay (seconds from now), on a thread; join it after."""

    def play() -> None:
        began = time.monotonic()
        for delay, action in actions:
            time.sleep(max(0.0, began + delay - time.monotonic()))
            action()

    thread = threading.Thread(target=play, daemon=True)
    thread.start()
    return thread
