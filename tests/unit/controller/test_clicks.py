"""An approval click becomes one command, for an approver, on the gate that waits; anything else
is refused with a one-line ephemeral answer and writes nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from structlog.testing import capture_logs

from canary.api.chat_provider import ChatProvider
from canary.api.commands import Command, CommandResult, Verb
from canary.api.people import REJECT_ACTION
from canary.api.status import Phase
from canary.controller.clicks import Clicks, ProviderKey, slack_providers
from canary.fakes import FakeStore
from canary.ports import Chat
from tests import clickworld as w

VIA = (ProviderKey(w.KEY.namespace, w.PROVIDER),)


def _clicks(store: FakeStore, chat: w.FakeChat) -> Clicks:
    def chats(provider: ChatProvider) -> Chat:
        assert provider.metadata.name == w.PROVIDER
        return chat

    return Clicks(store=store, chats=chats)


@pytest.fixture
def chat() -> w.FakeChat:
    return w.FakeChat(groups={"S0OWNERS": frozenset({"U0BOB"})})


def test_an_approver_click_writes_one_command_and_says_so(chat: w.FakeChat) -> None:
    store = w.store()
    result = _clicks(store, chat).handle(w.click(), providers=VIA)
    assert result.accepted
    command = store.stored[w.KEY].command
    assert command is not None
    assert (command.verb, command.by, command.via) == (Verb.APPROVE, "U0ALICE", "slack")
    assert (command.revision, command.gate) == (w.REVISION, w.GATE)
    assert command.id.startswith("slack-")
    [(channel, user, text)] = chat.ephemerals
    assert (channel, user) == (w.CHANNEL, "U0ALICE")
    assert text.startswith("recorded: approve of shop/podinfo at the promotion gate")


def test_reject_is_a_reject(chat: w.FakeChat) -> None:
    store = w.store()
    result = _clicks(store, chat).handle(w.click(action_id=REJECT_ACTION), providers=VIA)
    assert result.accepted
    assert "rolls back" in result.message
    assert result.command is not None
    assert result.command.verb is Verb.REJECT


def test_a_member_of_an_approver_group_decides_and_the_group_is_kept(chat: w.FakeChat) -> None:
    store = w.store(canary_spec=w.spec(users=(), groups=("S0OWNERS",)))
    clicks = _clicks(store, chat)
    assert clicks.handle(w.click(user="U0BOB"), providers=VIA).accepted
    refused = clicks.handle(w.click(user="U0MALLORY"), providers=VIA)
    assert not refused.accepted
    assert "not allowed" in refused.message
    assert chat.lookups == ["S0OWNERS"]  # the second click read the kept members


def test_a_failing_group_lookup_refuses(chat: w.FakeChat) -> None:
    chat.failing_groups = True
    store = w.store(canary_spec=w.spec(users=(), groups=("S0OWNERS",)))
    clicks = _clicks(store, chat)
    result = clicks.handle(w.click(user="U0BOB"), providers=VIA)
    assert not result.accepted
    assert "could not check your group membership" in result.message
    assert store.stored[w.KEY].command is None
    # A failure is not kept: the next click asks again, and decides once Slack answers.
    chat.failing_groups = False
    assert clicks.handle(w.click(user="U0BOB"), providers=VIA).accepted
    assert chat.lookups == ["S0OWNERS", "S0OWNERS"]


def test_an_unauthorised_user_is_told_and_nothing_is_written(chat: w.FakeChat) -> None:
    store = w.store()
    result = _clicks(store, chat).handle(w.click(user="U0MALLORY"), providers=VIA)
    assert not result.accepted
    assert store.stored[w.KEY].command is None
    [(_, user, text)] = chat.ephemerals
    assert user == "U0MALLORY"
    assert text == "nothing decided: you are not allowed to decide for shop/podinfo"


def test_no_chat_adapter_still_decides_for_listed_users_and_refuses_groups() -> None:
    store = w.store(canary_spec=w.spec(users=("U0ALICE",), groups=("S0OWNERS",)))
    clicks = Clicks(store=store, chats=None)
    assert not clicks.handle(w.click(user="U0BOB"), providers=VIA).accepted
    assert clicks.handle(w.click(user="U0ALICE"), providers=VIA).accepted


@pytest.mark.parametrize(
    ("status", "value", "says"),
    [
        (w.waiting(), w.value(revision="rev-1"), "about an earlier revision (rev-1)"),
        (
            w.waiting().model_copy(update={"phase": Phase.SUCCEEDED}),
            w.value(),
            "the rollout has ended (Succeeded)",
        ),
        (
            w.waiting().model_copy(update={"phase": Phase.ROLLING_BACK}),
            w.value(),
            "no approval waits (the rollout is RollingBack)",
        ),
        (
            w.waiting().model_copy(update={"phase": Phase.PROMOTING}),
            w.value(),
            "no approval waits (the rollout is Promoting)",
        ),
        (w.waiting(gate="rollout"), w.value(), "does not wait at the promotion gate"),
        (w.waiting().model_copy(update={"approvals": ()}), w.value(), "does not wait"),
        (
            w.decided(w.waiting(), by="U0BOB"),
            w.value(),
            "already approved by <@U0BOB> at 2026-01-01 12:00:00 UTC",
        ),
        (
            w.decided(w.waiting(), by="system:admin", via="cli"),
            w.value(),
            "already approved by system:admin (cli)",
        ),
    ],
    ids=[
        "old-revision",
        "ended",
        "rolling-back",
        "promoting",
        "other-gate",
        "no-gate",
        "decided",
        "by-cli",
    ],
)
def test_a_click_that_cannot_decide_now_says_why(
    chat: w.FakeChat, status: object, value: str, says: str
) -> None:
    store = w.store(status=status)  # type: ignore[arg-type]
    result = _clicks(store, chat).handle(w.click(value_text=value), providers=VIA)
    assert not result.accepted
    assert says in result.message
    assert store.stored[w.KEY].command is None
    assert [text for _, _, text in chat.ephemerals] == [result.message]


def test_a_gate_asked_again_later_is_not_the_one_that_waits(chat: w.FakeChat) -> None:
    """An older, undecided record of the same gate is not what the rollout waits on now."""
    status = w.waiting()
    later = status.approvals[0].model_copy(update={"gate": "step 2"})
    status = status.model_copy(update={"approvals": (*status.approvals, later)})
    result = _clicks(w.store(status=status), chat).handle(w.click(), providers=VIA)
    assert "no longer waits at the promotion gate" in result.message


def test_a_double_click_decides_once(chat: w.FakeChat) -> None:
    store = w.store()
    clicks = _clicks(store, chat)
    first = clicks.handle(w.click(action_ts="1.1"), providers=VIA)
    second = clicks.handle(w.click(action_ts="1.2", action_id=REJECT_ACTION), providers=VIA)
    assert first.accepted
    assert not second.accepted
    assert "another decision is waiting" in second.message
    assert first.command == store.stored[w.KEY].command


def test_the_same_click_delivered_twice_carries_the_same_id(chat: w.FakeChat) -> None:
    """A replay or a Slack retry: refused while the first waits, and after the engine answered
    it names an id the engine already carried out."""
    store = w.store()
    clicks = _clicks(store, chat)
    first = clicks.handle(w.click(), providers=VIA)
    assert first.command is not None
    assert not clicks.handle(w.click(), providers=VIA).accepted
    answered = CommandResult(
        id=first.command.id, verb=Verb.APPROVE, accepted=True, at=datetime.now(UTC)
    )
    status = w.decided(w.waiting(), by="U0ALICE").model_copy(update={"last_command": answered})
    w.with_status(store, status)
    again = clicks.handle(w.click(), providers=VIA)
    assert not again.accepted
    assert "already approved by <@U0ALICE>" in again.message


def test_a_click_racing_a_cli_decision_is_refused(chat: w.FakeChat) -> None:
    store = w.store()
    cli = Command(verb=Verb.REJECT, id="cli-1", by="system:admin")
    assert store.ask(w.KEY, cli) == ""
    result = _clicks(store, chat).handle(w.click(), providers=VIA)
    assert not result.accepted
    assert "another decision is waiting" in result.message
    assert store.stored[w.KEY].command == cli


@pytest.mark.parametrize(
    "garbage",
    ["", "not json", '{"canary": "shop/podinfo"}', "[1, 2]", '{"canary": 1, "revision": 2}'],
)
def test_a_garbage_value_is_refused_and_logged(chat: w.FakeChat, garbage: str) -> None:
    store = w.store()
    with capture_logs() as logs:
        result = _clicks(store, chat).handle(w.click(value_text=garbage), providers=VIA)
    assert not result.accepted
    assert "cannot be read" in result.message
    assert store.stored[w.KEY].command is None
    assert [entry["event"] for entry in logs if entry["log_level"] == "warning"] == [
        "click.garbage"
    ]
    assert chat.ephemerals
    assert chat.ephemerals[0][1] == "U0ALICE"


@pytest.mark.parametrize(
    ("canary", "says"),
    [("shop/other", "no Canary shop/other"), ("podinfo", "no Canary podinfo"), ("a/b/c", "a/b/c")],
)
def test_a_click_for_an_unknown_canary_is_refused(chat: w.FakeChat, canary: str, says: str) -> None:
    store = w.store()
    result = _clicks(store, chat).handle(w.click(value_text=w.value(canary=canary)), providers=VIA)
    assert not result.accepted
    assert says in result.message


def test_a_click_through_another_teams_provider_is_refused(chat: w.FakeChat) -> None:
    store = w.store()
    others = (ProviderKey("other-team", w.PROVIDER), ProviderKey(w.KEY.namespace, "not-ours"))
    result = _clicks(store, chat).handle(w.click(), providers=others)
    assert not result.accepted
    assert "not notified through this Slack app" in result.message
    assert store.stored[w.KEY].command is None


def test_not_our_button_is_ignored_without_an_answer(chat: w.FakeChat) -> None:
    store = w.store()
    clicks = _clicks(store, chat)
    other = w.click()
    other["actions"][0]["action_id"] = "someone.else"
    assert not clicks.handle(other, providers=VIA).accepted
    assert not clicks.handle({"type": "view_submission"}, providers=VIA).accepted
    assert not clicks.handle({"type": "block_actions", "actions": "x"}, providers=VIA).accepted
    assert chat.ephemerals == []
    assert store.stored[w.KEY].command is None


def test_a_failing_ephemeral_does_not_undo_the_decision(chat: w.FakeChat) -> None:
    store = w.store()

    def broken(channel: str, user: str, text: str) -> None:
        raise RuntimeError("slack down")

    chat.ephemeral = broken  # type: ignore[method-assign]
    assert _clicks(store, chat).handle(w.click(), providers=VIA).accepted
    assert store.stored[w.KEY].command is not None


def test_slack_providers_are_those_the_canaries_name() -> None:
    store = w.store()
    assert list(slack_providers(store)) == [ProviderKey(w.KEY.namespace, w.PROVIDER)]
    store.chat_providers.clear()
    assert slack_providers(store) == {}
