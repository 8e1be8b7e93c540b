"""The local Store: Kubernetes-shaped objects kept as JSON files in a state directory.

It plays the API server's part for running without a cluster: objects are seeded from YAML,
each has a generation (bumped when its spec changes) and a resourceVersion (bumped on every
write), a Canary's status is written on its own (like the status subresource), and Events go to
an append-only log. Every write is a temp file renamed into place, so a second `canary` process
reading the directory never sees half a file, and a restarted one resumes from what is there.
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

from pydantic import ValidationError

from canary.api import chaos, commands
from canary.api import problems as api_problems
from canary.api.metric_template import MetricTemplate
from canary.api.resources import Canary
from canary.api.secrets import SecretKeyRef
from canary.api.spec import CanarySpec, TargetRef
from canary.api.status import CanaryStatus
from canary.engine import revision
from canary.engine.actions import Notify
from canary.engine.observation import TargetState
from canary.errors import InvalidSpec
from canary.ports import CanaryKey, StoredCanary

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
            _write_json(self._object_path(kind, namespace, name), stored)
            return stored

    def delete(self, kind: str, namespace: str, name: str) -> bool:
        """Removes an object; False when there was none."""
        with self._lock:
            path = self._object_path(kind, namespace, name)
            try:
                path.unlink()
            except FileNotFoundError:
                return False
            return True

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
        raw = _read_json(self._status_path(key))
        return CanaryStatus() if raw is None else CanaryStatus.model_validate(raw)

    def metric_template(self, namespace: str, name: str) -> MetricTemplate | None:
        body = self.get("MetricTemplate", namespace, name)
        return None if body is None else MetricTemplate.model_validate(body)

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
        return StoredCanary(
            key,
            cached[1],
            self.status(key),
            generation,
            cached[2],
            chaos.request_of(meta),
            commands.command_of(meta),
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
