"""`canary demo --slack`: the settings from the environment, the objects they add, and the
Secrets that answer the demo's ChatProvider from the environment (and nothing else from it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from canary.api.chat_provider import ChatProvider
from canary.api.resources import Canary
from canary.demo import envsecrets, scenario, slack
from canary.demo.envsecrets import EnvSecrets
from canary.errors import InvalidSpec
from canary.localmesh.store import LocalStore

ENV = {
    "SLACK_BOT_TOKEN": "xoxb-1",
    "SLACK_SIGNING_SECRET": "shh",
    "SLACK_API_URL": "http://127.0.0.1:9/api",
    "CANARY_DEMO_APPROVERS": "U0ALICE, U0BOB,",
    "AWS_SECRET_ACCESS_KEY": "not-for-anyone",
}


def test_env_secrets_answer_only_the_named_variables(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put({"kind": "Secret", "metadata": {"name": "env"}, "stringData": {"k": "from-store"}})
    secrets = EnvSecrets(store, keys=slack.CREDENTIALS, environ=ENV)
    assert secrets.value("default", envsecrets.ref("SLACK_BOT_TOKEN")) == "xoxb-1"
    # Another variable is not read from the environment: the store answers (here: no such key).
    with pytest.raises(InvalidSpec, match="no key 'AWS_SECRET_ACCESS_KEY'"):
        secrets.value("default", envsecrets.ref("AWS_SECRET_ACCESS_KEY"))
    assert secrets.value("default", envsecrets.ref("k")) == "from-store"
    with pytest.raises(InvalidSpec, match="SLACK_APP_TOKEN is not set"):
        secrets.value("default", envsecrets.ref("SLACK_APP_TOKEN"))


def test_settings_read_the_environment_and_keep_no_secret() -> None:
    found = slack.settings(
        channel="#rollouts", approval=True, approvers=("U0CAROL", "U0ALICE"), environ=ENV
    )
    assert found.approvers == ("U0ALICE", "U0BOB", "U0CAROL")
    assert (found.signing, found.socket_mode, found.serves_interactions) == (True, False, True)
    assert "xoxb-1" not in repr(found)
    assert "shh" not in repr(found)


@pytest.mark.parametrize(
    ("channel", "env", "approvers", "says"),
    [
        ("C0ROLLOUT", {}, (), "set SLACK_BOT_TOKEN"),
        ("C0ROLLOUT", {"SLACK_BOT_TOKEN": " "}, (), "set SLACK_BOT_TOKEN"),
        ("C0ROLLOUT", {"SLACK_BOT_TOKEN": "x"}, ("alice",), "--approver"),
        ("C0ROLLOUT", {"SLACK_BOT_TOKEN": "x", "CANARY_DEMO_APPROVERS": "bob"}, (), "bob"),
        ("C0ROLLOUT", {"SLACK_BOT_TOKEN": "x", "SLACK_API_URL": "ftp://x"}, (), "SLACK_API_URL"),
        ("", {"SLACK_BOT_TOKEN": "x"}, (), "--slack"),
    ],
)
def test_settings_say_what_is_missing_or_wrong(
    channel: str, env: dict[str, str], approvers: tuple[str, ...], says: str
) -> None:
    with pytest.raises(slack.SetupError, match=says):
        slack.settings(channel=channel, approval=True, approvers=approvers, environ=env)


def test_without_slack_nothing_is_added_and_a_signing_secret_is_pointed_out() -> None:
    found = slack.settings(channel=None, approval=True, environ=ENV)
    objects = scenario.objects(approval=True)
    assert slack.with_slack(objects, found) == objects
    [line] = slack.header(found)
    assert "--slack is not" in line


def test_with_slack_notifies_the_channel_and_names_the_approvers() -> None:
    found = slack.settings(channel="C0ROLLOUT", approval=True, environ=ENV)
    objects = slack.with_slack(scenario.complete(scenario.objects(approval=True)), found)
    canary = Canary.model_validate(next(o for o in objects if o["kind"] == "Canary"))
    provider = ChatProvider.model_validate(objects[-1])
    [notification] = canary.spec.notifications
    assert (notification.provider, notification.channel) == ("demo-slack", "C0ROLLOUT")
    assert canary.spec.approvals is not None
    assert canary.spec.approvals.approvers.users == ["U0ALICE", "U0BOB"]
    assert provider.spec.slack is not None
    assert provider.spec.slack.token == envsecrets.ref("SLACK_BOT_TOKEN")
    assert provider.spec.slack.app_token is None
    assert provider.spec.slack.api_url == "http://127.0.0.1:9/api/"
    lines = slack.header(found, "http://127.0.0.1:1/slack/interactions")
    assert lines[1] == (
        "Slack interactions: http://127.0.0.1:1/slack/interactions "
        "(signed with SLACK_SIGNING_SECRET)"
    )
    assert lines[-1] == "Slack approvers: U0ALICE, U0BOB"


def test_no_way_for_a_click_and_no_approvers_are_said() -> None:
    env = {"SLACK_BOT_TOKEN": "x"}
    found = slack.settings(channel="C0ROLLOUT", approval=True, environ=env)
    text = "\n".join(slack.header(found))
    assert "no click can reach the demo" in text
    assert "every click is refused" in text
