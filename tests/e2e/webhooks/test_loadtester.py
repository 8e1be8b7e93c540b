"""Our webhook calls against Flagger's own load tester (v1.36.1, tests/loadtester).

Every request is what the controller sends: `hooks.request` builds it from a `Webhook` (its
payload is `hooks.payload`, Flagger's `CanaryWebhookPayload`) and `HttpWebhooks` sends it. The
load tester decodes that payload with Flagger's Go types, so each answer here but a 400 shows it
understood ours: the gate store keyed by name and namespace, the metadata as a string map that
drives its commands, an event hook's extra metadata.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from canary.adapters.webhooks import HttpWebhooks
from canary.api.spec import Webhook
from canary.controller import hooks
from canary.engine.actions import Notify
from canary.engine.observation import GateResult
from canary.fakes import FakeSecrets
from canary.ports import CanaryKey
from tests.gates import GateService
from tests.loadtester.run import LoadTester


def _key() -> CanaryKey:
    """A Canary of its own per test: the load tester keeps its gates for as long as it runs."""
    return CanaryKey("shop", f"checkout-{secrets.token_hex(3)}")


def _call(
    loadtester: LoadTester | GateService,
    key: CanaryKey,
    path: str,
    *,
    metadata: dict[str, str] | None = None,
    event: Notify | None = None,
    phase: str = "Progressing",
) -> GateResult:
    hook = Webhook.model_validate(
        {
            "name": "gate",
            "type": "event" if event is not None else "confirm-promotion",
            "url": loadtester.url(path),
            "timeout": "15s",
            "metadata": metadata or {},
        }
    )
    request = hooks.request(
        key,
        hook,
        secrets=FakeSecrets(),
        phase=phase,
        checksum="7d9f8b6c5d",
        event=event,
        now=datetime(2026, 12, 3, 9, 0, tzinfo=UTC),
    )
    return HttpWebhooks().call(request)


def test_a_closed_gate_refuses_until_it_is_opened_for_that_canary(loadtester: LoadTester) -> None:
    key, other = _key(), _key()
    assert _call(loadtester, key, "/gate/check") == GateResult(False, "HTTP 403: Forbidden")
    assert _call(loadtester, key, "/gate/open") == GateResult(True, "HTTP 202")
    assert _call(loadtester, key, "/gate/check") == GateResult(True, "HTTP 200")
    # The load tester keys its gate by the payload's name and namespace.
    assert _call(loadtester, other, "/gate/check") == GateResult(False, "HTTP 403: Forbidden")
    assert _call(loadtester, key, "/gate/close") == GateResult(True, "HTTP 202")
    assert _call(loadtester, key, "/gate/check") == GateResult(False, "HTTP 403: Forbidden")
    loadtester.wait_for_log(f"{key.name}.{key.namespace} gate check: approved true")


def test_approve_passes_and_halt_refuses(loadtester: LoadTester) -> None:
    key = _key()
    assert _call(loadtester, key, "/gate/approve") == GateResult(True, "HTTP 200")
    assert _call(loadtester, key, "/gate/halt") == GateResult(False, "HTTP 403: Forbidden")


def test_the_rollback_gate_is_its_own(loadtester: LoadTester) -> None:
    key = _key()
    assert _call(loadtester, key, "/gate/open").passed
    assert _call(loadtester, key, "/rollback/check") == GateResult(False, "HTTP 403: Forbidden")
    assert _call(loadtester, key, "/rollback/open") == GateResult(True, "HTTP 202")
    assert _call(loadtester, key, "/rollback/check") == GateResult(True, "HTTP 200")
    assert _call(loadtester, key, "/rollback/close").passed
    assert not _call(loadtester, key, "/rollback/check").passed
    assert _call(loadtester, key, "/gate/check").passed


def test_a_cmd_hook_is_queued_and_run_by_the_load_tester(loadtester: LoadTester) -> None:
    key = _key()
    marker = f"canary-{secrets.token_hex(4)}"
    metadata = {"type": "cmd", "cmd": f"echo {marker}", "logCmdOutput": "true"}
    # Accepted for its task runner (202); the command runs within its next 100 ms tick.
    assert _call(loadtester, key, "/", metadata=metadata) == GateResult(True, "HTTP 202")
    assert loadtester.wait_for_log(f"command finished echo {marker}")["canary"] == (
        f"{key.name}.{key.namespace}"
    )
    loadtester.wait_for_log(marker + "\n")


def test_a_bash_hook_runs_while_the_call_waits_and_its_failure_is_a_no(
    loadtester: LoadTester,
) -> None:
    key = _key()
    ok = {"type": "bash", "cmd": "echo hi", "returnCmdOutput": "true"}
    assert _call(loadtester, key, "/", metadata=ok) == GateResult(True, "HTTP 200")
    failing = {"type": "bash", "cmd": "echo smoke test failed >&2; exit 3"}
    result = _call(loadtester, key, "/", metadata=failing)
    assert not result.passed
    assert result.message.startswith("HTTP 500: command echo smoke test failed >&2; exit 3 failed")
    assert "exit status 3" in result.message


def test_a_hook_without_metadata_has_nothing_to_run(loadtester: LoadTester) -> None:
    # Our empty metadata ({}) reads as Flagger's absent one.
    result = _call(loadtester, _key(), "/")
    assert result == GateResult(False, "HTTP 400: metadata not found in payload")


def test_an_event_hooks_payload_decodes_as_flaggers(loadtester: LoadTester) -> None:
    """eventMessage, eventType and timestamp are strings, as the Go map[string]string needs."""
    key = _key()
    event = Notify(reason="Promoted", message="Promotion completed", warning=False)
    # A 400 would mean the payload did not decode; the closed gate's 403 means it did.
    result = _call(loadtester, key, "/gate/check", event=event, phase="Succeeded")
    assert result == GateResult(False, "HTTP 403: Forbidden")
    marker = f"event-{secrets.token_hex(4)}"
    metadata = {"type": "cmd", "cmd": f"echo {marker}", "logCmdOutput": "true"}
    assert _call(loadtester, key, "/", metadata=metadata, event=event).passed
    loadtester.wait_for_log(f"command finished echo {marker}")


def test_our_gate_service_answers_gates_as_the_load_tester_does(
    loadtester: LoadTester, gate_service: GateService
) -> None:
    """tests/gates.py stands in for Flagger's gates where a test needs more: held to it here."""
    steps = [
        "/gate/check",
        "/rollback/check",
        "/gate/open",
        "/gate/check",
        "/rollback/check",
        "/rollback/open",
        "/rollback/check",
        "/gate/close",
        "/gate/check",
        "/gate/approve",
        "/gate/halt",
    ]
    key = _key()
    flaggers = [_call(loadtester, key, path) for path in steps]
    ours = [_call(gate_service, key, path) for path in steps]
    assert ours == flaggers
