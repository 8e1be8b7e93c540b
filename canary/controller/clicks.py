"""Approval clicks coming in: one Slack `block_actions` payload becomes at most one decision.

A click is only a request. It is written as a `Command` in the Canary's annotation
(`Store.ask`, which refuses while another decision waits), and the engine decides it at its
next tick, checking revision and gate again against the status it then reads: so two clicks,
or a click and `canary approve`, decide once whatever this module lets through. What this
module adds is the person's side: who may decide, and a one-line answer that only they see
(an ephemeral message) saying what became of their click and why.

Where a click came from matters. The HTTP endpoint knows the Slack providers whose signing
secret verified the request, a Socket Mode connection the providers that share its app token;
a click is taken only for a Canary whose `spec.notifications` name one of them, in its own
namespace, so one team's Slack app cannot decide another team's rollout.

The composition root gives a `ChatFor` (ChatProvider -> Chat): the answer goes through the
Chat of the provider that carried the click, and a user group's members are read through it
(kept for a short while). A lookup that fails refuses: never allows.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from pydantic import ValidationError

from canary.api.chat_provider import ChatProvider
from canary.api.commands import Command, Verb
from canary.api.people import APPROVE_ACTION, REJECT_ACTION, ApprovalRecord, ClickValue, Decision
from canary.api.status import TERMINAL_PHASES, CanaryStatus
from canary.engine.approvals import DECIDABLE, record_of
from canary.errors import CanaryError
from canary.ports import CanaryKey, Chat, Store, StoredCanary

log = structlog.get_logger("canary.clicks")

# How long a user group's members are kept: a person added to the group decides within this.
GROUP_TTL_SECONDS = 60.0
VERBS = {APPROVE_ACTION: Verb.APPROVE, REJECT_ACTION: Verb.REJECT}

ChatFor = Callable[[ChatProvider], Chat]


@dataclass(frozen=True, slots=True, order=True)
class ProviderKey:
    """A ChatProvider by namespace and name: the one a click arrived through."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class ClickResult:
    """What became of a click: `accepted` when a command was written; `message` is the line
    the person is told. `reply` sends it (ephemeral), for a transport to call once it has
    answered Slack, since Slack wants its answer within 3 s."""

    accepted: bool
    message: str
    canary: CanaryKey | None = None
    command: Command | None = None
    reply: Callable[[], None] = lambda: None


def slack_providers(store: Store) -> dict[ProviderKey, ChatProvider]:
    """The Slack bot providers that some Canary's notifications name, read from the store.

    Only those can carry a click that decides anything; a provider that does not parse is
    left out (the Canary's own tick reports it)."""
    found: dict[ProviderKey, ChatProvider] = {}
    for stored in store.canaries():
        if stored.spec is None:
            continue
        for notification in stored.spec.notifications:
            key = ProviderKey(stored.key.namespace, notification.provider)
            if key in found:
                continue
            try:
                provider = store.chat_provider(key.namespace, key.name)
            except CanaryError:
                continue
            if provider is not None and provider.spec.slack is not None:
                found[key] = provider
    return found


