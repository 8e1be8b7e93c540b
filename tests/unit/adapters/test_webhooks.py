"""The webhook adapter against a real HTTP server on loopback (tests/gates.py).

2xx is yes and anything else says why; the payload and headers arrive as sent; no call outlasts
its deadline, however the server stalls; a huge answer is never read whole; a redirect never
takes the call (or its credentials) to another host; retries are counted at the server.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from canary.adapters import webhooks
from canary.adapters.webhooks import HttpWebhooks
from canary.api.spec import Webhook
from canary.controller import hooks
from canary.engine.observation import GateResult
from canary.localmesh import procs
from canary.ports import CanaryKey, WebhookRequest
from tests import gates

KEY = CanaryKey("shop", "accounts")
HOOK = Webhook.model_validate(
    {
        "name": "db",
        "type": "pre-rollout",
        "url": "http://gate.shop/check",
        "metadata": {"ticket": "OPS-42", "owner": "payments"},
    }
)
# Generous for a loaded 2-core machine; what they bound is seconds apart from the failure.
SLACK = 2.0


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[gates.GateService]:
    with gates.running(tmp_path_factory.mktemp("gates")) as service:
        yield service


def _call(
    url: str,
    *,
    timeout: float = 5.0,
    retries: int = 0,
    headers: dict[str, str] | None = None,
) -> tuple[GateResult, float]:
    request = WebhookRequest(
        url=url,
        payload=hooks.payload(KEY, HOOK, phase="Progressing", checksum="rev-7"),
        timeout=timeout,
        retries=retries,
        headers=headers or {},
    )
    start = time.monotonic()
    result = HttpWebhooks().call(request)
    return result, time.monotonic() - start


def _unique(route: str) -> str:
    """A route with a query no other test sends, so its recorded requests are its own."""
    separator = "&" if "?" in route else "?"
    return f"{route}{separator}t={secrets.token_hex(4)}"


def _received(gate: gates.GateService, path: str) -> list[gates.Received]:
    return [r for r in gate.received() if r.path == path]


@pytest.mark.parametrize(("route", "status"), [("/ok", 200), ("/status?code=204", 204)])
def test_any_2xx_is_a_yes(gate: gates.GateService, route: str, status: int) -> None:
    result, _ = _call(gate.url(route))
    assert result == GateResult(passed=True, message=f"HTTP {status}")


def test_a_refusal_says_the_status_and_the_start_of_the_body(gate: gates.GateService) -> None:
    result, _ = _call(gate.url("/no"))
    assert result == GateResult(passed=False, message=f"HTTP 403: {gates.REFUSAL}")


def test_a_server_error_is_a_no_after_one_attempt_without_retries(
    gate: gates.GateService,
) -> None:
    path = _unique("/error")
    result, _ = _call(gate.url(path))
    assert result == GateResult(passed=False, message="HTTP 500: internal error")
    assert len(_received(gate, path)) == 1


def test_the_payload_and_headers_arrive_as_flagger_sends_them(gate: gates.GateService) -> None:
    path = _unique("/ok")
    result, _ = _call(
        gate.url(path), headers={"Authorization": "Bearer s3cret", "X-Gate-Team": "payments"}
    )
    assert result.passed
    [got] = _received(gate, path)
    assert got.method == "POST"
    assert got.body == {
        "name": "accounts",
        "namespace": "shop",
        "phase": "Progressing",
        "checksum": "rev-7",
        "metadata": {"ticket": "OPS-42", "owner": "payments"},
    }
    assert got.header("Content-Type") == "application/json"
    assert got.header("Authorization") == "Bearer s3cret"
    assert got.header("X-Gate-Team") == "payments"


def test_a_slow_gate_times_out_as_a_no_within_its_timeout(gate: gates.GateService) -> None:
    result, took = _call(gate.url(_unique("/slow?seconds=10")), timeout=0.5)
    assert not result.passed
    assert result.message.endswith("timed out after 0.5s")
    assert took < 0.5 + SLACK


def test_a_gate_that_never_answers_is_cut_off_after_each_attempt(
    gate: gates.GateService,
) -> None:
    path = _unique("/hang")
    result, took = _call(gate.url(path), timeout=0.5, retries=1)
    assert not result.passed
    assert "timed out after 0.5s, 2 attempts" in result.message
    # Two attempts of 0.5 s, the first retry without backoff.
    assert took < 2 * 0.5 + SLACK
    assert len(_received(gate, path)) == 2


@pytest.mark.parametrize("status", [200, 500])
def test_headers_trickled_forever_are_cut_off_at_the_deadline(
    gate: gates.GateService, status: int
) -> None:
    """Every byte comes within the read timeout, so only the wall-clock deadline ends it."""
    result, took = _call(gate.url(_unique(f"/trickle?part=headers&status={status}")), timeout=0.5)
    assert not result.passed
    deadline = 0.5 + webhooks.DEADLINE_GRACE
    assert result.message.endswith(f"timed out: no whole answer within {deadline:g}s")
    assert took < deadline + SLACK


def test_a_refusal_whose_body_trickles_forever_is_cut_off_at_the_deadline(
    gate: gates.GateService,
) -> None:
    result, took = _call(gate.url(_unique("/trickle?part=body&status=500")), timeout=0.5)
    assert not result.passed
    assert result.message.startswith("HTTP 500")
    assert took < 0.5 + webhooks.DEADLINE_GRACE + SLACK


def test_a_yes_whose_body_never_ends_is_a_yes_at_once(gate: gates.GateService) -> None:
    result, took = _call(gate.url(_unique("/trickle?part=body&status=200")), timeout=5)
    assert result == GateResult(passed=True, message="HTTP 200")
    assert took < SLACK


@pytest.mark.parametrize("status", [200, 500])
def test_a_3mb_answer_is_never_read_whole(gate: gates.GateService, status: int) -> None:
    """The server sends 128 KiB, then waits 8 s before the rest: reading it all would wait."""
    result, took = _call(gate.url(_unique(f"/big?status={status}&pause=8")), timeout=10)
    assert result.passed == (status == 200)
    if status == 200:
        assert result.message == "HTTP 200"
    else:
        assert result.message == f"HTTP 500: {'x' * webhooks.MESSAGE_CHARS}…"
    assert took < SLACK


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.2:{port}/ok",  # another host
        "http://127.0.0.1:{other}/ok",  # another port
        "https://127.0.0.1:{port}/ok",  # another scheme
        "http://localhost:{port}/ok",  # another name for the same address is another host
    ],
)
def test_a_redirect_to_another_origin_is_refused(gate: gates.GateService, target: str) -> None:
    location = target.format(port=gate.port, other=gate.port + 1)
    path = _unique(f"/redirect?to={location}")
    result, _ = _call(gate.url(path), headers={"Authorization": "Bearer s3cret"})
    assert not result.passed
    assert result.message == (
        f"HTTP 302: redirect to {location} refused "
        f"(a gate must answer from http://127.0.0.1:{gate.port})"
    )
    assert len(_received(gate, path)) == 1


def test_the_gate_services_other_host_redirect_is_refused(gate: gates.GateService) -> None:
    result, _ = _call(gate.url("/redirect-other"))
    assert not result.passed
    assert f"redirect to http://127.0.0.2:{gate.port}/ok refused" in result.message


def test_a_redirect_within_the_host_is_followed_with_the_same_post(
    gate: gates.GateService,
) -> None:
    before = len(gate.received("/ok"))
    path = _unique("/redirect-same")
    result, _ = _call(gate.url(path), headers={"Authorization": "Bearer s3cret"})
    assert result == GateResult(passed=True, message="HTTP 200")
    [first] = _received(gate, path)
    followed = gate.received("/ok")[before:]
    assert len(followed) == 1
    assert followed[0].method == "POST"
    assert followed[0].body == first.body
    assert followed[0].header("Authorization") == "Bearer s3cret"


def test_redirects_are_followed_three_hops_at_most(gate: gates.GateService) -> None:
    before = len(gate.received("/redirect-loop"))
    result, _ = _call(gate.url("/redirect-loop"))
    assert not result.passed
    assert result.message.startswith("HTTP 302: more than 3 redirects")
    assert len(gate.received("/redirect-loop")) - before == 4


def test_a_flaky_gate_passes_when_retries_outlast_its_failures(gate: gates.GateService) -> None:
    path = _unique("/flaky?fails=2")
    result, _ = _call(gate.url(path), retries=2)
    assert result == GateResult(passed=True, message="HTTP 200")
    assert len(_received(gate, path)) == 3


def test_a_flaky_gate_is_a_no_without_retries(gate: gates.GateService) -> None:
    path = _unique("/flaky?fails=2")
    result, _ = _call(gate.url(path), retries=0)
    assert result == GateResult(passed=False, message="HTTP 503: not yet")
    assert len(_received(gate, path)) == 1


def test_retries_stop_at_their_count(gate: gates.GateService) -> None:
    path = _unique("/flaky?fails=5&status=502")
    result, _ = _call(gate.url(path), retries=2)
    assert result == GateResult(passed=False, message="HTTP 502: not yet")
    assert len(_received(gate, path)) == 3


def test_a_refusal_that_retrying_cannot_change_is_not_retried(gate: gates.GateService) -> None:
    path = _unique("/status?code=404")
    result, _ = _call(gate.url(path), retries=3)
    assert result == GateResult(passed=False, message="HTTP 404: status 404")
    assert len(_received(gate, path)) == 1


def test_retry_after_is_respected_but_capped(
    gate: gates.GateService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webhooks, "MAX_WAIT", 1.0)
    path = _unique("/flaky?fails=1&status=429&retry_after=3600")
    result, took = _call(gate.url(path), retries=1)
    assert result == GateResult(passed=True, message="HTTP 200")
    first, second = _received(gate, path)
    assert 0.9 <= second.at - first.at < 1.0 + SLACK
    assert took < 1.0 + SLACK


def test_nobody_listening_is_a_no_that_says_so() -> None:
    url = f"http://127.0.0.1:{procs.free_port()}/check"
    result, took = _call(url, retries=2)
    assert not result.passed
    assert result.message == f"{url} unreachable: [Errno 111] Connection refused"
    assert took < SLACK


def test_a_malformed_url_is_a_no_not_an_exception() -> None:
    result, _ = _call("http://exa mple.invalid:port/x")
    assert not result.passed
    assert result.message.startswith("http://exa mple.invalid:port/x cannot be called: ")


def test_tls_certificates_are_verified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with gates.running(tmp_path / "tls", tls=True) as service:
        assert service.certificate is not None
        refused, _ = _call(service.url("/ok"))
        assert not refused.passed
        assert "CERTIFICATE_VERIFY_FAILED" in refused.message
        assert service.received("/ok") == []
        # Trusted (requests reads its CA bundle from the environment), the same server passes.
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(service.certificate))
        trusted, _ = _call(service.url("/ok"))
        assert trusted == GateResult(passed=True, message="HTTP 200")
