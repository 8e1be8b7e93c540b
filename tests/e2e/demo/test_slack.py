"""Issue 13: `canary demo --approval --slack CHANNEL` tells the local Slack (tests/slack) about its
rollout and is decided by a signed click on the message's Approve button.

One demo run, with the credentials in the environment as a user would export them: the channel
gets one message for the rollout, updated in place as it advances, with the events as replies
in its thread; at the promotion gate the message carries Approve/Reject. The demo serves the
interactions URL it printed: a forged click gets 401 and changes nothing, a signed click by a
user who is not an approver is refused (and told so, ephemerally), and the approver's signed
click, built from the button's value as it was posted, promotes. The demo also opened Socket
Mode with the app token. No token or secret is ever in the demo's output or its log.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from canary.api.commands import COMMAND_ANNOTATION
from canary.api.people import APPROVE_ACTION
from tests.e2e.demo import processes
from tests.e2e.demo.test_approval import _status, _wait_for
from tests.e2e.demo.test_wait import SUMMARY, Timed
from tests.slack import signing
from tests.slack.server import SlackServer
from tests.slack.state import Message

CANARY = [sys.executable, "-c", "from canary.cli import main; main()"]
CHANNEL = "C0ROLLOUT"
SECRET = "demo-signing-secret"
APPROVER = "U0ALICE"
DEMO_TIMEOUT_S = 150
GATE_S = 120.0
# The gate's message (with its buttons) leaves from the outbox within a tick or two.
BUTTONS_S = 15.0
INTERACTIONS = re.compile(
    r"Slack interactions: (http://127\.0\.0\.1:\d+/slack/interactions) \(signed with "
    "SLACK_SIGNING_SECRET\\)"
)


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "250"}
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "SLACK_API_URL"):
        env.pop(name, None)
    env.pop("CANARY_DEMO_APPROVERS", None)
    return {**env, **extra}


def _rollout_messages(slack: SlackServer) -> list[Message]:
    return [m for m in slack.messages(CHANNEL) if m.thread_ts is None]


def _blocks(message: Message) -> list[dict[str, Any]]:
    blocks = message.blocks or []
    return list(json.loads(blocks) if isinstance(blocks, str) else blocks)


def _buttons(message: Message) -> list[dict[str, Any]]:
    return [
        element
        for block in _blocks(message)
        if block.get("type") == "actions"
        for element in block.get("elements", [])
    ]


def _wait_for_buttons(slack: SlackServer, timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [b for m in _rollout_messages(slack) for b in _buttons(m)]
        if found:
            return found
        time.sleep(0.2)
    return []


def _post(url: str, request: signing.SignedRequest) -> tuple[int, str]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)
    try:
        connection.request("POST", parts.path, body=request.body, headers=request.headers)
        answer = connection.getresponse()
        return answer.status, answer.read().decode()
    finally:
        connection.close()


def _annotation(state: Path) -> str | None:
    path = state / "objects" / "Canary" / "default" / "demo.json"
    meta = json.loads(path.read_text()).get("metadata") or {}
    found = (meta.get("annotations") or {}).get(COMMAND_ANNOTATION)
    return None if found is None else str(found)


def _wait_for_text(out: Timed, text: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while text not in out.text():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _wait_for_ephemeral(slack: SlackServer, user: str, timeout: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in slack.ephemerals() if e.get("user") == user]
        if found:
            return found[-1]
        time.sleep(0.1)
    return None


def test_the_demo_tells_slack_and_an_approvers_signed_click_promotes(
    tmp_path: Path, slack: SlackServer
) -> None:
    state, report = tmp_path / "state", tmp_path / "report"
    ws = slack.workspace
    env = _env(
        SLACK_BOT_TOKEN=ws.bot_token,
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_APP_TOKEN=ws.app_token,
        SLACK_API_URL=slack.url,
        CANARY_DEMO_APPROVERS=APPROVER,
    )
    demo = subprocess.Popen(
        [*CANARY, "demo", "--approval", "--slack", CHANNEL, "--state-dir", str(state),
         "--report-dir", str(report), "--timeout", str(DEMO_TIMEOUT_S)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True, env=env,
    )  # fmt: skip
    assert demo.stdout is not None
    out = Timed(demo.stdout)
    try:
        waiting = _wait_for(state, demo, GATE_S)
        assert waiting.get("waitingFor") == "approval for promotion", out.text()[-3000:]
        buttons = _wait_for_buttons(slack, BUTTONS_S)
        assert [b["action_id"] for b in buttons] == ["canary.approve", "canary.reject"], buttons
        [message] = _rollout_messages(slack)
        # Posted once at the start, updated in place as the weight went up.
        assert message.updates >= 2
        found = INTERACTIONS.search(out.text())
        assert found is not None, out.text()[-3000:]
        url = found.group(1)
        assert "Slack approvers: U0ALICE" in out.text()
        # Printed above the live view by the demo's next sample, a second at most from now.
        hint = "click Approve or Reject on the rollout's message in Slack (C0ROLLOUT)"
        assert _wait_for_text(out, hint, 5.0), out.text()[-3000:]
        # The app token opened Socket Mode (no click is sent that way here).
        slack.wait_for_connections(1, timeout=10)

        def click(user: str, action_ts: str) -> dict[str, Any]:
            return signing.block_actions(
                user=user,
                action_id=APPROVE_ACTION,
                value=buttons[0]["value"],
                channel=CHANNEL,
                message_ts=message.ts,
                response_url=slack.response_url("demo"),
                action_ts=action_ts,
            )

        # Forged: 401, nothing written, still waiting.
        status, _ = _post(url, signing.forged(click(APPROVER, "1.1"), time.time()))
        assert status == 401
        # Signed, by someone who is not an approver: refused, and told so.
        status, text = _post(url, signing.signed(click("U0MALLORY", "1.2"), SECRET, time.time()))
        assert status == 200
        assert "not allowed" in text, text
        told = _wait_for_ephemeral(slack, "U0MALLORY", 5.0)
        assert told is not None
        assert "not allowed" in told["text"]
        assert _annotation(state) is None
        assert _status(state).get("waitingFor") == "approval for promotion"
        # The approver's click promotes.
        status, text = _post(url, signing.signed(click(APPROVER, "1.3"), SECRET, time.time()))
        assert (status, text.split(":")[0]) == (200, "recorded"), text
        demo.wait(timeout=DEMO_TIMEOUT_S)
        out.join(10)
    finally:
        left = processes.stop(demo, out.text())
    assert left == []
    text = out.text()
    summary = out.when(SUMMARY)
    assert summary is not None, text[-3000:]
    assert (summary[1].group(1), summary[1].group(2)) == ("Succeeded", "as expected")
    assert demo.returncode == 0, text[-3000:]
    final = _status(state)
    [record] = final["approvals"]
    assert (record["decision"], record["by"], record["via"]) == ("approved", APPROVER, "slack")
    assert re.search(r"Slack \(C0ROLLOUT\): messages \d+ sent, \d+ retried, 0 dropped", text)

    # Still one rollout message: it ends as the rollout did, its buttons gone; the events are
    # replies in its thread.
    [message] = _rollout_messages(slack)
    assert "Succeeded" in message.text, message.text
    assert _buttons(message) == []
    assert "promotion: approved by <@U0ALICE> via slack" in json.dumps(_blocks(message))
    replies = [m for m in slack.messages(CHANNEL) if m.thread_ts is not None]
    assert replies
    assert {m.thread_ts for m in replies} == {message.ts}
    assert len(slack.requests("chat.postMessage")) == 1 + len(replies)
    assert slack.requests("chat.update")
    # The credentials never appear in what the demo printed or logged.
    logged = (report / "controller.log").read_text()
    for secret in (ws.bot_token, ws.app_token, SECRET):
        assert secret not in text
        assert secret not in logged


@pytest.mark.parametrize(
    ("args", "extra", "says"),
    [
        (["--slack", CHANNEL], {}, "SLACK_BOT_TOKEN"),
        (
            ["--slack", CHANNEL, "--approval", "--approver", "alice"],
            {"SLACK_BOT_TOKEN": "xoxb-set"},
            "--approver",
        ),
    ],
)
def test_slack_without_what_it_needs_exits_2_saying_what(
    tmp_path: Path, args: list[str], extra: dict[str, str], says: str
) -> None:
    done = subprocess.run(
        [*CANARY, "demo", *args, "--report-dir", str(tmp_path / "report")],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, env=_env(**extra), check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert says in done.stdout + done.stderr
    # Nothing started: no mesh, no report.
    assert not (tmp_path / "report").exists()
