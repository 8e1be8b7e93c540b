"""The demo's chat, wired as `canary run` wires it (cluster/run.py): the ChatPublisher and its
Outbox behind the Reconciler, and the two ways a click comes in, the signed `POST
/slack/interactions` (on a HealthServer of its own, 127.0.0.1, a free port) and Socket Mode.

Credentials are read through `EnvSecrets` (the environment, for the demo's ChatProvider) and
the LocalStore for any other ref. Everything starts and stops with the controller; on the way
out the outbox gets a few seconds to send what the rollout's last ticks queued, so the message
in Slack ends as the rollout did.
"""

from __future__ import annotations

import threading
from collections import Counter
from functools import partial

import structlog
from prometheus_client import CollectorRegistry

from canary.adapters import chat_webhooks
from canary.adapters.slack import web as slack_web
from canary.adapters.slack.signature import SlackSignatures
from canary.adapters.slack.socket_mode import SocketModeLink
from canary.api.chat_provider import ChatProvider, IncomingWebhook, JsonWebhook, SlackBot
from canary.controller.chat.outbox import Outbox
from canary.controller.chat.publisher import ChatFactory, ChatPublisher
from canary.controller.clicks import Clicks
from canary.controller.interactions import PATH as INTERACTIONS_PATH
from canary.controller.interactions import Interactions
from canary.controller.serve import HealthServer
from canary.controller.socket_hub import SocketHub
from canary.demo.envsecrets import EnvSecrets
from canary.demo.slack import CREDENTIALS, SlackSettings
from canary.errors import InvalidSpec
from canary.localmesh.store import LocalStore
from canary.ports import Chat, Secrets

log = structlog.get_logger("canary.demo.chat")

# One adapter per ChatProvider backend sub-model, as in cluster/run.py.
CHAT_FACTORIES: dict[type, ChatFactory] = {
    SlackBot: slack_web.chat_for,
    IncomingWebhook: chat_webhooks.incoming_chat_for,
    JsonWebhook: chat_webhooks.json_chat_for,
}
# How long the outbox may go on sending once the rollout ended.
FLUSH_SECONDS = 5.0
# The Socket Mode hub looks for apps to connect this often; the demo has one, there from the start.
SOCKET_SYNC_SECONDS = 5.0


class DemoChat:
    """The publisher for `local_controller(chat=...)`, and the click endpoints for `settings`."""

    def __init__(self, store: LocalStore, settings: SlackSettings) -> None:
        self.settings = settings
        self.secrets = EnvSecrets(store, keys=CREDENTIALS)
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self.outbox = Outbox(count=self._count)
        self.publisher = ChatPublisher(
            store=store, secrets=self.secrets, outbox=self.outbox, factories=CHAT_FACTORIES
        )
        clicks = Clicks(store=store, chats=partial(_slack_chat, secrets=self.secrets))
        self.server: HealthServer | None = None
        if settings.serves_interactions:
            interactions = Interactions(
                store=store, secrets=self.secrets, clicks=clicks, verify=SlackSignatures()
            )
            # Bound now, so the URL can be printed before anything starts.
            self.server = HealthServer(
                registry=CollectorRegistry(),
                alive=lambda: True,
                host="127.0.0.1",
                port=0,
                posts={INTERACTIONS_PATH: interactions},
            )
        self.hub: SocketHub | None = None
        if settings.opens_socket:
            self.hub = SocketHub(
                store=store,
                secrets=self.secrets,
                clicks=clicks,
                links=SocketModeLink,
                interval=SOCKET_SYNC_SECONDS,
            )

    @property
    def interactions_url(self) -> str:
        if self.server is None:
            return ""
        return f"http://{self.server.host}:{self.server.port}{INTERACTIONS_PATH}"

    def start(self) -> None:
        self.outbox.start()
        if self.server is not None:
            self.server.start()
        if self.hub is not None:
            self.hub.start()

    def stop(self) -> None:
        """After the controller stopped: no click decides any more, and the last messages go."""
        if self.hub is not None:
            self.hub.stop()
        if self.server is not None:
            self.server.stop()
        if not self.outbox.wait_idle(FLUSH_SECONDS):
            log.warning("demo.chat_unsent", messages=self.outbox.pending())
        self.outbox.stop()

    def summary(self) -> str:
        """One line on what became of the messages, for the demo's summary."""
        with self._lock:
            counts = dict(self._counts)
        told = ", ".join(f"{counts.get(result, 0)} {result}" for result in _RESULTS)
        return f"Slack ({self.settings.channel}): messages {told}"

    def _count(self, provider: str, result: str) -> None:
        with self._lock:
            self._counts[result] += 1


_RESULTS = ("sent", "retried", "dropped")


def _slack_chat(provider: ChatProvider, *, secrets: Secrets) -> Chat:
    """The Chat a click is answered through (an ephemeral line to the person who clicked)."""
    if provider.spec.slack is None:
        raise InvalidSpec(f"ChatProvider {provider.metadata.name} is not a Slack bot")
    return slack_web.chat_for(provider.spec.slack, provider.metadata.namespace or "", secrets)
