"""`canary run`: the controller in a cluster, wired to the Kubernetes adapters.

Every replica keeps its caches warm and serves /healthz, /readyz and /metrics; only the holder
of the Lease runs the scheduler, so two replicas never both move traffic. A replica that loses
the Lease stops acting and exits, as client-go's controllers do: a clean restart is simpler to
reason about than a scheduler that resumes with state from before someone else acted.

A leader that stops acting while the Lease is still its own (it is stopping, or its renewals
failed and it steps down a renewal period before anyone may take over) first takes every fault
off: no tick of its will hold or end them, and with no successor (the controller scaled to
zero, uninstalled) a fault would stay until some controller started. A successor injects a
still-running experiment's fault again at its first tick (faults are level-triggered), so the
fault is off for the handover only (the verdict's window includes those seconds without
it). A replica that finds the Lease already taken by another writes nothing: the fault is
the new leader's to hold.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
from dataclasses import dataclass
from datetime import datetime
from functools import partial

import structlog

from canary.adapters import chat_webhooks
from canary.adapters.envoy_admin import EnvoyAdmin, EnvoyPropagation
from canary.adapters.jaeger import JaegerSources
from canary.adapters.kube.cache import ClusterCache
from canary.adapters.kube.events import KubeEvents
from canary.adapters.kube.lease import LeaderElector
from canary.adapters.kube.rest import Rest, connect
from canary.adapters.kube.router import KubeRouter
from canary.adapters.kube.secrets import KubeSecrets
from canary.adapters.kube.sidecars import KubePods
from canary.adapters.kube.store import KubeStore
from canary.adapters.kube.tls import KubeTlsPolicies
from canary.adapters.kube.workloads import KubeWorkloads
from canary.adapters.prometheus import Hints, PrometheusMetrics, PrometheusProviders
from canary.adapters.slack import web as slack_web
from canary.adapters.slack.signature import SlackSignatures
from canary.adapters.slack.socket_mode import SocketModeLink
from canary.adapters.webhooks import HttpWebhooks
from canary.api import builtins
from canary.api.chat_provider import ChatProvider, IncomingWebhook, JsonWebhook, SlackBot
from canary.api.metric_template import PrometheusProvider
from canary.api.status import CanaryStatus, ChaosPhase, Verdict
from canary.api.traces import JaegerProvider
from canary.controller.chat.outbox import Outbox
from canary.controller.chat.publisher import ChatFactory, ChatPublisher
from canary.controller.clicks import Clicks
from canary.controller.clock import SystemClock
from canary.controller.interactions import PATH as INTERACTIONS_PATH
from canary.controller.interactions import Interactions
from canary.controller.notify import FanOut, LogNotifier
from canary.controller.preflight import Preflight
from canary.controller.reconcile import Reconciler
from canary.controller.scheduler import Controller
from canary.controller.serve import HealthServer
from canary.controller.socket_hub import SocketHub
from canary.controller.sources import Sources, promql
from canary.controller.telemetry import Telemetry
from canary.controller.traces import spans_of
from canary.engine.actions import Decision
from canary.errors import InvalidSpec
from canary.ports import CanaryKey, Chat

log = structlog.get_logger("canary.run")

SYNC_TIMEOUT = 60.0

# The composition root of chat: one adapter per ChatProvider backend sub-model.
CHAT_FACTORIES: dict[type, ChatFactory] = {
    SlackBot: slack_web.chat_for,
    IncomingWebhook: chat_webhooks.incoming_chat_for,
    JsonWebhook: chat_webhooks.json_chat_for,
}


@dataclass(frozen=True, slots=True)
class RunOptions:
    prometheus_url: str
    kubeconfig: str | None = None
    context: str | None = None
    query_set: builtins.QuerySet = builtins.QuerySet.ISTIO
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 8080
    leader_election: bool = True
    lease_namespace: str = "canary-system"
    lease_name: str = "canary-controller"
    lease_seconds: float = 15.0
    identity: str = ""
    # Envoy admin URLs whose config_dump must show a split before its step's clock starts.
    envoy_admin: tuple[str, ...] = ()
    # Preflight before each rollout's first step; off, the first step goes without it.
    preflight: bool = True
    resync: float = 1.0
    # The controller's own Prometheus behind TLS or a token, as a managed one is.
    prometheus_ca_file: str | None = None
    prometheus_bearer_token_file: str | None = None
    prometheus_insecure_skip_verify: bool = False


# A failure of the controller's own Prometheus names the flag to change.
BUILTIN_HINTS = Hints(ca="--prometheus-ca-file", credentials="--prometheus-bearer-token-file")


def builtin_prometheus(options: RunOptions) -> PrometheusMetrics:
    """The controller's own Prometheus: built-in checks and chaos verdicts.

    TLS is verified against the system's trust store, or only the CAs of `prometheus_ca_file`.
    The bearer token file is read now (OSError or ValueError when it is missing or empty) and
    again whenever it changes, so a projected ServiceAccount token keeps working as the kubelet
    rotates it.
    """
    verify: bool | str = not options.prometheus_insecure_skip_verify
    if verify and options.prometheus_ca_file:
        verify = options.prometheus_ca_file
    if not verify:
        log.warning("run.prometheus_tls_unverified", url=options.prometheus_url)
    return PrometheusMetrics(
        options.prometheus_url,
        verify=verify,
        bearer_token_file=options.prometheus_bearer_token_file,
        hints=BUILTIN_HINTS,
    )


def prometheus_problems(options: RunOptions) -> list[str]:
    """What is wrong with the Prometheus flags, in their words; checked before starting."""
    found: list[str] = []
    ca_file = options.prometheus_ca_file
    if ca_file and options.prometheus_insecure_skip_verify:
        found.append(
            "--prometheus-ca-file and --prometheus-insecure-skip-verify together: the CA would "
            "never be used; keep one of them"
        )
    if ca_file and not options.prometheus_url.startswith("https://"):
        found.append(
            f"--prometheus-ca-file is set but --prometheus-url ({options.prometheus_url}) is "
            "not https://, so no certificate is ever checked"
        )
    if ca_file:
        try:
            ssl.create_default_context(cafile=ca_file)
        except (OSError, ValueError) as exc:
            found.append(f"--prometheus-ca-file {ca_file}: not a readable PEM CA bundle ({exc})")
    token_file = options.prometheus_bearer_token_file
    if token_file:
        try:
            with open(token_file, encoding="utf-8") as source:
                empty = not source.read().strip()
        except (OSError, ValueError) as exc:
            why = getattr(exc, "strerror", None) or str(exc)
            found.append(f"--prometheus-bearer-token-file {token_file}: cannot read it ({why})")
        else:
            if empty:
                found.append(f"--prometheus-bearer-token-file {token_file}: the file is empty")
    return found


def _slack_chat(provider: ChatProvider, *, secrets: KubeSecrets) -> Chat:
    if provider.spec.slack is None:
        raise InvalidSpec(f"ChatProvider {provider.metadata.name} is not a Slack bot")
    return slack_web.chat_for(provider.spec.slack, provider.metadata.namespace or "", secrets)


class ClusterController:
    def __init__(self, options: RunOptions) -> None:
        self.options = options
        self.identity = options.identity or os.environ.get("POD_NAME") or _default_identity()
        self.rest = Rest(connect(options.kubeconfig, options.context))
        self.cache = ClusterCache(self.rest)
        self.telemetry = Telemetry()
        self.events = KubeEvents(self.rest, self.cache, instance=self.identity)
        propagation = EnvoyPropagation(options.envoy_admin) if options.envoy_admin else None
        self.store = KubeStore(self.rest, self.cache)
        secrets = KubeSecrets(self.rest)
        # The composition root of evidence: one adapter per provider sub-model.
        sources = Sources(
            builtin=builtin_prometheus(options),
            webhooks=HttpWebhooks(),
            secrets=secrets,
            metrics={
                PrometheusProvider: promql(PrometheusProviders(secrets)),
                JaegerProvider: spans_of(JaegerSources()),
            },
        )
        # Chat messages leave from the outbox's own thread, started while this replica leads.
        self.outbox = Outbox(count=self.telemetry.notification)
        self.chat = ChatPublisher(
            store=self.store, secrets=secrets, outbox=self.outbox, factories=CHAT_FACTORIES
        )
        self.reconciler = Reconciler(
            store=self.store,
            workloads=KubeWorkloads(self.rest, self.cache),
            router=KubeRouter(self.rest, self.cache, propagation=propagation),
            notifier=FanOut([LogNotifier(), self.events]),
            clock=SystemClock(),
            sources=sources,
            query_set=options.query_set,
            on_tick=self._ticked,
            chat=self.chat,
            preflight=Preflight(
                pods=KubePods(self.rest, self.cache),
                tls=KubeTlsPolicies(self.cache),
                proxies=EnvoyAdmin(options.envoy_admin) if options.envoy_admin else None,
            )
            if options.preflight
            else None,
        )
        self.controller = Controller(self.reconciler, resync=options.resync)
        self.stopping = threading.Event()
        # Set when the Lease was lost rather than the process asked to stop: `canary run` then
        # exits non-zero, and the pod's restart starts a clean campaign.
        self.lost = False
        self._acting = threading.Event()
        # Approval clicks: Slack's signed Request URL on this server (every replica), Socket
        # Mode from the leader. The provider's Slack Chat answers the person who clicked and
        # reads user groups' members.
        clicks = Clicks(store=self.store, chats=partial(_slack_chat, secrets=secrets))
        interactions = Interactions(
            store=self.store, secrets=secrets, clicks=clicks, verify=SlackSignatures()
        )
        self.sockets = SocketHub(
            store=self.store, secrets=secrets, clicks=clicks, links=SocketModeLink
        )
        self.server = HealthServer(
            host=options.metrics_host,
            port=options.metrics_port,
            registry=self.telemetry.registry,
            alive=self._alive,
            missing=self.cache.unsynced,
            posts={INTERACTIONS_PATH: interactions},
        )
        self._elector_thread: threading.Thread | None = None
        self._elector: LeaderElector | None = None
        self._checks_seen: dict[CanaryKey, datetime] = {}
        self._chaos_seen: dict[CanaryKey, datetime] = {}

    def start(self) -> None:
        self.server.start()
        self.cache.start()
        log.info("run.started", identity=self.identity, metrics_port=self.server.port)
        if not self.cache.wait_synced(SYNC_TIMEOUT):
            log.warning("run.cache_slow", unsynced=self.cache.unsynced())
        if not self.options.leader_election:
            self._lead()
            return
        elector = LeaderElector(
            self.rest.api,
            namespace=self.options.lease_namespace,
            name=self.options.lease_name,
            identity=self.identity,
            lease_seconds=self.options.lease_seconds,
            renew_seconds=self.options.lease_seconds / 3,
            retry_seconds=min(2.0, self.options.lease_seconds / 3),
        )
        self._elector = elector
        self._elector_thread = threading.Thread(
            target=elector.run,
            args=(self.stopping, self._lead, self._lost),
            name="leader-election",
            daemon=True,
        )
        self._elector_thread.start()

    def wait(self) -> None:
        self.stopping.wait()

    def stop(self) -> None:
        self.stopping.set()
        if self._elector_thread is not None:
            # The elector releases the Lease on its way out, so a standby takes over at once.
            self._elector_thread.join(10.0)
        self._stop_acting()
        self.cache.stop()
        self.server.stop()
        log.info("run.stopped")

    def _lead(self) -> None:
        log.info("run.leading", identity=self.identity)
        self.telemetry.set_leader(True)
        self._acting.set()
        self.outbox.start()
        self.controller.start()
        self.sockets.start()

    def _lost(self) -> None:
        self._stop_acting()
        if not self.stopping.is_set():
            log.warning("run.lease_lost", identity=self.identity)
            self.lost = True
            self.stopping.set()

    def _stop_acting(self) -> None:
        if self._acting.is_set():
            self._acting.clear()
            self.sockets.stop()
            taken = self._elector is not None and self._elector.taken
            self.controller.stop(clear_faults=not taken)
            self.outbox.stop()
        self.telemetry.set_leader(False)

    def _alive(self) -> bool:
        """Live while stopping is not under way, the election still runs, and a leader's
        scheduler still runs: a wedged replica is restarted by its liveness probe."""
        if self.stopping.is_set():
            return False
        if self._elector_thread is not None and not self._elector_thread.is_alive():
            return False
        return not self._acting.is_set() or bool(self.controller.scheduler.running)

    def _ticked(
        self, key: CanaryKey, decision: Decision | None, seconds: float, outcome: str
    ) -> None:
        requests = self.rest.take_thread_calls()
        # One line per tick with its cost, for benchmarks/bench_kube_scale.py and for anyone
        # asking why the API server is busy.
        log.debug("tick.cost", seconds=round(seconds, 5), requests=requests, outcome=outcome)
        if decision is None:
            if outcome == "ok":
                # The Canary is gone: its series and its Event series go with it.
                self.telemetry.forget(key.namespace, key.name)
                self.events.forget(key)
                self.chat.forget(key)
                self._checks_seen.pop(key, None)
                self._chaos_seen.pop(key, None)
            else:
                self.telemetry.tick_failed(outcome, seconds)
            return
        status = decision.status
        self.telemetry.tick_done(
            key.namespace,
            key.name,
            phase=str(status.phase or ""),
            weight=status.canary_weight,
            failed_checks=status.failed_checks,
            checks=self._new_checks(key, status),
            seconds=seconds,
        )
        self.telemetry.chaos(
            key.namespace,
            key.name,
            fault_injected=any(
                entry.phase is ChaosPhase.RUNNING and entry.ended_at is None
                for entry in status.chaos
            ),
            judged=self._new_verdicts(key, status),
        )

    def _new_checks(self, key: CanaryKey, status: CanaryStatus) -> list[tuple[str, str]]:
        """The checks judged by this tick: status.checks keeps the last of each, so only those
        measured after the last one seen are new, and a counter counts each once."""
        seen = self._checks_seen.get(key)
        new = [check for check in status.checks if seen is None or check.at > seen]
        if status.checks:
            self._checks_seen[key] = max(check.at for check in status.checks)
        return [(check.name, _RESULTS[check.verdict]) for check in new]

    def _new_verdicts(self, key: CanaryKey, status: CanaryStatus) -> list[str]:
        """The experiments judged since the last tick, once each (as `_new_checks` does)."""
        seen = self._chaos_seen.get(key)
        judged = [entry for entry in status.chaos if entry.judged_at is not None]
        new = [entry for entry in judged if seen is None or (entry.judged_at or seen) > seen]
        if judged:
            self._chaos_seen[key] = max(entry.judged_at for entry in judged if entry.judged_at)
        return ["passed" if entry.phase is ChaosPhase.PASSED else "failed" for entry in new]


_RESULTS = {Verdict.PASS: "passed", Verdict.FAIL: "failed", Verdict.INCONCLUSIVE: "no_data"}


def _default_identity() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"
