"""What the CLI asks of wherever the Canaries live: a cluster, or a `canary demo --state-dir`.

One Protocol, two implementations, so every command (status, wait, explain, promote, abort,
retry, pause, resume, release, chaos) is written once and a pipeline step's text works against
both. The CLI never writes a status: the controller is its only writer. A command writes only a
JSON merge patch (RFC 7386) of `metadata.annotations` and `spec`, so another writer's fields
survive, and `null` removes a key.

Errors a person can act on are translated here: a 403 becomes `Forbidden` (who may not do
what, and which role to ask for), a 404 on a write `NotFound`; an unreachable server stays
`Unavailable`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from kubernetes import config as k8s_config
from kubernetes.config.config_exception import ConfigException

from canary.adapters.kube.rest import (
    CANARY,
    DEPLOYMENT,
    EVENT,
    MERGE_PATCH,
    ApiError,
    Rest,
    connect,
)
from canary.adapters.kube.store import parse_canary
from canary.adapters.kube.workloads import deployment_ready, template_revision
from canary.api.spec import TargetRef
from canary.engine.observation import TargetState
from canary.errors import CanaryError, InvalidSpec
from canary.localmesh.store import LocalStore
from canary.ports import CanaryKey, StoredCanary

Body = dict[str, Any]

VIEWER_ROLE = "canary-viewer"
OPERATOR_ROLE = "canary-operator"


class Forbidden(CanaryError):
    """The API server refused the request (403): who may not do what, and whom to ask."""

    def __init__(self, user: str, verb: str, resource: str, namespace: str) -> None:
        role = OPERATOR_ROLE if verb == "patch" else VIEWER_ROLE
        where = f"in {namespace}" if namespace else "in any namespace"
        super().__init__(
            f"forbidden: {user} may not {verb} {resource} {where} (ask for the {role} role)"
        )
        self.user = user
        self.verb = verb


class NotFound(CanaryError):
    """The object to write is gone."""


@dataclass(frozen=True, slots=True)
class Event:
    """One Event about a Canary, however it was stored."""

    time: datetime | None
    type: str
    reason: str
    message: str
    count: int = 1


class Client(Protocol):
    """Read Canaries, their Events and Deployments; merge-patch a Canary's annotations and spec."""

    # Where the Canaries live, for messages ("the cluster", "state dir /tmp/x").
    where: str
    # The namespace a command means without --namespace.
    default_namespace: str

    def canaries(self, namespace: str | None) -> list[Body]:
        """Every Canary of the namespace (None: of all), each with its status, by name."""
        ...

    def get(self, key: CanaryKey) -> Body | None:
        """The Canary as stored, with its status; None when there is none."""
        ...

    def stored(self, key: CanaryKey) -> StoredCanary | None: ...

    def events(self, key: CanaryKey) -> list[Event]:
        """The Events about this Canary, oldest first."""
        ...

    def patch(self, key: CanaryKey, patch: Body) -> Body:
        """A JSON merge patch of the Canary (metadata.annotations and spec only); the object as
        written. NotFound when it is gone, Forbidden when the caller may not."""
        ...

    def deployment(self, namespace: str, name: str) -> TargetState | None:
        """The Deployment's readiness and pod template revision; None when there is none."""
        ...