class Clicks:
    def __init__(
        self,
        *,
        store: Store,
        chats: ChatFor | None,
        group_ttl: float = GROUP_TTL_SECONDS,
    ) -> None:
        self.store = store
        # None when this controller has no chat adapter: refusals are then only logged and
        # group membership cannot be checked (so groups refuse).
        self.chats = chats
        self.group_ttl = group_ttl
        self._lock = threading.Lock()
        self._groups: dict[tuple[ProviderKey, str], tuple[float, frozenset[str]]] = {}

    def handle(
        self, payload: Mapping[str, Any], *, providers: Collection[ProviderKey]
    ) -> ClickResult:
        """Decide and answer the person at once (Socket Mode, whose ack went out already)."""
        result = self.decide(payload, providers=providers)
        result.reply()
        return result

    def decide(
        self, payload: Mapping[str, Any], *, providers: Collection[ProviderKey]
    ) -> ClickResult:
        """Write the click's command, or say why not; the answer is left to `result.reply`."""
        click = _Click.read(payload)
        if click is None:
            log.info("click.ignored", why="not a canary button")
            return ClickResult(False, "not a canary approval button")
        ordered = sorted(providers)
        if not ordered:
            return ClickResult(False, "no Slack provider carried this click")
        value = _value(click.value)
        if value is None:
            # The value is ours, written into the message: garbage means someone made it up.
            log.warning("click.garbage", user=click.user, length=len(click.value))
            return self._refuse(click, ordered[0], None, "this button's value cannot be read")
        key = _canary_key(value.canary)
        stored = None if key is None else self.store.canary(key)
        if key is None or stored is None or stored.spec is None:
            return self._refuse(click, ordered[0], key, f"no Canary {value.canary} to decide for")
        named = {ProviderKey(key.namespace, n.provider) for n in stored.spec.notifications}
        carrier = next((p for p in ordered if p in named), None)
        if carrier is None:
            log.warning("click.foreign", canary=str(key), providers=[str(p) for p in ordered])
            why = f"{key} is not notified through this Slack app, so it cannot be decided here"
            return self._refuse(click, ordered[0], key, why)
        refusal = self._not_allowed(click, stored, carrier) or _not_now(value, stored.status)
        if refusal:
            return self._refuse(click, carrier, key, refusal)
        command = Command(
            verb=click.verb,
            id=click.command_id(),
            by=click.user,
            via="slack",
            revision=value.revision,
            gate=value.gate,
        )
        try:
            why_not = self.store.ask(key, command)
        except CanaryError as exc:
            why_not = f"could not record it now ({exc}); try again"
        if why_not:
            return self._refuse(click, carrier, key, why_not)
        then = "goes on" if click.verb is Verb.APPROVE else "rolls back"
        message = (
            f"recorded: {click.verb} of {key} at the {value.gate} gate; "
            f"the rollout {then} at its next tick"
        )
        log.info("click.accepted", canary=str(key), user=click.user, verb=str(click.verb))
        return ClickResult(True, message, key, command, self._replier(click, carrier, message))

    def _refuse(
        self, click: _Click, carrier: ProviderKey, key: CanaryKey | None, why: str
    ) -> ClickResult:
        log.info("click.refused", canary=str(key), user=click.user, why=why)
        message = f"nothing decided: {why}"
        return ClickResult(False, message, key, reply=self._replier(click, carrier, message))

    def _replier(self, click: _Click, carrier: ProviderKey, text: str) -> Callable[[], None]:
        def reply() -> None:
            chat = self._chat(carrier)
            if chat is None or not click.channel:
                return
            try:
                chat.ephemeral(click.channel, click.user, text)
            except Exception as exc:  # the decision stands; only the person's answer is lost
                log.warning("click.reply_failed", provider=str(carrier), error=str(exc))

        return reply

    def _chat(self, carrier: ProviderKey) -> Chat | None:
        if self.chats is None:
            return None
        try:
            provider = self.store.chat_provider(carrier.namespace, carrier.name)
            return None if provider is None else self.chats(provider)
        except Exception as exc:  # a provider gone wrong costs the answer, not the click
            log.warning("click.no_chat", provider=str(carrier), error=str(exc))
            return None

    def _not_allowed(self, click: _Click, stored: StoredCanary, carrier: ProviderKey) -> str:
        spec = stored.spec
        approvals = None if spec is None else spec.approvals
        if approvals is None or not approvals.approvers:
            return f"{stored.key} names no approvers in chat; use `canary approve|reject`"
        if click.user in approvals.approvers.users:
            return ""
        for group in approvals.approvers.groups:
            members = self._members(carrier, group)
            if members is None:
                return "could not check your group membership; try again or use the CLI"
            if click.user in members:
                return ""
        return f"you are not allowed to decide for {stored.key}"

    def _members(self, carrier: ProviderKey, group: str) -> frozenset[str] | None:
        now = time.monotonic()
        with self._lock:
            cached = self._groups.get((carrier, group))
        if cached is not None and now - cached[0] < self.group_ttl:
            return cached[1]
        chat = self._chat(carrier)
        if chat is None:
            return None
        try:
            members = chat.group_members(group)
        except Exception as exc:  # never allow on a failed lookup; nor cache the failure
            log.warning("click.group_lookup_failed", group=group, error=str(exc))
            return None
        with self._lock:
            self._groups[(carrier, group)] = (now, members)
        return members


