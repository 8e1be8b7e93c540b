"""The local Store: Kubernetes-shaped objects kept as JSON files in a state directory.

It plays the API server's part for running without a cluster: objects are seeded from YAML,
each has a generation (bumped when its spec changes) and a resourceVersion (bumped on every
write), a Canary's status is written on its own (like the status subresource), and Events go to
an append-only log. Every write is a temp file renamed into place, so a second `canary` process
reading the directory never sees half a file, and a restarted one resumes from what is there.

Finalizers and uids behave as the API server's do, since that is cheap: every object gets a
uid when first stored, deleting an object that has finalizers only sets its deletionTimestamp
(and bumps its generation), and removing the last finalizer of a deleted object removes it. So
a demo's Canary deleted mid-rollout is reverted and its faults cleared by the same ticks as in a
cluster. A whole replacement (`put`) of a body that names no finalizers keeps the stored ones
(a seed from YAML knows nothing of them), and never drops a deletionTimestamp.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

from pydantic import ValidationError

from canary.api import chaos, commands
from canary.api import problems as api_problems
from canary.api.chat_provider import ChatProvider
from canary.api.commands import COMMAND_ANNOTATION, Command
from canary.api.metric_template import MetricTemplate
from canary.api.mtls_settings import ROOT_NAMESPACE
from canary.api.resources import Canary
from canary.api.secrets import SecretKeyRef
from canary.api.spec import CanarySpec, TargetRef
from canary.api.status import CanaryStatus, Condition
from canary.engine import revision
from canary.engine.actions import Notify
from canary.engine.observation import TargetState
from canary.errors import InvalidSpec
from canary.ports import FINALIZER, CanaryKey, StoredCanary, TlsObjects

Body = dict[str, Any]


class LocalStore:
    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir
        self.root.mkdir(parents=True, exist_ok=True)
        # One writer at a time inside this process; across processes, rename keeps reads whole.
        self._lock = threading.Lock()
        self._parsed: dict[CanaryKey, tuple[str, CanarySpec | None, tuple[str, ...]]] = {}

    # Objects

    def put(self, body: Body) -> Body:
        """Create or replace an object; returns it as stored, with generation and version."""
        kind, meta = body["kind"], body.get("metadata") or {}
        namespace, name = meta.get("namespace") or "default", meta["name"]
        with self._lock:
            current = self.get(kind, namespace, name)
            stored: Body = json.loads(json.dumps(body))
            stored.pop("status", None)
            stored_meta = stored.setdefault("metadata", {})
            stored_meta["namespace"] = namespace
            previous = (current or {}).get("metadata", {})
            same_spec = current is not None and current.get("spec") == stored.get("spec")
            generation = int(previous.get("generation", 0))
            stored_meta["generation"] = generation if same_spec else generation + 1
            stored_meta["resourceVersion"] = str(int(previous.get("resourceVersion", 0)) + 1)
            stored_meta.setdefault(
                "creationTimestamp",
                previous.get("creationTimestamp") or datetime.now(UTC).isoformat(),
            )
            stored_meta["uid"] = previous.get("uid") or stored_meta.get("uid") or str(uuid4())
            if "finalizers" not in stored_meta and previous.get("finalizers"):
                stored_meta["finalizers"] = previous["finalizers"]
            if previous.get("deletionTimestamp"):
                stored_meta["deletionTimestamp"] = previous["deletionTimestamp"]
            _write_json(self._object_path(kind, namespace, name), stored)
            return stored

    def delete(self, kind: str, namespace: str, name: str) -> bool:
        """Removes an object, or marks it deleted while finalizers hold it; False when there
        was none."""
        with self._lock:
            path = self._object_path(kind, namespace, name)
            current = _read_json(path)
            meta = (current or {}).get("metadata") or {}
            if current is not None and meta.get("finalizers"):
                if not meta.get("deletionTimestamp"):
                    meta["deletionTimestamp"] = datetime.now(UTC).isoformat()
                    meta["generation"] = int(meta.get("generation", 0)) + 1
                    meta["resourceVersion"] = str(int(meta.get("resourceVersion", 0)) + 1)
                    _write_json(path, current)
                return True
            try:
                path.unlink()
            except FileNotFoundError:
                return False
            return True

    def add_finalizer(self, key: CanaryKey) -> None:
        self._finalizers(key, add=True)

    def remove_finalizer(self, key: CanaryKey) -> None:
        self._finalizers(key, add=False)

    def _finalizers(self, key: CanaryKey, *, add: bool) -> None:
        with self._lock:
            path = self._object_path("Canary", key.namespace, key.name)
            body = _read_json(path)
            if body is None:
                return
            meta = body.setdefault("metadata", {})
            current = [str(name) for name in meta.get("finalizers") or []]
            if (FINALIZER in current) == add or (add and meta.get("deletionTimestamp")):
                return
            left = [*current, FINALIZER] if add else [n for n in current if n != FINALIZER]
            if not left and meta.get("deletionTimestamp"):
                path.unlink(missing_ok=True)
                return
            meta["finalizers"] = left
            meta["resourceVersion"] = str(int(meta.get("resourceVersion", 0)) + 1)
            _write_json(path, body)

    def get(self, kind: str, namespace: str, name: str) -> Body | None:
        return _read_json(self._object_path(kind, namespace, name))

    def objects(self, kind: str, namespace: str | None = None) -> list[Body]:
        base = self.root / "objects" / kind
        pattern = f"{namespace}/*.json" if namespace else "*/*.json"
        found = (_read_json(path) for path in sorted(base.glob(pattern)))
        return [body for body in found if body is not None]

    # The Store Protocol

    def canaries(self) -> list[StoredCanary]:
        return [self._stored(body) for body in self.objects("Canary")]

    def canary(self, key: CanaryKey) -> StoredCanary | None:
        body = self.get("Canary", key.namespace, key.name)
        return None if body is None else self._stored(body)

    def status(self, key: CanaryKey) -> CanaryStatus:
        return self.read_status(key)[0]

    def read_status(self, key: CanaryKey) -> tuple[CanaryStatus, str]:
        """The status, or an empty one and why it could not be read (never silently empty)."""
        path = self._status_path(key)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return CanaryStatus(), ""
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return CanaryStatus(), f"{path.name} is not JSON: {exc}"
        if not isinstance(raw, dict):
            return CanaryStatus(), f"{path.name} holds {type(raw).__name__}, not an object"
        try:
            return CanaryStatus.model_validate(raw), ""
        except ValidationError as exc:
            lines = api_problems.lines(exc, CanaryStatus)
            return CanaryStatus(), "; ".join(f"status.{line}" for line in lines)

    def metric_template(self, namespace: str, name: str) -> MetricTemplate | None:
        body = self.get("MetricTemplate", namespace, name)
        return None if body is None else MetricTemplate.model_validate(body)

    def chat_provider(self, namespace: str, name: str) -> ChatProvider | None:
        body = self.get("ChatProvider", namespace, name)
        return None if body is None else ChatProvider.model_validate(body)

    def ask(self, key: CanaryKey, command: Command) -> str:
        body = self.get("Canary", key.namespace, key.name)
        if body is None:
            return f"no Canary {key}"
        meta = body.setdefault("metadata", {})
        pending = commands.command_of(meta)
        answered = self.status(key).last_command
        if pending is not None and (answered is None or answered.id != pending.id):
            return "another decision is waiting to be carried out"
        annotations = meta.get("annotations") or {}
        meta["annotations"] = {
            **annotations,
            COMMAND_ANNOTATION: command.model_dump_json(by_alias=True),
        }
        self.put(body)
        return ""

    # Workloads: Deployments as plain objects of the state directory.

    def target(self, namespace: str, target: TargetRef) -> TargetState:
        body = self.get(target.kind, namespace, target.name)
        if body is None:
            raise InvalidSpec(f"targetRef: {target.kind} {namespace}/{target.name} not found")
        spec = body.get("spec") or {}
        wanted = int(spec.get("replicas", 1))
        ready = int((body.get("status") or {}).get("readyReplicas", 0))
        return TargetState(
            ready=ready >= wanted,
            template_revision=revision.of_template(spec.get("template") or {}),
        )

    def scale_to_zero(self, namespace: str, name: str) -> None:
        body = self.get("Deployment", namespace, name)
        if body is None:
            return
        body.setdefault("spec", {})["replicas"] = 0
        self.put(body)

    # Secrets: objects of kind Secret, with `data` (base64) or `stringData`.

    def value(self, namespace: str, ref: SecretKeyRef) -> str:
        body = self.get("Secret", namespace, ref.name)
        who = f"Secret {namespace}/{ref.name}"
        if body is None:
            raise InvalidSpec(f"{who} not found")
        text = (body.get("stringData") or {}).get(ref.key)
        if isinstance(text, str):
            return text
        encoded = (body.get("data") or {}).get(ref.key)
        if not isinstance(encoded, str):
            raise InvalidSpec(f"{who} has no key {ref.key!r}")
        try:
            return base64.b64decode(encoded, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise InvalidSpec(f"{who} key {ref.key!r} is not text: {exc}") from exc

    def write_status(self, key: CanaryKey, status: CanaryStatus) -> None:
        _write_json(self._status_path(key), status.model_dump(mode="json", by_alias=True))

    def write_conditions(self, key: CanaryKey, conditions: tuple[Condition, ...]) -> None:
        path = self._status_path(key)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (FileNotFoundError, UnicodeDecodeError, json.JSONDecodeError):
            raw = None
        # The rest of an unreadable status is kept as it was, for whoever comes to fix it.
        body = (
            raw
            if isinstance(raw, dict)
            else {"unreadable": path.read_text(errors="replace") if path.exists() else ""}
        )
        body["conditions"] = [c.model_dump(mode="json", by_alias=True) for c in conditions]
        _write_json(path, body)

    # The mesh's TLS policies, for preflight's mTLS item (the objects the local mesh runs by)

    def tls_objects(self, namespace: str, host: str) -> TlsObjects:
        # A file that does not parse is left out here as everywhere in the store; `mtls`
        # filters the rules by host, so all are handed over.
        return TlsObjects(
            tuple(
                policy
                for space in dict.fromkeys((namespace, ROOT_NAMESPACE))
                for policy in self.objects("PeerAuthentication", space)
            ),
            tuple(self.objects("DestinationRule")),
        )

    # Events, as a Notifier

    def notify(self, key: CanaryKey, notice: Notify) -> None:
        event = {
            "time": datetime.now(UTC).isoformat(),
            "object": str(key),
            "type": "Warning" if notice.warning else "Normal",
            "reason": notice.reason,
            "message": notice.message,
        }
        with self._lock, (self.root / "events.jsonl").open("a", encoding="utf-8") as log:
            log.write(json.dumps(event) + "\n")

    def events(self) -> list[Body]:
        path = self.root / "events.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    # Paths and parsing

    def _object_path(self, kind: str, namespace: str, name: str) -> Path:
        return self.root / "objects" / kind / namespace / f"{name}.json"

    def _status_path(self, key: CanaryKey) -> Path:
        return self.root / "status" / key.namespace / f"{key.name}.json"

    def _stored(self, body: Body) -> StoredCanary:
        meta = body.get("metadata") or {}
        key = CanaryKey(meta.get("namespace") or "default", meta.get("name") or "")
        generation = int(meta.get("generation", 0))
        version = str(meta.get("resourceVersion", ""))
        cached = self._parsed.get(key)
        if cached is None or cached[0] != version:
            # Parsed once per stored version: the same spec object on every tick also lets the
            # engine reuse what it worked out for that spec.
            try:
                cached = (version, Canary.model_validate(body).spec, ())
            except ValidationError as exc:
                cached = (version, None, tuple(api_problems.lines(exc, Canary)))
            self._parsed[key] = cached
        status, status_error = self.read_status(key)
        deleted = meta.get("deletionTimestamp")
        return StoredCanary(
            key,
            cached[1],
            status,
            generation,
            cached[2],
            chaos.request_of(meta),
            commands.command_of(meta),
            status_error=status_error,
            uid=str(meta.get("uid") or ""),
            deleting_since=datetime.fromisoformat(deleted) if isinstance(deleted, str) else None,
            finalizers=tuple(str(name) for name in meta.get("finalizers") or []),
        )


def _write_json(path: Path, body: Body) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        json.dump(body, out, indent=1, sort_keys=True)
    os.replace(temporary, path)


def _read_json(path: Path) -> Body | None:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return loaded if isinstance(loaded, dict) else None