def stored_of(body: Body) -> StoredCanary:
    """A Canary body (with status) as the controller would read it."""
    meta = body.get("metadata") or {}
    key = CanaryKey(str(meta.get("namespace") or "default"), str(meta.get("name") or ""))
    return parse_canary(key, body)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: what `patch` makes of `target` (neither is changed)."""
    if not isinstance(patch, Mapping):
        return patch
    merged = dict(target) if isinstance(target, Mapping) else {}
    for name, value in patch.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = merge_patch(merged.get(name), value)
    return merged


def merge_diff(old: Any, new: Any) -> Any:
    """The merge patch that turns `old` into `new`: maps key by key, a key `new` lacks as null.

    A plain `new` would merge into `old` and keep its keys (a label the new version dropped).
    """
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        patch = {name: merge_diff(old.get(name), value) for name, value in new.items()}
        patch.update({name: None for name in old if name not in new})
        return patch
    return new


# The cluster


_USER = re.compile(r'User "([^"]+)"')


class KubeClient:
    def __init__(self, rest: Rest, *, default_namespace: str = "default", where: str = "") -> None:
        self.rest = rest
        self.default_namespace = default_namespace
        self.where = where or "the cluster"

    @classmethod
    def connect(cls, kubeconfig: str | None, context: str | None) -> KubeClient:
        """From a kubeconfig (or in-cluster credentials); CanaryError says what is missing."""
        try:
            api = connect(kubeconfig, context)
        except (ConfigException, OSError) as exc:
            raise CanaryError(
                f"no cluster to talk to: {exc} (give --kubeconfig or $KUBECONFIG and --context, "
                "or --state-dir for a `canary demo --state-dir`)"
            ) from exc
        namespace, name = _context_namespace(kubeconfig, context)
        where = f"context {name}" if name else "the cluster"
        return cls(Rest(api), default_namespace=namespace, where=where)

    def canaries(self, namespace: str | None) -> list[Body]:
        listed = self._read("list", "canaries", namespace or "", CANARY.path(namespace))
        items = [item for item in listed.get("items") or [] if isinstance(item, dict)]
        return sorted(items, key=_sort_key)

    def get(self, key: CanaryKey) -> Body | None:
        path = CANARY.path(key.namespace, key.name)
        try:
            return self._read("get", "canaries", key.namespace, path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def stored(self, key: CanaryKey) -> StoredCanary | None:
        body = self.get(key)
        return None if body is None else parse_canary(key, body)

    def events(self, key: CanaryKey) -> list[Event]:
        selector = f"involvedObject.kind={CANARY.kind},involvedObject.name={key.name}"
        listed = self._read(
            "list", "events", key.namespace, EVENT.path(key.namespace), fieldSelector=selector
        )
        found = [_kube_event(item) for item in listed.get("items") or [] if isinstance(item, dict)]
        return sorted(found, key=_event_order)

    def patch(self, key: CanaryKey, patch: Body) -> Body:
        try:
            return self.rest.patch(
                CANARY.path(key.namespace, key.name), patch, content_type=MERGE_PATCH
            )
        except ApiError as exc:
            if exc.status == 404:
                raise NotFound(f"Canary {key} not found") from exc
            raise _translated(exc, "patch", "canaries", key.namespace) from exc

    def deployment(self, namespace: str, name: str) -> TargetState | None:
        path = DEPLOYMENT.path(namespace, name)
        try:
            body = self._read("get", "deployments", namespace, path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return TargetState(ready=deployment_ready(body), template_revision=template_revision(body))

    def _read(
        self, verb: str, resource: str, namespace: str, path: str, **query: str | int
    ) -> Body:
        try:
            return self.rest.get(path, **query)
        except ApiError as exc:
            if exc.status == 404:
                raise
            raise _translated(exc, verb, resource, namespace) from exc


def _translated(exc: ApiError, verb: str, resource: str, namespace: str) -> CanaryError:
    if exc.status == 403:
        found = _USER.search(exc.message)
        return Forbidden(found.group(1) if found else "you", verb, resource, namespace)
    if exc.status == 401:
        return CanaryError(
            "unauthorized: the API server did not accept these credentials "
            "(check --kubeconfig and --context)"
        )
    return exc


def _context_namespace(kubeconfig: str | None, context: str | None) -> tuple[str, str]:
    """The namespace the kubeconfig's context names (kubectl's default), and the context."""
    if kubeconfig is None and "KUBERNETES_SERVICE_HOST" in os.environ:
        account = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        try:
            return account.read_text().strip() or "default", ""
        except OSError:
            return "default", ""
    try:
        contexts, active = k8s_config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    except (ConfigException, OSError):
        return "default", context or ""
    chosen = next((c for c in contexts if c.get("name") == context), None) if context else active
    chosen = chosen or {}
    namespace = str((chosen.get("context") or {}).get("namespace") or "default")
    return namespace, str(chosen.get("name") or "")


def _kube_event(item: Body) -> Event:
    stamp = item.get("lastTimestamp") or item.get("eventTime") or item.get("firstTimestamp")
    return Event(
        time=_parse_time(stamp),
        type=str(item.get("type") or ""),
        reason=str(item.get("reason") or ""),
        message=str(item.get("message") or ""),
        count=int(item.get("count") or 1),
    )


# A state directory


class LocalClient:
    """A `canary demo --state-dir` (or any LocalStore): the same objects as files.

    LocalStore.put replaces an object, so a merge patch is read, merged, put. The controller of
    a demo never writes the Canary object (its status is a file apart), so the only writers
    that could race here are other commands; put bumps generation only when the spec changed,
    as the API server does.
    """

    def __init__(self, store: LocalStore) -> None:
        self.store = store
        self.default_namespace = "default"
        self.where = f"state dir {store.root}"

    def canaries(self, namespace: str | None) -> list[Body]:
        bodies = self.store.objects("Canary", namespace)
        return sorted((self._with_status(body) for body in bodies), key=_sort_key)

    def get(self, key: CanaryKey) -> Body | None:
        body = self.store.get("Canary", key.namespace, key.name)
        return None if body is None else self._with_status(body)

    def stored(self, key: CanaryKey) -> StoredCanary | None:
        return self.store.canary(key)

    def events(self, key: CanaryKey) -> list[Event]:
        found = [
            Event(
                time=_parse_time(event.get("time")),
                type=str(event.get("type") or ""),
                reason=str(event.get("reason") or ""),
                message=str(event.get("message") or ""),
            )
            for event in self.store.events()
            if event.get("object") == str(key)
        ]
        return sorted(found, key=_event_order)

    def patch(self, key: CanaryKey, patch: Body) -> Body:
        body = self.store.get("Canary", key.namespace, key.name)
        if body is None:
            raise NotFound(f"Canary {key} not found in {self.store.root}")
        return self.store.put(merge_patch(body, patch))

    def deployment(self, namespace: str, name: str) -> TargetState | None:
        try:
            return self.store.target(namespace, TargetRef(name=name))
        except InvalidSpec:
            return None

    def _with_status(self, body: Body) -> Body:
        meta = body.get("metadata") or {}
        key = CanaryKey(str(meta.get("namespace") or "default"), str(meta.get("name") or ""))
        status = self.store.status(key)
        # A Canary the controller never wrote has no status, as in a cluster.
        return body if status.phase is None else {**body, "status": status.to_wire()}


def _sort_key(body: Body) -> tuple[str, str]:
    meta = body.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _event_order(event: Event) -> datetime:
    return event.time or datetime.min.replace(tzinfo=UTC)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