@dataclass(frozen=True, slots=True)
class _Click:
    """The few fields of a block_actions payload a decision needs."""

    user: str
    verb: Verb
    value: str
    channel: str
    team: str
    action_ts: str
    message_ts: str

    @classmethod
    def read(cls, payload: Mapping[str, Any]) -> _Click | None:
        if payload.get("type") != "block_actions":
            return None
        actions = payload.get("actions")
        action = next(
            (
                a
                for a in (actions if isinstance(actions, list) else [])
                if isinstance(a, dict) and a.get("action_id") in VERBS
            ),
            None,
        )
        user = _text(payload, "user", "id")
        if action is None or not user:
            return None
        return cls(
            user=user,
            verb=VERBS[action["action_id"]],
            value=str(action.get("value") or "")[:4096],
            channel=_text(payload, "container", "channel_id") or _text(payload, "channel", "id"),
            team=_text(payload, "team", "id"),
            action_ts=str(action.get("action_ts") or ""),
            message_ts=_text(payload, "container", "message_ts"),
        )

    def command_id(self) -> str:
        """The same for the same click delivered twice (a replay, a Slack retry), so the
        engine, which carries out a command id once, decides nothing new for it."""
        seed = "\0".join(
            (self.team, self.user, self.channel, self.message_ts, self.action_ts, self.verb)
        )
        if not self.action_ts:
            # Without Slack's action_ts two clicks would look alike; tell them apart.
            seed += f"\0{time.time_ns()}"
        return "slack-" + hashlib.sha256(seed.encode()).hexdigest()[:24]


def _not_now(value: ClickValue, status: CanaryStatus) -> str:
    """Why this click's gate cannot be decided now; "" when it waits for this very decision."""
    if value.revision != status.revision:
        now = status.revision or "none yet"
        return (
            f"this message is about an earlier revision ({value.revision}); the rollout now "
            f"judges {now}"
        )
    if status.phase in TERMINAL_PHASES:
        return f"the rollout has ended ({status.phase})"
    if status.phase not in DECIDABLE:
        return f"no approval waits (the rollout is {status.phase or 'not started'})"
    record = record_of(status, value.gate)
    if record is None:
        return f"the rollout does not wait at the {value.gate} gate"
    if record.decision is not None:
        return _decided(record)
    if record is not status.approvals[-1]:
        return f"the rollout no longer waits at the {value.gate} gate"
    return ""


def _decided(record: ApprovalRecord) -> str:
    who = f"<@{record.by}>" if record.via == "slack" else (record.by or "someone")
    how = "" if record.via == "slack" else f" ({record.via or 'cli'})"
    when = record.decided_at.strftime(" at %Y-%m-%d %H:%M:%S UTC") if record.decided_at else ""
    if record.decision is Decision.TIMED_OUT:
        return f"the {record.gate} gate already timed out{when}"
    return f"already {record.decision} by {who}{how}{when}"


def _value(text: str) -> ClickValue | None:
    try:
        return ClickValue.model_validate_json(text)
    except (ValidationError, ValueError):
        return None


def _canary_key(text: str) -> CanaryKey | None:
    namespace, sep, name = text.partition("/")
    if not sep or not namespace or not name or "/" in name:
        return None
    return CanaryKey(namespace, name)


def _text(payload: Mapping[str, Any], outer: str, inner: str) -> str:
    part = payload.get(outer)
    value = part.get(inner) if isinstance(part, dict) else None
    return value if isinstance(value, str) else ""
