"""`canary chaos` before any controller is involved: parsing, refusals, the request it writes."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from canary.api.chaos import REQUEST_ANNOTATION
from canary.api.status import CanaryStatus, Phase
from canary.cli import main
from canary.cluster import oneoff
from canary.cluster.client import LocalClient
from canary.demo import scenario
from canary.localmesh.store import LocalStore
from canary.ports import CanaryKey
from tests.unit.engine.builders import T0

KEY = CanaryKey("default", "demo")
LIVE = CanaryStatus(phase=Phase.PROGRESSING, revision="r1", canary_weight=10, step_started_at=T0)


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    store = LocalStore(tmp_path / "state")
    for body in scenario.objects():
        store.put(body)
    return store


def fields(**more: object) -> dict[str, object]:
    return {"duration": "5s", "fault": {"abort": {"httpStatus": 503, "percentage": 50}}, **more}


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        (["abort:503"], "a fault is abort:<http status>:<percent>"),
        (["explode:1:2"], "a fault is abort"),
        (["abort:503:150"], "less than or equal to 100"),
        (["abort:99:50"], "greater than or equal to 200"),
        (["delay:soon:10"], "not a duration"),
        (["abort:x:10"], "invalid literal"),
        ([], "give at least one --fault"),
    ],
)
def test_bad_faults_say_what_is_allowed(texts: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        oneoff.parse_fault(texts)


def test_abort_and_delay_together() -> None:
    fault = oneoff.parse_fault(["abort:503:50", "delay:2s:10"])
    assert fault.abort is not None
    assert (fault.abort.http_status, fault.abort.percentage) == (503, 50)
    assert fault.delay is not None
    assert (fault.delay.fixed_delay, fault.delay.percentage) == ("2s", 10)


def test_a_request_is_written_for_the_rollout_in_progress(store: LocalStore) -> None:
    store.write_status(KEY, LIVE)
    target = oneoff.Target(LocalClient(store), KEY)
    request = oneoff.ask(target, fields(name="try-it"))
    stored = store.canary(KEY)
    assert stored is not None
    assert stored.chaos_request == request
    assert request.revision == "r1"
    assert request.on_failure == "continue"
    before = store.get("Canary", "default", "demo")
    assert before is not None
    target.annotate(None)
    after = store.get("Canary", "default", "demo")
    assert after is not None
    assert REQUEST_ANNOTATION not in after["metadata"]["annotations"]
    assert after["metadata"]["generation"] == before["metadata"]["generation"], (
        "a request is not a spec change: it must not restart the rollout"
    )


@pytest.mark.parametrize(
    ("status", "more", "message"),
    [
        (CanaryStatus(phase=Phase.SUCCEEDED, revision="r1"), {}, "no live step"),
        (LIVE.model_copy(update={"step_started_at": None}), {}, "no live step"),
        (LIVE, {"duration": "1m"}, "longer than a step"),
        (
            LIVE,
            {"fault": {"abort": {"httpStatus": 503, "percentage": 0}}},
            "greater than or equal to 0.0001",
        ),
        (LIVE, {"fault": {}}, "abort and/or delay"),
    ],
)
def test_refusals_write_nothing(
    store: LocalStore, status: CanaryStatus, more: dict[str, object], message: str
) -> None:
    store.write_status(KEY, status)
    with pytest.raises(oneoff.Refused, match=message):
        oneoff.ask(oneoff.Target(LocalClient(store), KEY), fields(**more))
    stored = store.canary(KEY)
    assert stored is not None
    assert stored.chaos_request is None


def test_a_missing_canary_is_refused(tmp_path: Path) -> None:
    with pytest.raises(oneoff.Refused, match="not found"):
        oneoff.ask(oneoff.Target(LocalClient(LocalStore(tmp_path)), KEY), fields())


def test_the_command_exits_2_and_says_why_when_it_cannot_run(store: LocalStore) -> None:
    store.write_status(KEY, CanaryStatus(phase=Phase.SUCCEEDED, revision="r1"))
    args = ["chaos", "demo", "--state-dir", str(store.root), "--duration", "5s"]
    refused = CliRunner().invoke(main, [*args, "--fault", "abort:503:50"])
    assert refused.exit_code == 2
    assert "no live step" in refused.stderr
    bad = CliRunner().invoke(main, [*args, "--fault", "abort:503:150"])
    assert bad.exit_code == 2
    assert "--fault" in bad.stderr
    assert "Traceback" not in bad.output


def test_a_hand_written_request_that_does_not_parse_is_ignored(store: LocalStore) -> None:
    body = store.get("Canary", "default", "demo")
    assert body is not None
    body["metadata"]["annotations"] = {REQUEST_ANNOTATION: '{"name": "x"'}
    store.put(body)
    stored = store.canary(KEY)
    assert stored is not None
    assert stored.spec is not None
    assert stored.chaos_request is None
